"""Child runs of one trial, opened from anywhere (a Ray worker included) given the tracking
URI, the experiment id and the parent run id; the trial key that makes resuming exact."""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import FatalTrialError

PARENT_ID_TAG = "mlflow.parentRunId"
KEY_TAG = "trial_key"
#: how many metrics a finished trial logged (resume checks they are all there)
METRIC_COUNT_TAG = "metric_count"
#: seconds between two writes of a run's buffered step metrics (ChildRun.log_step)
STEP_FLUSH_SECONDS = 5.0
#: the same as a list of names, in stores written before metric_count (still read)
METRIC_NAMES_TAG = "metric_names"
#: what a local database says when it was frozen (read-only, locked) or taken away
_STORE_GONE = (
    "readonly database",
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "no such table",
)


class StoreLostError(FatalTrialError):
    """The tracking store was deleted, replaced or frozen during the run: nothing more can be
    recorded there (never retried; the driver stops scheduling)."""

    kind = "store"


def store_identity(uri: str) -> str | None:
    """What identifies a local database file (device and inode): a store deleted and
    re-created under the same name has another. None for servers and missing files."""
    if not uri.startswith("sqlite:///"):
        return None
    try:
        st = Path(uri[len("sqlite:///") :]).stat()
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def check_store(uri: str, identity: str | None) -> None:
    """StoreLostError when the local database recorded as ``identity`` is no longer there
    (MLflow would silently create a new, empty one)."""
    if identity and store_identity(uri) != identity:
        raise StoreLostError(
            f"the MLflow store {uri} was deleted or replaced during the run "
            "(a new empty one would lose every record)"
        )


def _from_store(exc: BaseException) -> bool:
    """Raised by MLflow or its database layer (not by a method's own code)."""
    return type(exc).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "sqlite3")


def store_error(exc: BaseException, uri: str) -> StoreLostError | None:
    """The StoreLostError an MLflow error stands for (a frozen or vanished database)."""
    text = str(exc).lower()
    for phrase in _STORE_GONE:
        if phrase in text:
            return StoreLostError(f"the MLflow store {uri} cannot be written ({phrase})")
    return None


def trial_key(**parts: Any) -> str:
    """A stable hash of what identifies a trial's result (method, category, resolved config,
    dataset fingerprint, source, upstream commit, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in config.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_params(v, name + "."))
        else:
            text = json.dumps(v, default=str) if not isinstance(v, str) else v
            out[name] = text[:6000]
    return out


class ChildRun:
    """One nested MLflow run, driven through an explicit client (no global state, safe in
    worker processes). Use as a context manager: an exception ends it FAILED with the
    traceback as ``error.txt`` artifact and ``error`` tag; a clean exit ends it FINISHED."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str | None,
        name: str,
        tags: Mapping[str, str] | None = None,
        store_id: str | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.uri, self.store_id = tracking_uri, store_id
        check_store(tracking_uri, store_id)  # before the client: it would create a new store
        self.client = MlflowClient(tracking_uri=tracking_uri)
        all_tags = {"mlflow.runName": name, **{k: str(v) for k, v in (tags or {}).items()}}
        if parent_run_id:
            all_tags[PARENT_ID_TAG] = parent_run_id
        with self._store():
            run = self.client.create_run(experiment_id, tags=all_tags, run_name=name)
        self.run_id = run.info.run_id
        self._metric_names: set[str] = set()
        self._steps: list = []  # step metrics not yet written (mlflow Metric)
        self._flushed = time.monotonic()

    @contextmanager
    def _store(self) -> Iterator[None]:
        """Around this run's own MLflow calls: a store deleted or replaced, or a database
        error saying it is frozen or gone, becomes StoreLostError (the trial's own errors
        are never read this way)."""
        check_store(self.uri, self.store_id)
        try:
            yield
        except Exception as exc:
            check_store(self.uri, self.store_id)
            gone = store_error(exc, self.uri) if _from_store(exc) else None
            if gone is None:
                raise
            raise gone from exc

    def log_params(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flat_params(config).items()]
        with self._store():
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        self._metric_names.update(m.key for m in items)
        with self._store():
            for i in range(0, len(items), 500):
                self.client.log_batch(self.run_id, metrics=items[i : i + 500])

    def log_step(self, key: str, value: float, step: int) -> None:
        """A step metric (a training curve's point), buffered: written at most every
        ``STEP_FLUSH_SECONDS`` and when the run ends, so a long training costs few writes."""
        from mlflow.entities import Metric

        if not math.isfinite(float(value)):
            return
        self._steps.append(Metric(key, float(value), int(time.time() * 1000), int(step)))
        self._metric_names.add(key)
        if time.monotonic() - self._flushed >= STEP_FLUSH_SECONDS:
            self.flush_steps()

    def flush_steps(self) -> None:
        """Write the buffered step metrics."""
        items, self._steps = self._steps, []
        self._flushed = time.monotonic()
        with self._store():
            for i in range(0, len(items), 500):
                self.client.log_batch(self.run_id, metrics=items[i : i + 500])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        with self._store():
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_category(self, spec: Mapping[str, Any]) -> None:
        """A trial spec's category (``<dataset>/<category>``, its fingerprint, its folder) as
        the run's MLflow dataset input."""
        from orchestrator.tracking.store import dataset_input

        name = f"{spec['dataset']}/{spec['category']}"
        found = dataset_input(name, spec["tags"]["dataset_fingerprint"], spec["category_dir"])
        with self._store():
            self.client.log_inputs(self.run_id, [found])

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        with self._store():
            self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def finish(self) -> None:
        """FINISHED, with the number of metrics logged (resume checks they are all there).
        The store is checked first: a trial whose record went with a deleted store fails."""
        self.flush_steps()
        self.set_tags({METRIC_COUNT_TAG: len(self._metric_names)})
        with self._store():
            self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, exc: BaseException) -> None:
        """FAILED with the traceback (``error.txt``) and an ``error`` tag, as far as the store
        still takes writes: the trial's own error is what the caller sees either way. An
        interrupt (Ctrl-C, SIGTERM: a trial run in the driver's process) ends it KILLED."""
        if isinstance(exc, KeyboardInterrupt):
            try:
                check_store(self.uri, self.store_id)
                self.set_tags({"error": "interrupted (Ctrl-C)"})
                self.client.set_terminated(self.run_id, "KILLED")
            except Exception:  # noqa: BLE001 - the driver closes what is left open
                pass
            return
        text = "".join(traceback.format_exception(exc))
        try:
            check_store(self.uri, self.store_id)
            try:
                self.flush_steps()  # a failed trial keeps its curves so far
            except Exception:  # noqa: BLE001 - the error below matters more
                pass
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "error.txt").write_text(text)
                try:
                    self.log_artifacts(Path(tmp))
                except Exception:  # noqa: BLE001 - the tag below still records the error
                    pass
            self.set_tags({"error": f"{type(exc).__name__}: {exc}"[:4900]})
            self.client.set_terminated(self.run_id, "FAILED")
        except Exception:  # noqa: BLE001 - a lost store; the caller reports the error
            pass

    def __enter__(self) -> ChildRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.finish()
            return False
        gone = None
        if not isinstance(exc, FatalTrialError):
            try:
                check_store(self.uri, self.store_id)  # deleted or replaced meanwhile: say so
            except StoreLostError as lost:
                gone = lost
        self.fail(exc)
        if gone is not None:
            raise gone from exc
        return False


