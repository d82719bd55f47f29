"""kubectl for a project (docs/kubectl.md): members' credentials, and Kubernetes API requests relayed through the
control plane and the agent tunnel as the project's ServiceAccounts. Real daphne, Redis, Celery, agent, kubesim;
the official kubernetes client and /usr/bin/kubectl as the members' tools."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream as k8s_stream

from accounts.models import Membership, Role
from paas.testing.plane import poll
from projects import kubeaccess, releases
from projects.kubeaccess import PROXY_PREFIX
from projects.models import KubeAccess, ReleaseStatus


def deployed(project, user) -> None:
    release = releases.deploy(project, user)

    def done() -> bool:
        release.refresh_from_db()
        return release.status in (ReleaseStatus.LIVE, ReleaseStatus.FAILED)

    poll(done, 90, "the release to finish")
    assert release.status == ReleaseStatus.LIVE, release.error


def api_for(base_url: str, project, token: str) -> client.ApiClient:
    cfg = client.Configuration(host=f"{base_url}{PROXY_PREFIX}{project.uid}")
    cfg.api_key, cfg.api_key_prefix = {"authorization": token}, {"authorization": "Bearer"}
    return client.ApiClient(cfg)


def refused(call, code: int) -> str:
    with pytest.raises(ApiException) as exc:
        call()
    assert exc.value.status == code, exc.value.body
    return exc.value.body if isinstance(exc.value.body, str) else exc.value.body.decode()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_member_reads_the_namespace_with_the_official_client(connected, daphne_server, personas, project, viewer):
    deployed(project, personas.owner)
    _, member_token = kubeaccess.create_access(personas.member, project, "laptop")
    api = api_for(daphne_server, project, member_token)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(project.namespace).items
    assert sorted(p.metadata.labels["paas.dev/service"] for p in pods) == ["api", "web", "worker"]
    assert [d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(project.namespace).items] \
        == ["api", "web", "worker"]
    body = refused(lambda: core.list_namespaced_secret(project.namespace), 403)
    assert (f'User \\"system:serviceaccount:{project.namespace}:project-deployer\\" cannot list resource '
            f'\\"secrets\\"') in body
    body = refused(lambda: client.AppsV1Api(api).delete_namespaced_deployment("web", project.namespace), 403)
    assert "cannot delete resource" in body
    body = refused(lambda: core.list_namespaced_pod("kube-system"), 403)
    assert "outside this project's namespace" in body
    body = refused(lambda: core.list_node(), 403)
    api.close()


class Watcher(threading.Thread):
    """A watch on the namespace's ConfigMaps through the proxy, in a thread; `events` are (type, name)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.events: list[tuple[str, str]] = []
        self.ended = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            core = client.CoreV1Api(self.api)
            for event in watch.Watch().stream(core.list_namespaced_config_map, self.namespace, timeout_seconds=120,
                                               _request_timeout=180):
                self.events.append((event["type"], event["object"].metadata.name))
        except Exception as exc:  # noqa: BLE001 (kept for the test to look at)
            self.error = exc
        finally:
            self.ended.set()


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_watch_sees_changes_and_ends_at_once_when_the_credential_is_revoked(connected, daphne_server, kube_api,
                                                                              personas, project):
    deployed(project, personas.owner)
    access, token = kubeaccess.create_access(personas.member, project, "laptop")
    watcher = Watcher(api_for(daphne_server, project, token), project.namespace)
    watcher.start()
    poll(lambda: watcher.events, 30, "the watch's initial ADDED events")
    client.CoreV1Api(kube_api).create_namespaced_config_map(project.namespace, configmap("made-later"))
    poll(lambda: ("ADDED", "made-later") in watcher.events, 30, "the watch to see the new ConfigMap")
    assert not watcher.ended.is_set()
    kubeaccess.revoke_access(access, personas.member)
    assert watcher.ended.wait(15), "the watch is still open after the revocation"
    assert refused(lambda: client.CoreV1Api(api_for(daphne_server, project, token))
                   .list_namespaced_pod(project.namespace), 401)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_leaving_the_organization_or_losing_the_deploy_role_ends_open_watches(connected, daphne_server, personas,
                                                                               project, viewer):
    deployed(project, personas.owner)
    _, member_token = kubeaccess.create_access(personas.member, project, "laptop")
    _, viewer_token = kubeaccess.create_access(viewer, project, "laptop")
    member_watch = Watcher(api_for(daphne_server, project, member_token), project.namespace)
    viewer_watch = Watcher(api_for(daphne_server, project, viewer_token), project.namespace)
    member_watch.start()
    viewer_watch.start()
    poll(lambda: member_watch.events and viewer_watch.events, 30, "both watches to start")

    # A role change changes who the member acts as: the open watch (as the deployer) ends; new requests are the
    # viewer's.
    membership = Membership.objects.get(user=personas.member, organization=personas.org)
    membership.role = Role.VIEWER
    membership.save()
    assert member_watch.ended.wait(15), "the member's watch is still open after the role change"
    assert not viewer_watch.ended.is_set()
    core = client.CoreV1Api(api_for(daphne_server, project, member_token))
    body = refused(lambda: core.list_namespaced_secret(project.namespace), 403)
    assert f"system:serviceaccount:{project.namespace}:project-viewer" in body

    Membership.objects.get(user=viewer, organization=personas.org).delete()
    assert viewer_watch.ended.wait(15), "the former viewer's watch is still open"
    assert refused(lambda: client.CoreV1Api(api_for(daphne_server, project, viewer_token))
                   .list_namespaced_pod(project.namespace), 401)
    assert not KubeAccess.objects.active().filter(user=viewer).exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_deployer_execs_with_stdin_and_a_viewer_may_not(connected, daphne_server, personas, project, viewer):
    deployed(project, personas.owner)
    _, member_token = kubeaccess.create_access(personas.member, project, "laptop")
    _, viewer_token = kubeaccess.create_access(viewer, project, "laptop")
    member = client.CoreV1Api(api_for(daphne_server, project, member_token))
    pod = next(p.metadata.name for p in member.list_namespaced_pod(project.namespace).items
               if p.metadata.labels["paas.dev/service"] == "web")
    out = k8s_stream(member.connect_get_namespaced_pod_exec, pod, project.namespace, command=["echo", "hello"],
                     stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "hello\n"
    session = k8s_stream(member.connect_get_namespaced_pod_exec, pod, project.namespace, command=["cat"],
                         stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    session.write_stdin("piped through the tunnel\n")
    seen = ""
    deadline = time.monotonic() + 15
    while "piped through the tunnel" not in seen and time.monotonic() < deadline:
        session.update(timeout=1)
        seen += session.read_stdout()
    session.close()
    assert "piped through the tunnel" in seen

    viewer_api = client.CoreV1Api(api_for(daphne_server, project, viewer_token))
    with pytest.raises(Exception) as exc:  # noqa: PT011 (the client raises its websocket handshake error)
        k8s_stream(viewer_api.connect_get_namespaced_pod_exec, pod, project.namespace, command=["echo", "hello"],
                   stderr=True, stdin=False, stdout=True, tty=False)
    assert "403" in str(exc.value)
