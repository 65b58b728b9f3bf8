"""The mask-background preprocessing step: the part found (or given by a roi file), the
background blacked out beyond the margin, ground truth unchanged, and the step recorded on
every trial and parent run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image
from scipy import ndimage

from orchestrator.cli import main
from orchestrator.data import load_category
from orchestrator.data.objects import otsu, train_threshold
from orchestrator.data.preprocess import Preprocess, kept_mask, materialise, record
from orchestrator.errors import UserError
from tests.conftest import write_png

H, W = 40, 60
BG, PART = 20, 200
#: the part: a plate of rows 10..24, columns 15..39 (before a per-image shift), with a hole
TOP, BOTTOM, LEFT, RIGHT = 10, 25, 15, 40


def part_mask(shift: int = 0) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[TOP + shift : BOTTOM + shift, LEFT + shift : RIGHT + shift] = True
    return m


def part_image(rng, shift: int = 0, brightness: int = PART) -> np.ndarray:
    """Dark noisy cloth with a bright plate (a dark hole in it, as drilled) and a bright
    speck far from it (a smaller component the finder must ignore)."""
    img = rng.integers(BG - 5, BG + 6, (H, W, 3)).astype(np.uint8)
    img[part_mask(shift)] = brightness
    img[17 + shift : 20 + shift, 25 + shift : 28 + shift] = BG  # the hole
    img[2:4, 55:58] = brightness  # a speck of dust on the cloth
    return img


@pytest.fixture
def part_category(tmp_path) -> Path:
    """A LOCO category of one part on dark cloth: 4 train (shifted 0..3 px), 1 validation,
    1 good and 1 structural test image with its mask."""
    cat = tmp_path / "data" / "plate"
    rng = np.random.default_rng(0)
    for i in range(4):
        write_png(cat / "train" / "good" / f"{i:03d}.png", part_image(rng, i))
    write_png(cat / "validation" / "good" / "000.png", part_image(rng, 1))
    write_png(cat / "test" / "good" / "000.png", part_image(rng, 2))
    write_png(cat / "test" / "structural_anomalies" / "000.png", part_image(rng, 0))
    (cat / "test" / "logical_anomalies").mkdir(parents=True)
    gt = np.zeros((H, W), np.uint8)
    gt[12:14, 20:30] = 1
    write_png(cat / "ground_truth" / "structural_anomalies" / "000" / "000.png", gt)
    cfg = [
        {
            "defect_name": "scratch",
            "pixel_value": 1,
            "saturation_threshold": 1.0,
            "relative_saturation": True,
        }
    ]
    (cat / "defects_config.json").write_text(json.dumps(cfg))
    return cat


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask)


def test_found_part_is_kept_with_its_margin_and_the_rest_is_black(part_category):
    cat = load_category(part_category)
    copy = materialise(cat, Preprocess("mask-background", margin=3))
    assert copy.root != cat.root and copy.name == "plate"
    for shift, split, sub in ((0, "train", "good"), (2, "test", "good"), (1, "validation", "good")):
        name = "000.png"
        src = _pixels(part_category / split / sub / name)
        out = _pixels(Path(copy.root) / split / sub / name)
        dist = _distance_to(part_mask(shift))
        inside = dist == 0  # the plate, its hole included (holes are filled)
        assert (out[inside] == src[inside]).all()
        assert (out[(dist > 0) & (dist <= 3)] == src[(dist > 0) & (dist <= 3)]).all()
        assert (out[dist > 3] == 0).all()  # the cloth and the speck beyond the margin
        assert (src[dist > 3] > 0).all()  # (they were not black before)
    s = copy.test[0]
    assert (kept_mask(copy.root, s) == (_distance_to(part_mask(2)) <= 3)).all()
    assert kept_mask(cat.root, cat.test[0]) is None  # an original folder has none


def test_ground_truth_and_config_unchanged(part_category):
    copy = materialise(load_category(part_category), Preprocess("mask-background", margin=2))
    root = Path(copy.root)
    gt = "ground_truth/structural_anomalies/000/000.png"
    assert (root / gt).read_bytes() == (part_category / gt).read_bytes()
    cfg = "defects_config.json"
    assert (root / cfg).read_bytes() == (part_category / cfg).read_bytes()
    orig = load_category(part_category).split("test")
    assert (copy.split("test").load_masks() == orig.load_masks()).all()
    assert [s.key for s in copy.test] == [s.key for s in orig]


def test_threshold_is_chosen_on_train_images_only(part_category):
    cat = load_category(part_category)
    pooled = np.concatenate(
        [np.asarray(Image.open(s.image_path)).mean(2).ravel() for s in cat.train]
    )
    assert train_threshold(cat) == otsu(pooled)[0]
    assert BG + 5 < train_threshold(cat) < PART
    first = record(materialise(cat, Preprocess("mask-background", margin=1)).root)
    # a much darker test image changes nothing about the threshold (only train/good counts)
    rng = np.random.default_rng(1)
    write_png(part_category / "test" / "good" / "000.png", part_image(rng, 2, brightness=90))
    again = record(materialise(load_category(part_category), Preprocess("mask-background", 1)).root)
    assert first["preprocess.threshold"] == again["preprocess.threshold"]
    assert first["preprocess.object_found"] == "largest-component"


def test_no_dark_background_is_a_clear_error(tmp_path):
    cat = tmp_path / "flat" / "grey"
    rng = np.random.default_rng(0)
    for i in range(3):  # uniform noise: no part to find
        write_png(
            cat / "train" / "good" / f"{i:03d}.png", rng.integers(0, 255, (H, W, 3), np.uint8)
        )
    write_png(cat / "test" / "good" / "000.png", rng.integers(0, 255, (H, W, 3), np.uint8))
    with pytest.raises(UserError, match="no part against a dark background.*separability"):
        materialise(load_category(cat), Preprocess("mask-background"))
    for i in range(3):  # a dark part on a bright background: the bright region is all of it
        write_png(cat / "train" / "good" / f"{i:03d}.png", 255 - part_image(rng, i))
    with pytest.raises(UserError, match=r"covers 100.0% of an image.*roi.png or roi.json"):
        materialise(load_category(cat), Preprocess("mask-background"))


def test_roi_json_box_and_polygon_and_png(part_category):
    box = {"box": [5, 6, 20, 16]}  # x0, y0, x1, y1 (exclusive)
    (part_category / "roi.json").write_text(json.dumps(box))
    copy = materialise(load_category(part_category), Preprocess("mask-background", margin=0))
    assert record(copy.root)["preprocess.object_found"] == "roi.json"
    out = _pixels(Path(copy.root) / "train" / "good" / "000.png")
    src = _pixels(part_category / "train" / "good" / "000.png")
    expected = np.zeros((H, W), bool)
    expected[6:16, 5:20] = True
    assert (out[expected] == src[expected]).all() and (out[~expected] == 0).all()

    # largest-component ignores the roi file; a margin grows the box
    found = materialise(
        load_category(part_category), Preprocess("mask-background", 0, "largest-component")
    )
    assert record(found.root)["preprocess.object_found"] == "largest-component"
    grown = materialise(load_category(part_category), Preprocess("mask-background", margin=2))
    kept = kept_mask(grown.root, grown.train[0])
    assert (kept == (_distance_to(expected) <= 2)).all()

    tri = {"polygon": [[0, 0], [59, 0], [0, 39]]}
    (part_category / "roi.json").write_text(json.dumps(tri))
    poly = materialise(load_category(part_category), Preprocess("mask-background", margin=0))
    kept = kept_mask(poly.root, poly.train[0])
    assert kept[0, 0] and kept[1, 1] and not kept[39, 59]

    (part_category / "roi.json").unlink()
    roi = np.zeros((H, W), np.uint8)
    roi[30:35, 40:50] = 255
    write_png(part_category / "roi.png", roi)
    png = materialise(
        load_category(part_category), Preprocess("mask-background", margin=0, object="roi")
    )
    assert record(png.root)["preprocess.object_found"] == "roi.png"
    assert (kept_mask(png.root, png.test[0]) == (roi > 0)).all()


BAD_ROIS = [
    ("roi.json", "{not json", "not readable JSON"),
    ("roi.json", json.dumps({"box": [20, 5, 10, 15]}), "x0 < x1"),
    ("roi.json", json.dumps({"box": [1, 2, 3]}), r"box must be \[x0, y0, x1, y1\]"),
    ("roi.json", json.dumps({"box": [100, 100, 120, 130]}), "outside the 60x40 images"),
    ("roi.json", json.dumps({"polygon": [[0, 0], [1, 1]]}), "three"),
    ("roi.json", json.dumps({"circle": [1, 2, 3]}), "expected"),
    ("roi.json", json.dumps({"box": ["a", 0, 5, 5]}), "list of numbers"),
    ("roi.png", np.zeros((10, 10), np.uint8), "mask is 10x10, the category's images are 60x40"),
    ("roi.png", np.zeros((H, W), np.uint8), "region is empty"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_ROIS)
def test_bad_roi_is_exit_2_with_one_line(part_category, tmp_path, capsys, name, content, message):
    path = part_category / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        write_png(path, content)
    code = main(
        [
            "survey",
            "--dataset",
            str(part_category.parent),
            "--methods",
            "pixelstats",
            "--preprocess",
            "mask-background",
            "--in-process",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert name in err
    import re

    assert re.search(message, err), err


def test_roi_mode_without_a_file_and_both_files_are_errors(part_category):
    cat = load_category(part_category)
    with pytest.raises(UserError, match="needs roi.png or roi.json"):
        materialise(cat, Preprocess("mask-background", object="roi"))
    (part_category / "roi.json").write_text(json.dumps({"box": [0, 0, 5, 5]}))
    write_png(part_category / "roi.png", np.full((H, W), 255, np.uint8))
    with pytest.raises(UserError, match="both roi.png and roi.json"):
        materialise(cat, Preprocess("mask-background"))
    for bad in (Preprocess("blur"), Preprocess("mask-background", -1), Preprocess(object="x")):
        with pytest.raises(UserError):
            bad.check()


def test_16bit_images_keep_their_depth(tmp_path):
    cat = tmp_path / "d16" / "part"
    rng = np.random.default_rng(0)
    for split, i in (("train", 0), ("train", 1), ("test", 0)):
        img = (part_image(rng).mean(2).astype(np.uint16) * 256).astype(np.uint16)
        sub = "good"
        p = cat / split / sub / f"{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
    copy = materialise(load_category(cat), Preprocess("mask-background", margin=1))
    with Image.open(Path(copy.root) / "train" / "good" / "000.png") as im:
        assert im.mode == "I;16"
        arr = np.asarray(im)
    assert arr.max() == PART * 256 and arr[0, 0] == 0


def test_survey_records_the_step_and_resume_keeps_the_arms_apart(part_category, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    base = [
        "survey",
        "--dataset",
        str(part_category.parent),
        "--methods",
        "pixelstats",
        "--in-process",
        "--tracking-uri",
        uri,
        "--experiment",
        "pre",
    ]
    masked = [*base, "--preprocess", "mask-background", "--preprocess-margin", "3"]
    assert main(masked) == 0
    out = capsys.readouterr().out
    assert "pixelstats [mask-background margin=3]" in out  # the console table's row
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("pre").experiment_id
    (parent,) = client.search_runs([exp], "tags.`orchestrator.role` = 'survey'")
    ptags = parent.data.tags
    assert ptags["preprocess"] == "mask-background" and ptags["preprocess.margin"] == "3"
    assert "mask-background margin=3" in ptags["mlflow.runName"]
    (trial,) = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    for record_ in (trial.data.tags, trial.data.params):
        assert record_["preprocess"] == "mask-background"
        assert record_["preprocess.margin"] == "3"
        assert record_["preprocess.object_found"] == "largest-component"
        assert float(record_["preprocess.threshold"]) > BG
    assert "preprocessed" in json.loads(trial.inputs.dataset_inputs[0].dataset.source)["uri"]
    md = client.download_artifacts(parent.info.run_id, "summary/summary.md", str(tmp_path))
    assert "pixelstats [mask-background margin=3]" in Path(md).read_text()

    # --resume without the step is another arm: a new parent, its trial run again
    assert main([*base, "--resume"]) == 0
    assert "no earlier survey in this experiment" in capsys.readouterr().out
    parents = client.search_runs([exp], "tags.`orchestrator.role` = 'survey'")
    assert len(parents) == 2
    plain = next(p for p in parents if p.info.run_id != parent.info.run_id)
    assert plain.data.tags["preprocess"] == "none"
    (t2,) = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{plain.info.run_id}'")
    assert t2.data.params["preprocess"] == "none"
    assert t2.data.tags["trial_key"] != trial.data.tags["trial_key"]
    # and --resume with it finds its own parent, whose trial is done
    assert main([*masked, "--resume"]) == 0
    assert "resume: 1 of 1 trials already finished, running 0" in capsys.readouterr().out
