"""`orchestrate check METHOD`: the conformance kit from the command line, one line per
named check, exit 0 only when none fails."""

from __future__ import annotations

import textwrap

from adapters.conformance import CHECK_NAMES
from orchestrator.cli import main

CHEAT = textwrap.dedent("""
    import numpy as np

    from adapters.pixelstats import PixelStats


    class Cheat(PixelStats):
        name = "cheat"

        def _predict(self, test):
            preds = super()._predict(test)
            peeked = np.array([s.label != "good" for s in test], dtype=float)
            preds.image_scores = preds.image_scores + 100 * peeked  # reads the labels
            return preds
""")


def test_check_passes_a_conforming_method(capsys):
    assert main(["check", "pixelstats"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("check pixelstats (native source, profile quick): 13 checks")
    lines = {ln.split()[1].rstrip(":"): ln.split()[0] for ln in out[1:-1]}
    assert list(lines) == list(CHECK_NAMES)
    assert set(lines.values()) <= {"pass", "skip"}
    assert lines["predict-ignores-labels"] == "pass"
    assert out[-1].endswith("0 failed, 1 skipped") or out[-1].endswith("0 failed, 0 skipped")


def test_check_names_the_failed_check_of_a_plugin_under_another_name(tmp_path, capsys):
    """A method that reads test labels in predict fails that check (exit 1); registered
    under a name other than its class' own, the lines carry the registry name."""
    (tmp_path / "cheat_adapter.py").write_text(CHEAT)
    reg = tmp_path / "reg.yaml"
    reg.write_text("methods:\n  peeker:\n    adapter: cheat_adapter:Cheat\n    default: false\n")
    assert main(["check", "peeker", "--registry", str(reg)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("check peeker (native source")
    failed = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  predict-ignores-labels:"), out
    assert "1 failed" in out.splitlines()[-1]


def test_check_refuses_bad_input_in_one_line(capsys):
    assert main(["check", "nosuchmethod"]) == 2
    assert "unknown method 'nosuchmethod'" in capsys.readouterr().err
    assert main(["check", "pixelstats", "--set", "colour=red"]) == 2
    assert "unknown parameter(s) colour" in capsys.readouterr().err
    assert main(["check", "pixelstats", "--source", "upstream"]) == 2
    assert "no upstream source" in capsys.readouterr().err
