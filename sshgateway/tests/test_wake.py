"""SSH to a sleeping service with the real OpenSSH client: the gateway wakes it through Sablier (kubesim's
stand-in) first, says so on stderr, then runs the command and returns its exit status."""

from __future__ import annotations

import pytest

from projects import suspension
from projects.tests.test_sleep_cluster import _kubesim_server, asleep, replicas, sleepy  # noqa: F401
from projects.tests.test_terminal_wake import sleeping_web
from sshgateway.tests.test_gateway import Terminal, gateway  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sleepy")]


def test_ssh_wakes_a_sleeping_service_then_runs_the_command(gateway, connected, kubesim,  # noqa: F811
                                                            personas, project):
    sleeping_web(kubesim, project, personas.owner, idle=60)
    key = gateway.key_for(personas.member)
    result = gateway.run(key, "shop.web", "hostname; exit 5")
    assert result.returncode == 5, result.stderr
    assert result.stdout.startswith("web-")
    assert result.stderr.splitlines()[0] == "waking web…"
    assert replicas(kubesim, "web") == 1

    # Awake now: no waking line.
    again = gateway.run(key, "shop.web", "true")
    assert (again.returncode, again.stderr) == (0, "")


def test_an_interactive_session_shows_waking_then_the_prompt(gateway, connected, kubesim,  # noqa: F811
                                                             personas, project):
    sleeping_web(kubesim, project, personas.owner, idle=60)
    term = Terminal(gateway.argv(gateway.key_for(personas.owner), "shop.web", "-tt"), cols=80, rows=24)
    assert "waking web… (the shell opens when a pod is ready)" in term.expect("# ", timeout=60)
    term.type("exit 2\r")
    assert term.close() == 2


def test_a_suspended_organizations_service_is_not_woken_over_ssh(gateway, connected, kubesim,  # noqa: F811
                                                                 personas, project):
    sleeping_web(kubesim, project, personas.owner, idle=60)
    assert suspension.suspend_organization(personas.org) == 1
    result = gateway.run(gateway.key_for(personas.owner), "shop.web", "true")
    assert result.returncode == 1 and "Shop is suspended" in result.stderr, result.stderr
    assert replicas(kubesim, "web") == 0
