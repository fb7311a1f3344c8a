"""`manage.py seed_demo`: a believable organisation, played through the product, and running it again
changes nothing; and what the other parts read of it (flags over OFREP, the experiments' pages).

The demo is seeded once for the module (about 25 s), inside a transaction that is rolled back after its last
test; each test reads it inside its own savepoint, so what one test does is not seen by the next.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import Client, RequestFactory
from django.urls import reverse

from portal.demo.flags import DEMO_FLAG_API_KEY
from portal.demo.organisation import DEMO_USERS
from releases.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequest
from releases.audit.models import AuditEvent
from releases.catalog.models import (
    Application,
    Environment,
    Release,
    ReleaseStatus,
    SimulatorSlot,
    SimulatorSwap,
    SimulatorVersionProfile,
    Slot,
)
from strategies.experiments.models import Experiment, ExperimentSnapshot
from strategies.flags import evaluation
from strategies.flags.models import DarkLaunch, Flag
from strategies.operations.models import Operation, OperationStatus, OperationStep, StepStatus
from tests.experiments.test_pages import detail_url, no_nan, signed_in

pytestmark = pytest.mark.django_db

MODELS = [
    Application,
    Slot,
    Environment,
    ApprovalPolicy,
    Release,
    ApprovalRequest,
    ApprovalDecision,
    Operation,
    OperationStep,
    AuditEvent,
    SimulatorSlot,
    SimulatorSwap,
    SimulatorVersionProfile,
    Flag,
    Experiment,
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seeded(django_db_setup: None, django_db_blocker: object) -> Iterator[str]:
    """The demo, seeded once for this module; what the command printed."""
    with django_db_blocker.unblock(), transaction.atomic():  # type: ignore[attr-defined]
        out = io.StringIO()
        call_command("seed_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_the_demo_has_three_applications_with_four_stages_weeks_of_history_and_one_live_release_each(
    seeded: str,
) -> None:
    assert Application.objects.count() == 4
    staff = Application.objects.get(slug="checkout-web-staff")  # a ring target: its own release of the staged build
    (staged,) = staff.releases.all()
    assert staged.version == Application.objects.get(slug="checkout-web").slots.get(name="staging").running_version
    assert staged.approval_requests.get().environment.stage == "prod", "its own approvers are asked"
    rings = list(Application.objects.get(slug="checkout-web").rings.order_by("position"))
    assert [(r.name, r.kind, r.traffic_percent, r.requires_approval) for r in rings] == [
        ("Staff", "targets", None, False),
        ("Early adopters", "traffic", 10, True),
    ]
    assert list(rings[0].targets.all()) == [staff]
    checkout_versions = dict(
        SimulatorSlot.objects.filter(application__slug="checkout-web").values_list("slot_name", "version")
    )
    staff_versions = dict(SimulatorSlot.objects.filter(application=staff).values_list("slot_name", "version"))
    assert staff_versions["production"] == checkout_versions["production"]
    assert staff_versions["staging"] == checkout_versions["staging"]
    for application in Application.objects.exclude(pk=staff.pk):
        assert sorted(application.environments.values_list("stage", flat=True)) == ["dev", "preprod", "prod", "test"]
        assert application.releases.filter(status=ReleaseStatus.LIVE).count() == 1
        assert application.releases.count() >= 8
        production = application.slots.get(is_production=True)
        assert production.current_release == application.releases.get(status=ReleaseStatus.LIVE)
    oldest = AuditEvent.objects.order_by("created_at").first()
    newest = AuditEvent.objects.order_by("created_at").last()
    assert (newest.created_at - oldest.created_at).days >= 28
    assert Operation.objects.filter(status="succeeded").exists()
    assert Release.objects.filter(status=ReleaseStatus.REJECTED).exists()
    assert Release.objects.filter(status=ReleaseStatus.ROLLED_BACK).exists()
    for username, password, role in DEMO_USERS:
        user = authenticate(RequestFactory().post("/login/"), username=username, password=password)  # axes wants one
        assert user is not None, username
        assert user.groups.filter(name=role).exists()
    assert "Checkout Web:" in seeded and "rings Staff (Checkout Web (staff))" in seeded


def test_running_it_again_changes_nothing(seeded: str) -> None:
    before = counts()
    newest_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    call_command("seed_demo")

    assert counts() == before
    assert AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() == newest_event


# --- the product's own audit actions ------------------------------------------------------------------
def _strings(node: ast.AST, literals: set[str], patterns: set[str]) -> None:
    """The action names an expression can evaluate to: literals, and f-strings as patterns."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        literals.add(node.value)
    elif isinstance(node, ast.JoinedStr):
        patterns.add("".join(re.escape(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values))
    elif isinstance(node, ast.IfExp):
        _strings(node.body, literals, patterns)
        _strings(node.orelse, literals, patterns)
    elif isinstance(node, ast.BoolOp | ast.Dict):
        for value in node.values:
            if value is not None:
                _strings(value, literals, patterns)


def product_actions() -> tuple[set[str], list[re.Pattern[str]]]:
    """Every audit action the product's code can write, read from the code (the demo modules left out).

    Actions are the `action=` arguments and `action` variables of the product's modules and the first
    argument of each lifecycle edge (`Transition`, `OperationTransition`). An f-string such as
    `f"operation.{target}"` stands for its prefix followed by a value of one of the models' choices
    (statuses, lifecycles) or a bare word the code passes as an action ("paused"), never for any word at
    all: "operation.started" is not one.
    """
    literals: set[str] = set()
    templates: set[str] = set()
    for package in ("releases", "strategies", "portal"):
        for path in (ROOT / package).rglob("*.py"):
            if path.parent.name == "demo" or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                action_keyword = isinstance(node, ast.keyword) and node.arg == "action"
                action_variable = isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and "action" in t.id.lower() for t in node.targets
                )
                if action_keyword or action_variable:
                    _strings(node.value, literals, templates)  # type: ignore[attr-defined]
                elif (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) in ("Transition", "OperationTransition")
                    and node.args
                ):
                    _strings(node.args[0], literals, templates)
    words = {literal for literal in literals if re.fullmatch(r"[a-z_]+", literal)}
    for model in apps.get_models():
        for model_field in model._meta.get_fields():
            for value, _label in getattr(model_field, "choices", None) or []:
                if isinstance(value, str) and re.fullmatch(r"[a-z_]+", value):
                    words.add(value)
    choice = "(?:" + "|".join(sorted(map(re.escape, words))) + ")"
    patterns = [re.compile(template.replace("{}", choice)) for template in templates]
    return {literal for literal in literals if re.fullmatch(r"[a-z_]+\.[a-z_]+", literal)}, patterns


