"""The demo organisation: three applications with about six weeks of believable release history.

`python manage.py seed_demo` calls `seed()`. Everything is deterministic (one seeded random generator
per application) apart from the dates, which are laid out backwards from the moment of seeding.

History is *planned* first (versions, notes, who decided what and when, when promotions start) by pure
functions, then *played* through the product, with the clock frozen at each planned moment
(`portal.core.clock.frozen`): admins onboard the applications and set their policies through the services,
the pipeline registers builds (which deploys them to the simulated slots and opens approval requests),
approvers decide through `releases.approvals`, release managers promote and roll back through
`strategies.operations.services`, and the operations engine runs every step itself: the seeder is its worker,
running each job the services queue at its time (`ReplayQueue`, `_work`), bakes included. So the seeder
writes no row or audit event of its own; a canary that fails ends as the engine leaves it (rolled back).
Notifications are muted, since this is history.

Written directly, because no service creates them: the demo's users and their groups.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django_rq.queues import DjangoRQ
from rq.utils import import_attribute

from portal.core import clock
from portal.core.roles import Role
from portal.demo.flags import seed_flags
from releases.approvals import notifications
from releases.approvals.models import ApprovalPolicy, ApprovalRequest, ApprovalRequestStatus, FreezeWindow
from releases.approvals.policies import policy_update
from releases.approvals.workflow import approval_decide
from releases.audit.services import origin
from releases.catalog import services
from releases.catalog.models import (
    Application,
    Environment,
    Release,
    SimulatorSite,
    SimulatorSlot,
    SimulatorVersionProfile,
    Slot,
    Stage,
    StrategyKind,
)
from releases.catalog.providers.simulator_load import DEFAULT_PROFILE
from releases.catalog.simulator.services import (
    simulator_deploy,
    simulator_set_synthetic_load,
    simulator_set_version_profile,
)
from releases.intake import services as intake
from strategies.operations import services as operation_services
from strategies.operations.models import Operation, OperationStatus, Ring, StepStatus

# --- people ----------------------------------------------------------------------------------------

SERVICE_ACCOUNT = "ci-pipeline"

# (username, password, role); the role is also the name of the Django group the user is in.
DEMO_USERS: list[tuple[str, str, str]] = [
    ("viewer", "viewer-demo-pass", Role.VIEWER.value),
    ("approver", "approver-demo-pass", Role.APPROVER.value),
    ("approver2", "approver2-demo-pass", Role.APPROVER.value),
    ("releasemgr", "releasemgr-demo-pass", Role.RELEASE_MANAGER.value),
    ("admin", "admin-demo-pass", Role.ADMIN.value),
]

_PEOPLE: dict[str, tuple[str, str]] = {
    "viewer": ("Priya", "Shah"),
    "approver": ("Tom", "Becker"),
    "approver2": ("Aisha", "Rahman"),
    "releasemgr": ("Marta", "Kowalski"),
    "admin": ("Sam", "Okafor"),
    SERVICE_ACCOUNT: ("CI", "pipeline"),
}
_OFFICE_IP = {"approver": "10.8.14.23", "approver2": "10.8.14.61", "releasemgr": "10.8.12.7", "admin": "10.8.12.40"}
_BROWSER = {
    "approver": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "approver2": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1",
    "releasemgr": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "admin": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
}
_PIPELINE_IP = "10.40.3.18"
_PIPELINE_AGENT = "slipway-pipeline-task/1.0 (Azure Pipelines)"

# --- the organisation ---------------------------------------------------------------------------------

LONDON = ZoneInfo("Europe/London")
HISTORY_DAYS = 42
APPROVER_GROUP = Role.APPROVER.value
SLOTS = [  # (stage, slot name, environment name, position)
    (Stage.DEV, "dev", "Development", 10),
    (Stage.TEST, "test", "Test", 20),
    (Stage.PREPRODUCTION, "staging", "Pre-production", 30),
    (Stage.PRODUCTION, "production", "Production", 40),
]


@dataclass(frozen=True)
class AppSpec:
    name: str
    slug: str
    team: str
    description: str
    default_strategy: str
    canary_share: float  # how often a promotion uses canary
    first_version: tuple[int, int, int]
    history: int  # releases that finish their journey before the last few days
    incident: str  # "failed_rollout" | "rejected" | "rolled_back"
    incident_text: str  # error, rejection comment or rollback reason ({version} and {previous} filled in)
    incident_fix: str  # the follow-up patch's first note
    final: str  # the release waiting in pre-production: "approved" | "half_approved" | "awaiting"
    registered_in_test: bool
    ticket: str
    features: tuple[str, ...]
    fixes: tuple[str, ...]


APPS: list[AppSpec] = [
    AppSpec(
        name="Checkout Web",
        slug="checkout-web",
        team="Payments",
        description="Basket, delivery options and payment for the web shop.",
        default_strategy=StrategyKind.CANARY,
        canary_share=0.7,
        first_version=(2, 3, 0),
        history=9,
        incident="failed_rollout",
        incident_text=(
            "Canary analysis failed at 5%: HTTP 5xx rate 3.8% on staging against 0.4% on production over "
            "1,912 requests (two-proportion z-test, p < 0.001). All traffic returned to production."
        ),
        incident_fix="Payment session cookie kept behind the new CDN rule; the {previous} canary failed without it",
        final="approved",
        registered_in_test=True,
        ticket="PAY",
        features=(
            "Apple Pay and Google Pay on the basket page",
            "Saved cards can be renamed and removed from the payment step",
            "Delivery slot picker shows the next 14 days instead of 7",
            "Gift cards can be combined with a card payment",
            "3-D Secure 2 challenge opens in a modal instead of a redirect",
            "Order summary lists the VAT rate per line",
            "Klarna pay-in-3 offered for baskets over £50",
            "Address lookup by postcode on the delivery step",
            "Basket keeps its contents across devices for signed-in customers",
            "Promotion codes are validated as they are typed",
            "Click and collect: choose a store on a map",
            "Payment step remembers the last method used",
        ),
        fixes=(
            "VAT rounding on baskets mixing 5% and 20% items",
            "Double submission of the payment form on slow connections",
            "Delivery cost missing from the confirmation e-mail",
            "Card expiry field rejected '0' as the first digit of the month",
            "Basket badge count stale after removing the last item",
            "Screen readers announce payment errors (WCAG 4.1.3)",
            "Promotion code field accepted trailing spaces and then failed",
            "Timeout talking to the payment gateway now retried once",
            "Postcode lookup failed for BFPO addresses",
            "Confirmation page showed prices without the currency symbol on Safari",
            "Gift card balance check returned 500 for expired cards",
            "Currency formatting for orders placed from Ireland",
        ),
    ),
    AppSpec(
        name="Customer Portal",
        slug="customer-portal",
        team="Accounts",
        description="Where customers manage their account, addresses, orders and preferences.",
        default_strategy=StrategyKind.BLUE_GREEN,
        canary_share=0.2,
        first_version=(1, 8, 0),
        history=8,
        incident="rejected",
        incident_text=(
            "The new address form drops the second address line: tried it on "
            "https://customer-portal-staging.sim.slipway.local/account/addresses with two test accounts. "
            "Please fix before this goes out."
        ),
        incident_fix="Address form keeps the second address line, found during approval of {previous}",
        final="half_approved",
        registered_in_test=False,
        ticket="ACC",
        features=(
            "Order history can be filtered by year and status",
            "Download invoices as PDF",
            "Marketing preferences split into e-mail, SMS and post",
            "Two-step verification with an authenticator app",
            "Returns can be started from the order page",
            "Address book supports up to 10 addresses with nicknames",
            "Account deletion request with a 14-day cooling-off period",
            "Dark mode follows the device setting",
            "Loyalty points balance and history",
            "Sign in with a magic link sent by e-mail",
            "Notification centre for order and delivery updates",
            "Welsh translation of the account pages",
        ),
        fixes=(
            "Password reset link expired after 10 minutes instead of 60",
            "Order list paginated twice on mobile",
            "Phone numbers with a leading +44 rejected",
            "Session ended after 5 minutes idle on the preferences page",
            "Invoice PDF cut off long product names",
            "Focus order on the sign-in form (WCAG 2.4.3)",
            "Unsubscribe link in e-mails ignored the SMS preference",
            "Return reasons list empty for marketplace orders",
            "Slow order history for customers with more than 500 orders",
            "Date of birth saved one day early for users in UTC+ zones",
            "Typo in the account deletion confirmation",
            "Profile photo upload accepted files over 5 MB and then failed",
        ),
    ),
    AppSpec(
        name="Inventory API",
        slug="inventory-api",
        team="Supply Chain",
        description="Stock levels, reservations and replenishment for every warehouse; used by checkout and stores.",
        default_strategy=StrategyKind.BLUE_GREEN,
        canary_share=0.0,
        first_version=(3, 1, 0),
        history=8,
        incident="rolled_back",
        incident_text=(
            "Stock reservation calls time out for warehouse DE-2 since {version}: 0.8% of orders stuck in "
            "'reserving'. Rolling back to {previous} while Supply Chain investigates."
        ),
        incident_fix="Reservation queries for DE-2 use the new index again; the {previous} timeouts are fixed",
        final="awaiting",
        registered_in_test=False,
        ticket="SUP",
        features=(
            "Bulk stock query endpoint (up to 500 SKUs per call)",
            "Reservations expire after a configurable hold time",
            "Webhook when a SKU falls below its reorder point",
            "Stock movements exported nightly to the data lake",
            "Per-warehouse safety stock levels",
            "Reservation API accepts an idempotency key",
            "Replenishment suggestions from the last 8 weeks of sales",
            "Cycle count results can be uploaded as CSV",
            "OpenAPI 3.1 schema published at /openapi.json",
            "Stock transfers between warehouses",
            "Rate limits per client application",
            "Read replicas for stock queries",
        ),
        fixes=(
            "Negative stock shown after a cancelled reservation",
            "Reorder webhook fired twice for the same SKU",
            "Pagination cursor lost the sort order",
            "Health check reported healthy with the database unreachable",
            "CSV upload rejected files with a byte-order mark",
            "Reservation hold time ignored daylight saving changes",
            "N+1 queries on the warehouse list endpoint",
            "Timeout on stock queries for SKUs with many locations",
            "Wrong HTTP status (500 instead of 409) on a duplicate reservation",
            "Audit log missing the client id for transfers",
            "Memory growth in the nightly export job",
            "Decimal quantities truncated for weighed products",
        ),
    ),
]

_GENERIC_FEATURES = (
    "Faster first page load: scripts are deferred and images lazy-loaded",
    "Service level indicators exported to the shared dashboards",
    "Feature flags read from the central flag service",
)
_GENERIC_FIXES = (
    "Dependency updates (Django 6.1.x, psycopg 3.3)",
    "Structured logging for outbound HTTP calls",
    "Smaller container image",
    "Clearer error page when a dependency is unavailable",
)
_APPROVE_COMMENTS = (
    "Checked on staging, looks good.",
    "Walked through the main journeys on the staging slot; fine.",
    "Release notes match what I see on staging.",
    "OK from my side.",
    "Smoke-tested on staging with a test account.",
    "Spoke to the team about the migration; no concerns.",
)


# --- working calendar -------------------------------------------------------------------------------


class WorkingCalendar:
    """Maps "working hours since the start" to moments: Monday to Friday, 09:00-17:30 in London."""

    OPEN, CLOSE = time(9, 0), time(17, 30)

    def __init__(self, start: datetime, end: datetime) -> None:
        self.intervals: list[tuple[datetime, datetime]] = []
        day: date = start.astimezone(LONDON).date()
        while True:
            opens = datetime.combine(day, self.OPEN, LONDON).astimezone(UTC)
            if opens >= end:
                break
            closes = datetime.combine(day, self.CLOSE, LONDON).astimezone(UTC)
            lo, hi = max(opens, start), min(closes, end)
            if day.weekday() < 5 and lo < hi:
                self.intervals.append((lo, hi))
            day += timedelta(days=1)
        self.offsets = [0.0]
        for lo, hi in self.intervals:
            self.offsets.append(self.offsets[-1] + (hi - lo).total_seconds() / 3600)
        self.total = self.offsets[-1]

    def at(self, hours: float) -> datetime:
        hours = min(max(hours, 0.0), self.total)
        i = min(max(bisect.bisect_left(self.offsets, hours) - 1, 0), len(self.intervals) - 1)
        moment = self.intervals[i][0] + timedelta(hours=hours - self.offsets[i])
        return moment.replace(microsecond=0)

    def position(self, moment: datetime) -> float:
        """Working hours between the start and `moment` (the inverse of `at`)."""
        i = bisect.bisect_right([lo for lo, _ in self.intervals], moment) - 1
        if i < 0:
            return 0.0
        lo, hi = self.intervals[i]
        return self.offsets[i] + (min(moment, hi) - lo).total_seconds() / 3600

    def next_day(self, hours: float) -> float:
        """Working hours at the start of the working day after the one `hours` falls in."""
        i = max(bisect.bisect_left(self.offsets, hours), 1)
        return self.offsets[min(i, len(self.intervals))]


def in_freeze(moment: datetime) -> bool:
    """The demo's production freeze: Friday 16:00 to Monday 08:00 in London (see the policy)."""
    local = moment.astimezone(LONDON)
    wd, t = local.weekday(), local.time()
    return (wd == 4 and t >= time(16)) or wd in (5, 6) or (wd == 0 and t < time(8))


