"""Analysing an experiment: aggregation in the database, then the statistics, kept as a snapshot.

Two aggregating statements sum the per-user rows per variant in the database (`aggregate_all`):
the exposures give users, Σx and Σx² of the pre-period covariate (x = 0 for a user without one), and
one GROUP BY (variant, metric) over the metric rows joined to their exposures gives Σy, Σy² and Σxy
for every metric at once — y being, per exposed user, 1/0 for a conversion metric (any event of it)
and the sum of its values for a continuous one (0 without events, which adds nothing to the sums).
Users seen in two variants (`conflicted`) are left out and counted. Then `stats`: the effect of
each treatment against control, the always-valid (mSPRT) p-value and interval (shown as a running
minimum / running intersection over the looks), Holm's adjustment over all treatment-by-primary-metric
comparisons (guardrails are reported apart, unadjusted), the sample-ratio check of exposures against
the planned allocation, and the words. Results are plain JSON (no NaN or infinity: what cannot be
computed is None), stored in an `ExperimentSnapshot`.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import connection, transaction

from portal.core import clock
from strategies.experiments import stats
from strategies.experiments.models import Experiment, ExperimentExposure, ExperimentMetricValue, ExperimentSnapshot

Status = Experiment.Status
ANALYSIS_WORK_MEM = "96MB"  # PostgreSQL, for the analysis transaction only (SET LOCAL)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple | list):
        items = [_finite(v) for v in value]
        return None if any(v is None for v in items) else items
    return value


def _exposures(experiment: Experiment) -> tuple[dict[str, int], int, dict[str, tuple[float, float]]]:
    """Users per variant (without the conflicted), the conflicted users, and per variant (Σx, Σx²)."""
    table = ExperimentExposure._meta.db_table
    counts = dict.fromkeys(experiment.variants, 0)
    covariates = dict.fromkeys(experiment.variants, (0.0, 0.0))
    conflicted = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT variant, conflicted, COUNT(*), SUM(COALESCE(covariate, 0.0)), "  # noqa: S608 - table from the model
            f"SUM(COALESCE(covariate, 0.0) * COALESCE(covariate, 0.0)) FROM {table} "
            "WHERE experiment_id = %s GROUP BY variant, conflicted",
            [experiment.pk],
        )
        for variant, is_conflicted, n, x_total, x_sq in cursor.fetchall():
            if is_conflicted:
                conflicted += n
            elif variant in counts:
                counts[variant] += n
                covariates[variant] = (float(x_total or 0), float(x_sq or 0))
    return counts, conflicted, covariates


def exposure_counts(experiment: Experiment) -> tuple[dict[str, int], int]:
    counts, conflicted, _ = _exposures(experiment)
    return counts, conflicted


def aggregate_all(
    experiment: Experiment, metrics: list[dict[str, Any]] | None = None
) -> tuple[dict[str, int], int, dict[str, dict[str, stats.Sample]]]:
    """Every metric's sufficient statistics per variant, in two aggregating statements.

    The exposures give n, Σx and Σx² per variant; one GROUP BY (variant, metric) over the metric rows
    joined to their users' exposures gives Σy, Σy² and Σxy — a user without events of a metric has
    y = 0 and adds nothing to those sums, so no outer join over every exposed user is needed.
    """
    metrics = metrics if metrics is not None else experiment.metrics
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The join hashes every exposed user: room for it in memory (not 32 batches on disk at the
            # default 4 MB), and no JIT compilation, which costs more than it saves on two statements.
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{ANALYSIS_WORK_MEM}'")
                cursor.execute("SET LOCAL jit = off")
        return _aggregate_all(experiment, metrics)


def _aggregate_all(
    experiment: Experiment, metrics: list[dict[str, Any]]
) -> tuple[dict[str, int], int, dict[str, dict[str, stats.Sample]]]:
    counts, conflicted, covariates = _exposures(experiment)
    exposures, values = ExperimentExposure._meta.db_table, ExperimentMetricValue._meta.db_table
    names = [m["name"] for m in metrics]
    sums: dict[tuple[str, str], tuple[float, ...]] = {}
    if names:
        marks = ", ".join(["%s"] * len(names))
        x = "COALESCE(e.covariate, 0.0)"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT e.variant, m.metric, SUM(CASE WHEN m.count > 0 THEN 1 ELSE 0 END), "  # noqa: S608
                f"SUM(CASE WHEN m.count > 0 THEN {x} ELSE 0.0 END), SUM(m.total), SUM(m.total * m.total), "
                f"SUM({x} * m.total) FROM {values} m JOIN {exposures} e "
                "ON e.experiment_id = m.experiment_id AND e.user_key = m.user_key "
                f"WHERE m.experiment_id = %s AND m.metric IN ({marks}) AND NOT e.conflicted "
                "GROUP BY e.variant, m.metric",
                [experiment.pk, *names],
            )
            for variant, metric, converted, x_converted, total, total_sq, xy in cursor.fetchall():
                sums[(variant, metric)] = tuple(float(v or 0) for v in (converted, x_converted, total, total_sq, xy))
    samples: dict[str, dict[str, stats.Sample]] = {}
    for metric in metrics:
        per_variant = {}
        for variant in experiment.variants:
            converted, x_converted, total, total_sq, xy = sums.get((variant, metric["name"]), (0.0,) * 5)
            x_total, x_sq = covariates[variant]
            if metric["kind"] == "conversion":
                y, y_sq, x_y = converted, converted, x_converted
            else:
                y, y_sq, x_y = total, total_sq, xy
            per_variant[variant] = stats.Sample(
                n=counts[variant], total=y, total_sq=y_sq, x_total=x_total, x_sq=x_sq, xy_total=x_y
            )
        samples[metric["name"]] = per_variant
    return counts, conflicted, samples


def aggregate(experiment: Experiment, metric: dict[str, Any]) -> dict[str, stats.Sample]:
    """One metric's sufficient statistics per variant (see `aggregate_all`)."""
    return aggregate_all(experiment, [metric])[2][metric["name"]]


