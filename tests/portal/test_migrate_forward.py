"""A demo database made before the models moved to their own apps migrates forward and serves the demo unchanged.

The database is made the way a user made it: the code of the last commit before the move (`PREMOVE`, taken
from this repository's history with `git archive`) migrates a fresh database and seeds the demo. Today's code
then migrates it and must find every row, every audit event (the chain still verifies), the content types under
their new app labels, and the demo's pages answering. It runs on the suite's database engine: a scratch
PostgreSQL database beside the test database, or a scratch SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PREMOVE = "a6aa5de"  # "Approvals inbox count: ..." — main before the architecture issue
# Tables whose rows must all be there after the move, one per moved concept and the catalogue.
TABLES = [
    "releases_application",
    "releases_release",
    "releases_slot",
    "releases_approvalrequest",
    "releases_approvaldecision",
    "releases_operation",
    "releases_operationstep",
    "releases_ring",
    "releases_ring_targets",
    "releases_approvalpolicy_approver_groups",
    "releases_auditevent",
    "releases_apitoken",
    "releases_webhooksubscription",
    "strategies_flag",
    "strategies_darklaunch",
    "strategies_experiment",
    "strategies_experimentexposure",
]

# Run with the code before the move: rows in the moved tables the demo leaves empty (a token, a webhook).
OLD_EXTRAS = (
    "from django.contrib.auth import get_user_model; from django.db import transaction\n"
    "from releases.api.tokens import token_create\n"
    "from releases.models import Application\n"
    "from releases.webhooks.services import subscription_create\n"
    "admin = get_user_model().objects.get(username='admin')\n"
    "token_create(actor=admin, owner=admin, name='before the move', scopes=['read'])\n"
    "subscription_create(application=Application.objects.get(slug='checkout-web'),\n"
    "    url='https://hooks.example.com/slipway', events=['release.registered'], actor=admin)\n"
)

# Rows per table, read with the code of either side (table names are fixed by the list above, not input).
COUNT_ROWS = (
    "import json; from django.db import connection; c = connection.cursor(); "
    "print(json.dumps({{t: (c.execute('SELECT COUNT(*) FROM ' + t), c.fetchone()[0])[1] for t in {tables!r}}}))"
)

# Run inside the migrated database with today's code: counts through today's models, and the pages.
CHECK = r"""
import json
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.test.utils import setup_test_environment
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release
from strategies.experiments.models import Experiment
from strategies.flags.models import Flag
from strategies.operations.models import Operation, Ring

setup_test_environment()
client = Client()
client.force_login(get_user_model().objects.get(username="admin"))
release = Release.objects.filter(operations__isnull=False).order_by("-id").first()
operation = Operation.objects.order_by("-id").first()
flag = Flag.objects.order_by("id").first()
experiment = Experiment.objects.order_by("id").first()
slug = flag.environment.application.slug
pages = ["/", "/releases/", "/audit/", "/approvals/", "/flags/", "/metrics/", "/experiments/",
         release.get_absolute_url(), f"/operations/{operation.pk}/",
         Application.objects.get(slug="checkout-web").get_absolute_url(), "/apps/checkout-web/rings/",
         f"/apps/{slug}/flags/", f"/apps/{slug}/flags/{flag.pk}/",
         f"/apps/{experiment.environment.application.slug}/experiments/{experiment.pk}/"]
with connection.cursor() as cursor:
    counts = {}
    for table in TABLES:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        counts[table] = cursor.fetchone()[0]
print(json.dumps({
    "counts": counts,
    "models": {"operations": Operation.objects.count(), "rings": Ring.objects.count(), "flags": Flag.objects.count(),
               "audit": AuditEvent.objects.count(), "experiments": Experiment.objects.count()},
    "content_types": sorted({
        ct.app_label
        for ct in ContentType.objects.filter(
            model__in=["operation", "flag", "auditevent", "approvalrequest", "apitoken", "experiment"]
        )
    }),
    "pages": {page: client.get(page).status_code for page in pages},
    "operation_trail": [
        e.action for e in AuditEvent.objects.filter(object_type="releases.operation", object_id=str(operation.pk))
    ][:3],
}))
"""


@pytest.fixture
def scratch_database_url() -> Iterator[str]:
    """A fresh, empty database on the suite's engine, dropped afterwards."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine.endswith("sqlite3"):
        path = Path(settings.DATABASES["default"]["TEST"]["NAME"]).with_name(f"premove-{uuid.uuid4().hex[:8]}.sqlite3")
        yield f"sqlite:///{path}"
        path.unlink(missing_ok=True)
        return
    url = urlsplit(os.environ["DATABASE_URL"])
    name = f"slipway_premove_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(url._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _premove_tree(directory: Path) -> Path:
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PREMOVE}^{{commit}}"], check=False)
    if found.returncode != 0:
        pytest.skip(f"commit {PREMOVE} is not in this clone's history (a shallow clone?)")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREMOVE], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def _manage(tree: Path, database_url: str, *args: str, stdin: str | None = None) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "1",
        "PYTHONPATH": str(tree),
    }
    env.pop("SLIPWAY_SCREENSHOTS", None)
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=tree,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.django_db
def test_a_demo_database_from_before_the_move_migrates_forward_and_serves_the_demo(
    tmp_path: Path, scratch_database_url: str
) -> None:
    old = _premove_tree(tmp_path / "premove")
    _manage(old, scratch_database_url, "migrate", "--no-input", "-v0")
    _manage(old, scratch_database_url, "seed_demo")
    _manage(old, scratch_database_url, "shell", "-c", OLD_EXTRAS)
    before = json.loads(
        _manage(
            old,
            scratch_database_url,
            "shell",
            "-c",
            COUNT_ROWS.format(tables=TABLES),
        )
        .strip()
        .splitlines()[-1]
    )

    migrated = _manage(ROOT, scratch_database_url, "migrate", "--no-input")
    assert "releases.0015_models_moved_to_their_apps... OK" in migrated
    assert "flags.0001_initial... OK" in migrated
    _manage(ROOT, scratch_database_url, "audit_verify")
    # Nothing left for makemigrations to do on the migrated database either.
    _manage(ROOT, scratch_database_url, "makemigrations", "--check", "--dry-run")
    after = json.loads(
        _manage(ROOT, scratch_database_url, "shell", "-c", f"TABLES = {TABLES!r}\n" + CHECK).strip().splitlines()[-1]
    )

    assert after["counts"] == before
    assert [table for table, count in before.items() if count == 0] == [], before
    assert after["models"]["operations"] == before["releases_operation"]
    assert after["models"]["rings"] == before["releases_ring"]
    assert after["models"]["flags"] == before["strategies_flag"]
    assert after["models"]["audit"] == before["releases_auditevent"]
    assert after["content_types"] == ["api", "approvals", "audit", "experiments", "flags", "operations"]
    assert {page: status for page, status in after["pages"].items() if status != 200} == {}
    # An operation's trail written before the move is still found under its one audit name.
    assert after["operation_trail"], "the operation's audit events were not found by its audit type"
