"""A trial's training curves as MLflow step metrics (adapters.training does the loop side).

``train_loss`` (step = epoch) for every method that trains, and, where the validation
protocol has labelled anomalies, ``curve_validation_image_auroc`` at about ``points``
evenly spaced epochs: the last point is the final model's validation AUROC, which the trial
computes anyway (so it is not probed twice). For plotting only: nothing reads them back to
choose an epoch or a setting.
"""

from __future__ import annotations

from typing import Any

from adapters.training import LOSS_METRIC, PROBE_PREFIX, TrainingMonitor

#: the validation AUROC curve's metric
AUROC_CURVE = f"{PROBE_PREFIX}image_auroc"
CURVE_METRICS = (LOSS_METRIC, AUROC_CURVE)


def trial_monitor(run: Any, adapter: Any, validation: Any, points: int) -> TrainingMonitor:
    """A monitor logging to ``run`` (a ChildRun: ``log_step``) whose probe scores
    ``validation`` with the model as trained so far (none without both labels there)."""
    from orchestrator.metrics.image import image_auroc

    y = validation.is_anomalous
    probe = None
    if points > 0 and y.any() and not y.all():

        def probe() -> dict[str, float]:
            return {"image_auroc": image_auroc(adapter.scores_while_training(validation), y)}

    return TrainingMonitor(log=run.log_step, probe=probe, points=points, skip_final=True)


def log_final_point(monitor: TrainingMonitor, auroc: float | None) -> None:
    """The validation curve's last point: the fitted model's validation image AUROC
    ``auroc``, at the last epoch (only for a method whose loop reported epochs)."""
    if monitor.total and monitor.probe is not None and monitor.log and auroc is not None:
        monitor.log(AUROC_CURVE, float(auroc), monitor.total)
