import numpy as np
import pytest

from orchestrator.calibration import (
    CALIBRATORS,
    brier,
    cross_fit,
    ece,
    fit_calibrator,
    nll,
    reliability_figure,
)


def _separated(n=40, gap=6.0, seed=0):
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(0, 1, n), rng.normal(gap, 1, n)]
    return s, np.r_[np.zeros(n), np.ones(n)].astype(bool)


def test_bounded_sigmoid_stays_off_zero_and_one_on_separated_data():
    s, y = _separated()
    bounded = fit_calibrator("bounded_sigmoid", s, y)
    p = bounded.predict(np.r_[s, -100, 100])
    assert 0 < p.min() and p.max() < 1
    assert bounded.params_["l"] > 1e-3 and bounded.params_["u"] < 1 - 1e-3
    platt = fit_calibrator("platt", s, y).predict(np.array([-100.0, 100.0]))
    assert platt[0] < 1e-6 and platt[1] > 1 - 1e-6  # the collapse the bounded form avoids


@pytest.mark.parametrize("kind", sorted(CALIBRATORS))
def test_calibrators_monotone_and_informative(kind):
    s, y = _separated(gap=2.0)
    cal = fit_calibrator(kind, s, y)
    grid = np.linspace(-3, 5, 50)
    p = cal.predict(grid)
    if kind != "histogram":  # histogram binning is not monotone by construction
        assert np.all(np.diff(p) >= -1e-12)
    assert p[-1] > p[0]
    assert brier(cal.predict(s), y) < 0.25  # better than a constant 0.5


def test_measures_by_hand():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1], bool)
    # width bins: bin 0.1 -> |0.1 - 0.5| * 0.5 ; bin 0.9 -> |0.9 - 1| * 0.5
    assert ece(p, y) == pytest.approx(0.25)
    assert brier(p, y) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    assert nll(p, y) == pytest.approx(-(np.log(0.9) + np.log(0.1) + 2 * np.log(0.9)) / 4)


def test_cross_fit_is_out_of_fold():
    # labels random w.r.t. scores: an in-sample isotonic fit would look perfect, OOF must not
    rng = np.random.default_rng(1)
    s = rng.random(60)
    y = rng.random(60) < 0.5
    in_sample = fit_calibrator("isotonic", s, y).predict(s)
    oof = cross_fit("isotonic", s, y, k=5)
    assert brier(oof, y) > brier(in_sample, y) + 0.02
    assert oof.shape == (60,)


def test_reliability_figure(tmp_path):
    s, y = _separated(gap=2)
    fig = reliability_figure(cross_fit("bounded_sigmoid", s, y), y, title="t")
    fig.savefig(tmp_path / "r.png")
    assert len(fig.axes) == 2 and (tmp_path / "r.png").stat().st_size > 5000


def test_bounded_sigmoid_recovers_generating_bounds():
    # y ~ Bernoulli(l + (u - l) * sigmoid(a z + b)) with l = 0.1, u = 0.85: the ML fit with a
    # mild prior recovers the bounds on 3,000 samples
    rng = np.random.default_rng(3)
    z = rng.normal(0, 1, 3000)
    q = 0.1 + 0.75 / (1 + np.exp(-(4 * z - 0.5)))
    y = rng.random(3000) < q
    params = fit_calibrator("bounded_sigmoid", z, y).params_
    assert params["l"] == pytest.approx(0.1, abs=0.04)
    assert params["u"] == pytest.approx(0.85, abs=0.04)


def test_ece_equal_mass_by_hand():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([0, 0, 1, 1], bool)
    # 2 equal-mass bins: {0.1, 0.2} -> |0.15 - 0| ; {0.3, 0.4} -> |0.35 - 1|; shares 1/2
    assert ece(p, y, n_bins=2, strategy="mass") == pytest.approx((0.15 + 0.65) / 2)
    # 2 equal-width bins: everything falls in [0, 0.5): |0.25 - 0.5|
    assert ece(p, y, n_bins=2) == pytest.approx(0.25)


def test_cross_fit_needs_two_of_each_class():
    with pytest.raises(ValueError, match="at least 2 samples of each class"):
        cross_fit("platt", np.arange(5.0), np.array([0, 0, 0, 0, 1], bool))


def test_reliability_figure_with_raw_scores(tmp_path):
    s, y = _separated(gap=2)
    fig = reliability_figure(cross_fit("platt", s, y), y, scores=s)
    assert len(fig.axes) == 3
    fig.savefig(tmp_path / "r3.png")
    assert (tmp_path / "r3.png").stat().st_size > 5000
