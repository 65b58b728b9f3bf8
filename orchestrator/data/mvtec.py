"""Loader for MVTec AD category folders, as the authors ship them::

    <category>/train/good/*.png
    <category>/test/<defect_type>/*.png           (good among them)
    <category>/ground_truth/<defect_type>/<image_id>_mask.png

Anomalous test images are labelled ``"anomaly"``; each carries its one mask (value 255),
which the metrics treat as one region saturating at its full area.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.data.types import Category, Sample


def mvtec_mask_path(category_dir: Path, defect_type: str, image_id: str) -> Path:
    """Where MVTec AD keeps the mask of ``test/<defect_type>/<image_id>.png``."""
    return category_dir / "ground_truth" / defect_type / f"{image_id}_mask.png"


def load_mvtec(category_dir: Path) -> Category:
    """Load one MVTec AD category folder (no validation split: ``validation`` is empty
    unless a ``validation/good`` folder exists)."""
    from orchestrator.data.loco import assemble, list_images

    name = category_dir.name
    test: list[Sample] = []
    test_dir = category_dir / "test"
    subsets = sorted(p.name for p in test_dir.iterdir() if p.is_dir()) if test_dir.is_dir() else []
    for subset in subsets:
        for p in list_images(test_dir / subset):
            if subset == "good":
                test.append(Sample(p, p.stem, "test", "good", "good", (), name))
                continue
            mask = mvtec_mask_path(category_dir, subset, p.stem)
            masks = (mask,) if mask.exists() else ()
            test.append(Sample(p, p.stem, "test", subset, "anomaly", masks, name))
    return assemble(category_dir, name, "mvtec", test, {})
