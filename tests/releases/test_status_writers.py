"""One writer per state machine: `Release.status` and `Operation.status` change only inside their writer.

Two proofs. At run time the models refuse every other write (portal.core.status_guard): `save()`, the
QuerySet's `update()` and `bulk_update()`, creation in a later status, and the admin shows the status
read-only. In the source, a scan of portal/, releases/ and strategies/ finds no other assignment,
update or creation of these statuses, no raw SQL writing their tables, no audit event of a status edge
recorded by hand, and no use of the fixtures' escape hatch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.core.status_guard import StatusWriteRefused, arranging_state
from releases.catalog.models import Application, Release, ReleaseStatus
from releases.catalog.services import TRANSITIONS as RELEASE_TRANSITIONS
from strategies.operations.models import Operation, OperationStatus
from strategies.operations.transitions import TRANSITIONS as OPERATION_TRANSITIONS
from tests.factories import OperationFactory, ReleaseFactory, production_environment

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["portal", "releases", "strategies"]

# The two writers: (file name, function). Their own writes are the ones allowed.
WRITERS = {("services.py", "_transition"), ("transitions.py", "operation_transition")}
GUARD_MODULE = "status_guard.py"  # defines the escape hatch and the writers' context
MODELS = {"Release", "Operation"}
RELATED_MANAGERS = {"releases", "operations"}  # application.releases, release.operations, ...
WRITE_METHODS = {"update", "create", "get_or_create", "update_or_create", "bulk_create", "bulk_update"}
# Objects whose `.status` is another thing's: (name in the code, what it is). Anything else assigned a
# `.status` in product code is reported, so that a new one is either routed through a writer or named here.
OTHER_STATUSES = {
    "self": "an exception's or a problem's HTTP status",
    "experiment": "strategies.experiments' Experiment (its own state machine)",
    "request": "strategies.flags' FlagChangeRequest (its own state machine)",
    "launch": "strategies.flags' DarkLaunch (its own state machine)",
    "step": "an OperationStep, the engine's record of one step",
    "member": "an ErrorCode member's HTTP status (portal.core.errors)",
}
RAW_SQL_WRITE = re.compile(r"\b(update|insert\s+into)\s+\"?releases_(release|operation)\b", re.IGNORECASE)
EDGE_ACTIONS = set(RELEASE_TRANSITIONS) | set(OPERATION_TRANSITIONS)


# --- the scan ------------------------------------------------------------------------------------
def _chain_names(node: ast.AST) -> set[str]:
    """Names and attribute names along a receiver chain such as `Release.objects.filter(...).update`."""
    names: set[str] = set()
    while True:
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            if isinstance(node, ast.Name):
                names.add(node.id)
            return names


def _on_our_models(receiver: ast.AST) -> bool:
    names = _chain_names(receiver)
    return bool(names & MODELS or names & RELATED_MANAGERS)


def _writes_status(call: ast.Call) -> bool:
    """Whether a write call names the status (or passes fields the scan cannot see)."""
    method = call.func.attr  # type: ignore[attr-defined]
    if method == "bulk_update":
        fields = (
            call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "fields"), None)
        )
        if not isinstance(fields, ast.List | ast.Tuple | ast.Set):
            return True
        return any(isinstance(e, ast.Constant) and e.value == "status" for e in fields.elts)
    if method == "bulk_create":
        return any(isinstance(n, ast.keyword) and n.arg in ("status", None) for n in ast.walk(call))
    for keyword in call.keywords:
        if keyword.arg in ("status", None):  # status=..., or **fields
            return True
        if keyword.arg in ("defaults", "create_defaults"):
            value = keyword.value
            if not isinstance(value, ast.Dict) or any(
                k is None or (isinstance(k, ast.Constant) and k.value == "status") for k in value.keys
            ):
                return True
    return False


def _object_name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else ast.unparse(node)


def _status_targets(target: ast.AST) -> list[ast.Attribute]:
    if isinstance(target, ast.Tuple | ast.List):
        return [t for element in target.elts for t in _status_targets(element)]
    if isinstance(target, ast.Attribute) and target.attr == "status":
        return [target]
    return []


class SideDoors(ast.NodeVisitor):
    """Collects every place in one module that writes these statuses outside their writer."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.functions: list[str] = []
        self.found: list[tuple[int, str]] = []

    def report(self, node: ast.AST, why: str) -> None:
        self.found.append((node.lineno, f"{why}: {ast.unparse(node)[:140]}"))

    @property
    def in_writer(self) -> bool:
        return any((self.filename, function) in WRITERS for function in self.functions)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in (t for each in targets for t in _status_targets(each)):
            if _object_name(target.value) not in OTHER_STATUSES:
                self.report(node, "assigns a status")
        self.generic_visit(node)

    visit_AugAssign = visit_AnnAssign = visit_Assign

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in WRITE_METHODS and _on_our_models(func.value) and _writes_status(node):
                if not self.in_writer:
                    self.report(node, f"{func.attr}() of a release or operation status")
            elif func.attr == "save" and _object_name(func.value) not in OTHER_STATUSES:
                fields = next((k.value for k in node.keywords if k.arg == "update_fields"), None)
                if fields is not None and "'status'" in ast.unparse(fields):
                    self.report(node, "save()s a status")
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in MODELS and any(k.arg == "status" for k in node.keywords):
            self.report(node, "builds a release or operation in a given status")
        if name == "setattr" and len(node.args) > 1 and ast.unparse(node.args[1]) == "'status'":
            self.report(node, "setattr()s a status")
        if name == "audit_record":
            action = next((k.value for k in node.keywords if k.arg == "action"), None)
            if isinstance(action, ast.Constant) and action.value in EDGE_ACTIONS and not self.in_writer:
                self.report(node, "records a status edge's audit event by hand")
            if isinstance(action, ast.JoinedStr) and not self.in_writer:
                start = action.values[0] if action.values else None
                if isinstance(start, ast.Constant) and str(start.value).startswith(("operation.", "release.")):
                    self.report(node, "records an operation or release audit action built at run time")
        if name == "status_writer" and not self.in_writer and self.filename != GUARD_MODULE:
            self.report(node, "enters a status writer's context outside the writer")
        if name == "arranging_state" and self.filename != GUARD_MODULE:
            self.report(node, "uses the fixtures' escape hatch in product code")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and RAW_SQL_WRITE.search(node.value):
            self.report(node, "writes the releases or operations table in raw SQL")


