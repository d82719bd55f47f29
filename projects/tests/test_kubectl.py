"""kubectl for a project (docs/kubectl.md): members' credentials, and Kubernetes API requests relayed through the
control plane and the agent tunnel as the project's ServiceAccounts. Real daphne, Redis, Celery, agent, kubesim;
the official kubernetes client and /usr/bin/kubectl as the members' tools."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward
from kubernetes.stream import stream as k8s_stream

from accounts.models import Membership, Role
from kubesim.tls import serving_files
from paas.testing.plane import poll
from paas.testing.processes import free_port, start_tls_daphne
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
    assert "piped through the tunnel" in seen
    kubeaccess.revoke_access(KubeAccess.objects.get(user=personas.member), personas.member)
    deadline = time.monotonic() + 15
    while session.is_open() and time.monotonic() < deadline:
        session.update(timeout=1)
    assert not session.is_open(), "the exec session is still open after the revocation"

    viewer_api = client.CoreV1Api(api_for(daphne_server, project, viewer_token))
    with pytest.raises(Exception) as exc:  # noqa: PT011 (the client raises its websocket handshake error)
        k8s_stream(viewer_api.connect_get_namespaced_pod_exec, pod, project.namespace, command=["echo", "hello"],
                   stderr=True, stdin=False, stdout=True, tty=False)
    assert "403" in str(exc.value)


# --- with /usr/bin/kubectl -------------------------------------------------------------------------------------

KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def tls_plane(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    """A second daphne serving HTTPS (kubectl sends its token only over TLS), with its CA for the kubeconfigs."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key, ca_pem = serving_files("127.0.0.1", directory)
    ca = directory / "ca.pem"
    ca.write_text(ca_pem)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        proc, _ = start_tls_daphne(cert, key, port, SITE_URL=url, KUBECTL_CA_FILE=str(ca))
    yield SimpleNamespace(url=url, ca=ca)
    proc.stop()


def kubeconfig_file(settings, tls_plane, tmp_path, project, user) -> Path:
    settings.SITE_URL, settings.KUBECTL_CA_FILE = tls_plane.url, str(tls_plane.ca)
    _, token = kubeaccess.create_access(user, project, f"{user.email} kubectl")
    path = tmp_path / f"{user.pk}.kubeconfig"
    path.write_text(kubeaccess.kubeconfig(project, token, user))
    return path


def kubectl(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(config), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_kubectl_gets_logs_and_execs_in_the_namespace_and_nothing_more(connected, tls_plane, settings, tmp_path,
                                                                       personas, project, viewer):
    deployed(project, personas.owner)
    config = kubeconfig_file(settings, tls_plane, tmp_path, project, personas.member)
    got = kubectl(config, "get", "pods", "-o", "name")
    assert got.returncode == 0, got.stderr
    pods = got.stdout.split()
    assert len(pods) == 3 and all(p.startswith("pod/") for p in pods)
    web = next(p.removeprefix("pod/") for p in pods if p.startswith("pod/web-"))
    logs = kubectl(config, "logs", web)
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr
    run = kubectl(config, "exec", web, "--", "echo", "hello from kubectl")
    assert (run.returncode, run.stdout) == (0, "hello from kubectl\n"), run.stderr

    secrets = kubectl(config, "get", "secrets")
    assert secrets.returncode == 1
    assert (f'User "system:serviceaccount:{project.namespace}:project-deployer" cannot list resource "secrets"'
            in secrets.stderr)
    delete = kubectl(config, "delete", "deployment", "web")
    assert delete.returncode == 1 and 'cannot delete resource "deployments"' in delete.stderr
    elsewhere = kubectl(config, "get", "pods", "-n", "kube-system")
    assert elsewhere.returncode == 1 and "outside this project's namespace" in elsewhere.stderr
    assert kubectl(config, "get", "pods", "-o", "name").stdout.split() == pods  # nothing was deleted

    viewer_config = kubeconfig_file(settings, tls_plane, tmp_path, project, viewer)
    assert kubectl(viewer_config, "get", "pods", "-o", "name").stdout.split() == pods
    refused_exec = kubectl(viewer_config, "exec", web, "--", "echo", "hello")
    assert refused_exec.returncode == 1 and "hello" not in refused_exec.stdout


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
def test_revoking_ends_an_open_kubectl_watch_and_log_follow(connected, tls_plane, settings, tmp_path, personas,
                                                            project):
    deployed(project, personas.owner)
    config = kubeconfig_file(settings, tls_plane, tmp_path, project, personas.member)
    web = next(p.removeprefix("pod/") for p in kubectl(config, "get", "pods", "-o", "name").stdout.split()
               if p.startswith("pod/web-"))
    out, logs_out = tmp_path / "watch.out", tmp_path / "logs.out"
    with out.open("w") as sink, logs_out.open("w") as logs_sink:
        proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(config), "get", "pods", "-w", "-o", "name"],
                                stdout=sink, stderr=subprocess.STDOUT, text=True)
        follow = subprocess.Popen([KUBECTL, "--kubeconfig", str(config), "logs", "-f", web],
                                  stdout=logs_sink, stderr=subprocess.STDOUT, text=True)
    try:
        poll(lambda: out.read_text().count("pod/") >= 3, 30, "kubectl to list the pods")
        poll(lambda: logs_out.read_text().strip(), 30, "kubectl logs -f to print the first lines")
        time.sleep(1)  # past the list, into the watch
        assert proc.poll() is None and follow.poll() is None
        kubeaccess.revoke_access(KubeAccess.objects.get(user=personas.member), personas.member)
        proc.wait(timeout=20)
        follow.wait(timeout=20)
    finally:
        for process in (proc, follow):
            if process.poll() is None:
                process.kill()
    again = kubectl(config, "get", "pods")
    assert again.returncode == 1 and "Unauthorized" in again.stderr


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_deployer_port_forwards_and_a_viewer_may_not(connected, daphne_server, personas, project, viewer):
    deployed(project, personas.owner)
    _, member_token = kubeaccess.create_access(personas.member, project, "laptop")
    _, viewer_token = kubeaccess.create_access(viewer, project, "laptop")
    member = client.CoreV1Api(api_for(daphne_server, project, member_token))
    pod = next(p for p in member.list_namespaced_pod(project.namespace).items
               if p.metadata.labels["paas.dev/service"] == "web")
    port = pod.spec.containers[0].ports[0].container_port
    forward = portforward(member.connect_get_namespaced_pod_portforward, pod.metadata.name, project.namespace,
                          ports=str(port))
    sock = forward.socket(port)
    sock.settimeout(15)
    sock.sendall(b"GET /through-the-tunnel HTTP/1.1\r\nHost: web\r\n\r\n")
    answer = b""
    while not answer.partition(b"\r\n\r\n")[2].endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert f"{pod.metadata.name} on port {port}: GET /through-the-tunnel".encode() in answer
    forward.close()

    viewer_api = client.CoreV1Api(api_for(daphne_server, project, viewer_token))
    with pytest.raises(Exception) as exc:  # noqa: PT011 (the client raises its websocket handshake error)
        portforward(viewer_api.connect_get_namespaced_pod_portforward, pod.metadata.name, project.namespace,
                    ports=str(port))
    assert "403" in str(exc.value)
