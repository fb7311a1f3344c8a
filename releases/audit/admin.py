from django.contrib import admin

from releases.audit import models


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
