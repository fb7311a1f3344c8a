"""Periodic jobs of feature flags (registered in releases/cron.py)."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from releases.audit.services import origin
from strategies.flags.schedules import apply_due


def apply_due_flag_schedules() -> dict[str, Any]:
    """Apply the due steps of scheduled flag changes (turn on/off at a time, ramps)."""

    job = get_current_job()
    with origin(via="job", job_id=job.id if job else ""):
        return {"outcomes": apply_due()}
