from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin, ReadOnlyInline
from strategies.operations import models


class OperationStepInline(ReadOnlyInline):
    model = models.OperationStep
    extra = 0
    fields = ["position", "title", "status", "attempts", "progress", "started_at", "finished_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(models.Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "application", "strategy", "status", "created_at", "finished_at"]
    list_filter = ["status", "strategy", "application"]
    readonly_fields = ["status", "created_at", "started_at", "finished_at", "heartbeat_at"]
    inlines = [OperationStepInline]
