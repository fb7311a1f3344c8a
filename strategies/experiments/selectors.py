"""The reads behind the experiment pages: the latest results in words and figures, and the charts."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from strategies.experiments import charts
from strategies.experiments.models import Experiment, ExperimentSnapshot


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _p(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def _rate(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.2f} %"


def _interval(ci: Any, fmt: Any) -> str:
    if not ci:
        return "—"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _signed(value: Any, conversion: bool) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.2f} pp" if conversion else f"{value:+,.3f}"


def present(experiment: Experiment, results: dict[str, Any] | None) -> dict[str, Any] | None:
    """The results as the page shows them: every figure a string ("—" when it cannot be computed)."""
    if not results:
        return None
    metrics = []
    for metric in results.get("metrics", []):
        conversion = metric["kind"] == "conversion"
        variants = [
            {
                "variant": row["variant"],
                "users": f"{row['users']:,}",
                "value": _rate(row["mean"]) if conversion else _num(row["mean"]),
                "sd": "" if conversion else _num(row.get("sd")),
            }
            for row in metric["variants"]
        ]
        comparisons = []
        for c in metric["comparisons"]:
            comparisons.append(
                {
                    **c,
                    "difference_text": _signed(c["difference"], conversion),
                    "ci_text": _interval(c["ci"], lambda v, conv=conversion: _signed(v, conv)),
                    "lift_text": charts.pct(c["relative_lift"]),
                    "relative_ci_text": _interval(c["relative_ci"], charts.pct),
                    "p_text": _p(c["p_value"]),
                    "p_adjusted_text": _p(c.get("p_adjusted")),
                    "av_p_text": _p(c["av_p_value"]),
                    "av_p_adjusted_text": _p(c.get("av_p_adjusted")),
                    "av_ci_text": _interval(c["av_ci"], lambda v, conv=conversion: _signed(v, conv)),
                    "css": "good"
                    if c.get("better")
                    else ("bad" if c.get("harmed") or (c.get("significant") and not c.get("better")) else "neutral"),
                }
            )
        rows = [
            {
                "label": c["variant"],  # the caption says against which control
                "value": c["relative_lift"],
                "ci": c["relative_ci"],
                "css": f"s-{c['css']}",
            }
            for c in comparisons
        ]
        metrics.append(
            {
                **metric,
                "variants_view": variants,
                "comparisons_view": comparisons,
                "chart": charts.intervals(
                    chart_id=f"intervals-{metric['name']}",
                    title=f"Relative lift of {metric['name']} against {experiment.control}, with its interval",
                    rows=rows,
                ),
            }
        )
    srm = results.get("srm") or {}
    return {
        **results,
        "metrics_view": metrics,
        "srm_p_text": _p(srm.get("p_value")),
        "total_users_text": f"{results.get('total_users', 0):,}",
        "planned_users_text": f"{results.get('planned_users', 0):,}",
        "taken_at_dt": datetime.fromisoformat(results["taken_at"]) if results.get("taken_at") else None,
    }


def over_time(experiment: Experiment) -> Any:
    """The primary metric's cumulative relative lift at each analysis (one point per day: the day's last)."""
    by_day: dict[str, dict[str, Any]] = {}
    for snapshot in ExperimentSnapshot.objects.filter(experiment=experiment).order_by("taken_at", "id"):
        by_day[snapshot.taken_at.strftime("%d %b")] = snapshot.results
    if len(by_day) < 2:
        hours: dict[str, dict[str, Any]] = {}
        for snapshot in ExperimentSnapshot.objects.filter(experiment=experiment).order_by("taken_at", "id"):
            hours[snapshot.taken_at.strftime("%d %b %H:%M")] = snapshot.results
        by_day = hours
    labels = list(by_day)
    series = []
    primary = experiment.primary_metric.get("name")
    for index, variant in enumerate(experiment.variants[1:]):
        values, lows, highs = [], [], []
        for results in by_day.values():
            found = None
            for metric in results.get("metrics", []):
                if metric.get("name") == primary:
                    found = next((c for c in metric["comparisons"] if c["variant"] == variant), None)
            values.append(found["relative_lift"] if found else None)
            ci = (found or {}).get("relative_ci")
            lows.append(ci[0] if ci else None)
            highs.append(ci[1] if ci else None)
        series.append({"label": variant, "css": f"s-v{index % 4}", "values": values, "lows": lows, "highs": highs})
    return (
        charts.over_time(
            chart_id="over-time",
            title=f"Cumulative relative lift of {primary} against {experiment.control}, at each analysis",
            labels=labels,
            series=series,
        ),
        series,
        labels,
    )


def latest(experiment: Experiment) -> dict[str, Any] | None:
    snapshot = experiment.snapshots.order_by("-taken_at", "-id").first()
    return snapshot.results if snapshot else None
