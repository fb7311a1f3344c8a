from django.contrib import admin

from . import models


class SlotInline(admin.TabularInline):
    model = models.Slot
    extra = 0
    fields = ["name", "hostname", "is_production", "running_version", "traffic_percent", "health"]


class EnvironmentInline(admin.TabularInline):
    model = models.Environment
    extra = 0


@admin.register(models.Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "team", "provider", "default_strategy"]
    list_filter = ["team", "provider"]
    search_fields = ["name", "slug", "team"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [SlotInline, EnvironmentInline]


@admin.register(models.Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ["__str__", "running_version", "traffic_percent", "health", "refreshed_at"]
    list_filter = ["application", "health"]


@admin.register(models.Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "stage", "position", "slot"]
    list_filter = ["application", "stage"]


@admin.register(models.Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "created_by", "created_at", "live_at"]
    list_filter = ["application", "status"]
    search_fields = ["version", "commit_sha", "build_id", "notes"]
    # Status changes go through the lifecycle services, never a form.
    readonly_fields = ["status", "status_changed_at", "approved_at", "live_at", "created_at", "created_by"]
    date_hierarchy = "created_at"


class FreezeWindowInline(admin.TabularInline):
    model = models.FreezeWindow
    extra = 0


@admin.register(models.ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "approvals_required", "forbid_self_approval", "expiry_hours", "auto_promote"]
    filter_horizontal = ["approver_groups", "approver_users"]
    # Webhook URLs carry their credential: set them in the portal's policy editor, which never shows them back.
    exclude = ["teams_webhook_url", "slack_webhook_url"]
    inlines = [FreezeWindowInline]


class ApprovalDecisionInline(admin.TabularInline):
    model = models.ApprovalDecision
    extra = 0
    readonly_fields = ["approver", "verdict", "comment", "decided_at"]
    can_delete = False


class NotificationDeliveryInline(admin.TabularInline):
    model = models.NotificationDelivery
    extra = 0
    fields = ["kind", "channel", "recipient", "status", "attempts", "last_error", "sent_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(models.ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "approvals_required", "created_at", "expires_at", "waited"]
    list_filter = ["status"]
    # Requests are opened, decided and settled by releases.approvals, never by a form.
    readonly_fields = ["status", "settled_at", "waited", "reminded_at", "auto_promote_after"]
    inlines = [ApprovalDecisionInline, NotificationDeliveryInline]


@admin.register(models.GateResult)
class GateResultAdmin(admin.ModelAdmin):
    list_display = ["evaluated_at", "release", "environment", "gate", "passed", "detail"]
    list_filter = ["gate", "passed"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.FreezeOverride)
class FreezeOverrideAdmin(admin.ModelAdmin):
    """Read-only: overrides are made in the portal, by an admin, with a reason, and audited."""

    list_display = ["created_at", "release", "environment", "created_by", "expires_at", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OperationStepInline(admin.TabularInline):
    model = models.OperationStep
    extra = 0
    fields = ["position", "title", "status", "attempts", "progress", "started_at", "finished_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(models.Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "application", "strategy", "status", "created_at", "finished_at"]
    list_filter = ["status", "strategy", "application"]
    readonly_fields = ["status", "created_at", "started_at", "finished_at", "heartbeat_at"]
    inlines = [OperationStepInline]


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is only ever appended to by the services."""

    list_display = ["created_at", "actor_label", "action", "object_repr", "application"]
    list_filter = ["action", "application"]
    search_fields = ["reason", "object_repr", "actor_label"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]


@admin.register(models.SimulatorSlot)
class SimulatorSlotAdmin(admin.ModelAdmin):
    list_display = ["__str__", "version", "healthy", "routing_percent", "updated_at"]
