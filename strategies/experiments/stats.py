# ruff: noqa: RUF001, RUF002, RUF003 -- the formulas are written in mathematical notation (−, ×, α, σ, en dash)
"""Statistics for A/B tests: pure functions over sufficient statistics (no Django, no database).

Every function reads per-variant sums (`Sample`: users, Σy, Σy², and for CUPED Σx, Σx², Σxy), never
per-user rows, so the results page can aggregate in SQL and call these. The conventions, in short
(docs/experiments.md, "Statistics conventions", says the same for the people reading the page):

- **Conversion metrics**: two-sided two-proportion z-test with the POOLED standard error (no continuity
  correction) for the p-value; Wald interval of the absolute difference with the UNPOOLED standard error.
- **Continuous metrics**: Welch's t-test and Welch t interval (Welch–Satterthwaite degrees of freedom).
- **Relative lift** (difference / control mean): delta-method interval with the normal quantile,
  Var(lift) ≈ Var(m_t)/m_c² + m_t²·Var(m_c)/m_c⁴.
- **Sample ratio mismatch**: chi-square goodness of fit against the planned allocation; mismatch when p < 0.001.
- **Peeking-safe results**: mSPRT with a normal mixture (Johari, Pekelis, Walsh 2017); see `always_valid`.
- **CUPED**: θ = cov(X, Y) / var(X) over both variants together; see `cuped_effect`.
- **Multiple comparisons**: Holm–Bonferroni by default, Benjamini–Hochberg on request.
- **Power**: normal approximation; null variance under the pooled rate, alternative variance unpooled.

Robustness: for tiny samples, zero or 100 % conversion, n = 0 or 1, or zero variance no function raises or
returns NaN/inf; a figure that cannot be computed is None and `note` says why in words. Bad arguments
(negative counts, alpha outside (0, 1), more conversions than users, weights summing to 0, ...) raise
ValueError naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from numbers import Real

from scipy import stats as _dist

CONVERSION, CONTINUOUS = "conversion", "continuous"
KINDS = (CONVERSION, CONTINUOUS)

SRM_THRESHOLD = 0.001
# Default mSPRT mixing scale: a standardized effect of a tenth of the per-user standard deviation.
DEFAULT_TAU_STANDARDIZED = 0.1

METHOD_CONVERSION = "two-proportion z-test (pooled SE), Wald CI (unpooled); relative lift: delta method (normal)"
METHOD_CONTINUOUS = "Welch's t-test, Welch t CI (Welch–Satterthwaite df); relative lift: delta method (normal)"
METHOD_CUPED = (
    "CUPED (θ = cov(X,Y)/var(X) over both variants) + Welch's t-test and t CI on the adjusted metric; "
    "relative lift: delta method (normal)"
)

# Relative tolerance below which a sum of squared deviations is rounding noise, not variance.
_ROUNDING = 1e-12


# ---------------------------------------------------------------------------------------------------------------
# Inputs and results


@dataclass(frozen=True)
class Sample:
    """Sufficient statistics of one variant for one metric.

    For a conversion (0/1) metric `total` is the number of users who converted and `total_sq` equals `total`;
    the conversion functions read `n` and `total` only. The CUPED fields are all set or all None.
    """

    n: int  # users in the variant
    total: float  # sum of per-user values; for a conversion metric: the number of users who converted
    total_sq: float  # sum of squared per-user values (equals total for a 0/1 metric)
    x_total: float | None = None  # CUPED: Σx of the pre-experiment covariate over the same users
    x_sq: float | None = None  # Σx²
    xy_total: float | None = None  # Σxy

    def __post_init__(self) -> None:
        n = self.n
        if isinstance(n, bool) or not isinstance(n, Real) or not math.isfinite(n) or n != int(n) or n < 0:
            raise ValueError(f"n must be a whole number of users ≥ 0, got {n!r}")
        object.__setattr__(self, "n", int(n))
        for name in ("total", "total_sq"):
            object.__setattr__(self, name, _as_float(getattr(self, name), name))
        covariate = [getattr(self, name) for name in ("x_total", "x_sq", "xy_total")]
        if any(value is not None for value in covariate) and any(value is None for value in covariate):
            raise ValueError("x_total, x_sq and xy_total (the CUPED covariate) must be given together or not at all")
        if covariate[0] is not None:
            for name in ("x_total", "x_sq", "xy_total"):
                object.__setattr__(self, name, _as_float(getattr(self, name), name))
        self._check_moments()

    def _check_moments(self) -> None:
        if self.total_sq < 0:
            raise ValueError(f"total_sq must be ≥ 0 (a sum of squares), got {self.total_sq!r}")
        if self.n == 0:
            if self.total or self.total_sq or (self.has_covariate and (self.x_total or self.x_sq or self.xy_total)):
                raise ValueError("total, total_sq and the covariate sums must be 0 when n = 0")
            return
        if _centred(self.total_sq, self.total, self.total, self.n) < -1e-9 * self.total_sq:
            raise ValueError(
                f"total_sq ({self.total_sq:g}) is smaller than total²/n ({self.total**2 / self.n:g}): not the sum of "
                "squares of the same values (for a conversion metric, total ≤ n and total_sq = total)"
            )
        if not self.has_covariate:
            return
        x_sq, x_total, xy_total = self.x_sq, self.x_total, self.xy_total
        if x_sq < 0:  # type: ignore[operator]
            raise ValueError(f"x_sq must be ≥ 0 (a sum of squares), got {x_sq!r}")
        sxx = _centred(x_sq, x_total, x_total, self.n)  # type: ignore[arg-type]
        if sxx < -1e-9 * x_sq:  # type: ignore[operator]
            raise ValueError("x_sq is smaller than x_total²/n: it is not the sum of squares of the same values")
        syy = max(_centred(self.total_sq, self.total, self.total, self.n), 0.0)
        sxy = _centred(xy_total, x_total, self.total, self.n)  # type: ignore[arg-type]
        if sxy * sxy > max(sxx, 0.0) * syy + 1e-9 * x_sq * self.total_sq:  # type: ignore[operator]
            raise ValueError("xy_total is inconsistent with x_sq and total_sq (|cov(X,Y)| exceeds sd(X)·sd(Y))")

    @property
    def has_covariate(self) -> bool:
        return self.x_total is not None

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (ddof = 1); None when n < 2."""
        if self.n < 2:
            return None
        return _variance(self.total_sq, self.total, self.n)


