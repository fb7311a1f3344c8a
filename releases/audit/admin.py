from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin
from releases.audit import models


@admin.register(models.AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the trail is only ever appended to by the services."""

    list_display = ["created_at", "actor_label", "action", "object_repr", "application"]
    list_filter = ["action", "application"]
    search_fields = ["reason", "object_repr", "actor_label"]
