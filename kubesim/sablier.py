"""A stand-in for Sablier (sablierapp/sablier) with its kubernetes provider, speaking Sablier's HTTP API.

Like the real one it is a separate HTTP server that reaches the cluster only through the Kubernetes API (over
HTTP, with its own token and field manager `sablier`): it finds workloads labelled `sablier.enable=true`
(group from the `sablier.group` annotation, else label, else `default`), scales them with the scale subresource,
reports an instance ready when its ready replicas equal the desired ones, keeps one session per instance (each
request extends it by `session_duration`) and scales an instance back to zero when its session expires.

API (query parameters as Sablier's):
    GET /health                                -> 200 "OK"
    GET /api/strategies/dynamic?group=|names=  -> 200 HTML "starting" page (refreshes itself)
    GET /api/strategies/blocking?group=|names= -> 200 JSON once ready, or a problem (500) on timeout/failure
Both strategies answer the header `X-Sablier-Session-Status: ready|not-ready`; errors are
`application/problem+json` (400 bad parameters, 404 unknown group), as Sablier does.

Where this differs from Sablier, on purpose: an instance whose pods cannot start (CrashLoopBackOff, image pull
errors) is reported `unrecoverable` with the kubelet's message at once, so the dynamic page shows the error and
blocking fails fast instead of waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from kubesim import http1

log = logging.getLogger("kubesim.sablier")

ENABLE_LABEL = "sablier.enable"
GROUP_KEY = "sablier.group"
FIELD_MANAGER = "sablier"
DEFAULT_SESSION = 300.0  # Sablier's sessions.default-duration (5m)
DEFAULT_BLOCKING_TIMEOUT = 60.0  # strategy.blocking.default-timeout (1m)
DEFAULT_REFRESH = 5.0  # strategy.dynamic.default-refresh-frequency (5s)
THEMES = ("ghost", "hacker-terminal", "matrix", "shuffle")  # Sablier's embedded themes
KINDS = {"deployment": "deployments", "statefulset": "statefulsets"}
FAILED_WAITING_REASONS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                          "CreateContainerConfigError")
# The ClusterRole Sablier's kubernetes provider needs (its documentation), for clusters that enforce RBAC.
CLUSTER_ROLE_RULES = [
    {"apiGroups": ["apps", ""], "resources": ["deployments", "statefulsets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps", ""], "resources": ["deployments/scale", "statefulsets/scale"],
     "verbs": ["get", "list", "watch", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},  # the stand-in's error detection reads pods
]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class BadRequest(ValueError):
    pass


@functools.lru_cache(maxsize=256)  # the plugin sends the same few strings on every request
def parse_duration(value: str) -> float:
    """Seconds in a Go duration string ("15m", "1h30m", "500ms"), as Sablier's query binding parses them."""
    text = value.strip()
    if text == "0":
        return 0.0
    if not text or _DURATION_RE.sub("", text):
        raise BadRequest(f'time: invalid duration "{value}"')
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))


@dataclass(frozen=True)
class Instance:
    """One workload's state, shaped like Sablier's instance.State."""

    name: str
    status: str  # ready | not-ready | unrecoverable
    current: int = 0
    desired: int = 0
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "currentReplicas": self.current,
                               "desiredReplicas": self.desired, "status": self.status}
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class Session:
    instances: list[Instance] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "ready" if self.instances and all(i.status == "ready" for i in self.instances) else "not-ready"

    @property
    def failure(self) -> Instance | None:
        return next((i for i in self.instances if i.status == "unrecoverable"), None)


def problem(status: int, title: str, detail: str) -> web.Response:
    return web.Response(status=status, content_type="application/problem+json",
                        text=json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}))


