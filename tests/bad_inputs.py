"""The bad-input corpus: each case is a command a hostile-but-honest user might type, with
the files it needs, and the one-line error (exit 2) it must get before any work starts.

``tests/test_bad_input.py`` runs every case in-process. ``python -m tests.bad_inputs
[TIMEOUT [CASE ...]]`` runs them as subprocesses and prints a Markdown table of exit code and last
stderr line; ``BAD_INPUTS_CHECKOUT=<folder>`` runs the commands of another checkout of the
project (e.g. an older commit, for a before/after table).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.conftest import make_loco, write_png

CATEGORY = "widget"
SIZE = (40, 60)


@dataclass
class Case:
    id: str
    #: (work folder, dataset root) -> argv of ``orchestrate``
    argv: Callable[[Path, Path], list[str]]
    #: what stderr must contain (lower-cased comparison)
    expect: str
    #: prepares files in (work folder, dataset root) before the command
    setup: Callable[[Path, Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    #: the command must not create an MLflow store in the work folder
    no_store: bool = True


def store(t: Path) -> str:
    return f"sqlite:///{t}/mlflow.db"


def survey(*extra: str, methods: str = "pixelstats"):
    def argv(t: Path, d: Path) -> list[str]:
        base = ["survey", "--dataset", str(d), "--methods", methods, "--tracking-uri", store(t)]
        return base + [a.format(t=t, d=d) for a in extra]

    return argv


def survey_without(option: str, *extra: str):
    """The survey argv without ``option`` and its value (e.g. to let an env var speak)."""

    def argv(t: Path, d: Path) -> list[str]:
        args = survey(*extra)(t, d)
        i = args.index(option)
        return args[:i] + args[i + 2 :]

    return argv


def cmd(*args: str):
    return lambda t, d: [a.format(t=t, d=d) for a in args]


def cat(d: Path) -> Path:
    return d / CATEGORY


def mask(d: Path, arr: np.ndarray, subset: str = "logical_anomalies") -> None:
    write_png(cat(d) / "ground_truth" / subset / "000" / "000.png", arr)


def _mask_wrong_size(t, d):
    m = np.zeros((20, 30), np.uint8)
    m[0:5, 0:5] = 1
    mask(d, m)


def _mask_unknown_value(t, d):
    m = np.zeros(SIZE, np.uint8)
    m[0:5, 0:5] = 7
    mask(d, m)


def _image_other_size(t, d):
    write_png(cat(d) / "test" / "good" / "000.png", np.zeros((50, 70, 3), np.uint8))


def _corrupt_image(t, d):
    (cat(d) / "test" / "good" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")


def _no_test(t, d):
    shutil.rmtree(cat(d) / "test")
    shutil.rmtree(cat(d) / "ground_truth")


def _no_train_images(t, d):
    for p in (cat(d) / "train" / "good").iterdir():
        p.unlink()


def registry(text: str | bytes, name: str = "reg.yaml"):
    def setup(t: Path, d: Path) -> None:
        path = t / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return setup


def _file(name: str):
    return lambda t, d: (t / name).write_text("not a folder")


def _store_with_experiment(t, d):
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=store(t)).create_experiment("survey")


def maps(kind: str):
    """Anomaly maps for every test image of the category, one of them bad in ``kind``."""

    def setup(t: Path, d: Path) -> None:
        import tifffile

        base = t / "maps" / CATEGORY / "test"
        for img in sorted((cat(d) / "test").glob("*/*.png")):
            out = base / img.parent.name / f"{img.stem}.tiff"
            out.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(out, np.random.default_rng(0).random(SIZE).astype(np.float32))
        first = base / "good" / "000.tiff"
        npy = first.with_suffix(".npy")
        if kind == "string":
            first.unlink()
            np.save(npy, np.full(SIZE, "a"))
        elif kind == "overflow":
            first.unlink()
            np.save(npy, np.full(SIZE, 1e300))
        elif kind == "complex":
            first.unlink()
            np.save(npy, np.ones(SIZE, np.complex64))
        elif kind == "corrupt":
            first.write_bytes(b"II*\x00" + b"\xff" * 64)
        elif kind == "both":
            np.save(npy, np.zeros(SIZE, np.float32))

    return setup


EVALUATE = cmd(
    "evaluate", "--dataset-root", "{d}", "--category", CATEGORY, "--maps", "{t}/maps",
    "--output-dir", "{t}/out",
)  # fmt: skip

VENDOR = "methods:\n  upx:\n    adapter: adapters.pixelstats:PixelStats\n    repo: {url}\n" \
    "    commit: " + "a" * 40 + "\n    default: false\n"  # fmt: skip

CASES: list[Case] = [
    # the dataset, checked before Ray starts
    Case("mask-wrong-size", survey(), "mask size 30x20 differs", _mask_wrong_size),
    Case("mask-value-not-in-config", survey(), "absent from defects_config", _mask_unknown_value),
    Case(
        "anomaly-without-masks",
        survey(),
        "image without masks",
        lambda t, d: shutil.rmtree(cat(d) / "ground_truth" / "structural_anomalies" / "000"),
    ),
    Case(
        "no-defects-config",
        survey(),
        "missing defects_config.json",
        lambda t, d: (cat(d) / "defects_config.json").unlink(),
    ),
    Case("test-image-other-size", survey(), "differs from the category's 60x40", _image_other_size),
    Case("corrupt-test-image", survey(), "unreadable image", _corrupt_image),
    Case("no-test-folder", survey(), "no test images", _no_test),
    Case("no-train-images", survey(), "no training images", _no_train_images),
    Case("unknown-category", survey("--categories", "nope"), "unknown categories nope"),
    Case("dataset-missing", cmd("survey", "--dataset", "{t}/nope"), "does not exist"),
    # options
    Case("num-cpus-0", survey("--num-cpus", "0"), "--num-cpus must be"),
    Case("num-cpus-negative", survey("--num-cpus", "-1"), "--num-cpus must be"),
    Case("methods-empty", survey(methods=","), "--methods names nothing"),
    Case("categories-empty", survey("--categories", ","), "--categories names nothing"),
    Case("max-concurrent-0", survey("--max-concurrent", "0"), "--max-concurrent must be"),
    Case("retries-negative", survey("--retries", "-1"), "--retries must be"),
    Case("trial-timeout-0", survey("--trial-timeout", "0"), "--trial-timeout must be"),
    Case("trial-timeout-nan", survey("--trial-timeout", "nan"), "--trial-timeout must be"),
    Case("unknown-method", survey(methods="nope"), "unknown method 'nope'"),
    Case("set-wrong-type", survey("--set", "pixelstats.grid=banana"), "expected a list"),
    Case("set-not-a-number", survey("--set", "pixelstats.eps=abc"), "expected a number"),
    Case("set-nan", survey("--set", "pixelstats.eps=.nan"), "expected a finite number"),
    Case("set-bool-for-int", survey("--set", "pixelstats.seed=true"), "expected an integer"),
    Case("set-unknown-key", survey("--set", "pixelstats.nope=1"), "unknown parameter"),
    Case("set-no-equals", survey("--set", "pixelstats"), "--set expects method.key=value"),
    Case("set-other-method", survey("--set", "patchcore.k=1"), "is not in this run"),
    Case(
        "output-dir-is-file",
        survey("--output-dir", "{t}/afile"),
        "is a file, not a folder",
        _file("afile"),
    ),
    # the tracking store and the Ray cluster, checked up front
    Case(
        "tracking-parent-is-file",
        survey("--tracking-uri", "sqlite:///{t}/afile/mlflow.db"),
        "is a file, not a folder",
        _file("afile"),
    ),
    Case(
        "tracking-folder-missing",
        survey("--tracking-uri", "sqlite:///{t}/nope/mlflow.db"),
        "does not exist",
    ),
    Case(
        "tracking-plain-folder",
        survey("--tracking-uri", "{t}/mlruns"),
        "retired file store",
    ),
    Case("tracking-unknown-scheme", survey("--tracking-uri", "foo://x"), "unknown scheme"),
    Case(
        "tracking-server-down",
        survey("--tracking-uri", "http://127.0.0.1:9"),
        "cannot reach the mlflow tracking server",
        env={"ORCHESTRATOR_CONNECT_TIMEOUT": "2"},
    ),
    Case(
        "tracking-env-honoured",
        survey_without("--tracking-uri"),
        "cannot reach the mlflow tracking server http://127.0.0.1:9",
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "ORCHESTRATOR_CONNECT_TIMEOUT": "2"},
    ),
    Case(
        "ray-address-dead",
        survey("--ray-address", "127.0.0.1:9"),
        "cannot reach the ray cluster at 127.0.0.1:9",
        env={"ORCHESTRATOR_CONNECT_TIMEOUT": "2"},
    ),
    Case(
        "ray-address-env-dead",
        survey(),
        "cannot reach the ray cluster at 127.0.0.1:9",
        env={"RAY_ADDRESS": "127.0.0.1:9", "ORCHESTRATOR_CONNECT_TIMEOUT": "2"},
    ),
    Case("ray-address-malformed", survey("--ray-address", "nonsense"), "must look like host:port"),
    Case(
        "num-cpus-with-cluster",
        survey("--ray-address", "127.0.0.1:9", "--num-cpus", "1"),
        "--num-cpus sizes a local ray",
    ),
    Case(
        "connect-timeout-bad",
        survey("--ray-address", "127.0.0.1:9"),
        "orchestrator_connect_timeout must be",
        env={"ORCHESTRATOR_CONNECT_TIMEOUT": "-1"},
    ),
    # registry files
    Case(
        "registry-not-utf8",
        survey("--registry", "{t}/reg.yaml"),
        "not utf-8",
        registry(b'methods:\n  pixelstats:\n    paper: "\xff\xfe"\n'),
    ),
    Case(
        "registry-bad-yaml",
        survey("--registry", "{t}/reg.yaml"),
        "cannot read registry",
        registry("methods: [unclosed\n"),
    ),
    Case("registry-missing", survey("--registry", "{t}/nope.yaml"), "does not exist"),
    Case("registry-is-folder", survey("--registry", "{t}"), "is not a file"),
    Case(
        "resources-nan",
        survey("--registry", "{t}/reg.yaml"),
        "resources.cpu must be a finite number",
        registry("methods:\n  pixelstats:\n    resources: {cpu: .nan}\n"),
    ),
    Case(
        "resources-inf",
        survey("--registry", "{t}/reg.yaml"),
        "resources.gpu must be a finite number",
        registry("methods:\n  pixelstats:\n    resources: {gpu: .inf}\n"),
    ),
    Case(
        "method-name-traversal",
        cmd("vendor", "sync", "--registry", "{t}/reg.yaml"),
        "must match [a-z0-9_-]+",
        registry(VENDOR.replace("upx:", "../x:").format(url="https://example.org/a/b.git")),
    ),
    Case(
        "method-name-absolute",
        cmd("methods", "--registry", "{t}/reg.yaml"),
        "must match [a-z0-9_-]+",
        registry(VENDOR.replace("upx:", "/abs/x:").format(url="https://example.org/a/b.git")),
    ),
    Case(
        "registry-unknown-key",
        survey("--registry", "{t}/reg.yaml"),
        "unknown key 'colour'",
        registry("methods:\n  pixelstats:\n    colour: blue\n"),
    ),
    Case(
        "adapter-not-importable",
        cmd("methods", "--registry", "{t}/reg.yaml"),
        "not importable",
        registry("methods:\n  mine:\n    adapter: no_such_module:Mine\n"),
    ),
    Case(
        "adapter-shadows-installed",
        cmd("methods", "--registry", "{t}/reg.yaml"),
        "would shadow",
        lambda t, d: (
            registry("methods:\n  mine:\n    adapter: yaml:Mine\n")(t, d),
            (t / "yaml.py").write_text("raise SystemExit('shadow executed')\n"),
        ),
    ),
    # reading never creates a store
    Case(
        "report-no-store",
        cmd("report", "--tracking-uri", "sqlite:///{t}/mlflow.db"),
        "no mlflow store",
    ),
    Case(
        "report-unknown-run",
        cmd("report", "--tracking-uri", "sqlite:///{t}/mlflow.db", "--run-id", "0123abc"),
        "no run '0123abc'",
        _store_with_experiment,
        no_store=False,
    ),
    Case(
        "report-unknown-experiment",
        cmd("report", "--tracking-uri", "sqlite:///{t}/mlflow.db", "--experiment", "nope"),
        "no mlflow experiment 'nope'",
        _store_with_experiment,
        no_store=False,
    ),
    # datasets synth over existing files
    Case(
        "synth-non-empty",
        cmd("datasets", "synth", "--out", "{d}", "--categories", "pushpins"),
        "is not empty",
    ),
    Case(
        "synth-out-is-file",
        cmd("datasets", "synth", "--out", "{t}/afile"),
        "is a file",
        _file("afile"),
    ),
    # evaluate's anomaly maps
    Case("maps-string-dtype", EVALUATE, "not numeric", maps("string")),
    Case("maps-beyond-float32", EVALUATE, "beyond float32 range", maps("overflow")),
    Case("maps-complex", EVALUATE, "complex values", maps("complex")),
    Case("maps-corrupt-tiff", EVALUATE, "cannot read anomaly map", maps("corrupt")),
    Case("maps-tiff-and-npy", EVALUATE, "ambiguous", maps("both")),
    # vendor sync's git sources
    Case(
        "vendor-ext-url",
        cmd("vendor", "sync", "upx", "--registry", "{t}/reg.yaml"),
        "refusing",
        registry(VENDOR.format(url="'ext::sh -c touch% pwned'")),
    ),
    Case(
        "vendor-upload-pack",
        cmd("vendor", "sync", "upx", "--registry", "{t}/reg.yaml"),
        "refusing",
        registry(VENDOR.format(url="'--upload-pack=touch pwned'")),
    ),
    Case(
        "vendor-mirror-missing",
        cmd("vendor", "sync", "upx", "--registry", "{t}/reg.yaml", "--mirror", "{t}/nope"),
        "error:",
        registry(VENDOR.format(url="https://example.org/a/b.git")),
    ),
    Case(
        "vendor-repo-unreachable",
        cmd("vendor", "sync", "upx", "--registry", "{t}/reg.yaml"),
        "error:",
        registry(VENDOR.format(url="file:///nonexistent/b.git")),
    ),
    # the ensemble takes the same checks
    Case("ensemble-members-empty", cmd("ensemble", "--members", ","), "at least one"),
    Case(
        "ensemble-bad-dataset",
        cmd(
            "ensemble",
            "--members",
            "pixelstats",
            "--dataset",
            "{d}",
            "--tracking-uri",
            "sqlite:///{t}/mlflow.db",
        ),
        "image without masks",
        lambda t, d: shutil.rmtree(cat(d) / "ground_truth" / "structural_anomalies" / "000"),
    ),  # fmt: skip
    Case(
        "ensemble-trial-timeout",
        cmd("ensemble", "--members", "pixelstats", "--trial-timeout", "-5"),
        "--trial-timeout must be",
    ),
]


def prepare(case: Case, work: Path) -> tuple[Path, list[str]]:
    """Make the case's files under ``work``; returns (dataset root, argv)."""
    data = work / "data"
    make_loco(data, CATEGORY, SIZE)
    if case.setup:
        case.setup(work, data)
    return data, case.argv(work, data)


