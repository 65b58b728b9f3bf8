"""Multi-node Ray on one machine: a head and a second node (``ray start``, every address on
loopback), a survey that joins them (``--ray-address``, or ``$RAY_ADDRESS``) runs trials on
both (each trial's run is tagged ``ray_node``), and when the second node is lost in the
middle of a survey its trial is retried on the head and every trial ends FINISHED.

How data reaches the workers: by path. A trial's spec carries the category folder
(``category_dir``), the cache folder and the user registry's folder (its adapter module) as
paths, and the worker reads them where it runs; every node must see the same path: one
machine here, a shared filesystem mounted at the same place on a cluster. Ray's object
store would instead copy the dataset to every node (and hold it in each node's shared
memory) for every trial that asks for it, and the adapters read folders anyway.

The recipe (Ray 2.60, Linux): every node is started with ``--node-ip-address 127.0.0.1``;
Ray binds a node's servers to loopback only when that is its address. The head runs with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which keeps 127.0.0.1 as it is (otherwise Ray
advertises the machine's outward address); a node started so refuses to join a cluster,
so the second node runs ``ray start`` with Ray's loopback rewrite turned off (:data:`JOIN`).
The driver does the same through ``orchestrator.scheduling.ray_session`` (an address on
loopback is joined as given). ``ray start --head`` turns token authentication on: every
process gets ``RAY_AUTH_MODE=token`` and the same ``RAY_AUTH_TOKEN``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from orchestrator.cli import main
from orchestrator.netcheck import probe_tcp

LOOPBACK = "127.0.0.1"

#: ``ray start`` for a node joining the head: with clusters enabled (the default on Linux)
#: Ray turns 127.0.0.1 in ``--address`` and ``--node-ip-address`` into the machine's outward
#: address (``ray._private.services.resolve_ip_for_localhost``), where nothing listens.
JOIN = textwrap.dedent("""
    import sys
    from ray._private import services
    services.resolve_ip_for_localhost = lambda host: host
    from ray.scripts.scripts import main
    sys.exit(main())
""")

#: a PixelStats that sleeps in fit (a trial long enough to lose its node in the middle)
SLOW = textwrap.dedent("""
    import time

    from adapters.pixelstats import PixelStats


    class Slow(PixelStats):
        name = "slow"
        default_config = {**PixelStats.default_config, "sleep": 0.0}

        def _fit(self, train):
            time.sleep(float(self.config["sleep"]))
            return super()._fit(train)
""")

REGISTRY = textwrap.dedent("""
    methods:
      slow:
        adapter: slow_adapter:Slow
        params: {grid: [16, 16], smoothing_sigma: 1.0, eps: 0.01, seed: 0, sleep: 0.0}
        resources: {gpu: 0, cpu: 1, memory_gb: 1}
        default: false
