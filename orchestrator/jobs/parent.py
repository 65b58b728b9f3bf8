"""The parent MLflow run of a job, from start to end, and what happens when the run is cut
short: Ctrl-C or SIGTERM ends it KILLED (``--resume`` continues it), an error found while
planning ends it FAILED, and a tracking store deleted or frozen mid-run stops the job with
the finished trials' figures written to a local folder (:class:`~orchestrator.errors.Aborted`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import Aborted, UserError

Rows = list[dict[str, Any]]


@dataclass
class ParentRun:
    uri: str
    experiment_id: str
    store_id: str | None
    kind: str  # survey | ensemble (the parent tag that --resume looks for)
    run_id: str | None = None
    reused: bool = False  # resumed an earlier parent run

    def start(self, tags: Mapping[str, str], resume: bool) -> None:
        """A new parent run tagged ``tags``; with ``resume``, the latest one of this kind
        whose preprocessing is the same (two arms of an ablation never share a parent)."""
        from orchestrator.data.preprocess import label
        from orchestrator.tracking import start_parent_run

        mine = label(tags)
        self.run_id, self.reused = start_parent_run(
            self.uri,
            self.experiment_id,
            dict(tags),
            kind=self.kind,
            resume=resume,
            match=lambda run: label(run.data.tags) == mine,
        )

    def begin(self, opts, prep, profile: str, commit: str, **tags: str) -> dict[str, Any]:
        """Start (or, with ``opts.resume``, resume) the parent run, tagged with what the job
        runs on (``tags``: the job's own); returns the spec keys every trial of the job gets
        (where to log, under which parent, the profile, dataset and cache)."""
        from orchestrator.data import fingerprint
        from orchestrator.data.preprocess import label
        from orchestrator.paths import cache_dir
        from orchestrator.tracking.store import dataset_input, source_tags

        source = source_tags(commit, self.kind)
        step = prep.preprocess.params() if prep.preprocess else {"preprocess": "none"}
        shown = profile if step["preprocess"] == "none" else f"{profile}, {label(step)}"
        self.start(
            {
                **source,
                "mlflow.runName": f"{self.kind} {opts.dataset} ({shown})",
                **step,
                "profile": profile,
                "dataset": opts.dataset,
                "categories": ",".join(c.name for c in prep.categories),
                "seeds": ",".join(map(str, opts.seeds)) if opts.seeds else "",
                "project_commit": commit,
                **tags,
            },
            opts.resume,
        )
        if not self.reused:
            inputs = [
                dataset_input(
                    f"{opts.dataset}/{c.name}", fingerprint(c), str(Path(c.root).resolve())
                )
                for c in prep.categories
            ]
            _client(self.uri).log_inputs(self.run_id, inputs)
        return {
            "tracking_uri": self.uri,
            "store_id": self.store_id,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.run_id,
            "registry": prep.registry_path,
            "project_commit": commit,
            "profile": profile,
            "dataset": opts.dataset,
            "cache": str(cache_dir()),
            "source_tags": source,
            "curve_points": int(getattr(opts, "curve_points", 4)),
        }

    def finished(self) -> dict[str, Any]:
        """trial key -> finished child run of a resumed parent run (empty for a new one)."""
        from orchestrator.tracking import finished_trials

        if not self.reused:
            return {}
        return finished_trials(self.uri, self.experiment_id, self.run_id)

    def pending(self, specs: Sequence[Mapping[str, Any]], opts, say: Callable[[str], None]) -> list:
        """Announce where the job logs; return the indices of ``specs`` whose trial key has no
        finished run under this parent (all of them for a new one), saying with ``--resume``
        how many were already finished."""
        say(
            f"mlflow: {self.uri} experiment {opts.experiment!r} (id {self.experiment_id}), "
            f"parent run {self.run_id}"
        )
        done = self.finished()
        todo = [i for i, s in enumerate(specs) if s["key"] not in done]
        if opts.resume:
            say(
                f"resume: {len(specs) - len(todo)} of {len(specs)} trials already finished, "
                f"running {len(todo)}"
                if self.reused
                else f"resume: no earlier {self.kind} in this experiment, starting a new one"
            )
        return todo

    def killed(self) -> None:
        """After Ctrl-C: running child runs and the parent end KILLED (as far as the store
        still takes writes)."""
        from mlflow import MlflowClient

        from orchestrator.tracking.trials import check_store, close_open_children

        try:
            check_store(self.uri, self.store_id)
            close_open_children(
                self.uri, self.experiment_id, self.run_id, "KILLED", "interrupted (Ctrl-C)"
            )
            client = MlflowClient(tracking_uri=self.uri)
            client.set_tag(self.run_id, "interrupted", "true")
            client.set_terminated(self.run_id, "KILLED")
        except Exception as exc:  # noqa: BLE001 - the interruption is what gets reported
            print(f"could not mark the runs KILLED: {exc}", file=sys.stderr)

    def failed(self, why: str) -> None:
        """The parent ends FAILED with ``why`` when its store is back (a lock released), and
        is left alone when the store was deleted or replaced (writing would create one)."""
        from mlflow import MlflowClient

        from orchestrator.tracking.trials import check_store, close_open_children

        try:
            check_store(self.uri, self.store_id)
            close_open_children(
                self.uri, self.experiment_id, self.run_id, "FAILED", f"stopped: {why}"[:4900]
            )
            client = MlflowClient(tracking_uri=self.uri)
            client.set_tag(self.run_id, "error", why[:4900])
            client.set_terminated(self.run_id, "FAILED")
        except Exception:  # noqa: BLE001 - best effort: the local summary holds the figures
            pass

    def finish(
        self,
        rows: Rows,
        output_dir: Path | None,
        tags: Mapping[str, str],
        extra: Callable[[Rows, Path], None] | None = None,
    ) -> None:
        """The summary reports (and ``extra``'s files) as the ``summary`` artifact and in
        ``output_dir``; the tags; FINISHED."""
        from mlflow import MlflowClient

        from orchestrator.reports import write_reports

        client = MlflowClient(tracking_uri=self.uri)
        with tempfile.TemporaryDirectory(prefix="summary-") as tmp:
            write_reports(rows, Path(tmp))
            if extra is not None:
                extra(rows, Path(tmp))
            client.log_artifacts(self.run_id, tmp, "summary")
            client.set_tag(self.run_id, "mlflow.note.content", description(self.kind, Path(tmp)))
            if output_dir is not None:
                shutil.copytree(tmp, output_dir, dirs_exist_ok=True)
        for k, v in tags.items():
            client.set_tag(self.run_id, k, str(v))
        client.set_terminated(self.run_id, "FINISHED")

    def conclude(
        self,
        outcomes: Sequence,
        rows: Callable[[], Rows],
        local_rows: Callable[[], Rows],
        output_dir: Path | None,
        tags: Callable[[Rows], Mapping[str, str]],
        extra: Callable[[Rows, Path], None] | None = None,
    ) -> Rows:
        """The end of a job whose Ray has stopped: child runs a dead worker left RUNNING end
        FAILED, ``rows()`` (read from the store) are summarised and the parent FINISHED.
        When the store was lost (a trial said so, or writing here fails), ``local_rows()``
        (from what the trials reported through Ray) go to ``output_dir`` or a new
        ``<kind>-unsaved-<time>`` folder, and :class:`Aborted` says where."""
        from orchestrator.tracking.trials import check_store, close_open_children

        lost = next((o.error for o in outcomes if o.fatal == "store"), None)
        if lost is None:
            try:
                check_store(self.uri, self.store_id)
                close_open_children(
                    self.uri,
                    self.experiment_id,
                    self.run_id,
                    "FAILED",
                    "its worker died before the trial ended",
                )
                out = rows()
                self.finish(out, output_dir, tags(out), extra)
                return out
            except Exception as exc:
                lost = store_problem(exc, self.uri)
        where = self.keep_locally(local_rows(), output_dir, extra)
        self.failed(lost)
        done = sum(o.ok for o in outcomes)
        raise Aborted(
            f"{lost.removeprefix('StoreLostError: ')}; stopped scheduling; the figures of "
            f"{done} finished trial(s) are in {where}"
        )

    def keep_locally(
        self, rows: Rows, output_dir: Path | None, extra: Callable[[Rows, Path], None] | None
    ) -> Path:
        from orchestrator.reports import write_reports

        where = output_dir or Path(f"{self.kind}-unsaved-{time.strftime('%Y%m%d-%H%M%S')}")
        where.mkdir(parents=True, exist_ok=True)
        write_reports(rows, where)
        if extra is not None:
            extra(rows, where)
        return where


#: where ``mlflow ui`` serves when started with no ``--port`` / ``--host``
DEFAULT_UI = "http://127.0.0.1:5000"


def ui_lines(uri: str, experiment_id: str, run_id: str | None) -> list[str]:
    """The end-of-job lines saying where to look: the runs table and the parent run in the
    MLflow UI (a tracking server's own pages; for a local store, after ``mlflow ui``)."""
    from orchestrator.tracking.ui import run_page_url, runs_page_url

    if uri.startswith(("http://", "https://")):
        base, lines = uri, []
    else:
        base = DEFAULT_UI
        lines = [f"mlflow ui --backend-store-uri {uri}   # then open:"]
    lines.append(f"  runs:       {runs_page_url(base, experiment_id)}")
    if run_id:
        lines.append(f"  parent run: {run_page_url(base, experiment_id, run_id)}")
    return lines


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


#: MLflow keeps at most this many characters of a tag (the run's description is one)
NOTE_LIMIT = 8000


def description(kind: str, summary_dir: Path) -> str:
    """The parent run's description (Markdown, shown on its page): the summary tables, as
    many whole ones as fit, then where the rest is."""
    tail = "\n\n(all tables: the `summary` artifacts: summary.md, trials.csv)"
    text = f"**{kind}**: summary over its child runs (mean over seeds).\n\n"
    path = summary_dir / "summary.md"
    # one table per metric, each opening with its bold title
    tables = re.split(r"\n+(?=\*\*)", path.read_text().strip()) if path.exists() else []
    for i, table in enumerate(tables):
        if len(text) + len(table) + len(tail) + 2 > NOTE_LIMIT:
            return text + f"({len(tables) - i} more table(s) not shown)" + tail
        text += table + "\n\n"
    return text.rstrip() + tail


@contextlib.contextmanager
def guarded(parent: ParentRun, say: Callable[[str], None]) -> Iterator[None]:
    """Around a job's Ray session (so Ray has stopped when it acts): Ctrl-C or SIGTERM
    (orchestrator.cli.Terminated) ends a started parent run KILLED; a UserError (e.g.
    weights missing, found while planning) ends it FAILED. Both are re-raised."""
    try:
        yield
    except KeyboardInterrupt:
        if parent.run_id:
            parent.killed()
            say(f"interrupted: {parent.kind} run {parent.run_id} KILLED; `--resume` continues it")
        raise
    except UserError as exc:
        if parent.run_id:
            parent.failed(f"stopped before any trial: {exc}")
        raise


def store_problem(exc: Exception, uri: str) -> str:
    """What a store error of the driver means (re-raised when it is something else)."""
    from orchestrator.tracking.trials import StoreLostError, _from_store, store_error

    if isinstance(exc, StoreLostError):
        return str(exc)
    gone = store_error(exc, uri)
    if gone is not None:
        return str(gone)
    if _from_store(exc) or type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return f"the MLflow store {uri} cannot be written ({first})"
    raise exc