class Sablier:
    """The stand-in: `await Sablier(api_url).start(host, port)` serves the API until `stop()`."""

    def __init__(self, api_url: str, *, token: str, ca_pem: str = "", expiry_interval: float = 20.0,
                 poll_interval: float = 0.05) -> None:
        """`token`: its ServiceAccount's; `ca_pem`: the CA of an HTTPS API server."""
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.ca_pem = ca_pem
        self.expiry_interval = expiry_interval
        self.poll_interval = poll_interval
        self.expires: dict[str, float] = {}  # instance name -> monotonic expiry of its session
        self.ready: set[str] = set()  # instances known ready: answered from memory, as Sablier's session store does
        self.groups: dict[str, set[str]] = {}  # instance name -> its groups (Sablier's auto-discovery)
        # A lean HTTP/1.1 server, not aiohttp's: Sablier (Go, gin) answers an awake session in microseconds, and
        # aiohttp's request handling alone cost more than the edge's whole no-middleware request.
        self.server = http1.Server({"/health": self.health, "/api/health": self.health,
                                    "/api/strategies/dynamic": self.dynamic,
                                    "/api/strategies/blocking": self.blocking})
        self.http: aiohttp.ClientSession | None = None
        self.url = ""
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        context = ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else None
        self.http = aiohttp.ClientSession(headers={"User-Agent": "sablier (kubesim stand-in)"},
                                          connector=aiohttp.TCPConnector(ssl=context) if context else None)
        self.url = await self.server.start(host, port)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._expire_loop())] + [
            loop.create_task(self._watch_loop(kind, plural)) for kind, plural in KINDS.items()]
        return self.url

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.server.stop()
        if self.http is not None:
            await self.http.close()

    def reset(self, token: str) -> None:
        self.token = token
        self.expires.clear()
        self.ready.clear()
        self.groups.clear()

    # --- Kubernetes API --------------------------------------------------------------------------

    async def _api(self, method: str, path: str, body: Any = None, **params: str) -> dict[str, Any]:
        assert self.http is not None
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        headers["Authorization"] = f"Bearer {self.token}"
        async with self.http.request(method, self.api_url + path, params=params or None, headers=headers,
                                     data=json.dumps(body) if body is not None else None) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ApiFailure(resp.status, (data or {}).get("message", resp.reason or ""))
            return data  # type: ignore[no-any-return]

    async def _workloads(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for kind, plural in KINDS.items():
            items = await self._api("GET", f"/apis/apps/v1/{plural}", labelSelector=f"{ENABLE_LABEL}=true")
            found += [(kind, obj) for obj in items.get("items") or []]
        return found

    def _remember(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        value = (meta.get("annotations") or {}).get(GROUP_KEY) or (meta.get("labels") or {}).get(GROUP_KEY)
        self.groups[f"{kind}_{meta['namespace']}_{meta['name']}_1"] = {
            g.strip() for g in (value or "default").split(",")}

    async def group_instances(self, group: str) -> list[str]:
        """Members of a group, from what the watch saw; listed afresh when the group is not known (yet)."""
        names = sorted(n for n, groups in self.groups.items() if group in groups)
        if not names:
            self.groups.clear()
            for kind, obj in await self._workloads():
                self._remember(kind, obj)
            names = sorted(n for n, groups in self.groups.items() if group in groups)
        return names

    async def instance(self, name: str, *, wake: bool) -> Instance:
        """The instance's state; with `wake`, scale it up to its desired replicas first if it sleeps."""
        kind, namespace, workload, desired = parse_instance(name)
        path = f"/apis/apps/v1/namespaces/{namespace}/{KINDS[kind]}/{workload}"
        try:
            obj = await self._api("GET", path)
            if wake and (obj["spec"].get("replicas") or 0) < desired:
                await self._api("PATCH", path + "/scale", {"spec": {"replicas": desired}}, fieldManager=FIELD_MANAGER)
                return Instance(name, "not-ready", (obj.get("status") or {}).get("readyReplicas") or 0, desired)
        except ApiFailure as err:
            return Instance(name, "unrecoverable", message=err.message)
        want = obj["spec"].get("replicas") or 0
        ready = (obj.get("status") or {}).get("readyReplicas") or 0
        failure = await self._pod_failure(namespace, obj)
        if failure:
            return Instance(name, "unrecoverable", ready, want, failure)
        return Instance(name, "ready" if ready == want and want > 0 else "not-ready", ready, want)

    async def _pod_failure(self, namespace: str, obj: dict[str, Any]) -> str:
        labels = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = await self._api("GET", f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)
        for pod in pods.get("items") or []:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in FAILED_WAITING_REASONS:
                    return f"pod {pod['metadata']['name']}, container {cs['name']}: {waiting['reason']}: " \
                           f"{waiting.get('message', '')}".rstrip(": ")
        return ""

    async def scale_to_zero(self, name: str) -> None:
        kind, namespace, workload, _ = parse_instance(name)
        path = f"/apis/apps/v1/namespaces/{namespace}/{KINDS[kind]}/{workload}/scale"
        try:
            await self._api("PATCH", path, {"spec": {"replicas": 0}}, fieldManager=FIELD_MANAGER)
            log.info("sablier: session of %s expired, scaled to 0", name)
        except ApiFailure as err:
            log.warning("sablier: could not stop %s: %s", name, err.message)

    # --- sessions --------------------------------------------------------------------------------

    async def state(self, name: str, *, wake: bool) -> Instance:
        """From memory when known ready (the watch forgets it when it stops); else asked from the cluster."""
        if name in self.ready:
            return self._ready_instance(name)
        found = await self.instance(name, wake=wake)
        if found.status == "ready":
            self.ready.add(name)
        return found

    @staticmethod
    def _ready_instance(name: str) -> Instance:
        desired = parse_instance(name)[3]
        return Instance(name, "ready", desired, desired)

    async def _watch_loop(self, kind: str, plural: str) -> None:
        """Like the kubernetes provider's informer: groups stay current, and an instance that loses ready
        replicas is no longer ready."""
        while True:
            try:
                await self._watch(kind, plural)
            except (TimeoutError, aiohttp.ClientError, ValueError) as err:
                log.info("sablier: watch interrupted (%s), restarting", err)
                await asyncio.sleep(0.2)

    async def _watch(self, kind: str, plural: str) -> None:
        assert self.http is not None
        params = {"watch": "true", "labelSelector": f"{ENABLE_LABEL}=true", "timeoutSeconds": "30"}
        async with self.http.get(f"{self.api_url}/apis/apps/v1/{plural}", params=params,
                                 headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=aiohttp.ClientTimeout(total=None)) as resp:
            if resp.status != 200:  # e.g. 403 when RBAC does not (yet) allow it: retry later, as an informer does
                log.info("sablier: watching %s refused (%s)", plural, resp.status)
                await asyncio.sleep(1)
                return
            async for line in resp.content:
                event = json.loads(line)
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                name = f"{kind}_{meta.get('namespace')}_{meta.get('name')}_1"
                status = obj.get("status") or {}
                want = (obj.get("spec") or {}).get("replicas") or 0
                if event.get("type") == "DELETED":
                    self.groups.pop(name, None)
                elif meta:
                    self._remember(kind, obj)
                if event.get("type") == "DELETED" or want == 0 or (status.get("readyReplicas") or 0) < want:
                    self.ready.discard(name)

    async def request_session(self, names: list[str], duration: float) -> Session:
        if all(n in self.ready for n in names):  # the awake path: from memory, no task per instance
            session = Session([self._ready_instance(n) for n in names])
        else:
            session = Session(await asyncio.gather(*(self.state(n, wake=True) for n in names)))
        deadline = time.monotonic() + duration
        for name in names:
            self.expires[name] = max(self.expires.get(name, 0.0), deadline)
        return session

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_interval)
            now = time.monotonic()
            for name, at in list(self.expires.items()):
                if at <= now:
                    del self.expires[name]
                    self.ready.discard(name)
                    await self.scale_to_zero(name)

    # --- HTTP handlers ---------------------------------------------------------------------------

    async def health(self, request: http1.Request) -> web.Response:
        return web.Response(text="OK")

    async def _names(self, request: http1.Request) -> list[str]:
        q = request.query
        names = [n.strip() for v in q.getall("names", []) for n in v.split(",") if n.strip()]
        group = q.get("group", "")
        if not names and not group:
            raise BadRequest("'names' or 'group' query parameter must be set")
        if names and group:
            raise BadRequest("'names' and 'group' query parameters are both set, only one must be set")
        for name in names:
            parse_instance(name)
        if group:
            names = await self.group_instances(group)
            if not names:
                raise GroupNotFound(group)
        return names

    async def _bind(self, request: http1.Request, option: str, default: float) -> tuple[list[str], float, float]:
        """The instances, the session duration and the strategy's own duration (`option`), bound and refused
        (a `Refusal`) before any workload is looked up or woken, as in Sablier."""
        q = request.query
        duration = parse_duration(q["session_duration"]) if q.get("session_duration") else DEFAULT_SESSION
        value = parse_duration(q[option]) if q.get(option) else default
        return await self._names(request), duration, value

    async def dynamic(self, request: http1.Request) -> web.Response:
        q = request.query
        try:
            names, duration, refresh = await self._bind(request, "refresh_frequency", DEFAULT_REFRESH)
        except REFUSALS as err:
            return refusal(err)
        theme = q.get("theme", "hacker-terminal")
        if theme not in THEMES:
            return problem(404, "Theme not found", f"theme {theme!r} not found; available: {', '.join(THEMES)}")
        session = await self.request_session(names, duration)
        page = render_page(session, display_name=q.get("display_name") or "", theme=theme, refresh=refresh,
                           show_details=q.get("show_details", "true").lower() != "false")
        return web.Response(text=page, content_type="text/html", headers={
            "X-Sablier-Session-Status": session.status, "Cache-Control": "no-cache"})

    async def blocking(self, request: http1.Request) -> web.Response:
        try:
            names, duration, timeout = await self._bind(request, "timeout", DEFAULT_BLOCKING_TIMEOUT)
        except REFUSALS as err:
            return refusal(err)
        deadline = time.monotonic() + timeout
        session = await self.request_session(names, duration)
        while session.status != "ready":
            failure = session.failure
            if failure:
                return problem(500, "Instance cannot start", f"{failure.name}: {failure.message}")
            if time.monotonic() >= deadline:
                return problem(500, "Timeout", f"session was not ready after {request.query.get('timeout') or '1m'}")
            await asyncio.sleep(self.poll_interval)
            session = Session(await asyncio.gather(*(self.state(n, wake=False) for n in names)))
        body = {"session": {"instances": [{"instance": i.as_json(), "error": None} for i in session.instances],
                            "status": session.status}}
        return web.json_response(body, headers={"X-Sablier-Session-Status": session.status})


class ApiFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class GroupNotFound(Exception):
    pass


REFUSALS = (BadRequest, GroupNotFound, ApiFailure)


def refusal(err: Exception) -> web.Response:
    """The problem document Sablier answers for a request it refuses while binding it."""
    if isinstance(err, GroupNotFound):
        return problem(404, "Group not found", f"group {err.args[0]!r} not found")
    if isinstance(err, ApiFailure):
        return problem(500, "Kubernetes API error", err.message)
    return problem(400, "Validation error", str(err))


def parse_instance(name: str) -> tuple[str, str, str, int]:
    """`<kind>_<namespace>_<name>_<replicas>` (Sablier's kubernetes provider naming)."""
    parts = name.split("_")
    if len(parts) != 4 or parts[0] not in KINDS or not parts[3].isdigit():
        raise BadRequest(f"invalid name [{name}] should be: kind_namespace_name_replicas")
    return parts[0], parts[1], parts[2], int(parts[3])


def render_page(session: Session, *, display_name: str, theme: str, refresh: float, show_details: bool) -> str:
    """Sablier's "starting" page: the instances and their state, reloading itself every `refresh` seconds."""
    return _render_page(tuple(session.instances), display_name, theme, refresh, show_details)


@functools.lru_cache(maxsize=256)  # an awake service's page is the same on every request (the plugin drops it)
def _render_page(instances: tuple[Instance, ...], display_name: str, theme: str, refresh: float,
                 show_details: bool) -> str:
    session = Session(list(instances))
    failure = session.failure
    title = html.escape(display_name or "your service")
    heading = f"{title} could not start" if failure else f"Starting {title}…"
    rows = "".join(
        f"<tr><td>{html.escape(i.name)}</td><td class='{i.status}'>{i.status}</td>"
        f"<td>{i.current}/{i.desired}</td><td>{html.escape(i.message)}</td></tr>" for i in session.instances)
    details = f"<table><tr><th>Instance</th><th>Status</th><th>Ready</th><th></th></tr>{rows}</table>" \
        if show_details else ""
    error = f"<p class='error' role='alert'>{html.escape(failure.message)}</p>" if failure else \
        "<p>Your service is starting up. This page reloads by itself.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<meta http-equiv="refresh" content="{max(1, round(refresh))}">
<meta name="sablier-theme" content="{quote(theme)}">
<style>body{{font-family:monospace;background:#111;color:#ddd;padding:2rem}}.error{{color:#f66}}
.ready{{color:#6f6}}.unrecoverable{{color:#f66}}td,th{{padding:.2rem .8rem;text-align:left}}</style>
</head><body><h1>{heading}</h1>{error}{details}</body></html>
"""
