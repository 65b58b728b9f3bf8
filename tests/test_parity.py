"""Parity of the upstream and native sources (needs the vendored checkouts; marked upstream)."""

from __future__ import annotations

import pytest

from adapters.conformance import make_tiny_category
from orchestrator.cli.parity import compare, goal_met, parse_overrides
from orchestrator.data import load_dataset
from orchestrator.errors import UserError
from orchestrator.registry import load_registry
from orchestrator.vendor import checkout_state

PC = {"image_size": [48, 64], "pretrain_embed_dimension": 64, "target_embed_dimension": 64}


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
    # The tiny conformance category is too small for a stochastic method: its pixel AUROC
    # swings from 0.1 to 0.76 with the seed (both sources alike). The embedded synthetic
    # category with the full quick profile is: at 10 meta-epochs both sources are still
    # half-trained and differ by about 0.05; at 30 they agree within the goal (several minutes,
    # mostly upstream, which recomputes the backbone features every epoch).
    cat = load_dataset("synthetic", categories=["flat_connector"])[0]
    res = compare("simplenet", cat, profile="quick")
    ok, worst = goal_met("simplenet", res)
    assert ok, res
    assert res["native"]["image_auroc"] > 0.7, res


@pytest.mark.upstream
def test_revdist_parity(tmp_path) -> None:
    """Tiny settings: the conformance category (10 training images), resnet18 random init
    (same teacher for both, batch-norm calibrated), 64 px, batch 5 (two batches per epoch:
    one optimiser step per epoch in both sources), 10 epochs."""
    _need("revdist")
    pytest.importorskip("numba", reason="upstream revdist needs numba")
    pytest.importorskip("geomloss", reason="upstream revdist needs geomloss")
    tiny = {"image_size": 64, "epochs": 10, "batch_size": 5}
    res = compare("revdist", make_tiny_category(tmp_path), tiny, profile="quick")
    ok, worst = goal_met("revdist", res)
    assert ok, res
