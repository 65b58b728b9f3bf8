"""The options every trial job takes and what it returns (survey and ensemble add their own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JobOptions:
    dataset: str = "synthetic"
    dataset_root: Path | None = None
    categories: list[str] | None = None
    source: str = "auto"
    sets: list[str] = field(default_factory=list)  # "method.key=value"
    tracking_uri: str | None = None
    experiment: str = "survey"
    ray_address: str | None = None
    num_cpus: int | None = None
    max_concurrent: int | None = None
    profile: str | None = None
    registry: Path | None = None
    retries: int = 1
    output_dir: Path | None = None  # a local copy of the summary reports
    resume: bool = False  # continue the latest parent run of the experiment
    seeds: list[int] | None = None  # one trial per seed (None: each config's own seed)
    validate: bool = True  # run the dataset validator before Ray starts
    trial_timeout: float | None = None  # seconds a trial may run
    device: str = "auto"
    in_process: bool = False  # the trials one by one in this process, without Ray
    artifact_root: str | None = None  # where a new experiment's artifacts go
    allow_dirty: bool = False  # --source upstream on a modified checkout (tagged vendor_dirty)
    preprocess: str = "none"  # none | mask-background (orchestrator.data.preprocess)
    preprocess_margin: int = 8  # mask-background: pixels kept around the part
    preprocess_object: str = "auto"  # mask-background: auto | largest-component | roi
    curve_points: int = 4  # validation AUROC points per training curve (0: loss curves only)


@dataclass
class JobResult:
    rows: list[dict[str, Any]]  # the summary rows (one per trial, or per approach)
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    failed: int  # rows that did not finish

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0
