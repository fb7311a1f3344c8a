"""Canary analysis on generated metrics: clear pass, clear fail (errors, latency), too little data."""

from __future__ import annotations

import random

from releases.catalog.providers import MetricsSample
from strategies.operations.analysis import AnalysisConfig, analyse


def sample(requests: int, error_rate: float, median_ms: float, *, seed: int) -> MetricsSample:
    rng = random.Random(seed)
    errors = sum(rng.random() < error_rate for _ in range(requests))
    latencies = [rng.lognormvariate(0, 0.5) * median_ms for _ in range(min(requests, 500))]
    return MetricsSample(requests=requests, errors=errors, latencies_ms=latencies)


def test_a_canary_like_stable_passes() -> None:
    verdict = analyse(sample(2000, 0.01, 80, seed=1), sample(20000, 0.01, 80, seed=2))

    assert verdict.verdict == "pass", verdict.reasons
    assert verdict.figures["error_rate"]["outcome"] == "pass"
    assert verdict.figures["latency"]["outcome"] == "pass"


def test_a_canary_that_errs_more_fails_with_its_figures() -> None:
    verdict = analyse(sample(2000, 0.08, 80, seed=3), sample(20000, 0.01, 80, seed=4))

    assert verdict.verdict == "fail"
    assert verdict.reasons[0].startswith("Error rate: canary 7.60% vs stable 1.04% (allowed +1.00%)")
    assert verdict.figures["error_rate"]["p_value"] < 0.01


def test_a_slower_canary_fails_on_latency() -> None:
    verdict = analyse(sample(2000, 0.0, 160, seed=5), sample(20000, 0.0, 80, seed=6))

    assert verdict.verdict == "fail"
    assert verdict.figures["latency"]["outcome"] == "fail"
    assert "Mann-Whitney" in verdict.reasons[0]


def test_a_slightly_worse_canary_within_the_margin_passes() -> None:
    config = AnalysisConfig(error_margin=0.02, latency_margin=0.2)

    verdict = analyse(sample(5000, 0.015, 88, seed=7), sample(50000, 0.01, 80, seed=8), config)

    assert verdict.verdict == "pass", verdict.reasons


def test_too_little_data_is_inconclusive_never_a_pass() -> None:
    verdict = analyse(sample(20, 0.0, 80, seed=9), sample(20000, 0.0, 80, seed=10))

    assert verdict.verdict == "inconclusive"
    assert "Too little data: canary 20 requests" in verdict.reasons[0]
    assert "p_value" not in verdict.figures["error_rate"]