""")

#: the head notices a lost node within a few seconds (default: about 30 s)
HEALTH_CHECK = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "3",
}


def say(line: str) -> None:
    print(f"[ray-cluster] {line}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A ``ray start --block``, in a process group of its own."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait(proc: subprocess.Popen, log: Path, ready=None) -> None:
    """Until ``ready()``, by default until the node runs (``ray start`` says so once the
    node is registered with the head)."""
    ready = ready or (lambda: b"Ray runtime started" in log.read_bytes())
    deadline = time.monotonic() + 90
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{log.stem} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _processes(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        top = psutil.Process(proc.pid)
        return [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop(proc: subprocess.Popen, kill: bool = False, wait: float = 30.0) -> None:
    """Stop a node: SIGTERM to its ``ray start`` (which stops the processes it started),
    or SIGKILL to its whole process group (the node is lost); what is left after ``wait``
    seconds is killed, by PID."""
    procs = _processes(proc)
    if proc.poll() is None:
        if kill:
            os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group is still ours
        else:
            proc.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=wait)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def _raylet_node_id(proc: subprocess.Popen) -> str:
    """The node id of the raylet a ``ray start`` started (12 hex digits, as ``ray_node``)."""
    for p in _processes(proc):
        for arg in p.cmdline() if p.name() == "raylet" else ():
            if arg.startswith("--node_id="):
                return arg.removeprefix("--node_id=")[:12]
    raise AssertionError("no raylet found")


def _listening(procs: list[psutil.Process]) -> set[str]:
    """The local addresses ``procs`` listen on."""
    addrs = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        addrs |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return addrs


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU, resource ``head_slot``) and a second node (1 CPU, ``node2_slot``),
    both on 127.0.0.1; the driver (this process) gets the token and no $RAY_ADDRESS."""
    from ray._raylet import AuthenticationTokenLoader, Config

    temp = Path(tempfile.mkdtemp(prefix="rayc-", dir="/tmp"))  # short: Ray's socket paths
    address = f"{LOOPBACK}:{_free_port()}"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNE_"))}
    env.update(auth, RAY_USAGE_STATS_ENABLED="0")
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    node = ["--block", "--node-ip-address", LOOPBACK, "--num-cpus", "1"]
    node += ["--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]
    head_env = {**env, **HEALTH_CHECK, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    head_args = [*ray, "start", "--head", "--port", address.rpartition(":")[2], *node]
    head_args += ["--resources", '{"head_slot": 1}', "--include-dashboard", "false"]
    head_args += ["--ray-client-server-port", str(_free_port()), "--temp-dir", str(temp)]
    node2_args = [sys.executable, "-c", JOIN, "start", "--address", address, *node]
    node2_args += ["--resources", '{"node2_slot": 1}']
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        for k, v in auth.items():
            mp.setenv(k, v)
        Config.initialize("")  # this process reads the token anew
        AuthenticationTokenLoader.instance().reset_cache()
        t0 = time.monotonic()
        head, node2 = _spawn(head_args, head_env, temp / "head.log"), None
        try:
            gcs = int(address.rpartition(":")[2])  # node2 joins once the head's GCS answers
            _wait(head, temp / "head.log", lambda: probe_tcp(LOOPBACK, gcs, 1.0) is None)
            node2 = _spawn(node2_args, env, temp / "node2.log")
            _wait(head, temp / "head.log")
            _wait(node2, temp / "node2.log")
            ids = {"head": _raylet_node_id(head), "node2": _raylet_node_id(node2)}
            say(f"cluster at {address} in {time.monotonic() - t0:.1f} s: {ids}")
            yield {"address": address, "node2_proc": node2, **ids}
        finally:
            t0 = time.monotonic()
            for proc in (node2, head):
                if proc is not None:
                    _stop(proc)
            say(f"cluster stopped in {time.monotonic() - t0:.1f} s")
            shutil.rmtree(temp, ignore_errors=True)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture
def setup(tmp_path, tiny_synthetic):
    (tmp_path / "slow_adapter.py").write_text(SLOW)
    (tmp_path / "reg.yaml").write_text(REGISTRY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["survey", "--dataset", str(tiny_synthetic), "--methods", "slow",
            "--registry", str(tmp_path / "reg.yaml"), "--tracking-uri", uri,
            "--experiment", "cluster", "--retries", "1"]  # fmt: skip
    return uri, argv


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cluster")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.method = 'slow'")


def _counts(runs, cluster) -> str:
    names = {cluster["head"]: "head", cluster["node2"]: "node2"}
    by = Counter((r.info.status, names.get(r.data.tags.get("ray_node"), "?")) for r in runs)
    return ", ".join(f"{n} {status} on {node}" for (status, node), n in sorted(by.items()))


def test_survey_runs_on_both_nodes(cluster, setup, capsys):
    """``--ray-address``: 2 trials (1 CPU each) at once, one on each node; nothing of the
    cluster, the driver or the workers listens beyond loopback."""
    uri, argv = setup
    t0 = time.monotonic()
    argv += ["--categories", "pushpins", "--seeds", "0,1", "--ray-address", cluster["address"]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ray: 2 CPU(s)" in out
    runs = _runs(uri)
    with capsys.disabled():
        say(f"--ray-address survey in {time.monotonic() - t0:.1f} s: {_counts(runs, cluster)}")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["ray_node"] for r in runs} == {cluster["head"], cluster["node2"]}
    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    assert _listening(procs) <= {LOOPBACK, f"::ffff:{LOOPBACK}"}


def test_node_lost_mid_survey(cluster, setup, monkeypatch, capsys):
    """``$RAY_ADDRESS``: 2 categories x 3 seeds of 2 s each; once the second node has
    finished a trial and runs another, its process group is killed. That trial's run ends
    FAILED ("worker died"), Tune retries it on the head (--retries 1), and every one of the
    6 trials has a FINISHED run."""
    uri, argv = setup
    monkeypatch.setenv("RAY_ADDRESS", cluster["address"])
    node2, before, stop = cluster["node2"], {}, threading.Event()

    def kill_when_busy() -> None:
        while not stop.wait(0.2):
            runs = _runs(uri)
            mine = [r.info.status for r in runs if r.data.tags.get("ray_node") == node2]
            if "FINISHED" in mine and "RUNNING" in mine:
                before["runs"], before["t"] = runs, time.monotonic()
                _stop(cluster["node2_proc"], kill=True)
                break
        if before and not stop.wait(120):  # a survey stuck after the loss: Ctrl-C (exit 130)
            os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    t0 = time.monotonic()
    killer.start()
    try:
        code = main([*argv, "--seeds", "0,1,2", "--set", "slow.sleep=2"])
    finally:
        stop.set()
        killer.join()
    progress = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[survey]")]
    runs = _runs(uri)
    with capsys.disabled():
        print("\n".join(progress))
        assert before, "the second node never ran a trial while another had finished there"
        say(f"before the kill ({before['t'] - t0:.1f} s): {_counts(before['runs'], cluster)}")
        say(f"after ({time.monotonic() - t0:.1f} s, exit {code}): {_counts(runs, cluster)}")
    assert code == 0
    keys = {r.data.tags["trial_key"] for r in runs}
    done = {r.data.tags["trial_key"]: r for r in runs if r.info.status == "FINISHED"}
    lost = [r for r in runs if r.info.status != "FINISHED"]
    assert len(keys) == 6 and set(done) == keys  # every trial ends FINISHED
    assert lost and all(r.data.tags["ray_node"] == node2 for r in lost)
    assert all("worker died" in r.data.tags["error"] for r in lost)
    assert all(
        done[r.data.tags["trial_key"]].data.tags["ray_node"] == cluster["head"] for r in lost
    )
    with capsys.disabled():
        for r in lost:
            say(f"lost on node2: {r.info.run_name} ({r.data.tags['error']}); retried on the head")
        say(f"{len(done)} of {len(keys)} trials FINISHED")
