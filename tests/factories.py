"""factory_boy factories for the release domain.

Factories write rows directly (status included), which is what the constraint and lifecycle
tests need to set up a starting state. Tests that are about a *change* call the services.
Releases and operations are made inside `arranging_state()`: outside it their models refuse a
status their writer did not set (portal.core.status_guard).
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth.models import Group, User
from factory.django import DjangoModelFactory, Password

from portal.api.models import ApiToken
from portal.core import clock
from portal.core.roles import Role
from portal.core.status_guard import arranging_state
from releases.approvals.models import ApprovalDecision, ApprovalPolicy, ApprovalRequest, FreezeWindow
from releases.catalog.models import (
    Application,
    Environment,
    Provider,
    Release,
    ReleaseStatus,
    SimulatorSlot,
    Slot,
    Stage,
)
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus, OperationStep

PASSWORD = "correct-horse-battery-staple"

# The layout every factory-made application gets: (stage, environment name, slot name), in promotion order.
# The production stage runs in App Service's main slot, which is called "production".
STANDARD_LAYOUT: list[tuple[Stage, str, str]] = [
    (Stage.DEV, "Development", "dev"),
    (Stage.TEST, "Test", "test"),
    (Stage.PREPRODUCTION, "Pre-production", "staging"),
    (Stage.PRODUCTION, "Production", "production"),
]


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = Password(PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: list[Role] | None, **kwargs: object) -> None:
        """`UserFactory(roles=[Role.APPROVER])` puts the user in that role's group (made by migration 0002)."""
        if create and extracted:
            self.groups.add(*(Group.objects.get(name=Role(role).value) for role in extracted))


def add_environments(application: Application) -> list[Environment]:
    """Give `application` the standard four slots and an environment bound to each, in promotion order."""
    environments = []
    for position, (stage, name, slot_name) in enumerate(STANDARD_LAYOUT, start=1):
        is_production = stage == Stage.PRODUCTION
        slot = Slot.objects.create(
            application=application,
            name=slot_name,
            hostname=f"{application.slug}{'' if is_production else '-' + slot_name}.azurewebsites.net",
            is_production=is_production,
            traffic_percent=100 if is_production else 0,
        )
        environments.append(
            Environment.objects.create(
                application=application, stage=stage, name=name, position=position * 10, slot=slot
            )
        )
    return environments