@dataclass(frozen=True)
class Effect:
    kind: str  # "conversion" | "continuous"
    control_mean: float | None
    treatment_mean: float | None
    difference: float | None  # treatment − control
    ci: tuple[float, float] | None  # interval of the difference at 1 − alpha
    p_value: float | None
    relative_lift: float | None  # difference / control_mean
    relative_ci: tuple[float, float] | None
    method: str  # e.g. "two-proportion z-test (pooled SE), Wald CI (unpooled)"
    note: str = ""  # in words, why a field is None ("no users in B yet", "no variance yet")
    statistic: float | None = None  # z (conversion) or t (continuous, CUPED)
    df: float | None = None  # Welch–Satterthwaite degrees of freedom (t-tests only)
    alpha: float = 0.05
    theta: float | None = None  # CUPED only: the covariate coefficient used
    variance_reduction: float | None = None  # CUPED only: share of the difference's variance removed (0–1)


@dataclass(frozen=True)
class SampleRatio:
    chi2: float | None
    p_value: float | None
    expected: list[float]
    mismatch: bool
    note: str = ""


@dataclass(frozen=True)
class AlwaysValid:
    p_value: float | None
    ci: tuple[float, float] | None
    tau2: float  # the mixing variance used (0.0 when it could not be set: see note)
    note: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Fixed-horizon effects