# --- the plan ---------------------------------------------------------------------------------------


@dataclass
class StepPlan:
    kind: str
    title: str
    parameters: dict[str, Any] = field(default_factory=dict)
    status: str = StepStatus.SKIPPED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    log: str = ""


@dataclass
class OperationPlan:
    """When a promotion or rollback starts, with which strategy and why, and about how long it takes.

    Only `kind`, `strategy`, `reason`, `started_at` and whether it fails (`failed_at`) are played: the
    engine runs and records the real steps. The planned steps and `finished_at` are the schedule's
    estimate, which lays out what happens after the operation (and keeps the generator's sequence, so
    the versions and decisions of the history stay what the tour knows).
    """

    kind: str
    strategy: str
    parameters: dict[str, Any]
    reason: str
    started_at: datetime
    finished_at: datetime
    status: str  # the terminal one
    steps: list[StepPlan]
    error: str = ""
    failed_at: datetime | None = None  # when a failing step gave up (before rolling back)


@dataclass
class DecisionPlan:
    approver: str
    verdict: str
    comment: str
    at: datetime


@dataclass
class ReleasePlan:
    version: str
    build_id: str
    commit_sha: str
    branch: str
    notes: str
    stage: str  # where the pipeline deployed it
    registered_at: datetime
    outcome: str  # live | rejected | failed | rolled_back | approved | awaiting | registered
    requested_at: datetime | None = None
    decisions: list[DecisionPlan] = field(default_factory=list)
    promotion: OperationPlan | None = None
    rollback: OperationPlan | None = None
    committed_at: datetime | None = None  # when the commit was made: where its lead time starts


