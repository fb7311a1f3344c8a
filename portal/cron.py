"""Periodic jobs, for RQ's cron scheduler: `python manage.py rqcron portal.cron`.

`./dev run` starts the scheduler beside the worker; in production run one such process next to the
workers (more than one would enqueue each job more than once; the jobs are idempotent, so that is
wasteful rather than harmful). Intervals come from settings.
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from releases.approvals.jobs import expire_approval_requests, remind_approvers
from releases.audit.chain import seal_audit_chain_job, verify_audit_chain_job
from strategies.experiments.jobs import ANALYSIS_SWEEP_SECONDS, analyse_experiments
from strategies.flags.jobs import apply_due_flag_schedules
from strategies.operations.engine import recover_operations_job
from strategies.operations.jobs import auto_promote_job
from strategies.operations.reconcile import reconcile_all_job

cron.register(expire_approval_requests, queue_name="default", interval=settings.APPROVAL_EXPIRY_SWEEP_SECONDS)
cron.register(remind_approvers, queue_name="notifications", interval=settings.APPROVAL_REMINDER_SWEEP_SECONDS)
cron.register(recover_operations_job, queue_name="operations", interval=settings.OPERATION_RECOVERY_SWEEP_SECONDS)
cron.register(reconcile_all_job, queue_name="default", interval=settings.DRIFT_CHECK_SECONDS)
cron.register(auto_promote_job, queue_name="operations", interval=settings.AUTO_PROMOTE_SWEEP_SECONDS)
cron.register(apply_due_flag_schedules, queue_name="default", interval=settings.FLAG_SCHEDULE_SWEEP_SECONDS)
cron.register(seal_audit_chain_job, queue_name="default", interval=settings.AUDIT_SEAL_SWEEP_SECONDS)
cron.register(verify_audit_chain_job, queue_name="default", interval=settings.AUDIT_VERIFY_SWEEP_SECONDS)
cron.register(analyse_experiments, queue_name="default", interval=ANALYSIS_SWEEP_SECONDS)