def conversion_effect(control: Sample, treatment: Sample, *, alpha: float = 0.05) -> Effect:
    """Difference in conversion rates, treatment − control.

    p-value: two-sided two-proportion z-test with the pooled standard error
    sqrt(p̄(1 − p̄)(1/n_c + 1/n_t)), p̄ = (x_c + x_t)/(n_c + n_t), no continuity correction.
    Interval: Wald, unpooled standard error sqrt(p_c(1 − p_c)/n_c + p_t(1 − p_t)/n_t).
    """
    _check_alpha(alpha)
    _check_conversion(control, "control")
    _check_conversion(treatment, "treatment")
    base = {"kind": CONVERSION, "method": METHOD_CONVERSION, "alpha": alpha}
    empty = _empty_variants(control, treatment)
    if empty:
        return _effect(control_mean=control.mean, treatment_mean=treatment.mean, note=_no_users_note(empty), **base)
    nc, nt = control.n, treatment.n
    pc, pt = control.total / nc, treatment.total / nt
    difference = pt - pc
    notes: list[str] = []
    z_crit = _z_crit(alpha)

    pooled = (control.total + treatment.total) / (nc + nt)
    se_pooled = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / nc + 1 / nt))
    statistic = p_value = None
    if se_pooled > 0:
        statistic = difference / se_pooled
        p_value = min(1.0, 2 * float(_dist.norm.sf(abs(statistic))))
    else:
        rate = "0 %" if pooled <= 0 else "100 %"
        notes.append(
            f"Both variants converted at {rate}: the standard error is 0, so there is no p-value or interval yet."
        )

    var_c, var_t = pc * (1 - pc) / nc, pt * (1 - pt) / nt
    se = math.sqrt(max(var_c + var_t, 0.0))
    ci = None
    if se > 0:
        ci = (difference - z_crit * se, difference + z_crit * se)
    elif se_pooled > 0:
        notes.append(
            "Every user in each variant did the same (0 % or 100 % conversion): the unpooled standard error is 0, "
            "so there is no interval yet."
        )
    lift, lift_ci, lift_note = _relative(pc, pt, var_c, var_t, z_crit, conversion=True)
    if lift_note:
        notes.append(lift_note)
    return _effect(
        control_mean=pc,
        treatment_mean=pt,
        difference=difference,
        ci=ci,
        p_value=p_value,
        relative_lift=lift,
        relative_ci=lift_ci,
        statistic=statistic,
        note=" ".join(notes),
        **base,
    )


def continuous_effect(control: Sample, treatment: Sample, *, alpha: float = 0.05) -> Effect:
    """Difference in means, treatment − control: Welch's t-test and Welch t interval (Welch–Satterthwaite df)."""
    _check_alpha(alpha)
    return _welch_effect(_moments(control), _moments(treatment), alpha=alpha, kind=CONTINUOUS, method=METHOD_CONTINUOUS)


def cuped_effect(control: Sample, treatment: Sample, *, kind: str, alpha: float = 0.05) -> Effect:
    """CUPED: the effect on Y_adj = Y − θ(X − x̄), X the same metric (or any covariate) before the experiment.

    θ = cov(X, Y) / var(X) computed over both variants together (the OLS slope of Y on X over all users; the
    treatment cannot have changed X, so θ is the same estimate in both), x̄ the mean of X over all users. From
    the sums only: per variant, mean_adj = ȳ − θ(x̄_v − x̄) and var_adj = var(Y) + θ²var(X) − 2θ·cov(X, Y) (sample
    moments, ddof = 1). The adjusted means are compared with Welch's t-test and interval — also for a
    conversion metric, since the adjusted values are no longer 0/1 (with the sample sizes where CUPED matters
    the t and normal quantiles agree). `variance_reduction` is the share of the difference's variance removed
    (about ρ², ρ the correlation of X and Y).

    Without a covariate in both variants, or when X does not vary, this is the plain conversion/continuous
    effect, with a note saying so.
    """
    _check_kind(kind)
    _check_alpha(alpha)
    if kind == CONVERSION:
        _check_conversion(control, "control")
        _check_conversion(treatment, "treatment")
    plain = conversion_effect if kind == CONVERSION else continuous_effect

    def unadjusted(why: str) -> Effect:
        effect = plain(control, treatment, alpha=alpha)
        return replace(effect, note=_join(effect.note, why))

    if not (control.has_covariate and treatment.has_covariate):
        return unadjusted("No pre-experiment covariate for both variants: the effect is not CUPED-adjusted.")
    if _empty_variants(control, treatment):
        return plain(control, treatment, alpha=alpha)

    samples = (control, treatment)
    big_n = control.n + treatment.n
    sum_x = sum(s.x_total for s in samples)  # type: ignore[misc]
    sum_y = sum(_sum_y(s, kind) for s in samples)
    sxx = _centred(sum(s.x_sq for s in samples), sum_x, sum_x, big_n)  # type: ignore[misc]
    sxy = _centred(sum(s.xy_total for s in samples), sum_x, sum_y, big_n)  # type: ignore[misc]
    if sxx <= _ROUNDING * sum(s.x_sq for s in samples):  # type: ignore[misc]
        return unadjusted("The pre-experiment covariate does not vary yet: the effect is not CUPED-adjusted.")
    theta = sxy / sxx
    x_bar = sum_x / big_n

    adjusted = []
    for s in samples:
        mean_y, mean_x = _sum_y(s, kind) / s.n, s.x_total / s.n  # type: ignore[operator]
        variance = None
        if s.n >= 2:
            var_y = _variance(_sum_y_sq(s, kind), _sum_y(s, kind), s.n)
            var_x = _variance(s.x_sq, s.x_total, s.n)  # type: ignore[arg-type]
            cov = _centred(s.xy_total, s.x_total, _sum_y(s, kind), s.n) / (s.n - 1)  # type: ignore[arg-type]
            variance = max(var_y + theta * theta * var_x - 2 * theta * cov, 0.0)
            if variance <= _ROUNDING * max(var_y, theta * theta * var_x):
                variance = 0.0
        adjusted.append(_Moments(s.n, mean_y - theta * (mean_x - x_bar), variance))
    effect = _welch_effect(adjusted[0], adjusted[1], alpha=alpha, kind=kind, method=METHOD_CUPED)

    reduction = None
    raw = [_plain_variance(s, kind) for s in samples]
    if all(v is not None for v in raw) and all(m.variance is not None for m in adjusted):
        before = raw[0] / control.n + raw[1] / treatment.n  # type: ignore[operator]
        after = adjusted[0].variance / control.n + adjusted[1].variance / treatment.n  # type: ignore[operator]
        if before > 0:
            reduction = min(max(1 - after / before, 0.0), 1.0) if math.isfinite(after / before) else None
    return _sanitised(replace(effect, theta=theta, variance_reduction=reduction))


