"""pods/log (text, follow, tail...), pods/exec + pods/attach over the channel.k8s.io WebSocket protocols, and
pods/portforward over the WebSocket port-forward protocol (v4.channel.k8s.io: per port a data and an error channel,
each opened with the port number as two little-endian bytes), where the emulated pod answers HTTP."""

from __future__ import annotations

import asyncio
import json
import shlex
import struct
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from kubesim import pgclient
from kubesim.errors import ApiError, bad_request
from kubesim.resources import ResourceType

if TYPE_CHECKING:
    from kubesim.server import ApiServer

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4, "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

LogKey = tuple[str, str, str]
# Lines a container logs when it starts: (pod object, container name) -> lines.
LogGenerator = Callable[[dict[str, Any], str], Iterable[str]]


def default_log_lines(pod: dict[str, Any], container: str) -> list[str]:
    image = next((c.get("image", "") for c in pod["spec"]["containers"] if c["name"] == container), "")
    return [f"[kubesim] {container}: started {image}", f"[kubesim] {container}: listening"]


class LogHub:
    """Log lines per container, the previous instance's lines, and wake-ups for followers."""

    def __init__(self) -> None:
        self.generator: LogGenerator = default_log_lines
        self.lines: dict[LogKey, list[tuple[datetime, str]]] = defaultdict(list)
        self.previous: dict[LogKey, list[tuple[datetime, str]]] = {}
        self._changed: dict[LogKey, asyncio.Event] = defaultdict(asyncio.Event)

    def push(self, namespace: str, pod: str, container: str, lines: list[str]) -> None:
        now = datetime.now(UTC)
        self.lines[(namespace, pod, container)].extend((now, line) for line in lines)
        self.wake((namespace, pod, container))

    def wake(self, key: LogKey) -> None:
        ev = self._changed.pop(key, None)
        if ev is not None:
            ev.set()

    def waiter(self, key: LogKey) -> asyncio.Event:
        return self._changed[key]

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """A container restarted: its current log becomes the `previous=true` log."""
        key = (namespace, pod, container)
        self.previous[key] = self.lines.pop(key, [])

    def forget_pod(self, namespace: str, pod: str) -> None:
        for store in (self.lines, self.previous):
            for key in [k for k in store if k[:2] == (namespace, pod)]:
                store.pop(key, None)
        for key in [k for k in self._changed if k[:2] == (namespace, pod)]:
            self.wake(key)

    def clear(self) -> None:
        self.generator = default_log_lines
        self.lines.clear()
        self.previous.clear()
        for key in list(self._changed):
            self.wake(key)


def _container(pod: dict[str, Any], requested: str | None) -> str:
    names = [c["name"] for c in pod["spec"].get("containers", [])]
    name = pod["metadata"]["name"]
    if requested:
        all_names = names + [c["name"] for c in pod["spec"].get("initContainers", [])]
        if requested not in all_names:
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) != 1:
        raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
    return names[0]


def _waiting_reason(pod: dict[str, Any], container: str) -> str | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container and "waiting" in (cs.get("state") or {}):
            reason = cs["state"]["waiting"].get("reason", "ContainerCreating")
            if reason != "CrashLoopBackOff":
                return reason
            return None
    if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
        return "ContainerCreating"
    return None


def _fmt(ts: datetime, line: str, timestamps: bool) -> bytes:
    text = line if line.endswith("\n") else line + "\n"
    if timestamps:
        text = ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z " + text  # RFC3339Nano, as the kubelet prints
    return text.encode()


async def handle(server: ApiServer, request: web.Request, rt: ResourceType, namespace: str, name: str,
                 sub: str) -> web.StreamResponse:
    pod = server.cluster.get(rt, namespace, name)
    if sub == "log":
        if request.method != "GET":
            raise ApiError("MethodNotAllowed", "the server does not allow this method on the requested resource")
        return await _logs(server, request, pod)
    if sub == "portforward":
        return await _portforward(request, pod)
    return await _exec(server, request, pod, sub)


