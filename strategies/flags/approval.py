"""Whether an environment's flag changes wait for approval: its own switch, and a policy that asks for approvals."""

from __future__ import annotations

from releases.approvals.common import policy_of
from releases.catalog.models import Environment
from strategies.flags.models import FlagApprovalSetting


def approval_required(environment: Environment) -> bool:
    setting = FlagApprovalSetting.objects.filter(environment=environment).first()
    if setting is None or not setting.changes_need_approval:
        return False
    policy = policy_of(environment)
    return policy is not None and policy.approvals_required > 0