def side_doors(source: str, filename: str) -> list[tuple[int, str]]:
    scanner = SideDoors(filename)
    scanner.visit(ast.parse(source))
    return scanner.found


PRODUCT_FILES = sorted(
    path.relative_to(ROOT)
    for package in PRODUCT
    for path in (ROOT / package).rglob("*.py")
    if "migrations" not in path.parts
)


@pytest.mark.parametrize("path", PRODUCT_FILES, ids=str)
def test_no_module_writes_a_release_or_operation_status_outside_its_writer(path: Path) -> None:
    found = side_doors((ROOT / path).read_text(), path.name)

    assert not found, f"{path} writes a status outside its writer:\n" + "\n".join(
        f"  {path}:{line}: {what}" for line, what in found
    )


def test_the_scan_finds_each_kind_of_side_door() -> None:
    source = """
def sneaky(operation, release, application, cursor):
    Operation.objects.filter(pk=operation.pk).update(status="succeeded")
    Release.objects.filter(pk=release.pk).update(**changes)
    application.releases.update(status="live")
    release.operations.filter(status="running").update(status="failed")
    Operation.objects.bulk_update([operation], ["status", "error"])
    Release.objects.bulk_create([Release(application=application, status="live")])
    Operation.objects.update_or_create(pk=1, defaults={"status": "paused"})
    operation.status = "succeeded"
    operation.status, operation.error = "failed", "boom"
    operation.save(update_fields=["status"])
    setattr(release, "status", "live")
    audit_record(actor=None, action="operation.succeeded", obj=operation)
    audit_record(actor=None, action=f"operation.{target}", obj=operation)
    cursor.execute("UPDATE releases_operation SET status = 'failed'")
    with status_writer(Operation):
        pass
    with arranging_state():
        pass
"""
    found = side_doors(source, "anywhere.py")

    # One finding a line (the bulk_create line two: the write, and the row built in a status), none for `pass`.
    assert [line for line, _what in found] == [3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19]