def _degradation(direction: str, relative_lift: float | None) -> float | None:
    """How much worse (as a fraction, > 0 worse) the treatment is, given the desired direction."""
    if relative_lift is None:
        return None
    return -relative_lift if direction == "increase" else relative_lift


def _percent(confidence: float) -> str:
    value = confidence * 100
    return f"{value:.0f}%" if abs(value - round(value)) < 1e-9 else f"{value:.1f}%"


def _previous(experiment: Experiment) -> list[dict[str, Any]]:
    return list(experiment.snapshots.order_by("taken_at", "id").values_list("results", flat=True))


def _history(previous: list[dict[str, Any]], metric: str, variant: str) -> tuple[list[float | None], list[Any]]:
    ps, cis = [], []
    for results in previous:
        for m in results.get("metrics", []):
            if m.get("name") != metric:
                continue
            for c in m.get("comparisons", []):
                if c.get("variant") == variant:
                    ps.append(c.get("av_p_value_raw"))
                    cis.append(c.get("av_ci_raw"))
    return ps, cis


def _intersect(cis: list[Any]) -> list[float] | None:
    current: list[float] | None = None
    for ci in cis:
        if not ci:
            continue
        if current is None:
            current = list(ci)
        else:
            low, high = max(current[0], ci[0]), min(current[1], ci[1])
            current = [low, high] if low <= high else list(ci)
    return current


