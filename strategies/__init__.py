"""Deployment patterns as code (blue-green, canary, rings, rollback) and feature exposure
(toggles, dark launches, experiments). Filled in by the operations and feature-flag issues; the
strategy names themselves are `releases.models.StrategyKind`.
"""