def test_the_scan_allows_the_writers_and_other_state_machines() -> None:
    writer = """
def operation_transition(operation, action, **fields):
    with status_writer(Operation):
        Operation.objects.filter(pk=operation.pk, status=operation.status).update(**changes)
    audit_record(actor=None, action=action, obj=operation)
"""
    others = """
def elsewhere(experiment, request, step):
    experiment.status = "running"
    request.status = "applied"
    OperationStep.objects.filter(pk=step.pk).update(status="succeeded")
    Operation.objects.filter(pk=1, runner="job").update(runner="")
    Release.objects.create(application=app, version="1.0.0", created_at=now, status_changed_at=now)
    audit_record(actor=None, action="operation.created", obj=operation)
"""
    assert side_doors(writer, "transitions.py") == []
    assert side_doors(others, "anywhere.py") == []
    # The same writer anywhere else is a side door: the exemption is by file and function.
    assert len(side_doors(writer, "engine.py")) == 2


# --- the ORM guard -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_saving_an_operation_with_another_status_is_refused_and_says_what_and_who(release_manager: User) -> None:
    operation = OperationFactory(status=OperationStatus.RUNNING)
    operation.status = OperationStatus.SUCCEEDED

    with pytest.raises(StatusWriteRefused) as refused:
        operation.save()

    assert str(refused.value).startswith(
        f"Refused: save() of operation #{operation.pk} changing its status 'running' to 'succeeded'. "
        "Only strategies.operations.transitions.operation_transition writes the status of operation rows"
    )
    assert Operation.objects.get(pk=operation.pk).status == OperationStatus.RUNNING


@pytest.mark.django_db
def test_saving_a_release_with_another_status_is_refused() -> None:
    release = ReleaseFactory(status=ReleaseStatus.APPROVED)
    release.status = ReleaseStatus.LIVE

    with pytest.raises(
        StatusWriteRefused, match=r"Only releases\.catalog\.services\._transition writes the status of release"
    ):
        release.save(update_fields=["status", "notes"])

    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.APPROVED


@pytest.mark.django_db
def test_saving_other_fields_is_allowed_while_the_status_stays() -> None:
    operation = OperationFactory(status=OperationStatus.RUNNING)
    release = operation.release

    operation.reason = "Checkout errors after the canary"
    operation.save()
    release.notes = "Fixes the basket total"
    release.status = ReleaseStatus.APPROVED  # assigned, but what is stored already
    release.save()
    Operation.objects.filter(pk=operation.pk).update(runner="job-1")

    operation.refresh_from_db()
    release.refresh_from_db()
    assert (operation.status, operation.reason, operation.runner) == (
        OperationStatus.RUNNING,
        "Checkout errors after the canary",
        "job-1",
    )
    assert (release.status, release.notes) == (ReleaseStatus.APPROVED, "Fixes the basket total")


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Release, Operation], ids=lambda m: m.__name__)
def test_a_queryset_update_of_the_status_is_refused(model: type[Release | Operation]) -> None:
    row = ReleaseFactory() if model is Release else OperationFactory()
    initial = row.status

    with pytest.raises(
        StatusWriteRefused,
        match=rf"Refused: QuerySet\.update\(status='failed'\) on {model._meta.verbose_name_plural}\. ",
    ):
        model.objects.filter(pk=row.pk).update(status="failed")
    with pytest.raises(StatusWriteRefused):
        model.objects.filter(pk=row.pk).bulk_update([row], ["status"])

    assert model.objects.get(pk=row.pk).status == initial


@pytest.mark.django_db
def test_a_related_manager_cannot_update_the_status_either() -> None:
    release = ReleaseFactory(status=ReleaseStatus.LIVE)
    application: Application = release.application

    with pytest.raises(StatusWriteRefused):
        application.releases.update(status=ReleaseStatus.SUPERSEDED)
    with pytest.raises(StatusWriteRefused):
        release.operations.update(status=OperationStatus.FAILED)

    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.LIVE