def analyse(experiment: Experiment, *, save: bool = True) -> dict[str, Any]:
    """Compute the experiment's results now (and keep them as a snapshot unless `save` is False)."""
    experiment = Experiment.objects.select_related("environment__application", "flag").get(pk=experiment.pk)
    alpha = experiment.alpha
    control = experiment.control
    treatments = experiment.variants[1:]
    counts, conflicted, all_samples = aggregate_all(experiment)
    total_users = sum(counts.values())
    srm: dict[str, Any] = {"p_value": None, "chi2": None, "mismatch": False, "note": "No users yet."}
    if total_users:
        ratio = stats.sample_ratio_mismatch(
            [counts[v] for v in experiment.variants], [float(w) for _, w in experiment.allocation]
        )
        srm = {
            "p_value": _finite(ratio.p_value),
            "chi2": _finite(ratio.chi2),
            "mismatch": bool(ratio.mismatch),
            "note": ratio.note,
            "expected": _finite([float(e) for e in ratio.expected]),
        }
    previous = _previous(experiment)
    horizon = bool(treatments) and min(counts.values()) >= experiment.planned_users > 0
    metrics = []
    for metric in experiment.metrics:
        samples = all_samples[metric["name"]]
        kind = metric["kind"]
        rows = []
        for variant in experiment.variants:
            sample = samples[variant]
            mean = sample.total / sample.n if sample.n else None
            variance = None
            if sample.n > 1:
                variance = max((sample.total_sq - sample.total * sample.total / sample.n) / (sample.n - 1), 0.0)
            rows.append(
                {
                    "variant": variant,
                    "users": sample.n,
                    "total": _finite(sample.total),
                    "mean": _finite(mean),
                    "sd": _finite(math.sqrt(variance)) if variance is not None else None,
                }
            )
        comparisons = []
        for variant in treatments:
            c, t = samples[control], samples[variant]
            if experiment.cuped:
                effect = stats.cuped_effect(c, t, kind=kind, alpha=alpha)
            elif kind == "conversion":
                effect = stats.conversion_effect(c, t, alpha=alpha)
            else:
                effect = stats.continuous_effect(c, t, alpha=alpha)
            valid = stats.always_valid(c, t, kind=kind, tau2=experiment.tau2, alpha=alpha)
            past_ps, past_cis = _history(previous, metric["name"], variant)
            av_p = stats.running_minimum([*past_ps, valid.p_value])[-1]
            av_ci = _intersect([*past_cis, _finite(valid.ci)])
            more = None
            if metric["role"] == "primary":
                try:
                    more = stats.additional_users_needed(
                        c,
                        t,
                        kind=kind,
                        mde=experiment.mde,
                        relative=experiment.mde_relative,
                        alpha=alpha,
                        power=experiment.power,
                    )
                except ValueError:
                    more = None
                if more is not None and experiment.planned_users:
                    more = max(more, experiment.planned_users - min(c.n, t.n), 0)
            comparisons.append(
                {
                    "variant": variant,
                    "difference": _finite(effect.difference),
                    "ci": _finite(effect.ci),
                    "relative_lift": _finite(effect.relative_lift),
                    "relative_ci": _finite(effect.relative_ci),
                    "p_value": _finite(effect.p_value),
                    "av_p_value_raw": _finite(valid.p_value),
                    "av_ci_raw": _finite(valid.ci),
                    "av_p_value": _finite(av_p),
                    "av_ci": av_ci,
                    "tau2": _finite(valid.tau2),
                    "additional_users": more,
                    "method": effect.method,
                    "note": " ".join(dict.fromkeys(n for n in (effect.note, valid.note) if n)),
                    "variance_reduction": _finite(getattr(effect, "variance_reduction", None)),
                }
            )
        metrics.append({**metric, "variants": rows, "comparisons": comparisons})
    _adjust_and_judge(experiment, metrics, horizon=horizon, srm=srm)
    confidence = _percent(1 - alpha)
    results = {
        "taken_at": clock.now().isoformat(),
        "alpha": alpha,
        "confidence": confidence,
        "users": counts,
        "total_users": total_users,
        "conflicted_users": conflicted,
        "planned_users": experiment.planned_users,
        "horizon_reached": horizon,
        "srm": srm,
        "metrics": metrics,
        "correction": "Holm over every treatment-by-primary-metric comparison; guardrails unadjusted",
    }
    results.update(_verdict(experiment, metrics, srm=srm, confidence=confidence, total_users=total_users))
    if save:
        with transaction.atomic():
            ExperimentSnapshot.objects.create(experiment=experiment, taken_at=clock.now(), results=results)
    return results


