"""The job machinery survey and ensemble share (orchestrator.jobs): one spec shape, one
adapter rebuilt from it, resources that say what a trial really uses."""

from __future__ import annotations

from adapters.base import Resources
from orchestrator.ensemble.run import _combined
from orchestrator.jobs import adapter_from_spec
from orchestrator.jobs.plan import trial_resources, trial_tags


def test_adapter_from_spec_carries_the_checkout_state():
    """Survey trials and member fits build their adapter the same way: the driver's
    resolved checkout state (a modified checkout included) reaches the run's tags."""
    spec = {
        "method": "pixelstats",
        "adapter": "adapters.pixelstats:PixelStats",
        "config": {"grid": [8, 8], "smoothing_sigma": 1.0, "eps": 0.01, "seed": 0},
        "device": "cpu",
        "source": "native",
        "upstream_commit": "a" * 40,
        "vendor_clean": False,
        "checkout": "somewhere",
    }
    adapter = adapter_from_spec(spec)
    assert adapter.vendor_clean is False and str(adapter.checkout) == "somewhere"
    tags = trial_tags(adapter, spec)
    assert tags["vendor_dirty"] == "true" and tags["upstream_commit"] == "a" * 40
    assert tags["adapter"] == "adapters.pixelstats:PixelStats"


def test_trial_resources_follow_the_registry_and_the_device():
    res = Resources(cpu=2, gpu=1, memory_gb=16)
    assert trial_resources(res, "cuda") == {"cpu": 2, "gpu": 1, "memory_gb": 16}
    assert trial_resources(res, "cpu") == {"cpu": 2, "gpu": 0.0, "memory_gb": 16}


def test_ensemble_trial_asks_for_what_its_members_need():
    """An ensemble trial holds every member at once: the most any asks for, a GPU when one
    of them runs on it (it used to ask for one CPU and no GPU, then run on CUDA)."""
    wants = [
        {"cpu": 1, "gpu": 0.0, "memory_gb": 1},
        {"cpu": 2, "gpu": 1.0, "memory_gb": 16},
    ]
    assert _combined(wants) == {"cpu": 2.0, "gpu": 1.0, "memory_gb": 16.0}
