"""Periodic jobs of the operations engine (registered in releases/cron.py)."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from releases.audit.services import origin
from strategies.operations.services import auto_promote_due


def auto_promote_job() -> dict[str, Any]:
    """Start the promotions whose approval's auto-promote time has passed."""

    job = get_current_job()
    with origin(via="job", job_id=job.id if job else ""):
        return {"outcomes": auto_promote_due()}
