"""Parity of the upstream and native sources of all five methods (``orchestrate parity``'s
``compare``, the goal from each registry entry), at CI sizes: the quick profile's backbone
and weights, on smaller images and shorter training. The closing numbers at the full quick
profile come from ``orchestrate parity METHOD`` itself.

Needs the checkouts (tests.upstream.need_checkout: skips without them, fails in CI).
"""

from __future__ import annotations

import pytest

from adapters.conformance import make_tiny_category
from orchestrator.cli.parity import compare, format_result, goal_met, parse_overrides
from orchestrator.data import load_category, load_dataset
from orchestrator.errors import UserError
from orchestrator.registry import ParityGoal
from tests.upstream import need_checkout, squares_category


def test_parse_overrides() -> None:
    assert parse_overrides(["a=1", "b=[2, 3]", "c=x"]) == {"a": 1, "b": [2, 3], "c": "x"}
    with pytest.raises(UserError):
        parse_overrides(["novalue"])


def _res(delta: float, spread: float, corr: float = 1.0) -> dict:
    return {
        "delta": {"image_auroc": delta, "pixel_auroc": 0.0},
        "spread": {"image_auroc": spread, "pixel_auroc": 0.0},
        "score_correlation": corr,
    }


def test_goal_deterministic_and_stochastic() -> None:
    det = ParityGoal(tolerance=0.02, min_correlation=0.99)
    assert goal_met(det, _res(0.019, 0.5))[0]  # a deterministic goal ignores any spread
    assert not goal_met(det, _res(0.021, 0.5))[0]
    assert not goal_met(det, _res(0.0, 0.0, corr=0.98))[0]
    sto = ParityGoal(tolerance=0.02, seeds=3)
    assert goal_met(sto, _res(0.05, 0.06))[0]  # within the native spread
    assert not goal_met(sto, _res(0.07, 0.06))[0]
    assert goal_met(sto, _res(0.015, 0.0))[0]  # spread below the tolerance: the tolerance
    assert goal_met(sto, _res(0.05, 0.06))[1] == {"image_auroc": 0.06, "pixel_auroc": 0.02}


def _embedded(_tmp):
    return load_dataset("synthetic", categories=["flat_connector"])[0]


def _tiny(tmp):
    return make_tiny_category(tmp)


def _squares(tmp):
    return load_category(squares_category(tmp))


#: method -> (category, overrides of the quick profile, packages its upstream code needs)
CASES = {
    # deterministic: Lite0 features at the quick layers, small images and embeddings
    "patchcore": (
        _tiny,
        {"image_size": [48, 64], "pretrain_embed_dimension": 64, "target_embed_dimension": 64},
        ("timm",),
    ),
    # stochastic (3 native seeds): the quick profile on the embedded category at half size
    "simplenet": (
        _embedded,
        {"image_size": [96, 128], "meta_epochs": 10},
        ("timm",),
    ),
    "csflow": (_embedded, {"image_size": 128, "sub_epochs": 30}, ("efficientnet_pytorch",)),
    "draem": (
        _squares,
        {
            "image_size": 32,
            "base_width": 8,
            "disc_base_width": 8,
            "epochs": 2,
            "iterations_per_epoch": 50,
            "score_kernel": 5,
        },
        ("imgaug", "cv2"),
    ),
    # resnet18 random init (the quick teacher), 64 px, batch 5: one optimiser step per epoch
    "revdist": (_tiny, {"image_size": 64, "epochs": 10, "batch_size": 5}, ("numba", "geomloss")),
}


@pytest.mark.upstream
@pytest.mark.parametrize("method", list(CASES))
def test_parity(method: str, tmp_path) -> None:
    make, overrides, modules = CASES[method]
    need_checkout(method, *modules)
    res = compare(method, make(tmp_path), overrides, profile="quick")
    print(format_result(res, "quick", overrides))
    assert res["upstream_commit"] and len(res["upstream_commit"]) == 40
    assert res["ok"], format_result(res, "quick", overrides)
    # parity of two broken sources is no parity: both must find the anomalies
    assert min(res["upstream"]["image_auroc"], res["native"]["image_auroc"]) > 0.6, res
