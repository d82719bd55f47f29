from __future__ import annotations

import pytest

from clusters import services
from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401


@pytest.fixture
def operator(db):
    from conftest import make_user

    user = make_user("olga@example.com")
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def cluster(db):
    return services.create_cluster("Falkenstein 1", "apps.example.com", "ssh.example.com:2222")
