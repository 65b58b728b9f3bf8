"""Parity of the upstream and native sources (needs the vendored checkouts; marked upstream)."""

from __future__ import annotations

import pytest

from adapters.conformance import make_tiny_category
from orchestrator.cli.parity import compare, parse_overrides
from orchestrator.errors import UserError
from orchestrator.registry import load_registry
from orchestrator.vendor import checkout_state

PC = {"image_size": [48, 64], "pretrain_embed_dimension": 64, "target_embed_dimension": 64}
SN = PC | {"meta_epochs": 8, "gan_epochs": 4, "dsc_hidden": 64, "batch_size": 4}


def test_parse_overrides() -> None:
    assert parse_overrides(["a=1", "b=[2, 3]", "c=x"]) == {"a": 1, "b": [2, 3], "c": "x"}
    with pytest.raises(UserError):
        parse_overrides(["novalue"])


def _need(method: str) -> None:
    entry = load_registry().get(method)
    if not checkout_state(method, entry.commit).usable:
        pytest.skip(f"vendor/{method} missing or not at its pin: run orchestrate vendor sync")


@pytest.mark.upstream
def test_patchcore_parity(tmp_path) -> None:
    _need("patchcore")
    res = compare("patchcore", make_tiny_category(tmp_path), PC, profile="quick")
    assert all(abs(v) <= 0.01 for v in res["delta"].values()), res
    assert res["score_correlation"] >= 0.99, res


@pytest.mark.upstream
def test_simplenet_parity(tmp_path) -> None:
    _need("simplenet")
    res = compare("simplenet", make_tiny_category(tmp_path), SN, profile="quick")
    assert all(abs(v) <= 0.03 for v in res["delta"].values()), res
