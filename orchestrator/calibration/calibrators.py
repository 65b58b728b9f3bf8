"""Calibrators: anomaly scores -> probabilities of being anomalous.

All share ``fit(scores, labels)`` / ``predict(scores)``. Scores are standardised with the
training mean and standard deviation before fitting (``z``), so parameters and priors are
scale-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression


class Calibrator:
    """Base class: ``fit(scores, labels)`` (labels: True = anomalous), ``predict(scores)``."""

    kind = ""

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
        """Fit on raw anomaly scores and binary labels (needs both classes). Returns self."""
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=bool)
        if len(np.unique(labels)) < 2:
            raise ValueError(f"{self.kind}: calibration needs both classes")
        self.mean_ = float(scores.mean())
        self.std_ = float(scores.std()) or 1.0
        self._fit(self._z(scores), labels)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probability of being anomalous for each raw score, in [0, 1]."""
        return np.clip(self._predict(self._z(np.asarray(scores, dtype=np.float64))), 0.0, 1.0)

    def _z(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.mean_) / self.std_

    def _fit(self, z: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Platt(Calibrator):
    """Platt scaling (Platt, 1999): p = sigmoid(a * z + b), a logistic regression on the
    standardised score, practically unregularised (C = 1e4): on separable data it becomes a
    near 0/1 step, which is what the bounded sigmoid avoids."""

    kind = "platt"

    def _fit(self, z, y):
        self.model_ = LogisticRegression(C=1e4).fit(z[:, None], y)

    def _predict(self, z):
        return self.model_.predict_proba(z[:, None])[:, 1]


@dataclass
class BoundedSigmoid(Calibrator):
    """The thesis' bounded (generalised) sigmoid (4.3.4).

    ``q(z) = l + (u - l) * sigmoid(a * z + b)`` with ``0 < l < u < 1``: a logistic curve whose
    range is squeezed into ``[l, u]``, so that even a perfectly separated validation set does
    not produce a 0/1 step (over-confident probabilities) the way Platt scaling does.

    Fitting: maximum a-posteriori, minimising the negative log-likelihood
    ``-sum(y log q + (1 - y) log(1 - q))`` plus a mild prior: ``l ~ Beta(2, prior_strength)``
    and ``1 - u ~ Beta(2, prior_strength)`` (mode near 1/prior_strength: keeps the bounds off
    0 and 1 unless the data insist), ``a ~ N(0, slope_scale^2)`` (keeps the slope finite on
    separable data). Parametrisation: ``l = 0.5 * sigmoid(t_l)``,
    ``u = 0.5 + 0.5 * sigmoid(t_u)``; optimised with L-BFGS from l=0.05, u=0.95.
    """

    kind = "bounded_sigmoid"
    prior_strength: float = 40.0
    slope_scale: float = 5.0
    params_: dict = field(default_factory=dict)

    @staticmethod
    def _unpack(theta):
        a, b, tl, tu = theta
        return a, b, 0.5 * expit(tl), 0.5 + 0.5 * expit(tu)

    def _q(self, theta, z):
        a, b, lo, hi = self._unpack(theta)
        return lo + (hi - lo) * expit(a * z + b)

    def _fit(self, z, y):
        def objective(theta):
            q = np.clip(self._q(theta, z), 1e-12, 1 - 1e-12)
            nll = -np.sum(np.where(y, np.log(q), np.log1p(-q)))
            _, _, lo, hi = self._unpack(theta)
            beta = self.prior_strength
            prior = -(np.log(lo) + (beta - 1) * np.log1p(-lo))  # Beta(2, beta) on l
            prior += -(np.log(1 - hi) + (beta - 1) * np.log(hi))  # Beta(2, beta) on 1-u
            prior += 0.5 * (theta[0] / self.slope_scale) ** 2
            return nll + prior

        logit = np.log(0.1 / 0.9)  # l = 0.05 and u = 0.95 at the start
        start = np.array([1.0, 0.0, logit, -logit])
        res = minimize(objective, start, method="L-BFGS-B")
        self.theta_ = res.x
        a, b, lo, hi = self._unpack(res.x)
        self.params_ = {"a": float(a), "b": float(b), "l": float(lo), "u": float(hi)}

    def _predict(self, z):
        return self._q(self.theta_, z)


class Isotonic(Calibrator):
    """Isotonic regression (monotone step function), a non-parametric reference."""

    kind = "isotonic"

    def _fit(self, z, y):
        self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z, y)

    def _predict(self, z):
        return self.model_.predict(z)


class HistogramBinning(Calibrator):
    """Histogram binning: equal-mass bins of the score, probability = smoothed positive rate."""

    kind = "histogram"

    def __init__(self, n_bins: int = 10):
        self.n_bins = n_bins

    def _fit(self, z, y):
        n_bins = max(1, min(self.n_bins, len(z) // 2))
        self.edges_ = np.unique(np.quantile(z, np.linspace(0, 1, n_bins + 1)[1:-1]))
        idx = np.searchsorted(self.edges_, z, side="right")
        counts = np.bincount(idx, minlength=len(self.edges_) + 1)
        pos = np.bincount(idx, weights=y.astype(float), minlength=len(self.edges_) + 1)
        self.rates_ = (pos + 1) / (counts + 2)  # Laplace smoothing: no bin says exactly 0 or 1

    def _predict(self, z):
        return self.rates_[np.searchsorted(self.edges_, z, side="right")]


CALIBRATORS = {c.kind: c for c in (Platt, BoundedSigmoid, Isotonic, HistogramBinning)}


def make_calibrator(kind: str) -> Calibrator:
    """An unfitted calibrator of ``kind`` (a key of :data:`CALIBRATORS`)."""
    try:
        return CALIBRATORS[kind]()
    except KeyError as exc:
        raise ValueError(f"unknown calibrator {kind!r} (known: {', '.join(CALIBRATORS)})") from exc


def fit_calibrator(kind: str, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Fit a calibrator of ``kind`` (platt, bounded_sigmoid, isotonic, histogram)."""
    return make_calibrator(kind).fit(scores, labels)


def calibrator_state(cal: Calibrator) -> dict:
    """A fitted bounded sigmoid as plain JSON data (what a saved detector keeps);
    :func:`calibrator_from_state` rebuilds it. Other kinds are not saved (ValueError)."""
    if not isinstance(cal, BoundedSigmoid) or not hasattr(cal, "theta_"):
        raise ValueError(f"only a fitted bounded_sigmoid is saved, not {cal.kind or cal!r}")
    return {
        "kind": cal.kind,
        "mean": cal.mean_,
        "std": cal.std_,
        "theta": [float(t) for t in cal.theta_],
        "prior_strength": cal.prior_strength,
        "slope_scale": cal.slope_scale,
    }


def calibrator_from_state(state: dict) -> Calibrator:
    """The calibrator :func:`calibrator_state` described, ready to ``predict``."""
    if state.get("kind") != BoundedSigmoid.kind:
        raise ValueError(f"unknown saved calibrator {state.get('kind')!r}")
    cal = BoundedSigmoid(float(state["prior_strength"]), float(state["slope_scale"]))
    cal.mean_, cal.std_ = float(state["mean"]), float(state["std"])
    cal.theta_ = np.asarray(state["theta"], dtype=np.float64)
    a, b, lo, hi = cal._unpack(cal.theta_)
    cal.params_ = {"a": float(a), "b": float(b), "l": float(lo), "u": float(hi)}
    return cal