async def _logs(server: ApiServer, request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
    q = request.query
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    container = _container(pod, q.get("container"))
    key = (ns, name, container)
    previous = q.get("previous") in ("true", "1")
    if previous:
        if key not in server.logs.previous:
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        lines = list(server.logs.previous[key])
    else:
        reason = _waiting_reason(pod, container)
        if reason:
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        lines = list(server.logs.lines.get(key, []))
    if q.get("sinceSeconds"):
        cutoff = datetime.now(UTC) - timedelta(seconds=int(q["sinceSeconds"]))
        lines = [entry for entry in lines if entry[0] >= cutoff]
    elif q.get("sinceTime"):
        cutoff = datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00"))
        lines = [entry for entry in lines if entry[0] >= cutoff]
    if q.get("tailLines") is not None:
        tail = int(q["tailLines"])
        lines = lines[-tail:] if tail > 0 else []
    timestamps = q.get("timestamps") in ("true", "1")
    limit = int(q["limitBytes"]) if q.get("limitBytes") else None
    data = b"".join(_fmt(ts, line, timestamps) for ts, line in lines)
    follow = q.get("follow") in ("true", "1") and not previous
    if not follow:
        return web.Response(body=data[:limit] if limit else data, content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    sent = len(server.logs.lines.get(key, []))
    await resp.write(data)
    try:
        while True:
            waiter = server.logs.waiter(key)
            try:
                await asyncio.wait_for(waiter.wait(), timeout=0.5)
            except TimeoutError:
                pass
            current = server.cluster.find(server.cluster.rt_for("v1", "Pod"), ns, name)
            if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                break  # the pod is gone: the kubelet closes the stream
            buf = server.logs.lines.get(key, [])
            if len(buf) < sent:
                sent = 0  # the container restarted; follow its new log
            for ts, line in buf[sent:]:
                await resp.write(_fmt(ts, line, timestamps))
            sent = len(buf)
            if (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


# --- exec / attach -------------------------------------------------------------------------------


class ExecSession:
    """One exec or attach: what a handler (the built-in shell or a test's) reads and writes."""

    def __init__(self, ws: web.WebSocketResponse, pod: dict[str, Any], container: str, command: list[str],
                 tty: bool, stdin: bool, protocol: str, attach: bool) -> None:
        self.ws, self.pod, self.container, self.command = ws, pod, container, command
        self.tty, self.stdin_enabled, self.protocol, self.attach = tty, stdin, protocol, attach
        self.stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.size: tuple[int, int] | None = None  # (width, height) of the terminal, after a resize
        self.resizes: list[tuple[int, int]] = []

    @property
    def env(self) -> dict[str, str]:
        for c in self.pod["spec"].get("containers", []):
            if c["name"] == self.container:
                return {e["name"]: str(e.get("value", "")) for e in c.get("env") or [] if "name" in e}
        return {}

    async def read(self) -> bytes | None:
        """Next chunk of stdin, or None at end of input."""
        return await self.stdin.get()

    async def write(self, channel: int, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if not self.ws.closed:
            await self.ws.send_bytes(bytes([channel]) + data)

    async def stdout(self, data: bytes | str) -> None:
        await self.write(STDOUT, data)

    async def stderr(self, data: bytes | str) -> None:
        # With a TTY the runtime merges stderr into stdout, as a terminal does.
        await self.write(STDOUT if self.tty else STDERR, data)

    def on_resize(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.resizes.append((width, height))


ExecHandler = Callable[[ExecSession], Awaitable[int]]


async def _pump(ws: web.WebSocketResponse, session: ExecSession) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            data: bytes = msg.data
        elif msg.type == WSMsgType.TEXT:
            data = msg.data.encode()  # the Python client sends str writes as text frames
        else:
            break
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel == STDIN:
            await session.stdin.put(payload)
        elif channel == RESIZE:
            try:
                size = {k.lower(): v for k, v in json.loads(payload).items()}
                session.on_resize(int(size.get("width", 0)), int(size.get("height", 0)))
            except (ValueError, AttributeError):
                pass
        elif channel == CLOSE and payload[:1] == bytes([STDIN]):
            await session.stdin.put(None)
    await session.stdin.put(None)


async def _exec(server: ApiServer, request: web.Request, pod: dict[str, Any], sub: str) -> web.StreamResponse:
    q = request.query
    container = _container(pod, q.get("container"))
    command = q.getall("command", [])
    if sub == "exec" and not command:
        raise bad_request("you must specify at least 1 command")
    if (pod.get("status") or {}).get("phase") != "Running":
        raise bad_request(f"unable to upgrade connection: container not found (\"{container}\")")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise bad_request("Upgrade request required")
    await ws.prepare(request)
    session = ExecSession(ws, pod, container, command, q.get("tty") in ("true", "1"),
                          q.get("stdin") in ("true", "1"), ws.ws_protocol or "channel.k8s.io", sub == "attach")
    missing = _missing_executable(pod, command)
    if missing:  # what containerd answers, before any output
        await session.write(ERROR, json.dumps({
            "metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
            "message": f"OCI runtime exec failed: exec failed: unable to start container process: exec: "
                       f"\"{missing}\": executable file not found in $PATH: unknown"}))
        await ws.close()
        return ws
    handler = server.exec_handler
    if pgclient.handles(pod, container, command):  # a PostgreSQL client program: the real one runs
        env = pgclient.container_env(server.cluster, pod, container)

        async def handler(session: ExecSession) -> int:
            return await pgclient.run(session, env, server.cluster_dns)
    pump = asyncio.get_running_loop().create_task(_pump(ws, session))
    try:
        code = await handler(session)
    except Exception as exc:  # a broken handler must not hang the client
        await session.stderr(f"kubesim exec handler failed: {exc}\n")
        code = 1
    if session.protocol in (V4, V5):
        status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        if code:
            status = {"metadata": {}, "status": "Failure",
                      "message": f"command terminated with non-zero exit code: error executing command "
                                 f"{command}, exit code {code}",
                      "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await session.write(ERROR, json.dumps(status))
    pump.cancel()
    await ws.close()
    return ws


# The WebSocket port-forward protocols kubelet speaks (the base64 one is not emulated).
PORTFORWARD_PROTOCOLS = (V4, "portforward.k8s.io")
_MAX_REQUEST_HEAD = 64 * 1024


def _forward_ports(request: web.Request) -> list[int]:
    ports: list[int] = []
    for value in request.query.getall("ports", []):
        for item in value.split(","):
            try:
                port = int(item)
            except ValueError:
                raise bad_request(f'invalid port "{item}"') from None
            if not 0 < port < 65536:
                raise bad_request(f"port {port} must be > 0 and < 65536")
            ports.append(port)
    if not ports:
        raise bad_request('query parameter "port" is required')
    return ports


def _pod_http_answer(pod: dict[str, Any], port: int, head: bytes) -> bytes:
    """What an emulated pod's server on `port` answers to one HTTP request (no process runs, as at the edge)."""
    line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    meta = pod["metadata"]
    body = f"Hello from {meta['namespace']}/{meta['name']} on port {port}: {line}\n".encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\nX-Kubesim-Pod: {meta['namespace']}/{meta['name']}\r\n\r\n".encode()
            + body)


async def _portforward(request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
    """Each forwarded port is one connection to the pod: a container port answers each HTTP request it gets; any
    other port reports a refused connection on its error channel, as the container runtime does."""
    ports = _forward_ports(request)
    if (pod.get("status") or {}).get("phase") != "Running":
        raise bad_request(f"unable to upgrade connection: pod {pod['metadata']['name']} is not running")
    ws = web.WebSocketResponse(protocols=PORTFORWARD_PROTOCOLS, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise bad_request("Upgrade request required")
    await ws.prepare(request)
    open_ports = {p.get("containerPort") for c in pod["spec"].get("containers", []) for p in c.get("ports") or []}
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            await ws.send_bytes(bytes([channel]) + struct.pack("<H", port))
        if port not in open_ports:
            uid = pod["metadata"].get("uid", "")
            await ws.send_bytes(bytes([2 * index + 1]) + (
                f"error forwarding port {port} to pod {uid}, uid : failed to connect to localhost:{port} inside "
                f"namespace {pod['metadata']['name']}: connect: connection refused").encode())
    pending: dict[int, bytes] = defaultdict(bytes)
    async for message in ws:
        if message.type != WSMsgType.BINARY or not message.data:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
            continue
        channel, data = message.data[0], message.data[1:]
        index = channel // 2
        if channel % 2 or index >= len(ports) or ports[index] not in open_ports:
            continue
        pending[index] += data
        while b"\r\n\r\n" in pending[index]:
            head, _, rest = pending[index].partition(b"\r\n\r\n")
            pending[index] = rest
            await ws.send_bytes(bytes([channel]) + _pod_http_answer(pod, ports[index], head))
        if len(pending[index]) > _MAX_REQUEST_HEAD:
            pending[index] = b""
    await ws.close()
    return ws


MISSING_ANNOTATION = "kubesim.dev/missing-executables"


def _missing_executable(pod: dict[str, Any], command: list[str]) -> str | None:
    """The command's program when the pod says its image lacks it (e.g. "bash" or "bash,sh" for distroless)."""
    listed = ((pod["metadata"].get("annotations") or {}).get(MISSING_ANNOTATION) or "").split(",")
    program = command[0] if command else ""
    return program if program and program.rsplit("/", 1)[-1] in {n.strip() for n in listed if n.strip()} else None


# --- the built-in shell ----------------------------------------------------------------------------


async def builtin_shell(session: ExecSession) -> int:
    """A tiny shell: echo, cat, env, printenv, pwd, hostname, stty size, sleep, true, false, exit N."""
    nl = "\r\n" if session.tty else "\n"
    cmd = session.command
    if session.attach or (len(cmd) == 1 and cmd[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash")):
        return await _interactive(session, nl)
    if len(cmd) >= 3 and cmd[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash") and cmd[1] == "-c":
        code, _ = await run_script(session, cmd[2], nl)
        return code
    code, _ = await run_words(session, cmd, nl)
    return code


async def _interactive(session: ExecSession, nl: str) -> int:
    prompt = "# " if session.tty else ""
    await session.stdout(prompt)
    buf = b""
    while True:
        chunk = await session.read()
        if chunk is None:
            return 0
        if session.tty:
            await session.stdout(chunk.replace(b"\r", b"\r\n"))  # a TTY echoes what is typed
        buf += chunk
        while b"\n" in buf.replace(b"\r", b"\n"):
            norm = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            line, _, rest = norm.partition(b"\n")
            buf = rest
            code, exited = await run_script(session, line.decode(errors="replace"), nl)
            if exited:
                return code
            await session.stdout(prompt)


async def run_script(session: ExecSession, script: str, nl: str) -> tuple[int, bool]:
    """Run `a; b && c` style scripts; returns (exit code, whether `exit` was called)."""
    lexer = shlex.shlex(script.replace("\n", ";"), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    statements: list[tuple[str, list[str]]] = []
    words: list[str] = []
    op = ";"
    for tok in lexer:
        if tok in (";", "&&", "||"):
            statements.append((op, words))
            words, op = [], tok
        else:
            words.append(tok)
    statements.append((op, words))
    code = 0
    for op, words in statements:
        if not words or (op == "&&" and code != 0) or (op == "||" and code == 0):
            continue
        code, exited = await run_words(session, words, nl)
        if exited:
            return code, True
    return code, False


async def run_words(session: ExecSession, words: list[str], nl: str) -> tuple[int, bool]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "HOSTNAME": session.pod["metadata"]["name"], **session.env}
    words = [_expand(w, env) for w in words]
    name, args = words[0].rsplit("/", 1)[-1], words[1:]
    if name == "echo":
        newline = args[:1] != ["-n"]
        await session.stdout(" ".join(args[0 if newline else 1:]) + (nl if newline else ""))
    elif name == "cat":
        if not args:
            while (chunk := await session.read()) is not None:
                await session.stdout(chunk)
        for path in args:
            if path == "/etc/hostname":
                await session.stdout(env["HOSTNAME"] + nl)
            else:
                await session.stderr(f"cat: {path}: No such file or directory{nl}")
                return 1, False
    elif name in ("env", "printenv"):
        if args:
            if args[0] not in env:
                return 1, False
            await session.stdout(env[args[0]] + nl)
        else:
            await session.stdout("".join(f"{k}={v}{nl}" for k, v in env.items()))
    elif name == "pwd":
        await session.stdout("/" + nl)
    elif name == "hostname":
        await session.stdout(env["HOSTNAME"] + nl)
    elif name == "stty" and args == ["size"]:
        width, height = session.size or (80, 24)
        await session.stdout(f"{height} {width}{nl}")
    elif name == "sleep":
        await asyncio.sleep(float(args[0]) if args else 0)
    elif name == "true":
        pass
    elif name == "false":
        return 1, False
    elif name == "exit":
        return (int(args[0]) if args else 0), True
    else:
        await session.stderr(f"sh: {name}: not found{nl}")
        return 127, False
    return 0, False


def _expand(word: str, env: dict[str, str]) -> str:
    if word.startswith("$"):
        return env.get(word[1:].strip("{}"), "")
    return word
