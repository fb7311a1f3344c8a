"""Create the four role groups with their permissions.

The role definitions are copied here (not imported) so this migration keeps meaning what it meant
when it was written; a later change to the roles is a new migration.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    "releases.view_application",
    "releases.view_slot",
    "releases.view_environment",
    "releases.view_release",
    "releases.view_approvalpolicy",
    "releases.view_freezewindow",
    "releases.view_approvalrequest",
    "releases.view_approvaldecision",
    "releases.view_operation",
    "releases.view_operationstep",
    "releases.view_auditevent",
]
ROLES = {
    "Viewer": VIEW,
    "Approver": [*VIEW, "releases.approve_release"],
    "Release manager": [*VIEW, "releases.promote_release", "releases.rollback_release", "releases.add_release"],
    "Admin": None,  # every permission of the releases app, and user and group management
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; this one needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        if perms is None:
            group.permissions.set(Permission.objects.filter(content_type__app_label__in=["releases", "auth"]))
            continue
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