def test_the_scan_of_the_product_finds_its_actions_and_not_the_ones_it_never_writes() -> None:
    literals, patterns = product_actions()

    def written(action: str) -> bool:
        return action in literals or any(p.fullmatch(action) for p in patterns)

    for action in [
        "release.registered",
        "operation.created",
        "operation.running",
        "operation.rolled_back",
        "approval.approved",
        "flag.permanent",
        "operation.resumed",
        "slot.observed",
    ]:
        assert written(action), action
    # What the seeder used to write by itself: the engine audits a run as "running", a failure as "rolling back".
    assert not written("operation.started")
    assert not written("operation.flew")


def test_the_demo_audit_trail_holds_only_actions_the_product_writes_and_its_chain_verifies(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    literals, patterns = product_actions()

    seeded = set(AuditEvent.objects.values_list("action", flat=True).distinct())
    foreign = {a for a in seeded if a not in literals and not any(p.fullmatch(a) for p in patterns)}
    assert foreign == set()
    # Every operation was run by the engine: created by a service, claimed by a run, finished by the engine.
    for operation in Operation.objects.all():
        actions = list(
            AuditEvent.objects.filter(object_type="releases.operation", object_id=str(operation.pk))
            .order_by("created_at", "pk")
            .values_list("action", flat=True)
        )
        assert actions[:2] == ["operation.created", "operation.running"], operation.pk
        assert actions[-1] == f"operation.{operation.status}", operation.pk
        assert operation.finished_at is not None
        assert not operation.steps.exclude(status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.FAILED])
    capsys.readouterr()
    call_command("audit_verify")
    assert f"OK: {AuditEvent.objects.count()} events" in capsys.readouterr().out


