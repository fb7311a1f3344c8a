"""The Django admin is a window, not a door: governed rows cannot be changed there, and people's roles change
only through the roles service, with an audit event (before and after)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from portal.api.models import ApiToken
from portal.core.roles import Role
from releases.approvals.models import ApprovalPolicy
from releases.audit.models import AuditEvent
from releases.catalog.models import Release, ReleaseStatus
from tests.factories import ApiTokenFactory, ApprovalPolicyFactory, ReleaseFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client: Client) -> User:
    user = User.objects.create_superuser("root", "root@example.com", "correct-horse-battery-staple")
    client.force_login(user)
    return user


def test_an_approved_releases_version_cannot_be_changed_in_the_admin(client: Client, root: User) -> None:
    release = ReleaseFactory(status=ReleaseStatus.APPROVED, version="2.0.0", commit_sha="a" * 40)
    url = f"/admin/releases/release/{release.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="version"' not in page.text  # shown, not editable
    response = client.post(url, {"application": release.application_id, "version": "2.0.1", "commit_sha": "b" * 40})
    assert response.status_code == 403
    release.refresh_from_db()
    assert (release.version, release.commit_sha) == ("2.0.0", "a" * 40)
    assert client.post(f"/admin/releases/release/{release.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Release.objects.filter(pk=release.pk).exists()


def test_a_policy_cannot_be_loosened_in_the_admin(client: Client, root: User) -> None:
    policy = ApprovalPolicyFactory(approvals_required=2, forbid_self_approval=True)
    response = client.post(
        f"/admin/approvals/approvalpolicy/{policy.pk}/change/",
        {"environment": policy.environment_id, "approvals_required": 1, "expiry_hours": 72},
    )
    assert response.status_code == 403
    policy.refresh_from_db()
    assert (policy.approvals_required, policy.forbid_self_approval) == (2, True)
    assert client.get("/admin/approvals/approvalpolicy/add/").status_code == 403
    assert ApprovalPolicy.objects.count() == 1


def test_a_tokens_owner_and_scopes_cannot_be_changed_in_the_admin(client: Client, root: User) -> None:
    token = ApiTokenFactory(scopes=["read"])
    owner = token.owner_id
    response = client.post(
        f"/admin/api/apitoken/{token.pk}/change/", {"name": "x", "owner": root.pk, "scopes": '["operations:write"]'}
    )
    assert response.status_code == 403
    token.refresh_from_db()
    assert (token.owner_id, token.scopes) == (owner, ["read"])
    assert ApiToken.objects.count() == 1


def _user_form(user: User, roles: list[str]) -> dict[str, object]:
    return {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": user.email,
        "is_active": "on",
        "roles": roles,
    }


def test_roles_change_in_the_admin_through_the_roles_service_and_are_audited(client: Client, root: User) -> None:
    person = UserFactory(username="pat", roles=[Role.VIEWER])
    response = client.post(f"/admin/auth/user/{person.pk}/change/", _user_form(person, [Role.APPROVER.value]))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert set(person.groups.values_list("name", flat=True)) == {Role.APPROVER.value}
    event = AuditEvent.objects.get(action="user.roles_changed")
    assert (event.actor, event.before, event.after) == (root, {"roles": ["Viewer"]}, {"roles": ["Approver"]})
    # The raw groups and the superuser flag are not in the form: posting them changes nothing.
    admins = Group.objects.get(name=Role.ADMIN.value)
    client.post(
        f"/admin/auth/user/{person.pk}/change/",
        {
            **_user_form(person, [Role.APPROVER.value]),
            "is_superuser": "on",
            "groups": [admins.pk],
        },
    )
    person.refresh_from_db()
    assert not person.is_superuser and set(person.groups.values_list("name", flat=True)) == {Role.APPROVER.value}
    assert AuditEvent.objects.filter(action="user.roles_changed").count() == 1


def test_an_admin_cannot_change_their_own_roles(client: Client) -> None:
    admin = UserFactory(username="ada", roles=[Role.ADMIN], is_staff=True)
    admin.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(admin)
    response = client.post(
        f"/admin/auth/user/{admin.pk}/change/", _user_form(admin, [Role.ADMIN.value, Role.APPROVER.value])
    )
    assert response.status_code == 403
    assert set(admin.groups.values_list("name", flat=True)) == {Role.ADMIN.value}
    assert not AuditEvent.objects.filter(action="user.roles_changed").exists()
