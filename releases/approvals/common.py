"""What every part of the approval workflow shares: the error for a refusal and the policy lookup."""

from __future__ import annotations

from portal.core.errors import DomainError
from releases.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequestStatus
from releases.catalog.models import Environment

R = ApprovalRequestStatus
Verdict = ApprovalDecision.Verdict


class ApprovalForbidden(DomainError):
    """The person may not do this at all; views answer 403 with the message."""


def policy_of(environment: Environment) -> ApprovalPolicy | None:
    try:
        return environment.approval_policy
    except ApprovalPolicy.DoesNotExist:
        return None


def needs_approval(environment: Environment) -> bool:
    policy = policy_of(environment)
    return policy is not None and policy.approvals_required > 0
