from __future__ import annotations

import pytest

from accounts.models import Membership, Role
from conftest import make_user
from projects.tests.conftest import cluster, project  # noqa: F401  (shared fixtures; `viewer` is in the root conftest)


@pytest.fixture
def admin_user(personas):
    """dana, an admin of Acme."""
    user = make_user("dana@example.com")
    Membership.objects.create(user=user, organization=personas.org, role=Role.ADMIN)
    return user


@pytest.fixture
def operator(db):
    user = make_user("ops@example.com")
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user



