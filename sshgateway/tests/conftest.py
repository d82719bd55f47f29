from __future__ import annotations

import pytest

from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401
from projects.tests.conftest import THREE_SERVICES, cluster, connected, project  # noqa: F401


@pytest.fixture(autouse=True)
def _host_key_in_tmp(settings, tmp_path):
    settings.SSH_HOST_KEY_PATH = tmp_path / "ssh_host_ed25519_key"
    settings.SSH_PUBLIC_HOST = "ssh.example.net"
    settings.SSH_PUBLIC_PORT = 2222
