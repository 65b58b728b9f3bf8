"""KnnPatch: every test patch scored by its distance to the nearest training patch.

A method as small as a method can be, to show the plugin path end to end: two sources behind
one EngineAdapter (``native.py`` the plugin's own code, ``upstream.py`` driving a pinned
upstream repository unmodified), the registry entry the class declares (``registry_entry``),
and the adapter contract the conformance kit checks (``orchestrate check patchknn``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import Resources
from adapters.common.engine import EngineAdapter


class KnnPatch(EngineAdapter):
    name = "knn"
    feature_name = "nn_distance"
    uses_weights_resolver = False  # no backbone: raw pixels
    default_resources = Resources(cpu=1, gpu=0, memory_gb=1)
    # engines by the one shape: knn_plugin.native:NativeKnnPatch, knn_plugin.upstream:...
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": [48, 64],  # (H, W) the images are resized to
        "patch": 4,  # patch side in pixels (features: patch x patch x 3 values)
        "k": 1,  # neighbours averaged for a patch's distance
        "batch_size": 16,
        "seed": 0,
    }
    #: What the registry knows of this method without any YAML (a user registry's keys
    #: replace these one by one). The repository and commit below are placeholders: put the
    #: method's own upstream repository and the full commit it is pinned to.
    registry_entry: ClassVar[dict[str, Any]] = {
        "repo": "https://example.org/knn-reference.git",
        "commit": "0000000000000000000000000000000000000000",
        "license": "Apache-2.0",
        "paper": "(example) nearest-neighbour patch distances",
        "params": dict(default_config),
        "profiles": {"quick": {"image_size": [48, 64]}},
        "resources": {"gpu": 0, "cpu": 1, "memory_gb": 1},
        # no training, same numbers from both sources: a tight goal
        "parity": {"tolerance": 0.001, "min_correlation": 0.999},
    }
