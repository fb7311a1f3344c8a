from django.contrib import admin

from portal.api import models
from portal.core.admin import ReadOnlyAdmin


@admin.register(models.ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "owner", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]
