"""`orchestrate datasets new`: a part owner's folders of photos -> a LOCO-format category that
`datasets check` guides to completion and a survey runs on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from orchestrator.cli import main
from orchestrator.data import load_category
from orchestrator.data.new_category import split_good
from orchestrator.data.validate import NO_MASKS, validate

H, W = 48, 64
BLOB = (slice(16, 28), slice(24, 40))  # where a defective photo has its bright defect


def _photo(path: Path, seed: int, defect: bool = False) -> Path:
    """A grey part with sensor noise; a defective one has a bright square at BLOB."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(100, 6, (H, W, 3)), 0, 255).astype(np.uint8)
    if defect:
        img[BLOB] = 250
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    """An owner's folder: 10 good photos (and a note), 2 logical and 3 loose structural ones."""
    root = tmp_path / "photos"
    for i in range(10):
        _photo(root / "good" / f"IMG_{i + 100:04d}.png", i)
    (root / "good" / "notes.txt").write_text("taken on the bench")
    for i in range(2):
        _photo(root / "bad" / "logical" / f"wrong_{i}.png", 50 + i, defect=True)
    for i in range(3):
        _photo(root / "bad" / f"scratch_{i}.png", 60 + i, defect=True)
    return root


def _new(photos: Path, out: Path, *extra: str) -> int:
    argv = ["datasets", "new", "widget", "--good", str(photos / "good"), "--out", str(out)]
    return main([*argv, "--defective", str(photos / "bad"), *extra])


def _rows(cat: Path) -> list[dict[str, str]]:
    with open(cat / "sources.csv", newline="") as f:
        return list(csv.DictReader(f))


def _draw_masks(cat: Path) -> int:
    """Play the owner: one mask per defective image, its pixel value the template's entry."""
    values = {
        d["defect_name"]: d["pixel_value"]
        for d in json.loads((cat / "defects_config.json").read_text())
    }
    n = 0
    for row in _rows(cat):
        if row["masks"]:
            kind = "logical" if "logical" in row["masks"] else "structural"
            mask = np.zeros((H, W), np.uint8)
            mask[BLOB] = values[f"{kind}_defect"]
            Image.fromarray(mask).save(cat / row["masks"] / "000.png")
            n += 1
    return n


def test_layout_split_and_mapping(photos, tmp_path, capsys):
    out = tmp_path / "parts"
    assert _new(photos, out) == 0
    printed = capsys.readouterr().out
    cat = out / "widget"
    names = lambda sub: sorted(p.name for p in (cat / sub).iterdir())  # noqa: E731
    # 10 good photos, shares 0.2 / 0.2: 6 train, 2 validation, 2 test good
    assert names("train/good") == [f"{i:03d}.png" for i in range(6)]
    assert names("validation/good") == ["000.png", "001.png"]
    assert names("test/good") == ["000.png", "001.png"]
    assert names("test/logical_anomalies") == ["000.png", "001.png"]
    assert names("test/structural_anomalies") == ["000.png", "001.png", "002.png"]
    for sub, n in (("logical_anomalies", 2), ("structural_anomalies", 3)):
        folders = sorted((cat / "ground_truth" / sub).iterdir())
        assert [f.name for f in folders] == [f"{i:03d}" for i in range(n)]
        assert all(f.is_dir() and not any(f.iterdir()) for f in folders)
    cfg = json.loads((cat / "defects_config.json").read_text())
    assert {d["defect_name"]: d["pixel_value"] for d in cfg} == {
        "structural_defect": 1,
        "logical_defect": 2,
    }

    rows = _rows(cat)
    assert len(rows) == 15  # every photo, the note not among them
    good = [r for r in rows if r["from"] == "good"]
    assert sorted(r["original"] for r in good) == [f"IMG_{i + 100:04d}.png" for i in range(10)]
    for r in rows:  # each new file is its original photo, hard-linked (one file system here)
        src = photos / ("good" if r["from"] == "good" else "bad") / r["original"]
        assert (cat / r["path"]).samefile(src)
    assert "hard-linked" in printed
    assert {r["original"]: r["path"] for r in rows if r["from"] == "defective"} == {
        "logical/wrong_0.png": "test/logical_anomalies/000.png",
        "logical/wrong_1.png": "test/logical_anomalies/001.png",
        "scratch_0.png": "test/structural_anomalies/000.png",
        "scratch_1.png": "test/structural_anomalies/001.png",
        "scratch_2.png": "test/structural_anomalies/002.png",
    }
    assert {r["path"]: r["masks"] for r in rows}["test/logical_anomalies/001.png"] == (
        "ground_truth/logical_anomalies/001"
    )

    assert "notes.txt: not an image" in printed  # skipped, and said so
    assert "annotate the 5 defective image(s)" in printed
    assert "pixel_value" in printed and f"orchestrate datasets check {cat}" in printed
    assert f"orchestrate survey --dataset {out} --categories widget" in printed
    loaded = load_category(cat)
    assert (len(loaded.train), len(loaded.validation), len(loaded.test)) == (6, 2, 7)


