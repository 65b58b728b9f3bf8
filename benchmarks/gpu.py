"""GPU benchmark of the five methods at the paper profile (native and upstream) and of AU-sPRO.

Fit s/epoch, predict images/s and peak GPU memory of every method at the paper profile, native
and upstream side by side; AU-sPRO on the GPU against the CPU.

    .venv/bin/python benchmarks/gpu.py [--device cuda] [--methods ...] [--csv FILE]
    .venv/bin/python benchmarks/gpu.py --device cpu --tiny   # dry run: same code, tiny sizes

Data: one fixed synthetic LOCO-format category (flat_connector, seed 0) generated at each
method's paper image size (registry.yaml ``params.image_size``), ``--train`` training and
``--test`` test images, in a temporary folder.

Fit: the paper profile with only the epoch settings overridden (``EPOCHS``; ``--tiny`` also
shrinks images, batches, backbones and heads: ``TINY``). Each method is fitted three times: a
warm-up fit with E1 epochs (1st fit s: one-time costs such as imports, numba compilation,
first kernels), then timed fits with E1 and E2 epochs: s/epoch = (t2 - t1) / (E2 - E1), so
the setup (building networks, feature caching, batch-norm calibration) cancels; setup s =
t1 - E1 * s/epoch; fit s is the E2 fit. PatchCore has no epochs: fit s is its whole fit.
Predict: images/s of ``Adapter.predict`` on the test images (decoding, resizing and maps at
the evaluation size included), after one untimed warm-up image.
Peak memory: ``torch.cuda.max_memory_allocated``, reset before each measurement (the E2 fit;
predict). On the CPU (the dry run) the process' resident set above its level at the start of
the measurement, sampled every 5 ms.
Weights: the ImageNet weights where the resolver (adapters.common.weights) finds them locally
(weights_path, the torch hub cache, a package; never a download); else ``pretrained: false``,
a seeded random init of the same architecture, labelled ``random`` (speed does not depend on
the weight values). Upstream: where the vendored checkout is usable (orchestrator.vendor,
``ORCHESTRATOR_VENDOR``), else ``n/a (why)``.

AU-sPRO: a LOCO-sized evaluation set (benchmarks.metrics_bench.make_set, 120 images of
1100 x 1600) scored by the project's numpy path (SortedPool, as evaluate_arrays) and by the
same curves over TorchSortedPool (orchestrator.metrics.device_pool: normal pixels gathered,
sorted and counted on the device; regions and integration in numpy); both times, the
agreement of the 2 subsets x 5 FPR limits.
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository root on the path (benchmarks.*)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

METHODS = ("patchcore", "simplenet", "csflow", "draem", "revdist")
SOURCES = ("native", "upstream")
CATEGORY = "flat_connector"
#: the config overrides that make a fit run ``e`` epochs (PatchCore has none)
EPOCHS: dict[str, Callable[[int], dict[str, int]]] = {
    "simplenet": lambda e: {"meta_epochs": e},
    "csflow": lambda e: {"meta_epochs": 1, "sub_epochs": e},
    "draem": lambda e: {"epochs": e},
    "revdist": lambda e: {"epochs": e},
}
#: the goal for the whole run on one GPU (issue 19)
BUDGET_S = 480


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    train: int
    test: int
    epochs: tuple[int, int]
    overrides: dict[str, dict[str, Any]]  # per method, over the paper profile (besides epochs)
    spro: tuple[int, int, int]  # AU-sPRO set: images, H, W


PAPER = Plan(32, 32, (1, 3), {}, (120, 1100, 1600))
#: the dry run: the same code (sources, weights resolver, fit, predict, measurements) at
#: tiny sizes: small images (CS-Flow: a multiple of 128), batches of 2, the smallest backbone
#: of each family (torchvision ResNet / EfficientNet, the paper's are WR50 and B5) and narrow
#: heads, so that it runs in a minute or two on two CPU cores
TINY = Plan(
    4,
    4,
    (1, 2),
    {
        "patchcore": {
            "image_size": 64,
            "batch_size": 2,
            "backbone": "resnet18",
            "pretrain_embed_dimension": 64,
            "target_embed_dimension": 64,
        },
        "simplenet": {
            "image_size": 64,
            "batch_size": 2,
            "backbone": "resnet18",
            "pretrain_embed_dimension": 64,
            "target_embed_dimension": 64,
            "dsc_hidden": 64,
        },
        "csflow": {
            "image_size": 128,
            "batch_size": 2,
            "extractor": "efficientnet-b0",
            "fc_internal": 32,
        },
        "draem": {
            "image_size": 64,
            "batch_size": 2,
            "base_width": 8,
            "disc_base_width": 8,
            "n_textures": 2,
        },
        "revdist": {"image_size": 64, "batch_size": 2, "backbone": "resnet18"},
    },
    (6, 110, 160),
)


@dataclass
class Row:
    """One (method, source) line of the table; ``note`` is set when it has no figures."""

    method: str
    source: str
    weights: str = ""  # imagenet | random | none
    weights_why: str = ""  # why random
    backbone: str = ""
    image_size: int | None = None
    first_fit_s: float | None = None  # the untimed warm-up fit (E1): one-time costs included
    fit_s_per_epoch: float | None = None
    setup_s: float | None = None
    fit_s: float | None = None
    epochs: int | None = None
    predict_img_s: float | None = None
    fit_peak_mib: float | None = None
    predict_peak_mib: float | None = None
    note: str = ""


COLUMNS = [f.name for f in fields(Row)]


def epoch_unit(method: str, params: dict[str, Any]) -> str:
    """What one epoch of ``method`` is, and how many the paper runs."""
    p = params
    if method == "simplenet":
        return f"1 meta-epoch ({p['gan_epochs']} discriminator passes); paper {p['meta_epochs']}"
    if method == "csflow":
        n = int(p["meta_epochs"]) * int(p["sub_epochs"])
        return f"1 sub-epoch (a pass over the cached features); paper {n}"
    if method in ("draem", "revdist"):
        return f"1 pass over the training images; paper {p['epochs']}"
    return "no epochs: fit s is its whole fit (embedding, coreset, index)"


# -- measuring ------------------------------------------------------------------------------
def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def sync(device: str) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)


def free(device: str) -> None:
    gc.collect()
    if is_cuda(device):
        torch.cuda.empty_cache()


class PeakMemory:
    """Peak memory of the block in MiB (``.mib``): CUDA's max allocated, reset on entry; on
    the CPU the resident set's peak above its level on entry, sampled every 5 ms."""

    def __init__(self, device: str):
        self.device = device
        self.mib = 0.0

    def __enter__(self) -> PeakMemory:
        if is_cuda(self.device):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        import psutil

        proc = psutil.Process()
        self._base = self._peak = proc.memory_info().rss
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.005):
                self._peak = max(self._peak, proc.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if is_cuda(self.device):
            torch.cuda.synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.mib = (self._peak - self._base) / 2**20


def timed(fn: Callable[[], Any], device: str) -> tuple[float, float]:
    """Wall seconds and peak MiB of ``fn()`` (the device synchronised at both ends)."""
    free(device)
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        fn()
        sync(device)
        dt = time.perf_counter() - t0
    return dt, mem.mib


def warm_up(device: str) -> None:
    """Create the device context and its first kernels before anything is timed."""
    conv = torch.nn.Conv2d(3, 8, 3).to(device)
    x = torch.randn(4, 3, 32, 32, device=device)
    conv(x).sum().backward()
    torch.sort(torch.rand(1000, device=device))
    sync(device)


def weights_choice(cls, config: dict[str, Any], source: str) -> tuple[dict[str, Any], str, str]:
    """(overrides, label, why): the resolver's local ImageNet weights, else seeded random."""
    from adapters.common.weights import find_weights
    from orchestrator.errors import UserError

    backbones = cls.backbones(config, source)
    if not backbones:
        return {}, "none", ""
    missing, found = [], []
    for name, _pretrained, path, _seed in backbones:
        try:
            hit = find_weights(name, path)
        except UserError:
            hit = None
        (found if hit else missing).append(hit.source if hit else name)
    if missing:
        why = f"no local ImageNet file for {', '.join(missing)} (no download)"
        return {"pretrained": False, "weights_path": None}, "random", why
    return {}, "imagenet", ""


def shown(text: str) -> str:
    """One line of an error for the table, machine paths replaced by their names."""
    from orchestrator.paths import vendor_dir

    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    for path, name in ((str(vendor_dir()), "<vendor>"), (tempfile.gettempdir(), "<tmp>")):
        line = line.replace(path, name)
    line = line.replace(str(Path.cwd()), ".")
    return line if len(line) <= 160 else line[:157] + "..."


def config_of(registry, method: str, plan: Plan) -> dict[str, Any]:
    """The method's paper config with the plan's overrides (epochs aside)."""
    return registry.get(method).resolved_config("paper", plan.overrides.get(method, {}))


def measure(registry, method: str, source: str, category, plan: Plan, device: str) -> Row:
    """One (method, source): an untimed warm-up fit (E1 epochs: one-time costs such as numba
    compilation and first kernels), the timed E1 and E2 fits, then predict."""
    from orchestrator.errors import UserError

    entry = registry.get(method)
    row = Row(method, source)
    base = dict(plan.overrides.get(method, {}))
    cls = entry.adapter_class()
    config = entry.resolved_config("paper", base)
    extra, row.weights, row.weights_why = weights_choice(cls, config, source)
    base |= extra
    row.backbone = ";".join(b[0] for b in cls.backbones(config, source)) or "-"
    row.image_size = int(config["image_size"])
    train, test = category.split("train"), category.split("test")
    timed_runs = plan.epochs if method in EPOCHS else (None,)
    runs = (timed_runs[0], *timed_runs)  # the first is the warm-up
    times: list[float] = []
    adapter = None
    try:
        for e in runs:
            adapter = None
            over = base | (EPOCHS[method](e) if e else {})
            try:
                adapter = registry.build(method, over, device=device, source=source)
            except UserError as exc:
                row.note = f"n/a ({shown(exc)})"
                return row
            fit_s, row.fit_peak_mib = timed(lambda a=adapter: a.fit(train), device)
            times.append(fit_s)
        row.first_fit_s, times = times[0], times[1:]
        row.fit_s, row.epochs = times[-1], timed_runs[-1]
        if len(times) == 2:
            (e1, e2), (t1, t2) = plan.epochs, times
            row.fit_s_per_epoch = (t2 - t1) / (e2 - e1)
            row.setup_s = t1 - e1 * row.fit_s_per_epoch
        assert adapter is not None
        adapter.predict(test.subset([0]))  # warm-up, untimed
        pred_s, row.predict_peak_mib = timed(lambda a=adapter: a.predict(test), device)
        row.predict_img_s = len(test) / pred_s
    except Exception as exc:  # noqa: BLE001 - one broken row must not lose the others
        row.note = f"failed ({type(exc).__name__}: {shown(exc)})"
    return row


def make_categories(root: Path, sizes: set[int], plan: Plan) -> dict[int, Any]:
    """The fixed synthetic category at each size: ``{size: Category}``."""
    from orchestrator.data import load_category
    from orchestrator.data.synthetic import Counts, generate

    quarter = plan.test // 4
    counts = Counts(plan.train, 0, plan.test - 2 * quarter, quarter, quarter)
    out = {}
    for s in sorted(sizes):
        generate(root / str(s), categories=(CATEGORY,), size=(s, s), counts=counts, progress=True)
        out[s] = load_category(root / str(s) / CATEGORY)
    return out


def run_rows(
    methods: Sequence[str],
    sources: Sequence[str],
    plan: Plan,
    device: str,
    root: Path,
    progress: bool = True,
) -> list[Row]:
    """Every (method, source) row, measured in this process, one after the other."""
    from tqdm import tqdm

    from orchestrator.registry import load_registry

    registry = load_registry()
    size = {m: int(config_of(registry, m, plan)["image_size"]) for m in methods}
    categories = make_categories(root, set(size.values()), plan)
    warm_up(device)
    rows: list[Row] = []
    pairs = [(m, s) for m in methods for s in sources]
    bar = tqdm(pairs, desc="gpu bench", unit="run", disable=not progress, file=sys.stderr)
    # upstream PatchCore's FaissNN sets OpenMP's thread count, which torch shares: each row
    # starts from this process' setting again
    threads = torch.get_num_threads()
    try:
        for method, source in bar:
            bar.set_postfix_str(f"{method}/{source}")
            torch.set_num_threads(threads)
            category = categories[size[method]]
            rows.append(measure(registry, method, source, category, plan, device))
    except KeyboardInterrupt:
        print("interrupted: the table shows the runs measured so far", file=sys.stderr)
    return rows


# -- AU-sPRO --------------------------------------------------------------------------------
LABELS = ("good", "logical", "structural")


def device_spro(maps, labels, masks, regions, device: str) -> dict[str, dict[float, float]]:
    """AU-sPRO per subset with the normal-pixel pools on ``device`` (TorchSortedPool)."""
    from orchestrator.metrics import RegionScores, au_spro
    from orchestrator.metrics.device_pool import TorchSortedPool

    pools = {}
    for lab in LABELS:
        parts = [
            torch.from_numpy(maps[i]).to(device)[~torch.from_numpy(masks[i]).to(device)]
            for i in np.flatnonzero(labels == lab)
        ]
        pools[lab] = TorchSortedPool([torch.cat(parts)] if parts else [], device)
    out = {}
    for kind in ("logical", "structural"):
        idx = np.flatnonzero(labels == kind)
        regs = [RegionScores(maps[i][r.mask], r.saturation) for i in idx for r in regions[i]]
        out[kind] = au_spro(pools["good"] + pools[kind], regs)
    return out


@dataclass
class SproResult:
    images: int
    height: int
    width: int
    regions: int
    cpu_s: float
    device_s: float
    max_abs_diff: float
    cpu: dict[str, dict[float, float]]


def spro_comparison(n: int, h: int, w: int, device: str) -> SproResult:
    """Time AU-sPRO (both subsets, 5 limits) with numpy pools and with pools on ``device``."""
    from benchmarks.metrics_bench import fast_spro, make_set

    maps, labels, masks, regions = make_set(n, h, w)
    t0 = time.perf_counter()
    cpu = fast_spro(maps, labels, masks, regions)
    cpu_s = time.perf_counter() - t0
    device_spro(maps[:3], labels[:3], masks[:3], regions[:3], device)  # warm-up, untimed
    sync(device)
    t0 = time.perf_counter()
    dev = device_spro(maps, labels, masks, regions, device)
    sync(device)
    device_s = time.perf_counter() - t0
    diff = max(abs(cpu[k][lim] - dev[k][lim]) for k in cpu for lim in cpu[k])
    n_regions = sum(len(r) for r in regions)
    return SproResult(n, h, w, n_regions, cpu_s, device_s, diff, cpu)


# -- output ---------------------------------------------------------------------------------
def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def format_table(rows: Sequence[Row]) -> str:
    head = (
        f"{'method':10} {'source':8} {'backbone':16} {'weights':8} {'size':>5} "
        f"{'1st fit s':>9} {'fit s/epoch':>11} {'setup s':>8} {'fit s':>8} "
        f"{'predict img/s':>13} {'fit peak MiB':>12} {'pred peak MiB':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        start = f"{r.method:10} {r.source:8} "
        if r.note:
            lines.append(start + r.note)
            continue
        lines.append(
            start + f"{r.backbone:16} {r.weights:8} {r.image_size:>5} "
            f"{_num(r.first_fit_s, '.2f'):>9} {_num(r.fit_s_per_epoch, '.3f'):>11} "
            f"{_num(r.setup_s, '.2f'):>8} {_num(r.fit_s, '.2f'):>8} "
            f"{_num(r.predict_img_s, '.1f'):>13} {_num(r.fit_peak_mib, '.0f'):>12} "
            f"{_num(r.predict_peak_mib, '.0f'):>13}"
        )
    return "\n".join(lines)


def format_notes(rows: Sequence[Row], methods: Sequence[str], plan: Plan, device: str) -> str:
    from orchestrator.registry import load_registry

    registry = load_registry()
    e1, e2 = plan.epochs
    first = f"the warm-up fit ({e1} epoch(s); one-time costs such as imports and compilation)"
    lines = [
        f"columns: 1st fit s = {first}; fit s/epoch = (t{e2} - t{e1}) / {e2 - e1} from the "
        f"timed fits with {e1} and {e2} epochs; setup s = t{e1} - {e1} x s/epoch; "
        f"fit s = the {e2}-epoch fit",
        "one epoch:",
    ]
    lines += [f"  {m:10} {epoch_unit(m, registry.get(m).params)}" for m in methods]
    random = [r for r in rows if r.weights == "random" and not r.note]
    if random:
        lines.append(
            "weights 'random': pretrained: false, a seeded random init of the same "
            "architecture (speed does not depend on the weight values):"
        )
        lines += [f"  {r.method}/{r.source}: {r.weights_why}" for r in random]
    mem = (
        "torch.cuda.max_memory_allocated, reset before each measurement"
        if is_cuda(device)
        else "on the CPU, the resident set's peak above its level at the start of each "
        "measurement (sampled every 5 ms; the CUDA figure on a GPU)"
    )
    lines.append(f"peak memory: {mem}")
    if any(v is not None and v < 0 for r in rows for v in (r.fit_s_per_epoch, r.setup_s)):
        lines.append(
            "negative figures: timing noise exceeded the quantity (tiny sizes or a loaded "
            "machine); more epochs (--epochs) or training images (--train) make it larger"
        )
    return "\n".join(lines)


def format_spro(res: SproResult, device: str) -> str:
    threads = os.cpu_count() or 1
    ok = "agree" if res.max_abs_diff <= 1e-9 else "MISMATCH"
    lo, st = res.cpu["logical"][0.05], res.cpu["structural"][0.05]
    dev_label = f"{device} (torch)" if is_cuda(device) else "cpu (torch, the device path on cpu)"
    return "\n".join(
        [
            f"AU-sPRO, LOCO-sized set: {res.images} images of {res.height} x {res.width}, "
            f"{res.regions} regions; both subsets, FPR limits 0.01 to 1.0",
            f"  numpy pools (SortedPool as evaluate_arrays, {threads} CPU cores): "
            f"{res.cpu_s:8.2f} s",
            f"  TorchSortedPool on {dev_label}: {res.device_s:8.2f} s "
            f"(host->device copy included; region top-s and integration in numpy); "
            f"numpy time / device time = {res.cpu_s / res.device_s:.1f}",
            f"  max |numpy - device| over 2 subsets x 5 limits: {res.max_abs_diff:.1e} ({ok}); "
            f"AU-sPRO at 0.05: logical {lo:.6f}, structural {st:.6f}",
        ]
    )


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})


