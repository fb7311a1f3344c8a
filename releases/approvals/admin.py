from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin, ReadOnlyInline
from releases.approvals import models


class FreezeWindowInline(ReadOnlyInline):
    model = models.FreezeWindow
    extra = 0


@admin.register(models.ApprovalPolicy)
class ApprovalPolicyAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "approvals_required", "forbid_self_approval", "expiry_hours", "auto_promote"]
    filter_horizontal = ["approver_groups", "approver_users"]
    # Webhook URLs carry their credential: set them in the portal's policy editor, which never shows them back.
    exclude = ["teams_webhook_url", "slack_webhook_url"]
    inlines = [FreezeWindowInline]


class ApprovalDecisionInline(ReadOnlyInline):
    model = models.ApprovalDecision
    extra = 0
    readonly_fields = ["approver", "verdict", "comment", "decided_at"]
    can_delete = False


class NotificationDeliveryInline(ReadOnlyInline):
    model = models.NotificationDelivery
    extra = 0
    fields = ["kind", "channel", "recipient", "status", "attempts", "last_error", "sent_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(models.ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "approvals_required", "created_at", "expires_at", "waited"]
    list_filter = ["status"]
    # Requests are opened, decided and settled by releases.approvals, never by a form.
    readonly_fields = ["status", "settled_at", "waited", "reminded_at", "auto_promote_after"]
    inlines = [ApprovalDecisionInline, NotificationDeliveryInline]


@admin.register(models.GateResult)
class GateResultAdmin(ReadOnlyAdmin):
    list_display = ["evaluated_at", "release", "environment", "gate", "passed", "detail"]
    list_filter = ["gate", "passed"]


@admin.register(models.FreezeOverride)
class FreezeOverrideAdmin(ReadOnlyAdmin):
    """Read-only: overrides are made in the portal, by an admin, with a reason, and audited."""

    list_display = ["created_at", "release", "environment", "created_by", "expires_at", "reason"]
