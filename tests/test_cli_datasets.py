from orchestrator.cli import main
from orchestrator.data import load_dataset
from orchestrator.data.synthetic import Counts, generate, synthetic_cache_path


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


def test_default_dataset_reads_the_cache(tmp_path, monkeypatch, capsys):
    """``--dataset synthetic`` (the default) loads <cache>/synthetic/<version>-seed0; a small
    copy is put there first so the test does not generate the full-size set."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path))
    target = synthetic_cache_path()
    small = Counts(train=2, validation=1, good=1, logical=2, structural=2)
    generate(target, seed=0, size=(64, 80), counts=small)
    cats = load_dataset()
    assert [c.name for c in cats] == ["flat_connector", "pushpins"]
    assert all(c.root.parent == target and len(c.train) == 2 for c in cats)
    assert [c.name for c in load_dataset("synthetic", categories=["pushpins"])] == ["pushpins"]
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("flat_connector") and "fingerprint" in out[0]


def test_list_loco_without_data_says_where_to_put_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCHESTRATOR_DATA", str(tmp_path / "data"))
    assert main(["datasets", "list", "--dataset", "loco"]) == 2
    err = capsys.readouterr().err
    assert "mvtec_loco_anomaly_detection" in err and "--dataset-root" in err
    assert "Traceback" not in err