def _adjust_and_judge(experiment: Experiment, metrics: list[dict[str, Any]], *, horizon: bool, srm: dict) -> None:
    alpha = experiment.alpha
    confidence = _percent(1 - alpha)
    primary = [c for m in metrics if m["role"] == "primary" for c in m["comparisons"]]
    fixed = stats.adjust_p_values([c["p_value"] for c in primary], method="holm")
    valid = stats.adjust_p_values([c["av_p_value"] for c in primary], method="holm")
    for comparison, p_fixed, p_valid in zip(primary, fixed, valid, strict=True):
        comparison["p_adjusted"] = _finite(p_fixed)
        comparison["av_p_adjusted"] = _finite(p_valid)
    for metric in metrics:
        direction = metric["direction"]
        for c in metric["comparisons"]:
            name = c["variant"]
            diff = c["difference"]
            better = diff is not None and (diff > 0 if direction == "increase" else diff < 0)
            worse = diff is not None and diff != 0 and not better
            if metric["role"] == "primary":
                fixed_sig = horizon and c["p_adjusted"] is not None and c["p_adjusted"] < alpha
                valid_sig = c["av_p_adjusted"] is not None and c["av_p_adjusted"] < alpha
                significant = fixed_sig or valid_sig
                c["significant"], c["better"] = significant, significant and better
                c["fixed_horizon"] = horizon
                if srm["mismatch"]:
                    words = "Sample ratio mismatch — do not trust this comparison."
                elif significant and better:
                    words = f"{name} is better with {confidence} confidence."
                elif significant and worse:
                    words = f"{name} is worse with {confidence} confidence."
                elif c.get("additional_users"):
                    words = f"Not enough data yet: about {c['additional_users']:,} more users per variant needed."
                elif horizon:
                    words = (
                        f"No detectable difference: the planned sample is reached and {name} does not differ "
                        "by the minimum detectable effect."
                    )
                else:
                    words = "Not enough data yet."
            else:
                degradation = _degradation(direction, c["relative_lift"])
                tolerated = (metric.get("tolerance") or 0) / 100
                harmed = (
                    worse
                    and c["p_value"] is not None
                    and c["p_value"] < alpha
                    and degradation is not None
                    and degradation > tolerated
                )
                c["harmed"] = harmed
                if harmed:
                    words = (
                        f"Guardrail breached: {name} is worse by {degradation * 100:.1f} % "
                        f"(tolerated {metric.get('tolerance') or 0:g} %)."
                    )
                elif worse and c["p_value"] is not None and c["p_value"] < alpha:
                    words = f"{name} is worse, within the tolerated {metric.get('tolerance') or 0:g} %."
                else:
                    words = "No harm detected."
            c["words"] = words


def _verdict(
    experiment: Experiment, metrics: list[dict[str, Any]], *, srm: dict, confidence: str, total_users: int
) -> dict[str, Any]:
    if not total_users:
        return {"winner": None, "level": "wait", "summary": "No exposures yet: nothing to analyse."}
    if srm["mismatch"]:
        return {
            "winner": None,
            "level": "srm",
            "summary": "Sample ratio mismatch — do not trust these results. The users per variant differ from the "
            "planned allocation more than chance allows (p < 0.001): assignment or event reporting is broken.",
        }
    harmed = {c["variant"] for m in metrics if m["role"] == "guardrail" for c in m["comparisons"] if c.get("harmed")}
    primary = [c for m in metrics if m["role"] == "primary" for c in m["comparisons"]]
    winners = [c for c in primary if c.get("better") and c["variant"] not in harmed]
    if winners:
        best = max(winners, key=lambda c: abs(c["difference"] or 0))
        return {"winner": best["variant"], "level": "winner", "summary": best["words"]}
    blocked = [c for c in primary if c.get("better") and c["variant"] in harmed]
    if blocked:
        names = ", ".join(c["variant"] for c in blocked)
        return {
            "winner": None,
            "level": "guardrail",
            "summary": f"{names} wins on the primary metric but breaches a guardrail: no winner.",
        }
    if primary and all(c.get("significant") and not c.get("better") for c in primary):
        return {
            "winner": experiment.control,
            "level": "control",
            "summary": f"{experiment.control} (control) is better with {confidence} confidence.",
        }
    more = [c["additional_users"] for c in primary if c.get("additional_users")]
    if more:
        return {
            "winner": None,
            "level": "wait",
            "summary": f"Not enough data yet: about {max(more):,} more users per variant needed.",
        }
    if primary and all(c.get("fixed_horizon") for c in primary):
        return {
            "winner": None,
            "level": "none",
            "summary": "No detectable difference: the planned sample size is reached and no variant differs by "
            "the minimum detectable effect.",
        }
    return {"winner": None, "level": "wait", "summary": "Not enough data yet."}


def analyse_running() -> int:
    """The periodic job: analyse every running experiment; returns how many."""
    count = 0
    for experiment in Experiment.objects.filter(status__in=(Status.RUNNING, Status.SHIPPING)):
        analyse(experiment)
        count += 1
    return count