# -- command line ---------------------------------------------------------------------------
def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(
            f"unknown {what} {', '.join(bad) or '(none given)'} (known: {', '.join(known)})"
        )
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N (default: cuda when available)",
    )
    ap.add_argument("--tiny", action="store_true", help="dry run: tiny sizes, epochs and counts")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma-separated (default: both)")
    ap.add_argument("--train", type=int, help="training images (paper 32, tiny 4)")
    ap.add_argument("--test", type=int, help="test images (paper 32, tiny 4)")
    ap.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        metavar=("E1", "E2"),
        help="the timed fits' epochs (1 3; tiny 1 2)",
    )
    ap.add_argument(
        "--spro",
        type=int,
        nargs=3,
        metavar=("N", "H", "W"),
        help="AU-sPRO set: N images (a multiple of 3) of H x W (120 1100 1600; tiny 6 110 160)",
    )
    ap.add_argument("--skip-spro", action="store_true", help="no AU-sPRO comparison")
    ap.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's; 1 with --tiny on the CPU, where a shared "
        "machine's oversubscribed threads would slow the dry run several-fold)",
    )
    ap.add_argument("--csv", type=Path, help="also write the table's rows to this CSV file")
    return ap.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    """The run's sizes; ValueError for bad ones (checked before any work)."""
    plan = TINY if args.tiny else PAPER
    changes: dict[str, Any] = {}
    for key in ("train", "test"):
        value = getattr(args, key)
        if value is not None:
            if value < (4 if key == "test" else 1):
                raise ValueError(f"--{key} must be at least {4 if key == 'test' else 1}")
            changes[key] = value
    if args.epochs is not None:
        e1, e2 = args.epochs
        if not 1 <= e1 < e2:
            raise ValueError("--epochs E1 E2 needs 1 <= E1 < E2")
        changes["epochs"] = (e1, e2)
    if args.spro is not None:
        n, h, w = args.spro
        # make_set's regions have radii up to 150 px: smaller images may hold no normal pixel
        if n < 3 or n % 3 or min(h, w) < 100:
            raise ValueError("--spro N H W: N a multiple of 3, H and W at least 100")
        changes["spro"] = tuple(args.spro)
    return replace(plan, **changes)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        methods = _names(args.methods, METHODS, "method(s)")
        sources = _names(args.sources, SOURCES, "source(s)")
        plan = plan_of(args)
        device = args.device
        if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
            raise ValueError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
        if is_cuda(device) and not torch.cuda.is_available():
            raise ValueError("--device cuda, but torch sees no CUDA device (--device cpu --tiny)")
        if args.threads is not None and args.threads < 1:
            raise ValueError("--threads must be at least 1")
        if args.csv is not None and not args.csv.parent.is_dir():
            raise ValueError(f"--csv: folder {args.csv.parent} does not exist")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.tiny and not is_cuda(device):
        print("note: paper sizes on the CPU can take an hour; --tiny is the dry run")
    threads = args.threads or (1 if args.tiny and not is_cuda(device) else None)
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if is_cuda(device) else "CPU"
    profile = "paper profile" + (", --tiny (dry run: tiny sizes)" if args.tiny else "")
    print(
        f"GPU benchmark: {profile}; device {device} ({name}), torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"data: synthetic {CATEGORY} (seed 0) at each method's "
        f"{'tiny' if args.tiny else 'paper'} image size, {plan.train} train / {plan.test} test "
        f"images; fits with {plan.epochs[0]} and {plan.epochs[1]} epochs"
        + ("; --tiny: batches of 2, smallest backbones, narrow heads" if args.tiny else "")
    )
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        rows = run_rows(methods, sources, plan, device, Path(tmp))
    print()
    print(format_table(rows))
    print(format_notes(rows, methods, plan, device))
    if args.csv is not None:
        write_csv(args.csv, rows)
        print(f"rows written to {args.csv}")
    if not args.skip_spro:
        print()
        print(format_spro(spro_comparison(*plan.spro, device), device))
    total = time.perf_counter() - start
    print(f"\nfinished in {total:.0f} s (goal for the full run on one GPU: <= {BUDGET_S} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