def _table(timeout: float, only: list[str]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import tempfile

    print("| case | exit | error line of stderr (else its last line) |\n|---|---|---|")
    for case in CASES:
        if only and case.id not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            _, argv = prepare(case, work)
            code = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
            env = {**os.environ, **case.env, "ORCHESTRATOR_OFFLINE": "1"}
            if os.environ.get("BAD_INPUTS_CHECKOUT"):
                env["PYTHONPATH"] = os.environ["BAD_INPUTS_CHECKOUT"]
            proc = subprocess.Popen(
                [sys.executable, "-P", "-c", code, *argv],  # -P: not the cwd on sys.path
                cwd=work,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # a timeout stops Ray's processes too
            )
            try:
                _, err = proc.communicate(timeout=timeout)
                lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
                last = lines[-1] if lines else "(nothing)"
                first = next((i for i, ln in enumerate(lines) if "error:" in ln[:25]), None)
                if first is not None:  # the error line (and its first listed problem)
                    last = lines[first]
                    if last.endswith(":") and first + 1 < len(lines):
                        last += " " + lines[first + 1].strip()
                if "Traceback" in err:
                    last = f"traceback: {last}"
                rc = str(proc.returncode)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                rc, last = "-", f"still running after {timeout:g} s (killed)"
        last = last.replace(str(work), "<tmp>").replace("|", "\\|")[:160]
        print(f"| {case.id} | {rc} | {last} |", flush=True)


if __name__ == "__main__":
    import sys

    _table(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0, sys.argv[2:])
