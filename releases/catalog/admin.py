from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin, ReadOnlyInline
from releases.catalog import models


class SlotInline(ReadOnlyInline):
    model = models.Slot
    extra = 0
    fields = ["name", "hostname", "is_production", "running_version", "traffic_percent", "health"]


class EnvironmentInline(ReadOnlyInline):
    model = models.Environment
    extra = 0


@admin.register(models.Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "team", "provider", "default_strategy"]
    list_filter = ["team", "provider"]
    search_fields = ["name", "slug", "team"]
    inlines = [SlotInline, EnvironmentInline]


@admin.register(models.Slot)
class SlotAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "running_version", "traffic_percent", "health", "refreshed_at"]
    list_filter = ["application", "health"]


@admin.register(models.Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "stage", "position", "slot"]
    list_filter = ["application", "stage"]


@admin.register(models.Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "created_by", "created_at", "live_at"]
    list_filter = ["application", "status"]
    search_fields = ["version", "commit_sha", "build_id", "notes"]
    # Status changes go through the lifecycle services, never a form.
    readonly_fields = ["status", "status_changed_at", "approved_at", "live_at", "created_at", "created_by"]
    date_hierarchy = "created_at"


@admin.register(models.SimulatorSlot)
class SimulatorSlotAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "version", "healthy", "routing_percent", "updated_at"]
