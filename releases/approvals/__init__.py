"""Approvals: the rules a release meets between pre-production and the next environment.

Services here follow `releases.catalog.services`: keyword-only arguments, one transaction, the audit event
in that transaction, `DomainError` with a code (`forbidden` or `approval_not_eligible` for a 403)
and a message a person can act on. The release lifecycle itself stays in `releases.catalog.services`; these
functions call its transitions.

The model, in short:

- An environment's `ApprovalPolicy` governs promotion *into* it: how many approvals (N of the
  eligible approvers), who is eligible (groups and/or named people holding the approver role; not
  whoever registered the release or asked for its approval when self-approval is forbidden), how
  long a request stays open, freeze windows, gates, notifications and auto-promote.
- A release deployed to the slot of one environment is headed for the next one (its *target*). When
  the target's policy needs approval, registration opens an `ApprovalRequest` at once; a release
  manager can also open one with a button. A new request for a newer release supersedes the pending
  request of an older one for the same environment (its slot no longer runs the older build).
- The lifecycle has one approval, the one for production: requests for production move the release
  to awaiting approval, approved, rejected, or back to registered when they lapse. Approvals into
  earlier environments are recorded on their request only.
- `promotion_blockers()` is what the operations engine asks before promoting: freeze, approval
  and gates, in words.
"""