class ApplicationFactory(DjangoModelFactory):
    """An application on the simulator with the standard four slots and environments.

    `ApplicationFactory(environments=False)` makes a bare one; `ApplicationFactory(azure=True)` one on Azure.
    """

    class Meta:
        model = Application
        skip_postgeneration_save = True

    class Params:
        azure = factory.Trait(
            provider=Provider.AZURE,
            azure_subscription_id="00000000-0000-0000-0000-000000000000",
            azure_resource_group="rg-slipway-tests",
            azure_site_name=factory.LazyAttribute(lambda app: f"site-{app.slug}"),
        )

    name = factory.Sequence(lambda n: f"Application {n}")
    slug = factory.Sequence(lambda n: f"application-{n}")
    team = "Payments"

    @factory.post_generation
    def environments(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        if create and extracted is not False:
            add_environments(self)


class SlotFactory(DjangoModelFactory):
    class Meta:
        model = Slot

    application = factory.SubFactory(ApplicationFactory, environments=False)
    name = factory.Sequence(lambda n: f"slot-{n}")


class EnvironmentFactory(DjangoModelFactory):
    class Meta:
        model = Environment

    application = factory.SubFactory(ApplicationFactory, environments=False)
    stage = Stage.DEV
    name = factory.Sequence(lambda n: f"Environment {n}")
    position = factory.Sequence(lambda n: n + 1)
    slot = factory.SubFactory(SlotFactory, application=factory.SelfAttribute("..application"))


class StateArrangingFactory(DjangoModelFactory):
    """A factory for a state machine's rows: it creates them in whatever status the test asks for."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> object:
        with arranging_state():
            return super()._create(model_class, *args, **kwargs)


class ReleaseFactory(StateArrangingFactory):
    class Meta:
        model = Release

    application = factory.SubFactory(ApplicationFactory)
    version = factory.Sequence(lambda n: f"1.0.{n}")
    status = ReleaseStatus.REGISTERED
    created_at = factory.LazyFunction(clock.now)
    status_changed_at = factory.SelfAttribute("created_at")


def production_environment(application: Application) -> Environment:
    return application.environments.get(stage=Stage.PRODUCTION)


class ApprovalPolicyFactory(DjangoModelFactory):
    class Meta:
        model = ApprovalPolicy
        skip_postgeneration_save = True

    environment = factory.LazyFunction(lambda: production_environment(ApplicationFactory()))

    @factory.post_generation
    def approver_groups(self, create: bool, extracted: list[Group] | None, **kwargs: object) -> None:
        """`ApprovalPolicyFactory(approver_groups=[group])` names the groups whose members may approve."""
        if create and extracted:
            self.approver_groups.set(extracted)

    @factory.post_generation
    def approver_users(self, create: bool, extracted: list[User] | None, **kwargs: object) -> None:
        if create and extracted:
            self.approver_users.set(extracted)


class FreezeWindowFactory(DjangoModelFactory):
    """A dated freeze (a holiday); pass the weekly fields with kind="weekly" for a recurring one."""

    class Meta:
        model = FreezeWindow

    policy = factory.SubFactory(ApprovalPolicyFactory)
    name = "Holiday freeze"
    kind = FreezeWindow.Kind.DATED
    starts_at = factory.LazyFunction(clock.now)
    ends_at = factory.LazyAttribute(lambda window: window.starts_at + timedelta(days=3))


class ApprovalRequestFactory(DjangoModelFactory):
    class Meta:
        model = ApprovalRequest

    release = factory.SubFactory(ReleaseFactory, status=ReleaseStatus.AWAITING_APPROVAL)
    environment = factory.LazyAttribute(lambda request: production_environment(request.release.application))
    approvals_required = 1
    created_at = factory.LazyFunction(clock.now)
    expires_at = factory.LazyAttribute(lambda request: request.created_at + timedelta(hours=72))
    settled_at = None
    waited = factory.LazyAttribute(
        lambda request: request.settled_at - request.created_at if request.settled_at else None
    )


class ApprovalDecisionFactory(DjangoModelFactory):
    class Meta:
        model = ApprovalDecision

    request = factory.SubFactory(ApprovalRequestFactory)
    approver = factory.SubFactory(UserFactory)
    verdict = ApprovalDecision.Verdict.APPROVE
    decided_at = factory.LazyFunction(clock.now)


class OperationFactory(StateArrangingFactory):
    """A promotion into production; `finished_at` follows the status (set exactly when it is terminal)."""

    class Meta:
        model = Operation

    release = factory.SubFactory(ReleaseFactory, status=ReleaseStatus.APPROVED)
    application = factory.SelfAttribute("release.application")
    environment = factory.LazyAttribute(lambda operation: production_environment(operation.release.application))
    kind = Operation.Kind.PROMOTE
    status = OperationStatus.PENDING
    created_at = factory.LazyFunction(clock.now)
    finished_at = factory.LazyAttribute(lambda operation: None if operation.status in OPERATION_ACTIVE else clock.now())


class OperationStepFactory(DjangoModelFactory):
    class Meta:
        model = OperationStep

    operation = factory.SubFactory(OperationFactory)
    position = factory.Sequence(lambda n: n + 1)
    kind = "swap"
    title = "Swap staging into production"


class SimulatorSlotFactory(DjangoModelFactory):
    class Meta:
        model = SimulatorSlot

    application = factory.SubFactory(ApplicationFactory)
    slot_name = factory.Sequence(lambda n: f"slot-{n}")
    version = "1.0.0"


def add_simulated_site(application: Application, versions: dict[str, str] | None = None) -> list[SimulatorSlot]:
    """Give `application` its simulated cloud: one SimulatorSlot per slot of the standard layout."""
    versions = versions or {"dev": "1.2.0-dev.1", "test": "1.1.0", "staging": "1.1.0", "production": "1.0.0"}
    return [
        SimulatorSlot.objects.create(application=application, slot_name=name, version=versions.get(name, ""))
        for _stage, _env, name in STANDARD_LAYOUT
    ]


class ApiTokenFactory(DjangoModelFactory):
    class Meta:
        model = ApiToken

    name = "pipeline"
    owner = factory.SubFactory(UserFactory)
    prefix = factory.Sequence(lambda n: f"slp{n:08d}")
    secret_hash = factory.Sequence(lambda n: f"{n:064x}")
    created_at = factory.LazyFunction(clock.now)
