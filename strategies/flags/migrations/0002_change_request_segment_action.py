"""A change request may change a segment its flag uses (governance: segments feed approval-gated flags)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("flags", "0001_initial"),
        ("strategies", "0005_models_moved_to_their_apps"),  # the table was created there (it keeps its name)
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="flagchangerequest",
            name="flag_change_action_valid",
        ),
        migrations.AlterField(
            model_name="flagchangerequest",
            name="action",
            field=models.CharField(
                choices=[
                    ("edit", "Edit the flag"),
                    ("launch_start", "Start a dark launch"),
                    ("launch_widen", "Widen a dark launch"),
                    ("launch_rollout", "Roll a dark launch out"),
                    ("schedule", "Schedule a change"),
                    ("segment", "Change a segment the flag uses"),
                ],
                default="edit",
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="flagchangerequest",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("action__in", ["edit", "launch_start", "launch_widen", "launch_rollout", "schedule", "segment"])
                ),
                name="flag_change_action_valid",
            ),
        ),
    ]
