from orchestrator.cli import main
from orchestrator.data import load_dataset


def test_synth_writes_valid_loco_categories(tmp_path, capsys):
    rc = main(
        [
            "datasets",
            "synth",
            "--out",
            str(tmp_path),
            "--categories",
            "pushpins",
            "--seed",
            "1",
            "--size",
            "64x96",
        ]
    )
    assert rc == 0
    assert "(OK)" in capsys.readouterr().out
    cats = load_dataset("custom", root=tmp_path)
    assert [c.name for c in cats] == ["pushpins"] and cats[0].image_size == (64, 96)
    assert main(["datasets", "check", str(tmp_path)]) == 0


def test_synth_rejects_bad_input(tmp_path, capsys):
    assert main(["datasets", "synth", "--out", str(tmp_path), "--categories", "nope"]) == 2
    assert "unknown categories" in capsys.readouterr().err
    assert main(["datasets", "synth", "--out", str(tmp_path), "--size", "big"]) == 2


def test_default_synthetic_dataset_is_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path))
    cats = load_dataset()
    assert [c.name for c in cats] == ["flat_connector", "pushpins"]
    root = cats[0].root.parent
    assert root.name.startswith("v1-seed0") and root.parent == tmp_path / "synthetic"
    mtime = root.stat().st_mtime_ns
    assert load_dataset()[0].root.parent == root and root.stat().st_mtime_ns == mtime
    assert main(["datasets", "list"]) == 0
    assert "flat_connector" in capsys.readouterr().out
