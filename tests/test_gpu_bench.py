"""benchmarks/gpu.py: its dry run's core in-process (rows, table, CSV, AU-sPRO agreement) and
its one-line errors. Figures are checked for being measured, never for their speed."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import pytest
import torch

from benchmarks import gpu

#: smaller than --tiny: two methods, two training images
PLAN = replace(gpu.TINY, train=2, test=4)


@pytest.fixture
def no_vendor(tmp_path, monkeypatch):
    """An empty vendor directory: every upstream source is unavailable."""
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "vendor"))
    (tmp_path / "vendor").mkdir()


@pytest.fixture
def one_thread():
    """One torch thread, as the dry run on the CPU (oversubscribed threads on a shared machine
    slow it several-fold); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_dry_run_rows_table_and_csv(tmp_path, no_vendor, one_thread):
    rows = gpu.run_rows(
        ["patchcore", "draem"], ["native", "upstream"], PLAN, "cpu", tmp_path, progress=False
    )
    assert [(r.method, r.source) for r in rows] == [
        ("patchcore", "native"),
        ("patchcore", "upstream"),
        ("draem", "native"),
        ("draem", "upstream"),
    ]
    measured = {(r.method, r.source): r for r in rows if not r.note}
    assert set(measured) == {("patchcore", "native"), ("draem", "native")}, [r.note for r in rows]
    for r in measured.values():
        assert r.first_fit_s > 0 and r.fit_s > 0 and r.predict_img_s > 0
        assert r.fit_peak_mib >= 0 and r.predict_peak_mib >= 0
        assert r.image_size == PLAN.overrides[r.method]["image_size"]
    pc, dr = measured["patchcore", "native"], measured["draem", "native"]
    assert pc.fit_s_per_epoch is None and pc.epochs is None  # no epochs: its whole fit
    assert math.isfinite(dr.fit_s_per_epoch) and math.isfinite(dr.setup_s)
    assert dr.epochs == PLAN.epochs[1]
    assert pc.weights == "random" and "resnet18" in pc.weights_why  # no ImageNet file here
    assert dr.weights == "none" and dr.backbone == "-"
    for r in rows:
        if r.source == "upstream":
            assert r.note.startswith("n/a (") and "vendor sync" in r.note
            assert str(tmp_path) not in r.note  # machine paths are not shown

    table = gpu.format_table(rows)
    header = table.splitlines()[0].split()
    for col in ("method", "source", "s/epoch", "img/s", "MiB"):
        assert col in header
    assert len(table.splitlines()) == 2 + len(rows)
    notes = gpu.format_notes(rows, ["patchcore", "draem"], PLAN, "cpu")
    assert "patchcore/native" in notes and "paper 700" in notes

    out = tmp_path / "rows.csv"
    gpu.write_csv(out, rows)
    with open(out, newline="") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == gpu.COLUMNS and len(read) == len(rows)
    assert float(read[2]["fit_s"]) == pytest.approx(dr.fit_s)


def test_spro_comparison_values_agree():
    res = gpu.spro_comparison(*gpu.TINY.spro, "cpu")
    assert res.max_abs_diff == 0.0 and res.cpu_s > 0 and res.device_s > 0
    assert set(res.cpu) == {"logical", "structural"} and 0 < res.cpu["logical"][0.05] <= 1
    assert "agree" in gpu.format_spro(res, "cpu")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "patchcore,nope"], "unknown method(s) nope"),
        (["--sources", "vendor"], "unknown source(s) vendor"),
        (["--epochs", "3", "3"], "1 <= E1 < E2"),
        (["--csv", "no/such/folder/x.csv"], "does not exist"),
        (["--device", "tpu"], "--device must be"),
        (["--spro", "6", "50", "50"], "at least 100"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert gpu.main(["--tiny", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_requested_without_cuda(capsys):
    assert gpu.main(["--device", "cuda", "--tiny"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