@pytest.mark.django_db
def test_a_row_is_created_only_in_its_initial_status() -> None:
    approved = ReleaseFactory(status=ReleaseStatus.APPROVED)
    fields = {
        "application": approved.application,
        "environment": production_environment(approved.application),
        "release": approved,
        "kind": Operation.Kind.PROMOTE,
        "created_at": approved.created_at,
    }

    with pytest.raises(StatusWriteRefused) as refused:
        Operation.objects.create(**fields, status=OperationStatus.SUCCEEDED, finished_at=approved.created_at)
    with pytest.raises(StatusWriteRefused):
        Operation.objects.bulk_create([Operation(**fields, status=OperationStatus.RUNNING)])
    with pytest.raises(StatusWriteRefused):
        Release.objects.get_or_create(
            application=approved.application,
            version="9.9.9",
            defaults={
                "status": ReleaseStatus.LIVE,
                "created_at": approved.created_at,
                "status_changed_at": approved.created_at,
            },
        )

    assert str(refused.value).startswith(
        "Refused: creating an operation with status 'succeeded'; a new operation starts as 'pending' and its "
        "history is played through the services."
    )
    assert not Operation.objects.exists()
    assert Release.objects.count() == 1
    created = Operation.objects.create(**fields)
    assert created.status == OperationStatus.PENDING


@pytest.mark.django_db
def test_fixtures_arrange_a_starting_state_only_inside_the_hatch() -> None:
    release = ReleaseFactory(status=ReleaseStatus.LIVE)

    with arranging_state():
        Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.SUPERSEDED)
    with pytest.raises(StatusWriteRefused):
        Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.LIVE)

    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.SUPERSEDED


# --- the admin -----------------------------------------------------------------------------------
@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", "correct-horse-battery-staple")


@pytest.mark.django_db
def test_the_admin_shows_an_operation_read_only_and_a_posted_change_changes_nothing(
    client: Client, superuser: User
) -> None:
    operation = OperationFactory(status=OperationStatus.RUNNING, reason="")
    client.force_login(superuser)
    url = f"/admin/operations/operation/{operation.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert 'name="status"' not in page.text
    response = client.post(
        url,
        {
            "application": operation.application_id,
            "release": operation.release_id,
            "environment": operation.environment_id,
            "kind": operation.kind,
            "strategy": "",
            "parameters": "{}",
            "reason": "Noted by an admin",
            "error": "",
            "started_by": "",
            "runner": "",
            "job_id": "",
            "wake_at_0": "",
            "wake_at_1": "",
            "waiting_for": "",
            "status": OperationStatus.SUCCEEDED,
            "steps-TOTAL_FORMS": "0",
            "steps-INITIAL_FORMS": "0",
            "steps-MIN_NUM_FORMS": "0",
            "steps-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 403  # the admin is read-only (portal.core.admin)
    operation.refresh_from_db()
    assert (operation.status, operation.reason) == (OperationStatus.RUNNING, "")


@pytest.mark.django_db
def test_the_admin_shows_a_release_read_only_and_a_posted_change_changes_nothing(
    client: Client, superuser: User
) -> None:
    release = ReleaseFactory(status=ReleaseStatus.APPROVED, version="2.0.0")
    client.force_login(superuser)
    url = f"/admin/releases/release/{release.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert 'name="status"' not in page.text
    response = client.post(
        url,
        {
            "application": release.application_id,
            "version": "2.0.0",
            "build_id": "",
            "commit_sha": "",
            "committed_at_0": "",
            "committed_at_1": "",
            "branch": "",
            "notes": "Checked by an admin",
            "artifact_url": "",
            "deployed_slot": "",
            "status": ReleaseStatus.LIVE,
        },
    )

    assert response.status_code == 403  # the admin is read-only (portal.core.admin)
    release.refresh_from_db()
    assert (release.status, release.notes) == (ReleaseStatus.APPROVED, "")