# ---------------------------------------------------------------------------------------------------------------
# Sample ratio mismatch


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float], *, threshold: float = SRM_THRESHOLD
) -> SampleRatio:
    """Chi-square goodness of fit of the exposures per variant against the planned allocation (weights, any scale).

    `mismatch` when p < threshold (0.001 by default: SRM checks run at every look, so a strict threshold keeps
    false alarms rare, and a real assignment bug yields far smaller p-values). Variants planned at weight 0 are
    left out of the test, unless users reached them — then it is a mismatch outright (p = 0).
    """
    if not (_is_number(threshold) and 0 < threshold < 1):
        raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {threshold!r}")
    if len(observed) != len(weights):
        raise ValueError(f"observed and weights must have the same length ({len(observed)} vs {len(weights)})")
    if len(observed) < 2:
        raise ValueError("observed: at least two variants are needed for a sample-ratio check")
    counts = []
    for value in observed:
        count = _as_float(value, "observed")
        if count < 0 or count != int(count):
            raise ValueError(f"observed must be whole numbers ≥ 0, got {value!r}")
        counts.append(count)
    planned = [_as_float(w, "weights") for w in weights]
    if any(w < 0 for w in planned):
        raise ValueError(f"weights must be ≥ 0, got {list(weights)!r}")
    weight_sum = sum(planned)
    if weight_sum <= 0:
        raise ValueError("weights must sum to more than 0")
    total = sum(counts)
    expected = [total * w / weight_sum for w in planned]
    if total == 0:
        return SampleRatio(None, None, expected, False, "No exposures yet.")
    unplanned = [i for i, (c, w) in enumerate(zip(counts, planned, strict=True)) if w == 0 and c > 0]
    if unplanned:
        which = ", ".join(f"variant {i + 1}" for i in unplanned)
        return SampleRatio(
            None, 0.0, expected, True, f"Users reached {which}, planned to get none: the assignment is broken."
        )
    tested = [(c, e) for c, e in zip(counts, expected, strict=True) if e > 0]
    if len(tested) < 2:
        return SampleRatio(None, None, expected, False, "Only one variant is planned to get users: nothing to test.")
    chi2 = sum((c - e) ** 2 / e for c, e in tested)
    p_value = float(_dist.chi2.sf(chi2, len(tested) - 1))
    note = ""
    if min(e for _, e in tested) < 5:
        note = "Fewer than 5 users expected in a variant: the chi-square approximation is rough at this size."
    return SampleRatio(chi2, p_value, expected, p_value < threshold, note)