def test_a_failed_canary_leaves_its_release_rolled_back_and_production_untouched_as_the_engine_does(
    seeded: str,
) -> None:
    assert not Release.objects.filter(status=ReleaseStatus.FAILED).exists()
    operation = Operation.objects.get(kind=Operation.Kind.PROMOTE, status=OperationStatus.ROLLED_BACK)
    release = operation.release
    assert release.status == ReleaseStatus.ROLLED_BACK
    assert "Canary analysis failed" in operation.error
    failed = operation.steps.get(status=StepStatus.FAILED)
    assert failed.kind == "analyse" and failed.detail["verdict"] == "fail"
    undo = operation.steps.filter(parameters__undo=True).get()
    assert (undo.kind, undo.parameters["percent"], undo.status) == ("set_traffic", 0, StepStatus.SUCCEEDED)
    assert not operation.steps.filter(kind="swap", status=StepStatus.SUCCEEDED).exists()
    trail = list(
        AuditEvent.objects.filter(object_type="releases.release", object_id=str(release.pk))
        .order_by("created_at", "pk")
        .values_list("action", "actor_id")
    )
    assert trail[-1] == ("release.rolled_back", None)  # by the engine, not by a person
    # The next release went out as usual, and production never ran the failed build.
    later = Release.objects.filter(application=release.application, created_at__gt=release.created_at)
    assert later.filter(status__in=[ReleaseStatus.SUPERSEDED, ReleaseStatus.LIVE]).exists()
    assert not SimulatorSwap.objects.filter(application=release.application, result__production=release.version)


# --- what the other parts read of the demo ------------------------------------------------------------
def test_the_demo_flags_render_and_answer_over_ofrep(seeded: str, client: Client, viewer: User) -> None:
    """The demo's flags: every page renders, and the documented key gets answers over OFREP."""
    evaluation.forget()  # no flag set remembered from another module's test (ids repeat across tests)
    client.force_login(viewer)

    assert client.get("/flags/").status_code == 200
    assert client.get("/apps/checkout-web/flags/").status_code == 200
    for flag in Flag.objects.all():
        assert client.get(flag.get_absolute_url()).status_code == 200, flag.key
    launch = DarkLaunch.objects.get(status="active")
    assert client.get(launch.get_absolute_url()).status_code == 200
    response = client.post(
        "/ofrep/v1/evaluate/flags",
        '{"context": {"targetingKey": "ana", "email": "ana@slipway.example"}}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {DEMO_FLAG_API_KEY}"},
    )
    flags = {f["key"]: f for f in response.json()["flags"]}
    assert {k: flags[k]["value"] for k in ("payments-enabled", "one-click-pay", "max-cart-items")} == {
        "payments-enabled": True,
        "one-click-pay": True,
        "max-cart-items": 100,
    }
    assert flags["recommendations-layout"]["value"] == {"layout": "grid", "columns": 3}


def test_the_demo_experiment_reads_correctly(seeded: str, viewer: User) -> None:
    experiment = Experiment.objects.get(key="checkout-button-label")
    assert experiment.status == "running" and ExperimentSnapshot.objects.filter(experiment=experiment).count() == 14
    page = signed_in(viewer).get(detail_url(experiment))
    assert "complete-order is better with 95% confidence." in page.text
    assert "Sample ratio check: users per variant match" in page.text
    no_nan(page.text)
    decided = Experiment.objects.get(key="free-shipping-banner")
    assert decided.status == "decided" and decided.decision["variant"] == "on"
    assert "users_total" not in decided.decision and decided.decision["analysis"]["total_users"] == 9000
    overview = signed_in(viewer).get(reverse("experiments_overview"))
    assert "Checkout button label" in overview.text and "Free-shipping banner" in overview.text
    flag = Flag.objects.get(pk=experiment.flag_id)
    assert flag.rules["fallthrough"]["split"] == [["pay-now", 50], ["complete-order", 50]]