@dataclass
class AppPlan:
    spec: AppSpec
    releases: list[ReleasePlan]
    dev_version: str
    world: dict[str, str]  # slot name -> version the simulator runs
    refreshed_at: datetime
    start: datetime


def _bump(version: tuple[int, int, int], part: str) -> tuple[int, int, int]:
    major, minor, patch = version
    return (major, minor + 1, 0) if part == "minor" else (major, minor, patch + 1)


def _fmt(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


class _Notes:
    def __init__(self, rng: random.Random, spec: AppSpec) -> None:
        self.rng, self.spec = rng, spec
        self.features = rng.sample(spec.features, len(spec.features))
        self.fixes = rng.sample(spec.fixes, len(spec.fixes))
        self.ticket = rng.randint(310, 360)

    def _t(self) -> str:
        self.ticket += self.rng.randint(1, 9)
        return f"{self.spec.ticket}-{self.ticket}"

    def _fix(self) -> str:
        return self.fixes.pop() if self.fixes else self.rng.choice(_GENERIC_FIXES)

    def _feature(self) -> str:
        return self.features.pop() if self.features else self.rng.choice(_GENERIC_FEATURES)

    def write(self, version: str, part: str, first_fix: str = "") -> str:
        rng = self.rng
        lines = [f"{self.spec.name} {version}", ""]
        features = list(dict.fromkeys(self._feature() for _ in range(rng.randint(1, 2)))) if part == "minor" else []
        fixes = [first_fix] if first_fix else []
        fixes += [self._fix() for _ in range(rng.randint(0, 2) if part == "minor" else rng.randint(1 - bool(fixes), 2))]
        fixes = list(dict.fromkeys(fixes))
        if features:
            lines.append("New")
            lines += [f"- {text} ({self._t()})" for text in features]
        if fixes:
            if features:
                lines.append("")
            lines.append("Fixed")
            lines += [f"- {text} ({self._t()})" for text in fixes]
        lines.append("")
        lines.append(
            rng.choice(
                [
                    "No database migrations.",
                    "Includes a backwards-compatible database migration (runs before the swap).",
                    f"New behaviour behind the flag `{self.spec.slug}.{version.replace('.', '-')}`, off by default.",
                    "No configuration changes.",
                ]
            )
        )
        return "\n".join(lines)


def _promotion(
    rng: random.Random, strategy: str, start: datetime, *, fail_at_bake: int | None = None, error: str = ""
) -> OperationPlan:
    """A promotion's estimated steps and timings; `fail_at_bake` plans that canary bake to fail its analysis."""
    moment = start
    steps: list[StepPlan] = []

    def run(kind: str, title: str, seconds: float, parameters: dict[str, Any] | None = None, **detail: Any) -> StepPlan:
        nonlocal moment
        step = StepPlan(kind, title, parameters or {}, StepStatus.SUCCEEDED, moment)
        moment += timedelta(seconds=round(seconds))
        step.finished_at = moment
        step.detail = detail
        moment += timedelta(seconds=rng.randint(1, 4))
        steps.append(step)
        return step

    run(
        "check_gates",
        "Check gates",
        rng.uniform(4, 15),
        approvals="satisfied",
        freeze="none active",
        staging_health="healthy",
    )
    failed_at = None
    if strategy == StrategyKind.CANARY:
        bake = 10
        for n, percent in enumerate([5, 25, 50], start=1):
            run(
                "set_traffic",
                f"Route {percent}% to staging",
                rng.uniform(8, 25),
                {"percent": percent},
                routing_percent=percent,
            )
            stable = rng.uniform(0.2, 0.6)
            requests = int(rng.uniform(300, 420) * percent * bake / 5)
            if n == fail_at_bake:
                step = run(
                    "bake",
                    "Bake and analyse",
                    bake * 60 + rng.uniform(3, 8),
                    {"minutes": bake},
                    requests_canary=1912,
                    error_rate_canary=3.8,
                    error_rate_stable=0.4,
                    p_value=0.0001,
                    verdict="fail",
                )
                step.status = StepStatus.FAILED
                step.log = error
                failed_at = step.finished_at
                break
            canary = max(0.05, stable + rng.uniform(-0.15, 0.15))
            run(
                "bake",
                "Bake and analyse",
                bake * 60 + rng.uniform(3, 8),
                {"minutes": bake},
                requests_canary=requests,
                error_rate_canary=round(canary, 2),
                error_rate_stable=round(stable, 2),
                p95_ms_canary=rng.randint(180, 260),
                p95_ms_stable=rng.randint(180, 260),
                p_value=round(rng.uniform(0.2, 0.95), 2),
                verdict="pass",
            )
        plan = [("swap", "Complete: swap and reset routing"), ("verify_health", "Verify production health")]
        if failed_at is None:
            run("swap", plan[0][1], rng.uniform(60, 150), routing_percent=0)
            run("verify_health", plan[1][1], rng.uniform(30, 90), checks=5, status=200, latency_ms=rng.randint(60, 140))
        else:
            skipped = []
            for percent in [5, 25, 50][fail_at_bake:]:
                skipped += [("set_traffic", f"Route {percent}% to staging"), ("bake", "Bake and analyse")]
            steps += [StepPlan(kind, title) for kind, title in skipped + plan]
            back = StepPlan(
                "reset_traffic",
                "Roll back: return all traffic to production",
                {},
                StepStatus.SUCCEEDED,
                moment,
                moment + timedelta(seconds=rng.randint(5, 15)),
                {"routing_percent": 0},
            )
            moment = back.finished_at or moment
            steps.append(back)
        parameters = {"steps": [5, 25, 50], "bake_minutes": bake, "max_error_rate_increase": 0.5}
    else:
        run("warm_up", "Warm up staging", rng.uniform(45, 120), requests=20, status=200)
        run("swap", "Swap staging into production", rng.uniform(60, 180), source="staging", target="production")
        run(
            "verify_health",
            "Verify production health",
            rng.uniform(30, 90),
            checks=5,
            status=200,
            latency_ms=rng.randint(60, 140),
        )
        parameters = {"warm_up_seconds": 60}
    for step in steps:
        if step.status == StepStatus.SUCCEEDED and not step.log:
            step.log = f"{step.finished_at:%H:%M:%S} {step.title}: done"
    return OperationPlan(
        kind=Operation.Kind.PROMOTE,
        strategy=strategy,
        parameters=parameters,
        reason="",
        started_at=start,
        finished_at=moment,
        status=OperationStatus.SUCCEEDED if failed_at is None else OperationStatus.ROLLED_BACK,
        steps=steps,
        error=error if failed_at is not None else "",
        failed_at=failed_at,
    )


def _rollback(rng: random.Random, start: datetime, reason: str, previous: str) -> OperationPlan:
    moment = start
    steps = []
    for kind, title, seconds, detail in [
        ("check_gates", f"Check staging still runs {previous}", rng.uniform(3, 10), {"version": previous}),
        ("swap", "Swap the previous release back into production", rng.uniform(60, 150), {}),
        ("verify_health", "Verify production health", rng.uniform(30, 80), {"checks": 5, "status": 200}),
    ]:
        finished = moment + timedelta(seconds=round(seconds))
        steps.append(
            StepPlan(
                kind, title, {}, StepStatus.SUCCEEDED, moment, finished, detail, f"{finished:%H:%M:%S} {title}: done"
            )
        )
        moment = finished + timedelta(seconds=rng.randint(1, 4))
    return OperationPlan(
        kind=Operation.Kind.ROLLBACK,
        strategy=StrategyKind.BLUE_GREEN,
        parameters={"restore_version": previous},
        reason=reason,
        started_at=start,
        finished_at=moment,
        status=OperationStatus.SUCCEEDED,
        steps=steps,
    )


def plan_application(spec: AppSpec, now: datetime) -> AppPlan:
    """Lay out an application's history, ending a little before `now`. Pure: no database access."""
    rng = random.Random(f"slipway-demo/{spec.slug}")  # noqa: S311 - demo data, not security
    start = now - timedelta(days=HISTORY_DAYS)
    cal = WorkingCalendar(start, now)
    notes = _Notes(rng, spec)
    releases: list[ReleasePlan] = []
    version = spec.first_version
    part = "minor"
    incident_at = rng.randint(2, spec.history - 3)
    fix_note = ""
    # Commit times have their own generator, so that adding them left the rest of the history as it was.
    commits = random.Random(f"slipway-demo-commits/{spec.slug}")  # noqa: S311 - demo data, not security

    def new_release(hours: float, outcome: str, stage: str = Stage.PREPRODUCTION) -> ReleasePlan:
        registered = cal.at(hours) + timedelta(seconds=rng.randint(0, 59))
        text = _fmt(version)
        hotfix = part == "patch" and rng.random() < 0.5
        return ReleasePlan(
            version=text,
            build_id=f"{registered.astimezone(LONDON):%Y%m%d}.{rng.randint(1, 6)}",
            commit_sha=_hex(rng, 40),
            branch=f"hotfix/{spec.ticket.lower()}-{notes.ticket + 1}" if hotfix else "main",
            notes=notes.write(text, part, fix_note),
            stage=stage,
            registered_at=registered,
            outcome=outcome,
            # A few hours to two days between the commit and the pipeline registering its build.
            committed_at=registered - timedelta(seconds=round(commits.triangular(2, 48, 6) * 3600)),
        )

    def request(rp: ReleasePlan) -> None:
        rp.requested_at = rp.registered_at + timedelta(seconds=rng.randint(40, 300))

    def decide(rp: ReleasePlan, who: str, hours: float, verdict: str = "approve", comment: str | None = None) -> None:
        if rp.requested_at is not None:  # decide well before the request lapses (72 hours)
            latest = cal.position(rp.requested_at + timedelta(hours=66))
            if hours > latest:
                hours = latest - rng.uniform(0.1, 2.5)
        at = cal.at(hours) + timedelta(seconds=rng.randint(0, 59))
        at = max(at, (rp.decisions[-1].at if rp.decisions else rp.requested_at or at) + timedelta(minutes=2))
        if comment is None:
            comment = rng.choice(_APPROVE_COMMENTS) if rng.random() < 0.5 else ""
        rp.decisions.append(DecisionPlan(who, verdict, comment, at))

    # The releases that finish their journey, spread over the weeks before the last three working days.
    window_end = cal.total - 26
    spacing = window_end / spec.history
    cursor = 0.0
    previous_version = ""
    for i in range(spec.history):
        hours = max(cursor, i * spacing + rng.uniform(0, spacing * 0.25))
        outcome = spec.incident if i == incident_at else "live"
        outcome = {"failed_rollout": "failed"}.get(outcome, outcome)
        rp = new_release(hours, outcome)
        fix_note = ""
        request(rp)
        first, second = rng.sample(["approver", "approver2"], 2)
        budget = spacing * 0.8  # working hours this release may take from registration to live
        t = hours + rng.uniform(0.3, budget * 0.35)
        if outcome == "rejected":
            decide(rp, "approver2", t)
            decide(rp, "approver", t + rng.uniform(0.3, 2), "reject", spec.incident_text)
            cursor = t + rng.uniform(2, 6)
            fix_note = spec.incident_fix.format(previous=rp.version)
        else:
            decide(rp, first, t)
            t += rng.uniform(0.1, budget * 0.25)
            decide(rp, second, t)
            t += rng.uniform(0.2, budget * 0.15)
            promote = cal.at(t)
            if in_freeze(promote + timedelta(hours=1)):
                t = cal.next_day(t) + rng.uniform(0.3, 1.5)
                promote = cal.at(t)
            promote = max(promote, rp.decisions[-1].at + timedelta(minutes=3))
            strategy = StrategyKind.CANARY if rng.random() < spec.canary_share else StrategyKind.BLUE_GREEN
            if outcome == "failed":
                strategy = StrategyKind.CANARY
                rp.promotion = _promotion(rng, strategy, promote, fail_at_bake=1, error=spec.incident_text)
                fix_note = spec.incident_fix.format(previous=rp.version)
            else:
                rp.promotion = _promotion(rng, strategy, promote)
            rp.promotion.reason = f"Promote {rp.version} to production ({StrategyKind(strategy).label.lower()})"
            cursor = t + rng.uniform(1, 4)
            if outcome == "rolled_back":
                t += rng.uniform(1.5, 3)
                reason = spec.incident_text.format(version=rp.version, previous=previous_version)
                back_at = max(cal.at(t), rp.promotion.finished_at + timedelta(minutes=40))
                rp.rollback = _rollback(rng, back_at, reason, previous_version)
                fix_note = spec.incident_fix.format(previous=rp.version)
                cursor = t + rng.uniform(1, 3)
        releases.append(rp)
        if outcome == "live":
            previous_version = rp.version
        last = i == spec.history - 1  # the build waiting in pre-production at the end is a minor one
        part = "patch" if outcome != "live" and not last else ("minor" if last or rng.random() < 0.55 else "patch")
        version = _bump(version, part)
        cursor = max(cursor, hours + 1)
    last_event = _last_moment(releases[-1])

    # The release waiting in pre-production, and perhaps a newer one in test.
    total = cal.total
    if spec.final == "approved":
        rp = new_release(max(total - rng.uniform(12, 16), 0), "approved")
        request(rp)
        decide(rp, "approver", total - rng.uniform(8, 10))
        decide(rp, "approver2", total - rng.uniform(4, 6))
    elif spec.final == "half_approved":
        rp = new_release(total - rng.uniform(4.5, 6), "awaiting")
        request(rp)
        decide(rp, "approver2", total - rng.uniform(0.5, 2.5))
    else:
        rp = new_release(total - rng.uniform(1.5, 4), "awaiting")
        request(rp)
    if rp.registered_at <= last_event:
        raise AssertionError(f"{spec.name}: the demo history overlaps itself; plan fewer releases")
    releases.append(rp)
    staging_version = rp.version
    test_version = staging_version
    if spec.registered_in_test:
        part = "minor"
        version = _bump(version, part)
        test = new_release(total - rng.uniform(0.5, 1.5), "registered", Stage.TEST)
        test.registered_at = max(test.registered_at, rp.decisions[-1].at + timedelta(minutes=5))
        releases.append(test)
        test_version = test.version
    dev_version = f"{_fmt(_bump(version, 'minor'))}-dev.{rng.randint(3, 19)}"
    live = next(r.version for r in reversed(releases) if r.outcome == "live")
    refreshed_at = max(now - timedelta(minutes=rng.randint(3, 12)), _last_moment(releases[-1]) + timedelta(minutes=1))
    world = {"production": live, "staging": staging_version, "test": test_version, "dev": dev_version}
    return AppPlan(spec, releases, dev_version, world, refreshed_at.replace(microsecond=0), start)


def _last_moment(rp: ReleasePlan) -> datetime:
    moments = [rp.registered_at, rp.requested_at] + [d.at for d in rp.decisions]
    moments += [op.finished_at for op in (rp.promotion, rp.rollback) if op]
    return max(m for m in moments if m is not None)


# --- the seeder is the worker ---------------------------------------------------------------------------

# A worker picks a queued job up about a second after it was queued.
PICKUP = timedelta(seconds=1)
# More jobs than any demo operation needs (a canary's bakes and analyses, blue-green's verification):
# an operation still running after these many is a bug, not history.
MAX_JOBS_PER_ACTION = 500


@dataclass(order=True)
class _Job:
    at: datetime
    number: int
    func: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    kwargs: dict[str, Any] = field(compare=False)


class ReplayQueue(DjangoRQ):
    """The job queue while the demo plays its history (`_replaying`), in place of Redis.

    The services queue what a worker would run — an operation's run, its wake-up after a bake, a slot
    refresh — and the seeder runs each of those job functions itself at its time (`_work`), under the
    clock frozen there. Nothing reaches Redis: no worker should replay history that is already written.
    """

    jobs: ClassVar[list[_Job]] = []
    numbers: ClassVar[Iterator[int]] = itertools.count()

    @classmethod
    def keep(cls, at: datetime, func: Callable[..., Any] | str, args: Any, kwargs: Any) -> None:
        if isinstance(func, str):  # a job queued by name, as RQ allows
            func = import_attribute(func)
        cls.jobs.append(_Job(at, next(cls.numbers), func, tuple(args or ()), dict(kwargs or {})))

    def enqueue_call(self, func: Any, args: Any = None, kwargs: Any = None, **options: Any) -> None:  # type: ignore[override]
        ReplayQueue.keep(clock.now() + PICKUP, func, args, kwargs)

    def enqueue_at(self, datetime: datetime, f: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.pop("job_id", None)  # RQ's options, not the function's
        kwargs.pop("job_timeout", None)
        ReplayQueue.keep(datetime, f, args, kwargs)


@contextlib.contextmanager
def _replaying() -> Iterator[None]:
    """Play history through the engine in no time: jobs run in this process (`ReplayQueue`), the
    simulated cloud's swaps land as soon as they are polled (their phases follow the clock, which is
    frozen), and every wait of the engine hands the operation back for `_work` to run at its time."""
    timings = {
        **settings.SIMULATOR_TIMINGS,
        "warmup_seconds": 0.0,
        "swap_seconds": 0.0,
        "routing_seconds": 0.0,
        # A canary analyses the last five minutes (six buckets): making up more of the synthetic load
        # before each analysis, as the live default does, only costs seeding time.
        "synthetic_backfill_minutes": 6.0,
    }
    engine_log = logging.getLogger("strategies.operations.engine")
    level = engine_log.level
    engine_log.setLevel(logging.ERROR)  # history: its steps and its planned canary failure are not news
    with override_settings(
        RQ={**settings.RQ, "QUEUE_CLASS": f"{__name__}.ReplayQueue"},
        SIMULATOR_TIMINGS=timings,
        OPERATION_INLINE_WAIT_SECONDS=0.0,
    ):
        ReplayQueue.jobs.clear()
        try:
            yield
        finally:
            ReplayQueue.jobs.clear()
            engine_log.setLevel(level)


def _work() -> datetime | None:
    """Run the queued jobs in the order of their times, each with the clock frozen at its time, until
    none is left (an operation's last run queues nothing more). Returns the time of the last one."""
    last = None
    for _ in range(MAX_JOBS_PER_ACTION):
        if not ReplayQueue.jobs:
            return last
        job = min(ReplayQueue.jobs)
        ReplayQueue.jobs.remove(job)
        with clock.frozen(job.at):
            job.func(*job.args, **job.kwargs)
        last = job.at
    raise RuntimeError(f"The demo history queued more than {MAX_JOBS_PER_ACTION} jobs for one action.")


# --- playing the plan through the services --------------------------------------------------------------

# What the demo's promotions ask the strategies for: canary bakes of ten minutes at 5, 25 and 50 % (the
# analysis needs 100 requests on each side; the synthetic load gives staging 60 a minute at 5 %), then the
# swap; blue-green verifies production for its minute every 30 s (three checks, where the default's ten
# seconds make seven runs of the engine: seeding time, and nothing a reader of the history misses).
STRATEGY_OPTIONS: dict[str, dict[str, Any]] = {
    StrategyKind.CANARY: {"shares": [5, 25, 50], "bake_seconds": 600.0},
    StrategyKind.BLUE_GREEN: {"verify_interval_seconds": 30.0},
}
# How the build whose canary fails behaves on the simulator (set on its Simulator page before the promotion).
FAILING_BUILD_ERROR_RATE = 0.1


def _where(rng: random.Random, username: str | None) -> dict[str, str]:
    """The audit origin of an action: a job, the pipeline's API call, or a person's browser at the office."""
    if username is None:
        return {"via": "job", "job_id": f"{rng.getrandbits(128):032x}"}
    if username == SERVICE_ACCOUNT:
        return {"via": "api", "request_id": _hex(rng, 32), "ip": _PIPELINE_IP, "user_agent": _PIPELINE_AGENT}
    return {"via": "web", "request_id": _hex(rng, 32), "ip": _OFFICE_IP[username], "user_agent": _BROWSER[username]}


@dataclass
class _Context:
    application: Application
    slots: dict[str, Slot]  # by stage
    environments: dict[str, Environment]  # by stage
    users: dict[str, Any]
    rng: random.Random
    latest: datetime | None = None  # the clock never goes back: an operation may end after the plan expected

    @contextlib.contextmanager
    def acting(self, moment: datetime, username: str | None) -> Iterator[Any]:
        """Pin the clock and the audit origin for one action, in one transaction; yields the actor."""
        moment = max(moment, self.latest) if self.latest else moment
        self.latest = moment
        with clock.frozen(moment), origin(**_where(self.rng, username)), transaction.atomic():
            yield self.users[username] if username else None

    def work(self) -> None:
        """What the workers did next: the jobs the last action queued, and the ones those queued."""
        last = _work()
        if last is not None and (self.latest is None or last > self.latest):
            self.latest = last


def _play_release(ctx: _Context, rp: ReleasePlan) -> None:
    app = ctx.application
    with ctx.acting(rp.registered_at, SERVICE_ACCOUNT) as ci:
        release = intake.release_register(
            application=app,
            version=rp.version,
            actor=ci,
            build_id=rp.build_id,
            commit_sha=rp.commit_sha,
            committed_at=rp.committed_at,
            branch=rp.branch,
            notes=rp.notes,
            artifact_url=f"https://artifacts.sim.slipway.local/{app.slug}/{rp.version}/{app.slug}-{rp.version}.zip",
            deployed_slot=ctx.slots[rp.stage],
        )
    # Registering on the staging slot opened the request for production (and on the test slot, one
    # for pre-production): the planned decisions settle it through the same service as the portal.
    request = ApprovalRequest.objects.filter(release=release, status=ApprovalRequestStatus.PENDING).first()
    if rp.requested_at is None or request is None:
        return
    for decision in rp.decisions:
        with ctx.acting(decision.at, decision.approver) as approver:
            approval_decide(request=request, actor=approver, verdict=decision.verdict, comment=decision.comment)
    if rp.promotion is not None:
        _play_promotion(ctx, release, rp.promotion)
    if rp.rollback is not None:
        with ctx.acting(rp.rollback.started_at, "releasemgr") as manager:
            strategies_services().application_rollback(application=app, actor=manager, reason=rp.rollback.reason)
        ctx.work()


def _play_promotion(ctx: _Context, release: Release, plan: OperationPlan) -> None:
    """Promote as a release manager does, then let the engine run it; a failing build fails its canary."""
    if plan.failed_at is not None:
        with ctx.acting(plan.started_at - timedelta(minutes=20), "admin") as admin:
            simulator_set_version_profile(
                application=ctx.application,
                actor=admin,
                version=release.version,
                error_rate=FAILING_BUILD_ERROR_RATE,
                # As fast as the builds before it (none of which was described): only its errors differ.
                latency_ms_median=DEFAULT_PROFILE.latency_ms_median,
                latency_ms_p95=DEFAULT_PROFILE.latency_ms_p95,
                reason=f"Demo: {release.version} fails {FAILING_BUILD_ERROR_RATE:.0%} of its requests",
            )
    with ctx.acting(plan.started_at, "releasemgr") as manager:
        strategies_services().operation_start(
            release=release,
            strategy=plan.strategy,
            parameters=STRATEGY_OPTIONS[plan.strategy],
            actor=manager,
            reason=plan.reason,
        )
    ctx.work()


# --- structure and users ------------------------------------------------------------------------------


def _build_structure(
    spec: AppSpec, created_at: datetime, admin: Any, *, synthetic_rpm: int = 0
) -> tuple[Application, dict[str, Slot], dict[str, Environment]]:
    """The application as an admin onboards it: created (its simulated site with it), the site's slots
    bound to the four stages, and the policies of pre-production and production. Whatever exists stays."""
    rng = random.Random(f"slipway-demo-onboarding/{spec.slug}")  # noqa: S311 - demo data, not security
    with clock.frozen(created_at), origin(**_where(rng, "admin")), transaction.atomic():
        app = Application.objects.filter(slug=spec.slug).first()
        if app is None:
            app = services.application_create(
                actor=admin,
                name=spec.name,
                slug=spec.slug,
                team=spec.team,
                description=spec.description,
                default_strategy=spec.default_strategy,
            )
            # `created_at` is auto_now_add, which reads the real clock, not the frozen one.
            Application.objects.filter(pk=app.pk).update(created_at=created_at)
        if not app.environments.exists():
            report = services.application_test_connection(application=app)
            if not report.ok:
                raise RuntimeError(f"{spec.name}: the simulated site did not answer: {report.problem}")
            mapping = {stage: slot_name for stage, slot_name, _name, _position in SLOTS}
            services.application_map_slots(application=app, actor=admin, mapping=mapping, slots=report.slots)
        environments = {env.stage: env for env in app.environments.select_related("slot")}
        approver_group = Group.objects.get(name=APPROVER_GROUP)
        for stage, required in [(Stage.PREPRODUCTION, 1), (Stage.PRODUCTION, 2)]:
            if ApprovalPolicy.objects.filter(environment=environments[stage]).exists():
                continue
            weekend = FreezeWindow(
                name="Weekend freeze",
                kind=FreezeWindow.Kind.WEEKLY,
                timezone="Europe/London",
                start_weekday=4,
                start_time=time(16, 0),
                end_weekday=0,
                end_time=time(8, 0),
            )
            policy_update(
                environment=environments[stage],
                actor=admin,
                approvals_required=required,
                approver_groups=[approver_group],
                approver_users=[],
                forbid_self_approval=True,
                expiry_hours=72,
                reminder_hours=12,
                auto_promote=False,
                require_healthy_slot=True,
                freeze_windows=[weekend] if stage == Stage.PRODUCTION else [],
            )
        if not SimulatorSite.objects.filter(application=app, synthetic_rpm__gt=0).exists():
            simulator_set_synthetic_load(
                application=app,
                actor=admin,
                requests_per_minute=synthetic_rpm or DEMO_SYNTHETIC_RPM,
                reason="Demo: synthetic visitors, so canaries have traffic to analyse",
            )
    return app, {stage: env.slot for stage, env in environments.items()}, environments


def _ensure_users(joined: datetime, log: Callable[[str], None]) -> dict[str, Any]:
    User = get_user_model()
    wanted = [(name, password, role) for name, password, role in DEMO_USERS]
    wanted.append((SERVICE_ACCOUNT, None, Role.RELEASE_MANAGER.value))
    users: dict[str, Any] = {}
    made: list[str] = []
    with transaction.atomic():
        groups = {g.name: g for g in Group.objects.filter(name__in={role for _, _, role in wanted})}
        missing = {role for _, _, role in wanted} - set(groups)
        if missing:
            raise RuntimeError(f"Role groups {sorted(missing)} are missing; run `manage.py migrate` first.")
        for username, password, role in wanted:
            user = User.objects.filter(username=username).first()
            if user is None:
                first, last = _PEOPLE[username]
                user = User(
                    username=username,
                    first_name=first,
                    last_name=last,
                    email=f"{username}@example.com",
                    is_staff=username == "admin",
                    date_joined=joined,
                )
                if password is None:
                    user.set_unusable_password()
                else:
                    user.set_password(password)
                user.save()
                user.groups.add(groups[role])
                made.append(username)
            users[username] = user
    kept = [username for username in users if username not in made]
    done = [f"created {', '.join(made)}"] if made else []
    done += [f"left the existing {', '.join(kept)} as they are"] if kept else []
    log(f"Users: {'; '.join(done)}")
    return users


# --- the simulated cloud --------------------------------------------------------------------------------

# How the demo's versions behave on the simulator: (median, p95) latency in ms per application, a small
# error rate, and Checkout Web's build waiting in staging a little worse than production, so a canary
# has something to notice. Everything is healthy; 60 synthetic requests a minute make metrics exist
# from the first start (the first read fills in the last 15 minutes).
DEMO_LATENCY_MS = {"checkout-web": (120.0, 380.0), "customer-portal": (90.0, 260.0), "inventory-api": (35.0, 110.0)}
DEMO_ERROR_RATE = 0.002
DEMO_STAGING_ERROR_RATE = {"checkout-web": 0.012}
# Enough synthetic visitors that a canary at 5 % collects the 100 requests its analysis needs in ~90 s.
DEMO_SYNTHETIC_RPM = 1200


def _seed_simulator(app: Application, admin: Any) -> None:
    """Describe how each version the simulated site runs behaves (on its Simulator page, as an admin
    would); versions that have a profile already keep it."""
    median, p95 = DEMO_LATENCY_MS.get(app.slug, (80.0, 200.0))
    described = set(SimulatorVersionProfile.objects.filter(application=app).values_list("version", flat=True))
    for slot_name, version in SimulatorSlot.objects.filter(application=app).values_list("slot_name", "version"):
        if not version or version in described:
            continue
        described.add(version)
        worse = DEMO_STAGING_ERROR_RATE.get(app.slug) if slot_name == "staging" else None
        simulator_set_version_profile(
            application=app,
            actor=admin,
            version=version,
            error_rate=worse or DEMO_ERROR_RATE,
            latency_ms_median=median * (1.15 if worse else 1.0),
            latency_ms_p95=p95 * (1.3 if worse else 1.0),
            reason="Demo: a little worse than production, for a canary to notice" if worse else "Demo",
        )


def _deploy_rest_of_world(ctx: _Context, plan: AppPlan) -> None:
    """The pipeline's deploys to the slots no registration put a build on (test, dev)."""
    running = dict(SimulatorSlot.objects.filter(application=ctx.application).values_list("slot_name", "version"))
    for slot_name, version in plan.world.items():
        if running.get(slot_name) == version:
            continue
        with ctx.acting(plan.refreshed_at - timedelta(minutes=2), SERVICE_ACCOUNT) as ci:
            simulator_deploy(application=ctx.application, slot_name=slot_name, version=version, actor=ci)


# --- rings ------------------------------------------------------------------------------------------
RINGS_OF = "checkout-web"
STAFF_INSTANCE = AppSpec(
    name="Checkout Web (staff)",
    slug="checkout-web-staff",
    team="Payments",
    description="The staff's own instance of Checkout Web: ring 0 of its progressive exposure.",
    default_strategy=StrategyKind.BLUE_GREEN,
    canary_share=0.0,
    first_version=(2, 3, 0),
    history=0,
    incident="",
    incident_text="",
    incident_fix="",
    final="",
    registered_in_test=False,
    ticket="",
    features=(),
    fixes=(),
)


def _seed_rings(users: dict[str, Any], log: Callable[[str], None]) -> None:
    """Checkout Web's rings: its staff instance, then 10 % of customers (approved first), then everyone.

    The staff instance runs what Checkout Web runs (deployed by the pipeline); from now on registering a
    build for Checkout Web's staging stages it there too (the simulator plays the pipeline).
    """
    parent = Application.objects.filter(slug=RINGS_OF).first()
    if parent is None or parent.rings.exists():
        return
    admin = users["admin"]
    staff, _slots, _environments = _build_structure(
        STAFF_INSTANCE, clock.now(), admin, synthetic_rpm=DEMO_SYNTHETIC_RPM // 4
    )
    running = dict(SimulatorSlot.objects.filter(application=parent).values_list("slot_name", "version"))
    with origin(**_where(random.Random(f"slipway-demo-origin/{STAFF_INSTANCE.slug}"), SERVICE_ACCOUNT)):  # noqa: S311
        if running.get("production"):
            simulator_deploy(
                application=staff, slot_name="production", version=running["production"], actor=users[SERVICE_ACCOUNT]
            )
        staged = parent.releases.filter(version=running.get("staging", "")).first()
        if staged is not None:
            # The staff instance's production is judged by its own policy: its own release of the staged
            # build, which asks its approvers (registering it plays the pipeline's deploy to its staging slot).
            intake.release_register(
                application=staff,
                version=staged.version,
                actor=users[SERVICE_ACCOUNT],
                build_id=staged.build_id,
                commit_sha=staged.commit_sha,
                committed_at=staged.committed_at,
                branch=staged.branch,
                notes=f"Staged with {parent.name} {staged.version}, whose rings expose it here.",
                artifact_url=staged.artifact_url,
                deployed_slot=staff.slots.get(name="staging"),
            )
    with origin(via="seed"):
        _seed_simulator(staff, admin)
        first = Ring(application=parent, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=60)
        strategies_services().ring_save(ring=first, targets=[staff], actor=admin)
        early = Ring(
            application=parent,
            position=1,
            name="Early adopters",
            kind=Ring.Kind.TRAFFIC,
            traffic_percent=10,
            bake_seconds=90,
            requires_approval=True,
        )
        strategies_services().ring_save(ring=early, targets=[], actor=admin)
        services.slots_refresh(application=staff)
    log(f"{parent.name}: rings Staff ({staff.name}) → Early adopters (10 %, approved first) → everyone")


def strategies_services() -> Any:

    return operation_services


# --- entry point ----------------------------------------------------------------------------------------


@dataclass
class AppResult:
    name: str
    created: bool
    releases: int
    operations: int
    audit_events: int


def seed(*, log: Callable[[str], None] = print, now: datetime | None = None) -> list[AppResult]:
    """Create the demo organisation, skipping whatever already exists. Safe to run again."""
    now = (now or timezone.now()).replace(microsecond=0)
    start = now - timedelta(days=HISTORY_DAYS)
    users = _ensure_users(start - timedelta(days=7), log)
    results = []
    with _replaying():
        for spec in APPS:
            existing = Application.objects.filter(slug=spec.slug).first()
            if existing is not None and existing.releases.exists():
                result = AppResult(
                    spec.name,
                    False,
                    existing.releases.count(),
                    existing.operations.count(),
                    existing.audit_events.count(),
                )
                log(f"{spec.name}: already has {result.releases} releases, left as it is")
                results.append(result)
                continue
            plan = plan_application(spec, now)
            with notifications.muted(), transaction.atomic():  # history: nobody is told about it
                app, slots, environments = _build_structure(spec, start - timedelta(days=3), users["admin"])
                ctx = _Context(app, slots, environments, users, random.Random(f"slipway-demo-origin/{spec.slug}"))  # noqa: S311
                for rp in plan.releases:
                    _play_release(ctx, rp)
                _deploy_rest_of_world(ctx, plan)
                with ctx.acting(plan.refreshed_at - timedelta(minutes=1), "admin") as admin:
                    _seed_simulator(app, admin)
                with ctx.acting(plan.refreshed_at, None):
                    services.slots_refresh(application=app)
            result = AppResult(spec.name, True, app.releases.count(), app.operations.count(), app.audit_events.count())
            log(
                f"{spec.name}: {result.releases} releases, {result.operations} operations, "
                f"{result.audit_events} audit events"
            )
            results.append(result)
        with transaction.atomic():
            _seed_rings(users, log)

        seed_flags(log=log)
    return results
