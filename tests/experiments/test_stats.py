"""The A/B-testing statistics against values computed independently in the test.

The references are statsmodels and scipy on the raw per-user arrays (the implementation sees only their sums and
never imports statsmodels), formulas written out here from raw arrays, and seeded simulations for the claims a
reference value cannot make: the delta-method interval covers the true lift about 95 % of the time, and the
always-valid p-value keeps the false-positive rate of A/A tests at alpha under daily peeking while naive peeking
does not.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from strategies.experiments import stats as ab

# ---------------------------------------------------------------------------------------------------------------
# Helpers


def conversions(n: int, converted: int) -> ab.Sample:
    return ab.Sample(n=n, total=converted, total_sq=converted)


def sample_of(values: np.ndarray, covariate: np.ndarray | None = None) -> ab.Sample:
    """Sufficient statistics from raw per-user arrays, as the results page would aggregate them in SQL."""
    values = np.asarray(values, dtype=float)
    if covariate is None:
        return ab.Sample(n=len(values), total=float(values.sum()), total_sq=float((values**2).sum()))
    covariate = np.asarray(covariate, dtype=float)
    return ab.Sample(
        n=len(values),
        total=float(values.sum()),
        total_sq=float((values**2).sum()),
        x_total=float(covariate.sum()),
        x_sq=float((covariate**2).sum()),
        xy_total=float((covariate * values).sum()),
    )


def approx(value: float, rel: float = 1e-9, abs_: float = 1e-12):
    return pytest.approx(value, rel=rel, abs=abs_)


def assert_no_nan_or_inf(result: object) -> None:
    """Every float in a result is finite or None (never NaN or inf), and a missing figure comes with a note."""
    for field in dataclasses.fields(result):  # type: ignore[arg-type]
        value = getattr(result, field.name)
        values = value if isinstance(value, tuple | list) else [value]
        for item in values:
            if isinstance(item, float):
                assert math.isfinite(item), f"{field.name} = {value!r} in {result!r}"
    for name in ("p_value", "ci", "difference", "relative_lift", "relative_ci"):
        if hasattr(result, name) and getattr(result, name) is None:
            assert result.note, f"{name} is None without a note: {result!r}"  # type: ignore[attr-defined]
    if getattr(result, "p_value", None) is not None:
        assert 0.0 <= result.p_value <= 1.0  # type: ignore[attr-defined]
    for name in ("ci", "relative_ci"):
        interval = getattr(result, name, None)
        if interval is not None:
            assert interval[0] <= interval[1]


# ---------------------------------------------------------------------------------------------------------------
# Conversion metrics: z-test (pooled), Wald interval (unpooled), relative lift (delta method)

CONVERSION_DATASETS = {
    # name: (control users, control conversions, treatment users, treatment conversions)
    "small": (40, 5, 38, 9),
    "large": (200_000, 10_000, 200_000, 10_450),
    "unbalanced": (50_000, 2_500, 5_000, 290),
    "tiny": (6, 1, 5, 3),
    "zero conversions in control": (500, 0, 480, 7),
    "equal rates": (1_000, 100, 2_000, 200),
    "100 % in control": (50, 50, 60, 54),
    "treatment worse": (12_000, 1_500, 11_800, 1_290),
}


@pytest.mark.parametrize("dataset", CONVERSION_DATASETS.values(), ids=CONVERSION_DATASETS.keys())
def test_conversion_z_test_matches_statsmodels_pooled(dataset: tuple[int, int, int, int]) -> None:
    nc, xc, nt, xt = dataset
    effect = ab.conversion_effect(conversions(nc, xc), conversions(nt, xt))

    z, p = proportions_ztest([xt, xc], [nt, nc])  # pooled standard error, no continuity correction
    assert effect.statistic == approx(float(z))
    assert effect.p_value == approx(float(p))
    assert effect.difference == approx(xt / nt - xc / nc)
    assert effect.control_mean == approx(xc / nc) and effect.treatment_mean == approx(xt / nt)
    assert effect.kind == "conversion" and "pooled" in effect.method


@pytest.mark.parametrize("dataset", CONVERSION_DATASETS.values(), ids=CONVERSION_DATASETS.keys())
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_conversion_wald_interval_matches_statsmodels_unpooled(
    dataset: tuple[int, int, int, int], alpha: float
) -> None:
    nc, xc, nt, xt = dataset
    effect = ab.conversion_effect(conversions(nc, xc), conversions(nt, xt), alpha=alpha)

    low, high = confint_proportions_2indep(xt, nt, xc, nc, method="wald", compare="diff", alpha=alpha)
    assert effect.ci == (approx(float(low)), approx(float(high)))


def test_equal_rates_give_p_value_one() -> None:
    effect = ab.conversion_effect(conversions(1_000, 100), conversions(2_000, 200))

    assert effect.p_value == 1.0
    assert effect.difference == 0.0 and effect.relative_lift == 0.0
    assert effect.ci is not None and effect.ci[0] < 0 < effect.ci[1]


@pytest.mark.parametrize(
    ("control", "treatment", "missing", "words"),
    [
        ((0, 0), (100, 10), {"difference", "p_value", "ci", "relative_lift"}, "No users in control yet"),
        ((100, 10), (0, 0), {"difference", "p_value", "ci", "relative_lift"}, "No users in treatment yet"),
        ((0, 0), (0, 0), {"difference", "p_value", "ci"}, "No users in control or treatment yet"),
        ((200, 0), (300, 0), {"p_value", "ci", "relative_lift"}, "converted at 0 %"),
        ((200, 200), (300, 300), {"p_value", "ci", "relative_ci"}, "converted at 100 %"),
        ((1, 0), (1, 1), {"ci", "relative_lift"}, "unpooled standard error is 0"),
        ((400, 0), (400, 12), {"relative_lift", "relative_ci"}, "No conversions in control"),
    ],
)
def test_conversion_edge_cases_say_why_in_words(
    control: tuple[int, int], treatment: tuple[int, int], missing: set[str], words: str
) -> None:
    effect = ab.conversion_effect(conversions(*control), conversions(*treatment))

    for name in missing:
        assert getattr(effect, name) is None, name
    assert words in effect.note
    assert_no_nan_or_inf(effect)


def test_one_user_each_still_gets_a_pooled_p_value() -> None:
    # 0 of 1 against 1 of 1: the pooled rate is 50 %, so the pooled SE is positive and the z-test is defined.
    effect = ab.conversion_effect(conversions(1, 0), conversions(1, 1))

    z, p = proportions_ztest([1, 0], [1, 1])
    assert effect.p_value == approx(float(p))
    assert effect.statistic == approx(float(z))


def test_relative_lift_delta_method_matches_the_formula_on_raw_arrays() -> None:
    rng = np.random.default_rng(7)
    control = (rng.random(4_000) < 0.12).astype(float)
    treatment = (rng.random(3_500) < 0.135).astype(float)
    effect = ab.conversion_effect(sample_of(control), sample_of(treatment), alpha=0.1)

    mc, mt = control.mean(), treatment.mean()
    var_mc, var_mt = control.var() / len(control), treatment.var() / len(treatment)  # Bernoulli p(1-p)/n
    lift = mt / mc - 1
    se = math.sqrt(var_mt / mc**2 + mt**2 * var_mc / mc**4)
    z = sps.norm.ppf(0.95)
    assert effect.relative_lift == approx(lift)
    assert effect.relative_ci == (approx(lift - z * se), approx(lift + z * se))


def test_relative_lift_delta_method_for_a_continuous_metric() -> None:
    rng = np.random.default_rng(8)
    control = rng.gamma(2.0, 10.0, 600)
    treatment = rng.gamma(2.0, 11.0, 650)
    effect = ab.continuous_effect(sample_of(control), sample_of(treatment))

    mc, mt = control.mean(), treatment.mean()
    var_mc, var_mt = control.var(ddof=1) / len(control), treatment.var(ddof=1) / len(treatment)
    lift = mt / mc - 1
    se = math.sqrt(var_mt / mc**2 + mt**2 * var_mc / mc**4)
    z = sps.norm.ppf(0.975)
    assert effect.relative_lift == approx(lift, rel=1e-7)
    assert effect.relative_ci == (approx(lift - z * se, rel=1e-7), approx(lift + z * se, rel=1e-7))


def test_relative_and_absolute_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    # Seeded simulation: 2,000 experiments, 5,000 users per variant, true rates 10 % and 11 % (lift +10 %).
    rng = np.random.default_rng(2024)
    n, pc, pt, runs = 5_000, 0.10, 0.11, 2_000
    converted = rng.binomial(n, [pc, pt], size=(runs, 2))
    relative_hits = absolute_hits = 0
    for xc, xt in converted:
        effect = ab.conversion_effect(conversions(n, int(xc)), conversions(n, int(xt)))
        relative_hits += effect.relative_ci[0] <= pt / pc - 1 <= effect.relative_ci[1]
        absolute_hits += effect.ci[0] <= pt - pc <= effect.ci[1]

    # The Monte-Carlo standard error of a 95 % coverage over 2,000 runs is 0.5 points.
    assert 0.935 <= relative_hits / runs <= 0.965
    assert 0.935 <= absolute_hits / runs <= 0.965


# ---------------------------------------------------------------------------------------------------------------
# Continuous metrics: Welch


def _welch_datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    return {
        "small": (rng.normal(10, 2, 30), rng.normal(11, 4, 45)),
        "large skewed": (rng.lognormal(3, 1, 20_000), rng.lognormal(3.02, 1, 20_000)),
        "tiny": (np.array([3.0, 5.0]), np.array([4.0, 9.0, 6.5])),
        "unbalanced": (rng.normal(100, 15, 10), rng.normal(97, 30, 2_000)),
        "negative values": (rng.normal(-5, 1, 200), rng.normal(-4.8, 1.5, 150)),
        "one variant constant": (np.full(20, 3.0), rng.normal(3.5, 1, 25)),
        "identical means": (np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.5, 2.5, 2.5, 2.5, 0.0, 5.0])),
    }


WELCH_DATASETS = _welch_datasets()


@pytest.mark.parametrize("dataset", WELCH_DATASETS.values(), ids=WELCH_DATASETS.keys())
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_welch_matches_scipy_and_statsmodels(dataset: tuple[np.ndarray, np.ndarray], alpha: float) -> None:
    control, treatment = dataset
    effect = ab.continuous_effect(sample_of(control), sample_of(treatment), alpha=alpha)

    with warnings.catch_warnings():  # scipy warns that a constant variant has (nearly) no variance: it is the point
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        reference = sps.ttest_ind(treatment, control, equal_var=False)
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(alpha=alpha, usevar="unequal")
    assert effect.p_value == approx(float(reference.pvalue), rel=1e-7, abs_=1e-10)
    assert effect.statistic == approx(float(reference.statistic), rel=1e-7, abs_=1e-10)
    assert effect.df == approx(float(reference.df), rel=1e-7)
    assert effect.ci == (approx(float(low), rel=1e-7, abs_=1e-9), approx(float(high), rel=1e-7, abs_=1e-9))
    assert effect.difference == approx(treatment.mean() - control.mean(), rel=1e-9, abs_=1e-9)
    assert effect.kind == "continuous" and "Welch" in effect.method


def test_sample_mean_and_variance_from_sums() -> None:
    values = np.array([2.0, 4.0, 4.0, 5.0, 7.5])
    sample = sample_of(values)

    assert sample.mean == approx(values.mean())
    assert sample.variance == approx(values.var(ddof=1))
    assert ab.Sample(1, 3.0, 9.0).variance is None
    assert ab.Sample(0, 0, 0).mean is None


@pytest.mark.parametrize(
    ("control", "treatment", "missing", "words"),
    [
        ([], [1.0, 2.0], {"difference", "ci", "p_value"}, "No users in control yet"),
        ([4.0], [1.0, 2.0, 3.0], {"ci", "p_value", "relative_ci"}, "Only one user in control"),
        ([4.0], [2.0], {"ci", "p_value"}, "Only one user in control and treatment"),
        ([2.0, 2.0, 2.0], [3.0, 3.0], {"ci", "p_value", "relative_ci"}, "zero variance"),
        ([-1.0, 1.0, 0.0], [1.0, 2.0], {"relative_lift", "relative_ci"}, "control mean is 0"),
    ],
)
def test_continuous_edge_cases_say_why_in_words(
    control: list[float], treatment: list[float], missing: set[str], words: str
) -> None:
    effect = ab.continuous_effect(sample_of(np.array(control)), sample_of(np.array(treatment)))

    for name in missing:
        assert getattr(effect, name) is None, name
    assert words in effect.note
    assert_no_nan_or_inf(effect)


# ---------------------------------------------------------------------------------------------------------------
# Sample ratio mismatch


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([10_000, 10_600], [1, 1]),
        ([10_000, 10_050], [50, 50]),
        ([3_300, 3_350, 3_420], [1, 1, 1]),
        ([9_000, 1_000], [0.9, 0.1]),
        ([8_870, 1_130], [90, 10]),
        ([2_010, 4_020, 3_970], [0.2, 0.4, 0.4]),
    ],
)
def test_srm_matches_scipy_chisquare(observed: list[int], weights: list[float]) -> None:
    result = ab.sample_ratio_mismatch(observed, weights)

    expected = np.array(weights, dtype=float) / sum(weights) * sum(observed)
    reference = sps.chisquare(observed, f_exp=expected)
    assert result.chi2 == approx(float(reference.statistic))
    assert result.p_value == approx(float(reference.pvalue))
    assert result.expected == [approx(e) for e in expected]
    assert result.mismatch == (float(reference.pvalue) < 0.001)


def test_srm_detection_on_a_fifty_fifty_plan() -> None:
    flagged = ab.sample_ratio_mismatch([10_000, 10_600], [0.5, 0.5])
    fine = ab.sample_ratio_mismatch([10_000, 10_050], [0.5, 0.5])

    assert flagged.mismatch and flagged.p_value < 0.001
    assert not fine.mismatch and fine.p_value > 0.5


def test_srm_edge_cases() -> None:
    nobody = ab.sample_ratio_mismatch([0, 0], [1, 1])
    assert nobody.chi2 is None and nobody.p_value is None and not nobody.mismatch and "No exposures" in nobody.note

    unplanned = ab.sample_ratio_mismatch([500, 3], [1, 0])
    assert unplanned.mismatch and unplanned.p_value == 0.0 and "variant 2" in unplanned.note

    # A variant planned at 0 % that indeed got nobody is left out of the test.
    left_out = ab.sample_ratio_mismatch([500, 520, 0], [1, 1, 0])
    reference = sps.chisquare([500, 520])
    assert left_out.p_value == approx(float(reference.pvalue)) and not left_out.mismatch

    tiny = ab.sample_ratio_mismatch([3, 1], [1, 1])
    assert tiny.p_value is not None and "rough" in tiny.note


# ---------------------------------------------------------------------------------------------------------------
# CUPED


def _cuped_data(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(50, 12, n)  # last month's value of the same metric
    y = 5 + 0.9 * x + rng.normal(0, 6, n) + effect
    return x, y


def _cuped_reference(
    xc: np.ndarray, yc: np.ndarray, xt: np.ndarray, yt: np.ndarray, alpha: float = 0.05
) -> tuple[float, np.ndarray, np.ndarray]:
    """θ by ordinary least squares of Y on X over all users, then the adjusted per-user values."""
    x_all, y_all = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    design = np.column_stack([np.ones_like(x_all), x_all])
    (_, theta), *_ = np.linalg.lstsq(design, y_all, rcond=None)
    x_bar = x_all.mean()
    return float(theta), yc - theta * (xc - x_bar), yt - theta * (xt - x_bar)


def test_cuped_equals_regression_adjustment_on_raw_arrays() -> None:
    rng = np.random.default_rng(5)
    xc, yc = _cuped_data(rng, 800, 0.0)
    xt, yt = _cuped_data(rng, 900, 1.0)
    effect = ab.cuped_effect(sample_of(yc, xc), sample_of(yt, xt), kind="continuous")

    theta, adj_c, adj_t = _cuped_reference(xc, yc, xt, yt)
    reference = sps.ttest_ind(adj_t, adj_c, equal_var=False)
    low, high = CompareMeans(DescrStatsW(adj_t), DescrStatsW(adj_c)).tconfint_diff(usevar="unequal")
    assert effect.theta == approx(theta, rel=1e-8)
    assert effect.control_mean == approx(adj_c.mean(), rel=1e-8)
    assert effect.treatment_mean == approx(adj_t.mean(), rel=1e-8)
    assert effect.difference == approx(adj_t.mean() - adj_c.mean(), rel=1e-7)
    assert effect.p_value == approx(float(reference.pvalue), rel=1e-6)
    assert effect.ci == (approx(float(low), rel=1e-7), approx(float(high), rel=1e-7))
    assert "CUPED" in effect.method


def test_cuped_reduces_variance_for_correlated_data() -> None:
    rng = np.random.default_rng(6)
    xc, yc = _cuped_data(rng, 2_000, 0.0)
    xt, yt = _cuped_data(rng, 2_000, 0.5)
    plain = ab.continuous_effect(sample_of(yc), sample_of(yt))
    adjusted = ab.cuped_effect(sample_of(yc, xc), sample_of(yt, xt), kind="continuous")

    plain_width = plain.ci[1] - plain.ci[0]
    adjusted_width = adjusted.ci[1] - adjusted.ci[0]
    rho2 = np.corrcoef(np.concatenate([xc, xt]), np.concatenate([yc, yt]))[0, 1] ** 2
    # The variance of the difference shrinks by about ρ², the width by about sqrt(1 - ρ²).
    assert adjusted.variance_reduction == approx(rho2, rel=0.05)
    assert adjusted_width / plain_width == approx(math.sqrt(1 - rho2), rel=0.05)
    assert adjusted_width < 0.6 * plain_width


def test_cuped_for_a_conversion_metric_matches_the_arrays() -> None:
    rng = np.random.default_rng(9)
    xc = rng.binomial(1, 0.3, 3_000).astype(float)  # converted last month
    xt = rng.binomial(1, 0.3, 3_000).astype(float)
    yc = (rng.random(3_000) < 0.05 + 0.4 * xc).astype(float)
    yt = (rng.random(3_000) < 0.06 + 0.4 * xt).astype(float)
    effect = ab.cuped_effect(sample_of(yc, xc), sample_of(yt, xt), kind="conversion")

    theta, adj_c, adj_t = _cuped_reference(xc, yc, xt, yt)
    reference = sps.ttest_ind(adj_t, adj_c, equal_var=False)
    assert effect.theta == approx(theta, rel=1e-8)
    assert effect.difference == approx(adj_t.mean() - adj_c.mean(), rel=1e-7)
    assert effect.p_value == approx(float(reference.pvalue), rel=1e-6)
    assert effect.kind == "conversion" and effect.variance_reduction > 0.2


@pytest.mark.parametrize("kind", ["conversion", "continuous"])
def test_cuped_without_covariate_is_the_plain_effect(kind: str) -> None:
    if kind == "conversion":
        control, treatment = conversions(5_000, 500), conversions(5_100, 560)
        plain = ab.conversion_effect(control, treatment)
    else:
        rng = np.random.default_rng(3)
        control, treatment = sample_of(rng.normal(5, 1, 300)), sample_of(rng.normal(5.2, 1, 310))
        plain = ab.continuous_effect(control, treatment)
    adjusted = ab.cuped_effect(control, treatment, kind=kind)

    assert dataclasses.replace(adjusted, note="") == dataclasses.replace(plain, note="")
    assert "not CUPED-adjusted" in adjusted.note


def test_cuped_with_a_constant_covariate_is_the_plain_effect() -> None:
    rng = np.random.default_rng(4)
    yc, yt = rng.normal(5, 1, 100), rng.normal(5.3, 1, 100)
    adjusted = ab.cuped_effect(sample_of(yc, np.full(100, 2.0)), sample_of(yt, np.full(100, 2.0)), kind="continuous")
    plain = ab.continuous_effect(sample_of(yc), sample_of(yt))

    assert adjusted.p_value == plain.p_value and adjusted.ci == plain.ci
    assert "does not vary" in adjusted.note


# ---------------------------------------------------------------------------------------------------------------
# Always-valid results (mSPRT)


def _msprt_reference(
    mean_c: float, var_c: float, nc: int, mean_t: float, var_t: float, nt: int, tau2: float, alpha: float
) -> tuple[float, tuple[float, float]]:
    theta = mean_t - mean_c
    v = var_c / nc + var_t / nt
    likelihood_ratio = math.sqrt(v / (v + tau2)) * math.exp(theta**2 * tau2 / (2 * v * (v + tau2)))
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    return min(1.0, 1 / likelihood_ratio), (theta - half, theta + half)


@pytest.mark.parametrize("tau2", [1e-4, 4e-4, 1e-2])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_always_valid_conversion_matches_the_closed_form(tau2: float, alpha: float) -> None:
    nc, xc, nt, xt = 8_000, 800, 8_100, 905
    result = ab.always_valid(conversions(nc, xc), conversions(nt, xt), kind="conversion", tau2=tau2, alpha=alpha)

    pc, pt = xc / nc, xt / nt
    p_value, ci = _msprt_reference(pc, pc * (1 - pc), nc, pt, pt * (1 - pt), nt, tau2, alpha)
    assert result.p_value == approx(p_value)
    assert result.ci == (approx(ci[0]), approx(ci[1]))
    assert result.tau2 == tau2


def test_always_valid_continuous_matches_the_closed_form() -> None:
    rng = np.random.default_rng(12)
    control, treatment = rng.normal(20, 5, 700), rng.normal(21, 6, 650)
    result = ab.always_valid(sample_of(control), sample_of(treatment), kind="continuous", tau2=0.5)

    p_value, ci = _msprt_reference(
        control.mean(), control.var(ddof=1), 700, treatment.mean(), treatment.var(ddof=1), 650, 0.5, 0.05
    )
    assert result.p_value == approx(p_value, rel=1e-7)
    assert result.ci == (approx(ci[0], rel=1e-7), approx(ci[1], rel=1e-7))


def test_always_valid_tau2_defaults() -> None:
    control, treatment = conversions(4_000, 400), conversions(4_000, 440)
    pooled = 840 / 8_000

    assert ab.always_valid(control, treatment, kind="conversion").tau2 == approx(0.01 * pooled * (1 - pooled))
    assert ab.always_valid(control, treatment, kind="conversion", mde=0.02).tau2 == approx(0.0004)
    rng = np.random.default_rng(1)
    yc, yt = rng.normal(0, 3, 50), rng.normal(0, 3, 70)
    pooled_variance = (49 * yc.var(ddof=1) + 69 * yt.var(ddof=1)) / 118
    default = ab.always_valid(sample_of(yc), sample_of(yt), kind="continuous")
    assert default.tau2 == approx(0.01 * pooled_variance, rel=1e-9)


def test_always_valid_is_wider_than_the_fixed_horizon_interval() -> None:
    control, treatment = conversions(20_000, 2_000), conversions(20_000, 2_150)
    fixed = ab.conversion_effect(control, treatment)
    safe = ab.always_valid(control, treatment, kind="conversion")

    assert safe.ci[0] < fixed.ci[0] and fixed.ci[1] < safe.ci[1]
    assert safe.p_value > fixed.p_value


def test_always_valid_edge_cases() -> None:
    nobody = ab.always_valid(conversions(0, 0), conversions(10, 1), kind="conversion")
    assert nobody.p_value is None and "No users in control" in nobody.note
    flat = ab.always_valid(conversions(100, 0), conversions(100, 0), kind="conversion")
    assert flat.p_value is None and flat.ci is None and "No variance" in flat.note
    single = ab.always_valid(sample_of(np.array([1.0])), sample_of(np.array([1.0, 2.0])), kind="continuous")
    assert single.p_value is None and "Only one user in control" in single.note
    huge = ab.always_valid(conversions(1_000_000, 0), conversions(1_000_000, 500_000), kind="conversion", tau2=1.0)
    assert huge.p_value == 0.0  # exp(-large) underflows to 0, never inf or NaN
    assert_no_nan_or_inf(huge)


def test_running_minimum_makes_a_series_of_looks_monotone() -> None:
    # An early lead that fades: the raw always-valid p-value dips, then climbs back as the lead goes.
    rng = np.random.default_rng(21)
    early, late = rng.binomial(500, [0.10, 0.125], size=(10, 2)), rng.binomial(500, [0.10, 0.09], size=(20, 2))
    daily = np.concatenate([early, late]).cumsum(axis=0)
    raw = [
        ab.always_valid(conversions(500 * day, int(xc)), conversions(500 * day, int(xt)), kind="conversion").p_value
        for day, (xc, xt) in enumerate(daily, start=1)
    ]
    monotone = ab.running_minimum(raw)

    assert any(later > earlier for earlier, later in itertools.pairwise(raw))  # raw values do go back up
    assert all(later <= earlier for earlier, later in itertools.pairwise(monotone))
    assert all(m <= r for m, r in zip(monotone, raw, strict=True))
    assert monotone[-1] == min(raw) < raw[-1]
    assert ab.running_minimum([None, 0.4, None, 0.6, 0.2]) == [None, 0.4, 0.4, 0.4, 0.2]


def test_peeking_every_day_at_aa_tests_keeps_the_always_valid_false_positive_rate_at_alpha() -> None:
    """300 seeded A/A experiments, 30 daily looks each: the evidence that "peeking-safe" is real.

    A naive fixed-horizon z-test declared significant at any look is wrong far more often than alpha; the
    always-valid p-value (running minimum) is not.
    """
    rng = np.random.default_rng(20260126)
    experiments, looks, users_per_day, rate, alpha = 300, 30, 200, 0.1, 0.05
    converted = rng.binomial(users_per_day, rate, size=(experiments, looks, 2)).cumsum(axis=1)
    naive_false_positives = safe_false_positives = 0
    for experiment in converted:
        naive = safe = False
        for day, (xc, xt) in enumerate(experiment, start=1):
            control, treatment = conversions(users_per_day * day, int(xc)), conversions(users_per_day * day, int(xt))
            naive = naive or ab.conversion_effect(control, treatment).p_value < alpha
            safe = safe or ab.always_valid(control, treatment, kind="conversion").p_value < alpha
        naive_false_positives += naive
        safe_false_positives += safe

    naive_rate = naive_false_positives / experiments
    safe_rate = safe_false_positives / experiments
    # The standard error of a 5 % rate over 300 experiments is 1.3 points.
    assert safe_rate <= alpha + 0.02, safe_rate
    assert naive_rate >= 3 * alpha, naive_rate


# ---------------------------------------------------------------------------------------------------------------
# Multiple comparisons


P_VALUE_SETS = {
    "spread": [0.01, 0.04, 0.03, 0.005, 0.2, 0.8],
    "ties": [0.02, 0.02, 0.02, 0.5],
    "all tiny": [1e-8, 3e-6, 0.0002],
    "ones": [1.0, 0.99, 0.5, 1.0],
    "single": [0.03],
    "many": list(np.random.default_rng(13).uniform(0, 0.2, 25)),
}


@pytest.mark.parametrize("values", P_VALUE_SETS.values(), ids=P_VALUE_SETS.keys())
@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_match_statsmodels(values: list[float], ours: str, theirs: str) -> None:
    adjusted = ab.adjust_p_values(values, method=ours)

    _, reference, _, _ = multipletests(values, method=theirs)
    assert adjusted == [approx(float(r)) for r in reference]


def test_none_entries_pass_through_and_do_not_count() -> None:
    values = [0.01, None, 0.04, None, 0.03]
    _, holm, _, _ = multipletests([0.01, 0.04, 0.03], method="holm")

    assert ab.adjust_p_values(values) == [approx(holm[0]), None, approx(holm[1]), None, approx(holm[2])]
    assert ab.adjust_p_values([None, None], method="bh") == [None, None]
    assert ab.adjust_p_values([]) == []


# ---------------------------------------------------------------------------------------------------------------
# Power and sample size


def test_users_per_variant_textbook_value() -> None:
    """Baseline 10 %, +1 point absolute, alpha 0.05 two-sided, power 0.8: pooled null variance, unpooled alternative."""
    p1, p2 = 0.10, 0.11
    pooled = (p1 + p2) / 2
    z_a, z_b = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    textbook = (z_a * math.sqrt(2 * pooled * (1 - pooled)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (
        p2 - p1
    ) ** 2

    n = ab.users_per_variant(baseline_rate=0.10, mde=0.01, relative=False)
    assert n == math.ceil(textbook)
    assert 14_700 < n < 14_800
    assert ab.users_per_variant(baseline_rate=0.10, mde=0.10, relative=True) == n  # +10 % of 10 % is 1 point


def test_users_per_variant_is_close_to_statsmodels_arcsine_formula() -> None:
    # statsmodels' proportion power uses Cohen's h (arcsine), a different approximation: agreement within 1 %.
    for baseline, target in [(0.10, 0.11), (0.05, 0.06), (0.30, 0.33), (0.50, 0.45)]:
        ours = ab.users_per_variant(baseline_rate=baseline, mde=target - baseline, relative=False)
        effect_size = proportion_effectsize(target, baseline)
        theirs = NormalIndPower().solve_power(effect_size=effect_size, alpha=0.05, power=0.8, ratio=1.0)
        assert ours == pytest.approx(theirs, rel=0.01)


def test_users_per_variant_unequal_split() -> None:
    p1, p2, k = 0.2, 0.23, 3.0
    pooled = (p1 + k * p2) / (1 + k)
    z_a, z_b = sps.norm.ppf(0.995), sps.norm.ppf(0.9)
    textbook = (
        z_a * math.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / k)
    ) ** 2 / (p2 - p1) ** 2

    n = ab.users_per_variant(baseline_rate=p1, mde=0.03, relative=False, alpha=0.01, power=0.9, ratio=k)
    assert n == math.ceil(textbook)


@pytest.mark.parametrize(("sd", "mde", "alpha", "power"), [(1.0, 0.1, 0.05, 0.8), (12.0, 1.5, 0.01, 0.9)])
def test_users_per_variant_means_matches_statsmodels(sd: float, mde: float, alpha: float, power: float) -> None:
    n = ab.users_per_variant_means(sd=sd, mde=mde, alpha=alpha, power=power)

    theirs = NormalIndPower().solve_power(effect_size=mde / sd, alpha=alpha, power=power, ratio=1.0)
    assert n == math.ceil(theirs)


def test_additional_users_needed() -> None:
    control, treatment = conversions(5_000, 500), conversions(5_200, 540)
    required = ab.users_per_variant(baseline_rate=0.1, mde=0.1, relative=True)

    assert ab.additional_users_needed(control, treatment, kind="conversion", mde=0.1, relative=True) == (
        required - 5_000
    )
    enough = conversions(required + 10, (required + 10) // 10)
    assert ab.additional_users_needed(enough, enough, kind="conversion", mde=0.1, relative=True) == 0
    assert ab.additional_users_needed(conversions(300, 0), treatment, kind="conversion", mde=0.1, relative=True) is None
    assert ab.additional_users_needed(conversions(0, 0), treatment, kind="conversion", mde=0.1, relative=True) is None

    rng = np.random.default_rng(2)
    yc, yt = rng.normal(40, 8, 400), rng.normal(40, 8, 300)
    sd = math.sqrt((399 * yc.var(ddof=1) + 299 * yt.var(ddof=1)) / 698)
    expected = ab.users_per_variant_means(sd=sd, mde=0.02 * yc.mean()) - 300
    assert expected > 0
    assert ab.additional_users_needed(sample_of(yc), sample_of(yt), kind="continuous", mde=0.02, relative=True) == (
        expected
    )
    assert ab.additional_users_needed(sample_of(yc), sample_of(yt), kind="continuous", mde=0.2, relative=True) == 0


# ---------------------------------------------------------------------------------------------------------------
# Bad arguments name the argument


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: ab.Sample(n=-1, total=0, total_sq=0), "n"),
        (lambda: ab.Sample(n=2.5, total=0, total_sq=0), "n"),
        (lambda: ab.Sample(n=3, total=float("nan"), total_sq=1), "total"),
        (lambda: ab.Sample(n=3, total=3, total_sq=-1), "total_sq"),
        (lambda: ab.Sample(n=3, total=6, total_sq=2), "total_sq"),
        (lambda: ab.Sample(n=0, total=1, total_sq=1), "total"),
        (lambda: ab.Sample(n=3, total=3, total_sq=3, x_total=1.0), "x_total"),
        (lambda: conversions(10, 11), "total_sq"),  # 11 conversions of 10 users cannot be a 0/1 metric's sums
        (lambda: ab.conversion_effect(ab.Sample(10, 12, 15), conversions(10, 1)), "control.total"),
        (lambda: ab.conversion_effect(conversions(10, 1), ab.Sample(10, -1, 1)), "treatment.total"),
        (lambda: ab.conversion_effect(conversions(10, 1), ab.Sample(10, 2.5, 2.5)), "treatment.total"),
        (lambda: ab.conversion_effect(conversions(10, 1), conversions(10, 1), alpha=0), "alpha"),
        (lambda: ab.continuous_effect(conversions(10, 1), conversions(10, 1), alpha=1.5), "alpha"),
        (lambda: ab.cuped_effect(conversions(10, 1), conversions(10, 1), kind="ratio"), "kind"),
        (lambda: ab.sample_ratio_mismatch([10, 10], [0, 0]), "weights"),
        (lambda: ab.sample_ratio_mismatch([10, 10], [1, -1]), "weights"),
        (lambda: ab.sample_ratio_mismatch([10, -1], [1, 1]), "observed"),
        (lambda: ab.sample_ratio_mismatch([10, 10], [1, 1, 1]), "weights"),
        (lambda: ab.sample_ratio_mismatch([10, 10], [1, 1], threshold=0), "threshold"),
        (lambda: ab.always_valid(conversions(10, 1), conversions(10, 1), kind="conversion", tau2=-1), "tau2"),
        (lambda: ab.running_minimum([0.2, 1.5]), "p_values"),
        (lambda: ab.adjust_p_values([0.2, -0.1]), "p_values"),
        (lambda: ab.adjust_p_values([0.2], method="bonferroni-ish"), "method"),
        (lambda: ab.users_per_variant(baseline_rate=0, mde=0.1), "baseline_rate"),
        (lambda: ab.users_per_variant(baseline_rate=0.95, mde=0.1, relative=False), "mde"),
        (lambda: ab.users_per_variant(baseline_rate=0.1, mde=0.1, power=1), "power"),
        (lambda: ab.users_per_variant(baseline_rate=0.1, mde=0.1, ratio=0), "ratio"),
        (lambda: ab.users_per_variant_means(sd=0, mde=1), "sd"),
        (lambda: ab.users_per_variant_means(sd=1, mde=0), "mde"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(call, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{re.escape(argument)}\b"):
        call()


# ---------------------------------------------------------------------------------------------------------------
# Property: never NaN or inf, whatever the small counts


small_values = st.lists(st.tuples(st.integers(-5, 5), st.integers(-3, 3)), max_size=6)
small_flags = st.lists(st.tuples(st.booleans(), st.integers(0, 2)), max_size=6)


def _sums(rows: list[tuple[float, float]]) -> ab.Sample:
    y = np.array([r[0] for r in rows], dtype=float)
    x = np.array([r[1] for r in rows], dtype=float)
    return sample_of(y, x)


@settings(max_examples=300, deadline=None, database=None)
@given(
    control=small_flags,
    treatment=small_flags,
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
    tau2=st.one_of(st.none(), st.sampled_from([1e-6, 0.01, 4.0])),
)
def test_conversion_results_are_never_nan_or_inf(
    control: list[tuple[bool, int]], treatment: list[tuple[bool, int]], alpha: float, tau2: float | None
) -> None:
    c, t = _sums(control), _sums(treatment)
    for result in (
        ab.conversion_effect(c, t, alpha=alpha),
        ab.cuped_effect(c, t, kind="conversion", alpha=alpha),
        ab.always_valid(c, t, kind="conversion", tau2=tau2, alpha=alpha),
        ab.sample_ratio_mismatch([c.n, t.n], [1, 1]),
    ):
        assert_no_nan_or_inf(result)
    needed = ab.additional_users_needed(c, t, kind="conversion", mde=0.2, relative=True)
    assert needed is None or needed >= 0


@settings(max_examples=300, deadline=None, database=None)
@given(
    control=small_values,
    treatment=small_values,
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
    tau2=st.one_of(st.none(), st.sampled_from([1e-6, 0.01, 4.0])),
)
def test_continuous_results_are_never_nan_or_inf(
    control: list[tuple[int, int]], treatment: list[tuple[int, int]], alpha: float, tau2: float | None
) -> None:
    c, t = _sums(control), _sums(treatment)
    for result in (
        ab.continuous_effect(c, t, alpha=alpha),
        ab.cuped_effect(c, t, kind="continuous", alpha=alpha),
        ab.always_valid(c, t, kind="continuous", tau2=tau2, alpha=alpha),
    ):
        assert_no_nan_or_inf(result)
    needed = ab.additional_users_needed(c, t, kind="continuous", mde=1.0, relative=False)
    assert needed is None or needed >= 0
    p_values = [ab.continuous_effect(c, t).p_value, ab.conversion_effect(_flags(c), _flags(t)).p_value]
    for adjusted in (ab.adjust_p_values(p_values), ab.adjust_p_values(p_values, method="bh")):
        assert all(p is None or 0 <= p <= 1 for p in adjusted)


def _flags(sample: ab.Sample) -> ab.Sample:
    """A conversion sample of the same size: the users with a positive value converted (any count in 0..n)."""
    return conversions(sample.n, min(sample.n, max(0, int(sample.total))))


def test_the_statistics_are_pure_and_do_not_use_their_own_reference() -> None:
    """stats.py imports neither statsmodels (the tests' reference: it would be compared with itself) nor Django."""
    tree = ast.parse(inspect.getsource(ab))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported, "no imports found: the check is broken"
    assert not {name for name in imported if name.split(".")[0] in {"statsmodels", "django"}}
