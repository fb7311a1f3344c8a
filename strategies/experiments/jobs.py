"""RQ jobs of experiments: the periodic analysis of running experiments (releases/cron.py)."""

from __future__ import annotations

import logging

from strategies.experiments import analysis, services

log = logging.getLogger(__name__)

ANALYSIS_SWEEP_SECONDS = 600  # every 10 minutes


def analyse_experiments() -> int:
    """Move experiments whose flag change was decided on, then analyse every running one."""
    services.sync_pending()
    count = analysis.analyse_running()
    log.info("Analysed %d running experiment(s)", count)
    return count
