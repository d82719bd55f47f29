"""The `exec` stream op: a real tunnel (to a stand-in control plane) and kubesim's exec over the official client."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent import protocol as p
from agent.k8s import NAMESPACE, POD, Kube
from agent.tests.conftest import agent_tunnel
from agent.tests.test_tunnel import FakeControlPlane
from kubesim.streams import MISSING_ANNOTATION

NS = "acme-web"
NAMES = {"paas.dev/organization": "acme", "paas.dev/project": "web"}
LABELS = {**NAMES, "paas.dev/project-uid": "uid-1"}
MANAGED = {"app.kubernetes.io/managed-by": "paas"}


def make_pod(kube, name: str, *, namespace: str = NS, labels: dict | None = None, annotations: dict | None = None,
             containers: tuple[str, ...] = ("app",)) -> None:
    # Pods carry the project's names, not its uid: that marks the namespace only (agent.reconcile).
    pod_labels = {**NAMES, **MANAGED, "paas.dev/service": "web"} if labels is None else labels
    kube.apply(POD, {"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "labels": pod_labels, "annotations": annotations or {}},
                     "spec": {"containers": [{"name": c, "image": "nginx:1.27"} for c in containers]}}, namespace)


@pytest.fixture
def project(kube, kubesim, tmp_path):
    """Pods made by an administrator; the op runs as the agent's ServiceAccount (`kube`), under its RBAC rules."""
    admin = Kube(str(kubesim.write_kubeconfig(tmp_path / "admin-kubeconfig")))
    _make_project(admin, kubesim)
    admin.close()
    return kube


def _make_project(kube, kubesim) -> None:
    kube.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": NS, "labels": {**LABELS, **MANAGED}}})
    kube.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "other-app", "labels": {"paas.dev/project": "app", **MANAGED}}})
    # Same organization and project names, another project's uid (a project deleted and created again).
    kube.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "acme-web-2", "labels": {**LABELS, "paas.dev/project-uid": "uid-2", **MANAGED}}})
    make_pod(kube, "web-1", namespace="acme-web-2")
    make_pod(kube, "web-1", containers=("app", "sidecar"))
    make_pod(kube, "web-bare", annotations={MISSING_ANNOTATION: "bash"})
    make_pod(kube, "web-none", annotations={MISSING_ANNOTATION: "bash,sh"})
    make_pod(kube, "web-foreign-labels", labels={**MANAGED, "paas.dev/project": "other"})
    make_pod(kube, "intruder", namespace="other-app", labels={**LABELS, **MANAGED, "paas.dev/service": "web"})
    for namespace, name in ((NS, "web-1"), (NS, "web-bare"), (NS, "web-none"), ("other-app", "intruder")):
        kubesim.wait_for(lambda n=name, ns=namespace: (kube.get(POD, n, ns).get("status") or {}).get(
            "phase") == "Running")