def test_split_is_seeded_and_covers_every_photo(photos, tmp_path, capsys):
    def split(out: Path, *extra: str) -> dict[str, str]:
        assert _new(photos, out, *extra) == 0
        return {r["original"]: r["path"] for r in _rows(out / "widget") if r["from"] == "good"}

    first, again = split(tmp_path / "a"), split(tmp_path / "b")
    assert first == again  # same files, same seed: same split
    other = split(tmp_path / "c", "--seed", "1")
    assert other != first and sorted(other) == sorted(first)
    shares = split(tmp_path / "d", "--validation-share", "0.3", "--test-share", "0.1")
    parts = [p.split("/")[0] for p in shares.values()]
    assert (parts.count("train"), parts.count("validation"), parts.count("test")) == (6, 3, 1)
    # the minimum: one photo each, whatever the shares
    train, val, test = split_good(3, 0.01, 0.01, seed=0)
    assert len(train) == len(val) == len(test) == 1
    assert sorted(train + val + test) == [0, 1, 2]


def test_bad_input_is_one_line_and_writes_nothing(photos, tmp_path, capsys):
    out = tmp_path / "parts"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no photos here")
    assert main(["datasets", "new", "w", "--good", str(empty), "--out", str(out)]) == 2
    assert "no images found" in capsys.readouterr().err

    two = tmp_path / "two"
    for i in range(2):
        _photo(two / f"{i}.png", i)
    assert main(["datasets", "new", "w", "--good", str(two), "--out", str(out)]) == 2
    assert "at least 3 are needed" in capsys.readouterr().err

    (photos / "bad" / "scratch_1.png").write_bytes(b"\x89PNG truncated")
    assert _new(photos, out) == 2
    err = capsys.readouterr().err
    assert "unreadable image" in err and "scratch_1.png" in err and "nothing written" in err
    assert not out.exists() or not any(out.iterdir())  # no half-made category, no temp folder

    (photos / "bad" / "dents").mkdir()
    assert _new(photos, out) == 2
    assert "dents name no anomaly kind" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_an_existing_category_is_kept_without_force(photos, tmp_path, capsys):
    out = tmp_path / "parts"
    assert _new(photos, out) == 0
    cat = out / "widget"
    _draw_masks(cat)
    before = {p: p.read_bytes() for p in cat.rglob("*") if p.is_file()}
    assert _new(photos, out) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert {p: p.read_bytes() for p in cat.rglob("*") if p.is_file()} == before
    assert _new(photos, out, "--force", "--copy") == 0  # replaced: the masks are gone
    assert not list((cat / "ground_truth").rglob("*.png"))
    first = _rows(cat)[0]  # copied this time, not hard-linked
    assert not (cat / first["path"]).samefile(photos / "good" / first["original"])
    # --force never deletes the photos themselves
    inside = cat / "more"
    for i in range(3):
        _photo(inside / f"{i}.png", i)
    argv = ["datasets", "new", "widget", "--good", str(inside), "--out", str(out), "--force"]
    assert main(argv) == 2
    assert "inside" in capsys.readouterr().err and (inside / "0.png").exists()


def test_check_lists_exactly_the_missing_masks(photos, tmp_path, capsys):
    out = tmp_path / "parts"
    assert _new(photos, out) == 0
    cat = out / "widget"
    problems = validate(cat)
    assert all(p.kind == NO_MASKS for p in problems)
    rows = [r for r in _rows(cat) if r["masks"]]
    assert sorted(p.path for p in problems) == sorted(cat / r["path"] for r in rows)
    capsys.readouterr()
    assert main(["datasets", "check", str(cat)]) == 2
    res = capsys.readouterr()
    lines = res.out.strip().splitlines()
    assert len(lines) == 5
    assert (
        f"save one PNG per defect region in {cat / 'ground_truth/structural_anomalies/002'}/"
        in res.out
    )
    assert "5 defective image(s) have no masks yet" in res.err and "pixel_value" in res.err

    # one mask drawn: that image drops off the list
    mask = np.zeros((H, W), np.uint8)
    mask[BLOB] = 1
    Image.fromarray(mask).save(cat / "ground_truth/structural_anomalies/000/000.png")
    left = validate(cat)
    assert len(left) == 4 and cat / "test/structural_anomalies/000.png" not in {
        p.path for p in left
    }
    # a value the config lacks is named with the values it has
    mask[BLOB] = 255
    Image.fromarray(mask).save(cat / "ground_truth/structural_anomalies/000/000.png")
    assert any(
        "pixel value 255 absent from defects_config.json (it lists 1, 2)" in str(p)
        for p in validate(cat)
    )


def test_new_masks_check_survey_end_to_end(photos, tmp_path, capsys):
    """The README's walk-through: new -> (survey refused) -> masks -> check OK -> survey."""
    out = tmp_path / "parts"
    assert _new(photos, out) == 0
    cat = out / "widget"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    survey = [
        "survey", "--dataset", str(out), "--categories", "widget", "--methods", "pixelstats",
        "--profile", "quick", "--in-process", "--tracking-uri", uri, "--experiment", "own",
    ]  # fmt: skip
    capsys.readouterr()
    assert main(survey) == 2  # no masks yet: refused before any trial
    assert "image without masks" in capsys.readouterr().err

    assert _draw_masks(cat) == 5
    assert main(["datasets", "check", str(cat)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert main(survey) == 0
    assert "pixelstats" in capsys.readouterr().out
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("own")
    trials = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("method")]
    assert len(trials) == 1 and trials[0].data.tags.get("category") == "widget"
    metrics = trials[0].data.metrics
    # the bright squares are where the masks say: found at image and pixel level
    assert metrics["image_auroc_logical"] == 1.0 and metrics["image_auroc_structural"] == 1.0
    assert metrics["pixel_auroc"] > 0.9 and "au_spro_0.05" in metrics
