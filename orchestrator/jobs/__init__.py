"""The machinery every trial job shares (``orchestrate survey`` and ``orchestrate ensemble``).

- :mod:`~orchestrator.jobs.options`: the options both commands take (:class:`JobOptions`).
- :mod:`~orchestrator.jobs.prepare`: every deterministic check before Ray starts (registry,
  methods, ``--set``, dataset, tracking store, Ray address), one :class:`Prepared`.
- :mod:`~orchestrator.jobs.cluster`: Ray (or the in-process runner), the profile and device.
- :mod:`~orchestrator.jobs.plan`: one method as a job runs it (source, commit, config,
  weights), the trial spec a worker gets, its tags and Ray resources, the adapter rebuilt in
  the worker.
- :mod:`~orchestrator.jobs.parent`: the parent MLflow run: started, finished with its summary,
  KILLED on Ctrl-C, FAILED when the store is lost (the figures then kept in a local folder).
"""

from orchestrator.jobs.cluster import Cluster, open_cluster, run_in_process
from orchestrator.jobs.options import JobOptions, JobResult
from orchestrator.jobs.parent import ParentRun, guarded
from orchestrator.jobs.plan import MethodSetup, adapter_from_spec, method_spec, setup_method
from orchestrator.jobs.prepare import Prepared, prepare

__all__ = [
    "Cluster",
    "JobOptions",
    "JobResult",
    "MethodSetup",
    "ParentRun",
    "Prepared",
    "adapter_from_spec",
    "guarded",
    "method_spec",
    "open_cluster",
    "prepare",
    "run_in_process",
    "setup_method",
]
