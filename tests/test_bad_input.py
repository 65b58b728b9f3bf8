"""The bad-input corpus (tests/bad_inputs.py): every case ends in one clean error line with
its exit code, before any work starts, with no traceback and no MLflow store created."""

from __future__ import annotations

import re

import pytest

from orchestrator.cli import main
from tests.bad_inputs import CASES, prepare


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "ORCHESTRATOR_CONNECT_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    _, argv = prepare(case, tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == case.code, f"exit {code}, stderr: {err[-2000:]}"
    assert "Traceback" not in out + err
    assert case.expect.lower() in err.lower(), err[-2000:]
    assert re.search(r"(^|[\r\n])\s*(error|usage):", err), err[:500]  # the CLI's own line
    if case.no_store:
        assert not (tmp_path / "mlflow.db").exists(), "a store was created"
    import ray

    assert not ray.is_initialized(), "Ray was started"