#: Open a child run under ``parent_run_id`` (see :class:`ChildRun`); ``store_id``
#: (:func:`store_identity`) guards against a local store deleted in the meantime.
open_child_run = ChildRun


def open_trial_run(
    spec: Mapping[str, Any], name: str, tags: Mapping[str, str] | None = None
) -> ChildRun:
    """A trial's child run from its spec (``tracking_uri``, ``experiment_id``,
    ``parent_run_id``, ``store_id``; ``tags`` default to ``spec["tags"]``, MLflow's source
    tags ``spec["source_tags"]`` come first)."""
    return ChildRun(
        spec["tracking_uri"],
        spec["experiment_id"],
        spec["parent_run_id"],
        name,
        {**spec.get("source_tags", {}), **(spec["tags"] if tags is None else tags)},
        spec.get("store_id"),
    )


def close_open_children(
    tracking_uri: str, experiment_id: str, parent_run_id: str, status: str, reason: str
) -> int:
    """End every child run of a parent still RUNNING (its worker died, or the command was
    interrupted) as ``status`` (FAILED / KILLED) with ``reason`` as its error tag. Returns
    how many. Call it once no worker can write any more (after Ray has stopped)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    n = 0
    for run in child_runs(tracking_uri, experiment_id, parent_run_id):
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "error", reason)
            client.set_terminated(run.info.run_id, status)
            n += 1
    return n


def child_runs(tracking_uri: str, experiment_id: str, parent_run_id: str) -> list:
    """Every child run of a parent (``mlflow.entities.Run``), newest first."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    out, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_ID_TAG}` = '{parent_run_id}'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
            page_token=token,
        )
        out.extend(page)
        token = page.token
        if not token:
            return out


def is_complete(run) -> bool:
    """FINISHED with every metric it said it logged."""
    if run.info.status != "FINISHED":
        return False
    count = run.data.tags.get(METRIC_COUNT_TAG)
    if count is not None:
        return count.isdigit() and int(count) > 0 and len(run.data.metrics) >= int(count)
    names = run.data.tags.get(METRIC_NAMES_TAG)
    if not names:
        return False
    return all(n in run.data.metrics for n in names.split(","))


def finished_trials(tracking_uri: str, experiment_id: str, parent_run_id: str) -> dict[str, Any]:
    """``trial_key -> Run`` of the complete child runs of a parent (the newest per key)."""
    done: dict[str, Any] = {}
    for run in child_runs(tracking_uri, experiment_id, parent_run_id):
        key = run.data.tags.get(KEY_TAG)
        if key and key not in done and is_complete(run):
            done[key] = run
    return done
