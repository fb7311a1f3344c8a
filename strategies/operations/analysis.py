"""Canary analysis: is the canary worse than the stable version, from the provider's metrics?

Two tests, as Kayenta does them, each one-sided ("canary worse"), with an allowed margin:

- **Error rate**: a two-proportion z-test of H0 "canary error rate ≤ stable rate + margin" against
  "canary rate > stable rate + margin" (the shifted-null form, so a tiny, harmless difference on
  huge traffic does not fail a release).
- **Latency**: a Mann-Whitney U test of H0 "canary latencies are not stochastically larger than
  stable latencies * (1 + margin)" — rank-based, so the long tail of web latencies does not
  dominate as it would a t-test.

Too little traffic on either side is *inconclusive*, never a pass: a canary that served nobody has
proved nothing. A test that rejects H0 at `alpha` fails the canary; otherwise it passes. The
figures are returned for the step's detail so a person can see why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from scipy import stats

from releases.catalog.providers import MetricsSample

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class AnalysisConfig:
    min_requests: int = 100  # per side, for the error-rate test
    min_latency_samples: int = 30  # per side, for the latency test
    error_margin: float = 0.01  # absolute: the canary may err this much more often (1 percentage point)
    latency_margin: float = 0.10  # relative: the canary may be 10 % slower
    alpha: float = 0.01  # one-sided significance of "canary worse"

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> AnalysisConfig:
        known = {k: parameters[k] for k in cls.__dataclass_fields__ if k in parameters}
        return cls(**known)


@dataclass
class Verdict:
    verdict: str  # pass / fail / inconclusive
    reasons: list[str]
    figures: dict[str, Any] = field(default_factory=dict)

    def as_detail(self) -> dict[str, Any]:
        return asdict(self)


def error_rate_test(canary: MetricsSample, stable: MetricsSample, config: AnalysisConfig) -> dict[str, Any]:
    """One-sided two-proportion z-test with a shifted null (canary - stable <= margin)."""
    n1, n2 = canary.requests, stable.requests
    p1, p2 = canary.error_rate, stable.error_rate
    figures: dict[str, Any] = {
        "canary_requests": n1,
        "stable_requests": n2,
        "canary_error_rate": round(p1, 5),
        "stable_error_rate": round(p2, 5),
        "margin": config.error_margin,
    }
    if n1 < config.min_requests or n2 < config.min_requests:
        figures["outcome"] = INCONCLUSIVE
        return figures
    # Unpooled standard error: under a shifted null the two rates are not assumed equal.
    se = math.sqrt(max(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2, 1e-12))
    z = (p1 - p2 - config.error_margin) / se
    p_value = float(stats.norm.sf(z))
    figures.update(z=round(z, 3), p_value=round(p_value, 6))
    figures["outcome"] = FAIL if p_value < config.alpha else PASS
    return figures


def latency_test(canary: MetricsSample, stable: MetricsSample, config: AnalysisConfig) -> dict[str, Any]:
    """One-sided Mann-Whitney U: are canary latencies larger than stable latencies * (1 + margin)?"""
    a, b = canary.latencies_ms, stable.latencies_ms
    figures: dict[str, Any] = {"canary_samples": len(a), "stable_samples": len(b), "margin": config.latency_margin}
    if len(a) < config.min_latency_samples or len(b) < config.min_latency_samples:
        figures["outcome"] = INCONCLUSIVE
        return figures
    figures["canary_median_ms"] = round(float(_median(a)), 1)
    figures["stable_median_ms"] = round(float(_median(b)), 1)
    allowed = [x * (1 + config.latency_margin) for x in b]
    result = stats.mannwhitneyu(a, allowed, alternative="greater")
    p_value = float(result.pvalue)
    figures.update(u=float(result.statistic), p_value=round(p_value, 6))
    figures["outcome"] = FAIL if p_value < config.alpha else PASS
    return figures


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def analyse(canary: MetricsSample, stable: MetricsSample, config: AnalysisConfig | None = None) -> Verdict:
    """Fail if either test says the canary is worse; inconclusive if either lacked data; else pass."""
    config = config or AnalysisConfig()
    errors = error_rate_test(canary, stable, config)
    latency = latency_test(canary, stable, config)
    reasons = []
    if errors["outcome"] == FAIL:
        reasons.append(
            f"Error rate: canary {errors['canary_error_rate']:.2%} vs stable {errors['stable_error_rate']:.2%} "
            f"(allowed +{config.error_margin:.2%}), p = {errors['p_value']:.4g}."
        )
    if latency["outcome"] == FAIL:
        reasons.append(
            f"Latency: canary median {latency['canary_median_ms']} ms vs stable {latency['stable_median_ms']} ms "
            f"(allowed +{config.latency_margin:.0%}), Mann-Whitney p = {latency['p_value']:.4g}."
        )
    if reasons:
        verdict = FAIL
    elif INCONCLUSIVE in (errors["outcome"], latency["outcome"]):
        verdict = INCONCLUSIVE
        reasons.append(
            f"Too little data: canary {canary.requests} requests / {len(canary.latencies_ms)} latency samples, "
            f"stable {stable.requests} / {len(stable.latencies_ms)}; at least {config.min_requests} requests and "
            f"{config.min_latency_samples} samples are needed on each side."
        )
    else:
        verdict = PASS
        reasons.append("The canary is no worse than stable on error rate and latency.")
    return Verdict(verdict, reasons, {"error_rate": errors, "latency": latency, "config": asdict(config)})
