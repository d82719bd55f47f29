"""pods/log and pods/exec/attach over the channel.k8s.io WebSocket protocols, with the official client."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream, ws_client

from kubesim.testing import ExecSession, KubeSim
from kubesim.tests.helpers import pod, status_body


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def _running(kubesim: KubeSim, core: client.CoreV1Api, name: str = "p", containers: list[str] | None = None,
             env: list[dict] | None = None) -> None:
    body = pod(name, containers=containers)
    if env:
        body["spec"]["containers"][0]["env"] = env
    core.create_namespaced_pod("default", body)
    kubesim.wait_for(lambda: (kubesim.get("Pod", "default", name) or {}).get("status", {}).get("phase") == "Running",
                     3)


def test_it_serves_logs_with_tail_and_timestamps(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """pods/log returns text; tailLines keeps the last N; timestamps prefixes RFC3339Nano stamps."""
    _running(kubesim, core)
    kubesim.push_logs("default", "p", ["one", "two", "three"])
    full = core.read_namespaced_pod_log("p", "default")
    assert full.endswith("one\ntwo\nthree\n") and "started" in full  # default generator lines come first
    assert core.read_namespaced_pod_log("p", "default", tail_lines=2) == "two\nthree\n"
    stamped = core.read_namespaced_pod_log("p", "default", tail_lines=1, timestamps=True)
    stamp, _, text = stamped.partition(" ")
    assert text == "three\n" and stamp.endswith("Z") and len(stamp) == 30


def test_a_deleted_pod_terminates_first_and_its_log_stays_readable_until_the_kubelet_removes_it(
        kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """As a kubelet: a deleted pod is Terminating (deletionTimestamp, grace period) while its processes stop, its
    log is still served, then it is gone. gracePeriodSeconds=0 removes a pod at once."""
    _running(kubesim, core)
    kubesim.push_logs("default", "p", ["last words"])
    core.delete_namespaced_pod("p", "default")
    terminating = core.read_namespaced_pod("p", "default")
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 30
    assert core.read_namespaced_pod_log("p", "default", tail_lines=1) == "last words\n"
    kubesim.wait_for(lambda: kubesim.get("Pod", "default", "p") is None, 5)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod_log("p", "default")
    assert gone.value.status == 404

    _running(kubesim, core, "q")
    core.delete_namespaced_pod("q", "default", grace_period_seconds=0)
    assert kubesim.get("Pod", "default", "q") is None


def test_it_takes_startup_lines_from_a_configurable_generator(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """A test can choose what containers log when they start (the source of pods/log lines)."""
    kubesim.set_log_generator(lambda pod, container: [f"{pod['metadata']['name']}/{container} up", "ready"])
    _running(kubesim, core)
    assert core.read_namespaced_pod_log("p", "default") == "p/main up\nready\n"


def test_it_filters_logs_by_since_seconds(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """sinceSeconds only returns lines newer than the window."""
    _running(kubesim, core)
    kubesim.push_logs("default", "p", ["old"])
    time.sleep(1.1)
    kubesim.push_logs("default", "p", ["new"])
    assert core.read_namespaced_pod_log("p", "default", since_seconds=1) == "new\n"


def test_it_requires_a_container_for_multi_container_pods(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """Logs of a multi-container pod without `container` are 400 naming the choices."""
    _running(kubesim, core, containers=["app", "sidecar"])
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("p", "default")
    assert exc.value.status == 400
    assert "a container name must be specified for pod p, choose one of: [app sidecar]" in \
        status_body(exc.value)["message"]
    kubesim.push_logs("default", "p", ["from sidecar"], container="sidecar")
    assert core.read_namespaced_pod_log("p", "default", container="sidecar").endswith("from sidecar\n")


def test_it_answers_previous_only_after_a_restart(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """previous=true is 400 when the container never restarted."""
    _running(kubesim, core)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("p", "default", previous=True)
    assert exc.value.status == 400 and "previous terminated container" in status_body(exc.value)["message"]


def test_it_follows_logs(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """follow=true streams new lines as they are written, until the client stops."""
    _running(kubesim, core)
    timer = threading.Timer(0.2, lambda: kubesim.push_logs("default", "p", ["live-1", "live-2"]))
    timer.start()
    resp = core.read_namespaced_pod_log("p", "default", follow=True, tail_lines=0, _preload_content=False)
    seen: list[str] = []
    buf = b""
    for chunk in resp.stream(64):
        buf += chunk
        seen = buf.decode().splitlines()
        if "live-2" in seen:
            break
    resp.release_conn()
    assert seen == ["live-1", "live-2"]


def _exec(core: client.CoreV1Api, command: list[str], **kw: object) -> ws_client.WSClient:
    return stream(core.connect_get_namespaced_pod_exec, "p", "default", command=command, stderr=True, stdout=True,
                  _preload_content=False, **kw)


def test_it_runs_commands_over_exec_v5(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """exec negotiates v5.channel.k8s.io; stdout on channel 1, stderr on 2, exit status JSON on 3."""
    _running(kubesim, core, env=[{"name": "GREETING", "value": "hi"}])
    ws = _exec(core, ["sh", "-c", "echo $GREETING; pwd; nope; exit 3"], stdin=False, tty=False)
    ws.run_forever(timeout=5)
    assert ws.subprotocol == "v5.channel.k8s.io"
    assert ws.read_channel(1) == "hi\n/\n"
    assert "nope: not found" in ws.read_channel(2)
    assert ws.returncode == 3
    out = stream(core.connect_get_namespaced_pod_exec, "p", "default", command=["env"], stdout=True, stderr=True,
                 stdin=False, tty=False)
    assert "GREETING=hi" in out and "HOSTNAME=p" in out


def test_it_reads_stdin_and_honours_close_on_v5(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """stdin frames (channel 0) reach the process; the v5 CLOSE signal (255, 0) ends its input."""
    _running(kubesim, core)
    ws = _exec(core, ["cat"], stdin=True, tty=False)
    ws.write_stdin(b"hello\n")
    ws.close_channel(0)
    ws.run_forever(timeout=5)
    assert ws.read_channel(1) == "hello\n" and ws.returncode == 0


def test_it_supports_the_v4_protocol(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """A v4.channel.k8s.io client gets the same channels and the JSON status with the exit code."""
    _running(kubesim, core)
    # An older client offers only v4 (the generated method's _headers reach the WebSocket handshake).
    ws = _exec(core, ["sh", "-c", "echo v4; exit 2"], stdin=False, tty=False,
               _headers={"sec-websocket-protocol": "v4.channel.k8s.io"})
    ws.run_forever(timeout=5)
    assert ws.subprotocol == "v4.channel.k8s.io"
    assert ws.read_channel(1) == "v4\n" and ws.returncode == 2


def test_it_runs_an_interactive_tty_shell_with_resize(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """tty=true: the shell echoes input, answers `stty size` after a resize on channel 4, and `exit` ends it."""
    _running(kubesim, core)
    ws = _exec(core, ["/bin/sh"], stdin=True, tty=True)
    ws.write_channel(4, json.dumps({"Width": 120, "Height": 40}))
    ws.write_stdin("stty size\r")
    ws.write_stdin("exit 0\r")
    ws.run_forever(timeout=5)
    out = ws.read_channel(1)
    assert "40 120\r\n" in out and ws.returncode == 0


def test_it_lets_tests_replace_the_exec_handler(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """set_exec_handler swaps the built-in shell for a test's coroutine (pods/exec and pods/attach)."""
    _running(kubesim, core)
    seen: list[list[str]] = []

    async def handler(session: ExecSession) -> int:
        seen.append(session.command)
        await session.stdout(f"custom {session.container}\n")
        return 0

    kubesim.set_exec_handler(handler)
    out = stream(core.connect_get_namespaced_pod_exec, "p", "default", command=["psql", "-c", "select 1"],
                 stdout=True, stderr=True, stdin=False, tty=False)
    assert out == "custom main\n" and seen == [["psql", "-c", "select 1"]]
    out = stream(core.connect_get_namespaced_pod_attach, "p", "default", stdout=True, stderr=True, stdin=False,
                 tty=False)
    assert out == "custom main\n"


def test_it_sleeps_in_the_builtin_shell(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """`sleep` takes real time before the command finishes."""
    _running(kubesim, core)
    start = time.monotonic()
    out = stream(core.connect_get_namespaced_pod_exec, "p", "default", command=["sh", "-c", "sleep 0.3; echo done"],
                 stdout=True, stderr=True, stdin=False, tty=False)
    assert out == "done\n" and time.monotonic() - start >= 0.3
