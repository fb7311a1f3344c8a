"""What every part of the approval workflow shares: the policy lookup and the short names."""

from __future__ import annotations

from releases.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequestStatus
from releases.catalog.models import Environment

R = ApprovalRequestStatus
Verdict = ApprovalDecision.Verdict


def policy_of(environment: Environment) -> ApprovalPolicy | None:
    try:
        return environment.approval_policy
    except ApprovalPolicy.DoesNotExist:
        return None


def needs_approval(environment: Environment) -> bool:
    policy = policy_of(environment)
    return policy is not None and policy.approvals_required > 0