# ---------------------------------------------------------------------------------------------------------------
# Peeking-safe (always-valid) results


def always_valid(
    control: Sample,
    treatment: Sample,
    *,
    kind: str,
    tau2: float | None = None,
    alpha: float = 0.05,
    mde: float | None = None,
) -> AlwaysValid:
    """Always-valid p-value and interval of treatment − control (mSPRT, normal mixture; Johari et al. 2017).

    With θ̂ = mean_t − mean_c and V = s²_c/n_c + s²_t/n_t (s² = p(1 − p) for a conversion metric, the sample
    variance for a continuous one):

        Λ = sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²))),   p = min(1, 1/Λ)
        CI = θ̂ ± sqrt( V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)) )

    Valid at every look, however often one looks: stop as soon as p < α. Show the running minimum of the
    p-values over the looks (`running_minimum`).

    τ² (the mixing variance: the mixture is most sensitive to effects of about τ): `tau2` if given; else `mde`²
    if the experiment's minimum detectable effect (absolute, in the metric's units) is given; else the default
    (0.1·σ)², σ² the per-user variance pooled over both variants (p̄(1 − p̄) for conversions) — a mixture centred
    on effects of a tenth of a standard deviation, the size product experiments are usually powered for. The
    sensitivity to τ² is mild (logarithmic); pick it before the experiment, not after looking.
    """
    _check_kind(kind)
    _check_alpha(alpha)
    if tau2 is not None and not (_is_number(tau2) and math.isfinite(tau2) and tau2 > 0):
        raise ValueError(f"tau2 must be a number > 0, got {tau2!r}")
    if mde is not None and not (_is_number(mde) and math.isfinite(mde) and mde != 0):
        raise ValueError(f"mde must be a non-zero number, got {mde!r}")
    if kind == CONVERSION:
        _check_conversion(control, "control")
        _check_conversion(treatment, "treatment")
    empty = _empty_variants(control, treatment)
    if empty:
        return AlwaysValid(None, None, float(tau2 or (mde * mde if mde else 0.0)), _no_users_note(empty))
    mc, mt = _moments_of(control, kind), _moments_of(treatment, kind)
    if mc.variance is None or mt.variance is None:
        short = [name for name, m in (("control", mc), ("treatment", mt)) if m.variance is None]
        return AlwaysValid(
            None,
            None,
            float(tau2 or (mde * mde if mde else 0.0)),
            f"Only one user in {' and '.join(short)}: no variance yet.",
        )
    if tau2 is None:
        if mde is not None:
            tau2 = mde * mde
        else:
            pooled = _pooled_variance(control, treatment, kind)
            tau2 = DEFAULT_TAU_STANDARDIZED**2 * pooled
    variance = mc.variance / mc.n + mt.variance / mt.n
    if variance <= 0 or tau2 <= 0:
        return AlwaysValid(
            None, None, float(tau2), "No variance in either variant yet: the always-valid test is undefined."
        )
    theta = mt.mean - mc.mean
    log_ratio = math.log((variance + tau2) / variance)
    log_lambda = -0.5 * log_ratio + theta * theta * tau2 / (2 * variance * (variance + tau2))
    p_value = 1.0 if log_lambda <= 0 else math.exp(-log_lambda)
    half = math.sqrt(variance * (variance + tau2) / tau2 * (2 * math.log(1 / alpha) + log_ratio))
    result = AlwaysValid(p_value, (theta - half, theta + half), float(tau2))
    if not all(math.isfinite(v) for v in (p_value, theta - half, theta + half, tau2)):
        return AlwaysValid(None, None, 0.0, "The figures are too extreme to compute reliably.")
    return result


def running_minimum(p_values: Sequence[float | None]) -> list[float | None]:
    """The always-valid p-value at each look: the smallest p-value so far (None until there is one).

    A look without a result (None) keeps the running minimum of the looks before it.
    """
    result: list[float | None] = []
    current: float | None = None
    for p in p_values:
        if p is not None:
            _check_p(p)
            current = float(p) if current is None else min(current, float(p))
        result.append(current)
    return result


# ---------------------------------------------------------------------------------------------------------------
# Multiple comparisons