class Exec:
    """The control plane's end of one exec stream, speaking the channel bytes of agent.protocol."""

    def __init__(self, plane: FakeControlPlane, sid: int) -> None:
        self.plane, self.sid = plane, sid
        self.ws = plane.connections[0]
        self.out: dict[int, bytes] = {p.EXEC_STDOUT: b"", p.EXEC_STDERR: b""}
        self.status: dict | None = None
        self.close_reason: str | None = None

    async def open(self, **payload) -> Exec:
        payload = {"namespace": NS, "labels": LABELS, "pod": "web-1", "tty": True, "stdin": True, **payload}
        await self.ws.send(p.encode({"type": "stream.open", "id": self.sid, "op": "exec", "payload": payload,
                                     "window": 1 << 20}))
        return self

    async def send(self, channel: int, data: bytes = b"") -> None:
        await self.ws.send(p.pack_data(self.sid, bytes([channel]) + data))

    async def read_until(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                _, message = await self.plane.inbox.get()
                if isinstance(message, bytes):
                    sid, data = p.unpack_data(message)
                    if sid != self.sid:
                        continue
                    if data[0] == p.EXEC_STATUS:
                        self.status = json.loads(data[1:])
                    else:
                        self.out[data[0]] += data[1:]
                elif message.get("type") == "stream.close" and message.get("id") == self.sid:
                    self.close_reason = message.get("reason", "")

    async def finish(self) -> None:
        await self.read_until(lambda: self.close_reason is not None)

    @property
    def stdout(self) -> str:
        return self.out[p.EXEC_STDOUT].decode()


@pytest.fixture
async def plane(project):
    async with agent_tunnel(project) as cp:
        yield cp


async def test_a_tty_shell_echoes_input_runs_commands_and_reports_the_exit_status(plane):
    session = await Exec(plane, 1).open(container="sidecar", cols=120, rows=40)
    await session.read_until(lambda: "# " in session.stdout)
    await session.send(p.EXEC_STDIN, b"stty size\r")
    await session.read_until(lambda: "40 120" in session.stdout)  # the size from the open payload
    await session.send(p.EXEC_RESIZE, json.dumps({"Width": 100, "Height": 30}).encode())
    await session.send(p.EXEC_STDIN, b"stty size; hostname\r")
    await session.read_until(lambda: "30 100\r\nweb-1\r\n" in session.stdout)
    assert "stty size; hostname\r\n" in session.stdout  # the terminal echoed what was typed
    await session.send(p.EXEC_STDIN, b"exit 3\r")
    await session.finish()
    assert session.status == {"exit_code": 3, "message": session.status["message"]}
    assert session.close_reason == ""


async def test_a_command_without_tty_keeps_stdout_and_stderr_apart(plane):
    session = await Exec(plane, 2).open(command=["sh", "-c", "echo out; cat /nope"], tty=False, stdin=False)
    await session.finish()
    assert session.stdout == "out\n"
    assert "No such file" in session.out[p.EXEC_STDERR].decode()
    assert session.status["exit_code"] == 1


async def test_stdin_reaches_the_command_until_eof(plane):
    session = await Exec(plane, 3).open(command=["cat"], tty=False)
    await session.send(p.EXEC_STDIN, b"hello ")
    await session.send(p.EXEC_STDIN, b"world")
    await session.read_until(lambda: session.stdout == "hello world")
    await session.send(p.EXEC_STDIN_EOF)
    await session.finish()
    assert session.status == {"exit_code": 0, "message": ""}


async def test_the_shell_falls_back_to_sh_and_keeps_what_was_typed(plane):
    session = await Exec(plane, 4).open(pod="web-bare", tty=False)
    await session.send(p.EXEC_STDIN, b"echo from-sh\nexit 0\n")
    await session.finish()
    assert session.stdout == "from-sh\n"
    assert session.status["exit_code"] == 0


async def test_a_container_without_any_shell_gets_a_message_and_127(plane):
    session = await Exec(plane, 5).open(pod="web-none")
    await session.finish()
    assert "neither bash nor sh is available in container app of pod web-none" in session.out[
        p.EXEC_STDERR].decode()
    assert session.status["exit_code"] == 127


async def test_a_missing_command_reports_why(plane):
    session = await Exec(plane, 6).open(pod="web-none", command=["sh", "-c", "true"])
    await session.finish()
    assert session.status["exit_code"] == 127
    assert 'exec: "sh": executable file not found' in session.status["message"]


@pytest.mark.parametrize(("payload", "reason"), [
    ({"namespace": "other-app", "pod": "intruder"}, "forbidden: namespace other-app does not belong"),
    ({"pod": "web-foreign-labels"}, "forbidden: pod web-foreign-labels does not belong to this project"),
    ({"pod": "web-1", "service": "db"}, "forbidden: pod web-1 does not belong to this service"),
    ({"pod": "kube-apiserver", "namespace": "kube-system"}, "forbidden: namespace kube-system"),
    ({"namespace": "acme-web-2"}, "forbidden: namespace acme-web-2 does not belong"),
    ({"labels": {"paas.dev/organization": "acme", "paas.dev/project": "web"}},
     "bad request: 'labels' must carry paas.dev/project-uid"),
    ({"pod": "gone"}, "not found: there is no pod gone in acme-web"),
    ({"container": "db"}, "pod web-1 has no container db; it has: app, sidecar"),
    ({"command": []}, "bad request: 'command' must be a non-empty list"),
    ({"cols": "wide"}, "bad request: 'cols' must be an integer"),
])
async def test_pods_outside_the_project_and_bad_requests_are_refused(plane, payload, reason):
    session = await Exec(plane, 7).open(**{"command": ["hostname"], **payload})
    await session.finish()
    assert session.close_reason.startswith(reason)
    assert session.status is None and session.stdout == ""


async def test_closing_the_stream_ends_the_process(plane, kubesim):
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handler(exec_session) -> int:
        try:
            while await exec_session.read() is not None:
                pass
        finally:
            loop.call_soon_threadsafe(ended.set)
        return 0

    kubesim.set_exec_handler(handler)
    session = await Exec(plane, 8).open(command=["sleep", "1000"])
    await asyncio.sleep(0.3)
    await session.ws.send(p.encode({"type": "stream.close", "id": 8}))
    await asyncio.wait_for(ended.wait(), 5)


async def test_service_pods_lists_a_service_s_pods_and_nothing_else(plane):
    ws = plane.connections[0]
    await ws.send(p.encode({"type": "rpc", "id": 9, "op": "service_pods",
                            "payload": {"namespace": NS, "labels": LABELS, "service": "web"}}))
    _, reply = await plane.next_message("rpc.reply")
    pods = {pod["name"]: pod for pod in reply["result"]}
    assert set(pods) == {"web-1", "web-bare", "web-none"}
    assert pods["web-1"]["containers"] == ["app", "sidecar"] and pods["web-1"]["phase"] == "Running"
