import numpy as np

from orchestrator.data import load_category
from tests.conftest import write_png


def test_mvtec_ad_folder(tmp_path):
    cat = tmp_path / "bottle"
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(
            cat / "train" / "good" / f"{i:03d}.png", rng.integers(0, 255, (32, 32, 3), np.uint8)
        )
    write_png(cat / "test" / "good" / "000.png", np.zeros((32, 32, 3), np.uint8))
    write_png(cat / "test" / "broken_large" / "000.png", np.zeros((32, 32, 3), np.uint8))
    write_png(cat / "test" / "contamination" / "000.png", np.zeros((32, 32, 3), np.uint8))
    m = np.zeros((32, 32), np.uint8)
    m[2:6, 2:6] = 255
    write_png(cat / "ground_truth" / "broken_large" / "000_mask.png", m)
    write_png(cat / "ground_truth" / "contamination" / "000_mask.png", m)
    c = load_category(cat)
    assert c.format == "mvtec"
    assert len(c.train) == 3
    assert sorted(s.subset for s in c.test) == ["broken_large", "contamination", "good"]
    test = c.split("test")
    assert set(test.labels) == {"good", "anomaly"}
    masks = test.load_masks()
    assert masks.sum() == 2 * 16
    regions = [r for regs in test.load_regions() for r in regs]
    assert len(regions) == 2 and all(r.saturation == r.area == 16 for r in regions)