def adjust_p_values(p_values: Sequence[float | None], *, method: str = "holm") -> list[float | None]:
    """Adjust p-values for multiple comparisons; None entries pass through and do not count as comparisons.

    method: "holm" (Holm–Bonferroni step-down, controls the family-wise error rate; the default) or "bh"
    (Benjamini–Hochberg step-up, controls the false discovery rate; "fdr_bh" and "benjamini-hochberg" also work).
    """
    key = method.lower().replace("_", "-") if isinstance(method, str) else method
    if key in ("holm", "holm-bonferroni"):
        step_down = True
    elif key in ("bh", "fdr-bh", "benjamini-hochberg"):
        step_down = False
    else:
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
    present = []
    for index, p in enumerate(p_values):
        if p is not None:
            _check_p(p)
            present.append((index, float(p)))
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    ordered = sorted(present, key=lambda item: item[1])
    if step_down:
        running = 0.0
        for rank, (index, p) in enumerate(ordered):
            running = max(running, min(1.0, (m - rank) * p))
            adjusted[index] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):
            index, p = ordered[rank]
            running = min(running, m * p / (rank + 1))
            adjusted[index] = running
    return adjusted


# ---------------------------------------------------------------------------------------------------------------
# Power and sample size


def users_per_variant(
    *,
    baseline_rate: float,
    mde: float,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> int:
    """Users needed in the control variant for a conversion metric (the treatment needs `ratio` × that).

    Normal approximation, two-sided α, with the null variance under the pooled rate and the alternative
    variance unpooled:

        n_c = ( z_{1−α/2} · sqrt(p̄(1 − p̄)(1 + 1/k)) + z_{power} · sqrt(p₁(1 − p₁) + p₂(1 − p₂)/k) )² / Δ²

    p₁ the baseline rate, p₂ = p₁ + Δ (Δ = mde·p₁ if `relative`, else `mde`), k = `ratio` = n_t/n_c,
    p̄ = (p₁ + k·p₂)/(1 + k). Example: baseline 10 %, +1 point absolute, α 0.05, power 0.8 → 14,751.
    """
    _check_alpha(alpha)
    _check_power(power)
    p1 = _as_float(baseline_rate, "baseline_rate")
    if not 0 < p1 < 1:
        raise ValueError(f"baseline_rate must be between 0 and 1 (exclusive), got {baseline_rate!r}")
    delta = _as_float(mde, "mde") * (p1 if relative else 1.0)
    p2 = p1 + delta
    if delta == 0 or not 0 < p2 < 1:
        raise ValueError(f"mde must move the rate to a value strictly between 0 and 1 and not be 0, got {mde!r}")
    k = _as_float(ratio, "ratio")
    if k <= 0:
        raise ValueError(f"ratio must be > 0, got {ratio!r}")
    pooled = (p1 + k * p2) / (1 + k)
    root = _z_crit(alpha) * math.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + float(_dist.norm.ppf(power)) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2) / k
    )
    return _ceil(root * root / (delta * delta))


