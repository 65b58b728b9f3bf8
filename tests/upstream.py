"""The one way tests reach an upstream checkout (tests marked ``upstream``).

Without a usable checkout (a user's clone that never ran ``orchestrate vendor sync``) such a
test skips with one line saying how to get it. ``.ci/run`` syncs all five methods from
``../shared/upstream-mirror`` and sets ``ORCHESTRATOR_REQUIRE_UPSTREAM=1``: there a missing
checkout or package fails the test instead, so CI cannot pass by skipping the upstream path.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from orchestrator.registry import load_registry
from orchestrator.vendor import checkout_state_at

REQUIRE_ENV = "ORCHESTRATOR_REQUIRE_UPSTREAM"


def need_checkout(method: str, *modules: str) -> Path:
    """The method's usable checkout (the registry entry's folder), else skip (fail in CI).

    ``modules`` are Python modules the upstream code imports (found, not imported: some,
    like imgaug, need compatibility patches before import)."""
    entry = load_registry().get(method)
    state = checkout_state_at(entry.checkout_dir, entry.commit)
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    why = None
    if not state.usable:
        why = (
            f"{method} upstream checkout unusable ({state.problem}): run "
            f"`orchestrate vendor sync {method}` (offline: --mirror ../shared/upstream-mirror)"
        )
    elif missing:
        why = f"{method} upstream needs {', '.join(missing)}: pip install -e '.[upstream]'"
    if why:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{why} [{REQUIRE_ENV} is set]")
        pytest.skip(why)
    return entry.checkout_dir


def squares_category(root: Path, seed: int = 0) -> Path:
    """Conformance-style parts; 8 good and 8 anomalous test images (white or red squares)."""
    from adapters.conformance import EVAL_SIZE, normal_part, save_png

    rng = np.random.default_rng(seed)
    cat = root / "parity"
    h, w = EVAL_SIZE

    for i in range(12):
        save_png(cat / "train" / "good" / f"{i:03d}.png", normal_part(rng))
    for i in range(8):
        save_png(cat / "test" / "good" / f"{i:03d}.png", normal_part(rng))
        img = normal_part(rng)
        y, x, s = int(rng.integers(2, 30)), int(rng.integers(2, 48)), int(rng.integers(8, 14))
        img[y : y + s, x : x + s] = 250 if i % 2 == 0 else (230, 40, 40)
        save_png(cat / "test" / "structural_anomalies" / f"{i:03d}.png", img)
        mask = np.zeros((h, w), np.uint8)
        mask[y : y + s, x : x + s] = 1
        save_png(cat / "ground_truth" / "structural_anomalies" / f"{i:03d}" / "000.png", mask)
    (cat / "validation" / "good").mkdir(parents=True)
    save_png(cat / "validation" / "good" / "000.png", normal_part(rng))
    (cat / "test" / "logical_anomalies").mkdir(parents=True)
    (cat / "defects_config.json").write_text(
        json.dumps(
            [
                {
                    "defect_name": "square",
                    "pixel_value": 1,
                    "saturation_threshold": 1.0,
                    "relative_saturation": True,
                }
            ]
        )
    )
    return cat


def two_commit_repo(path: Path) -> tuple[str, str]:
    """A real git repository at ``path`` standing in for an upstream one: ``model.py`` in two
    commits; returns their SHAs ``(first, second)``."""
    import git

    repo = git.Repo.init(path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.org")
    shas = []
    for value, message in ((1, "first"), (2, "second")):
        (path / "model.py").write_text(f"X = {value}\n")
        repo.index.add(["model.py"])
        shas.append(repo.index.commit(message).hexsha)
    return shas[0], shas[1]