def users_per_variant_means(*, sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per variant for a continuous metric (equal split): n = 2 (z_{1−α/2} + z_{power})² sd² / mde²."""
    _check_alpha(alpha)
    _check_power(power)
    sd = _as_float(sd, "sd")
    mde = _as_float(mde, "mde")
    if sd <= 0:
        raise ValueError(f"sd must be > 0, got {sd!r}")
    if mde == 0:
        raise ValueError("mde must not be 0")
    root = _z_crit(alpha) + float(_dist.norm.ppf(power))
    return _ceil(2 * root * root * sd * sd / (mde * mde))


def additional_users_needed(
    control: Sample,
    treatment: Sample,
    *,
    kind: str,
    mde: float,
    relative: bool,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int | None:
    """About how many more users each variant needs to detect `mde` (0 when there are enough already).

    The required size comes from `users_per_variant` (conversion; baseline = the control's observed rate) or
    `users_per_variant_means` (continuous; sd = the per-user standard deviation pooled over both variants, a
    relative mde taken relative to the control's observed mean), minus the smaller variant's current size.
    None while the observed data cannot give a baseline: no users, a control rate of 0 % or 100 %, no variance,
    a control mean of 0 for a relative mde, or an mde that would move the rate outside (0, 1).
    """
    _check_kind(kind)
    _check_alpha(alpha)
    _check_power(power)
    mde = _as_float(mde, "mde")
    if mde == 0:
        raise ValueError("mde must not be 0")
    if kind == CONVERSION:
        _check_conversion(control, "control")
        _check_conversion(treatment, "treatment")
    if _empty_variants(control, treatment):
        return None
    current = min(control.n, treatment.n)
    if kind == CONVERSION:
        baseline = control.total / control.n
        delta = mde * baseline if relative else mde
        if not 0 < baseline < 1 or not 0 < baseline + delta < 1 or delta == 0:
            return None
        needed = users_per_variant(baseline_rate=baseline, mde=mde, relative=relative, alpha=alpha, power=power)
    else:
        if control.n < 2 or treatment.n < 2:
            return None
        sd = math.sqrt(_pooled_variance(control, treatment, kind))
        control_mean = control.total / control.n
        absolute = mde * control_mean if relative else mde
        if sd <= 0 or absolute == 0 or not math.isfinite(absolute):
            return None
        needed = users_per_variant_means(sd=sd, mde=absolute, alpha=alpha, power=power)
    return max(needed - current, 0)


# ---------------------------------------------------------------------------------------------------------------
# Internals


@dataclass(frozen=True)
class _Moments:
    n: int
    mean: float | None
    variance: float | None  # per-user variance; None when it cannot be estimated


def _moments(sample: Sample) -> _Moments:
    return _Moments(sample.n, sample.mean, sample.variance)


def _moments_of(sample: Sample, kind: str) -> _Moments:
    """Per-user moments as the z/always-valid tests use them: Bernoulli p(1 − p) for conversions."""
    if kind == CONVERSION:
        if sample.n == 0:
            return _Moments(0, None, None)
        p = sample.total / sample.n
        return _Moments(sample.n, p, p * (1 - p))
    return _moments(sample)


def _plain_variance(sample: Sample, kind: str) -> float | None:
    if sample.n < 2:
        return None
    return _variance(_sum_y_sq(sample, kind), _sum_y(sample, kind), sample.n)


def _pooled_variance(control: Sample, treatment: Sample, kind: str) -> float:
    if kind == CONVERSION:
        rate = (control.total + treatment.total) / (control.n + treatment.n)
        return max(rate * (1 - rate), 0.0)
    dof = control.n + treatment.n - 2
    if dof <= 0:
        return 0.0
    squares = sum(_centred(s.total_sq, s.total, s.total, s.n) for s in (control, treatment) if s.n)
    return max(squares / dof, 0.0)


def _welch_effect(control: _Moments, treatment: _Moments, *, alpha: float, kind: str, method: str) -> Effect:
    base = {"kind": kind, "method": method, "alpha": alpha}
    empty = [name for name, m in (("control", control), ("treatment", treatment)) if m.n == 0]
    if empty:
        return _effect(control_mean=control.mean, treatment_mean=treatment.mean, note=_no_users_note(empty), **base)
    mc, mt = control.mean, treatment.mean
    difference = mt - mc  # type: ignore[operator]
    short = [name for name, m in (("control", control), ("treatment", treatment)) if m.variance is None]
    if short:
        note = f"Only one user in {' and '.join(short)}: no variance yet, so no interval or p-value."
        lift = difference / mc if mc else None  # type: ignore[operator]
        if lift is None:
            note = _join(note, "The control mean is 0: the relative lift is undefined.")
        return _effect(control_mean=mc, treatment_mean=mt, difference=difference, relative_lift=lift, note=note, **base)
    var_c, var_t = control.variance / control.n, treatment.variance / treatment.n  # type: ignore[operator]
    se2 = var_c + var_t
    notes: list[str] = []
    statistic = p_value = ci = df = None
    if se2 > 0:
        se = math.sqrt(se2)
        df = se2 * se2 / (var_c * var_c / (control.n - 1) + var_t * var_t / (treatment.n - 1))
        statistic = difference / se
        p_value = min(1.0, 2 * float(_dist.t.sf(abs(statistic), df)))
        t_crit = float(_dist.t.ppf(1 - alpha / 2, df))
        ci = (difference - t_crit * se, difference + t_crit * se)
    else:
        notes.append("Every value is the same within each variant (zero variance): there is no p-value or interval.")
    lift, lift_ci, lift_note = _relative(mc, mt, var_c, var_t, _z_crit(alpha), conversion=False)  # type: ignore[arg-type]
    if lift_note and (se2 > 0 or lift is None):  # zero variance was said already
        notes.append(lift_note)
    return _effect(
        control_mean=mc,
        treatment_mean=mt,
        difference=difference,
        ci=ci,
        p_value=p_value,
        relative_lift=lift,
        relative_ci=lift_ci,
        statistic=statistic,
        df=df,
        note=" ".join(notes),
        **base,
    )


def _relative(
    mc: float, mt: float, var_c: float, var_t: float, z_crit: float, *, conversion: bool
) -> tuple[float | None, tuple[float, float] | None, str]:
    """Relative lift (m_t − m_c)/m_c with its delta-method interval; var_c, var_t are variances of the means."""
    if mc == 0:
        if conversion:
            return None, None, "No conversions in control yet: the relative lift is undefined."
        return None, None, "The control mean is 0: the relative lift is undefined."
    ratio = mt / mc
    lift = ratio - 1
    variance = (var_t + ratio * ratio * var_c) / (mc * mc)
    if not math.isfinite(variance) or variance <= 0:
        return lift, None, "No variance yet: the relative lift has no interval."
    half = z_crit * math.sqrt(variance)
    return lift, (lift - half, lift + half), ""


def _effect(**values: object) -> Effect:
    defaults = {
        "difference": None,
        "ci": None,
        "p_value": None,
        "relative_lift": None,
        "relative_ci": None,
    }
    return _sanitised(Effect(**{**defaults, **values}))  # type: ignore[arg-type]


def _sanitised(effect: Effect) -> Effect:
    """Last guard: no NaN or inf ever leaves this module; an overflowing figure becomes None with a note."""
    changes: dict[str, object] = {}
    for field in fields(effect):
        value = getattr(effect, field.name)
        bad_float = isinstance(value, float) and not math.isfinite(value)
        if bad_float or (isinstance(value, tuple) and not all(math.isfinite(v) for v in value)):
            changes[field.name] = None
    if not changes:
        return effect
    return replace(effect, **changes, note=_join(effect.note, "Some figures are too extreme to compute reliably."))


def _empty_variants(control: Sample, treatment: Sample) -> list[str]:
    return [name for name, s in (("control", control), ("treatment", treatment)) if s.n == 0]


def _no_users_note(names: list[str]) -> str:
    return f"No users in {' or '.join(names)} yet."


def _join(*notes: str) -> str:
    return " ".join(n for n in notes if n)


def _centred(sum_ab: float, sum_a: float, sum_b: float, n: int) -> float:
    """Σ(a − ā)(b − b̄) from the sums."""
    return sum_ab - sum_a * sum_b / n


def _variance(sum_sq: float, total: float, n: int) -> float:
    squares = _centred(sum_sq, total, total, n)
    if squares <= _ROUNDING * sum_sq:
        return 0.0
    return squares / (n - 1)


def _sum_y(sample: Sample, kind: str) -> float:
    return sample.total


def _sum_y_sq(sample: Sample, kind: str) -> float:
    return sample.total if kind == CONVERSION else sample.total_sq


def _z_crit(alpha: float) -> float:
    return float(_dist.norm.ppf(1 - alpha / 2))


def _ceil(value: float) -> int:
    """Round a sample size up, forgiving floating-point noise just above a whole number."""
    return max(1, math.ceil(value - 1e-9))


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _as_float(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def _check_alpha(alpha: float) -> None:
    if not (_is_number(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")


def _check_power(power: float) -> None:
    if not (_is_number(power) and 0 < power < 1):
        raise ValueError(f"power must be between 0 and 1 (exclusive), got {power!r}")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'conversion' or 'continuous', got {kind!r}")


def _check_p(p: object) -> None:
    if not (_is_number(p) and 0 <= p <= 1):  # type: ignore[operator]
        raise ValueError(f"p_values must be between 0 and 1 (or None), got {p!r}")


def _check_conversion(sample: Sample, name: str) -> None:
    if sample.total < 0 or sample.total != int(sample.total):
        raise ValueError(f"{name}.total must be a whole number of converted users ≥ 0, got {sample.total!r}")
    if sample.total > sample.n:
        raise ValueError(f"{name}.total ({sample.total:g}) exceeds {name}.n ({sample.n}): more conversions than users")
