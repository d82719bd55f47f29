"""An HTTP edge that routes like Traefik's Kubernetes Ingress + CRD providers, for the subset the product makes.

It reads the emulated cluster directly (as Traefik reads it through watches) and answers on a real port:

* Ingresses of class `traefik` (or with no class): host rules (exact, or `*.domain` for one label) and paths
  (`Prefix` by path elements, `Exact`; `ImplementationSpecific` as a prefix, like Traefik), and the
  `defaultBackend`. Like Traefik the most specific rule wins: routers are ordered by the length of their rule.
* `traefik.ingress.kubernetes.io/router.middlewares: <namespace>-<name>@kubernetescrd, ...`, resolved to
  `traefik.io/v1alpha1` Middleware objects. A reference that resolves to nothing (or to a middleware type the
  edge does not implement) makes the router invalid: 404 `404 page not found`, as Traefik answers.
* The Sablier plugin middleware (`spec.plugin.sablier`): calls Sablier's `/api/strategies/dynamic` or
  `/blocking` with the middleware's config; `X-Sablier-Session-Status: ready` passes the request on, anything else
  returns Sablier's response (the starting page, or its error) to the client, as the plugin does. `sablierUrl`
  names an in-cluster address, so the edge sends the calls to the Sablier stand-in it was given instead. The call
  is made on every request, as the plugin makes it (it is what extends the session), with the request built once
  per Middleware version over pooled keep-alive connections, as the plugin's New() and Go's client do.
* The `redirectRegex` middleware (the control plane's "suspended" page): a matching URL gets a redirect.
* `allowEmptyServices: true` (K3s's chart default): a Service with no ready endpoint answers 503 instead of
  the route disappearing; a missing Service is 404.
* Forwarding to a ready endpoint (round robin) of the Service: kubesim pods have no process, so the pod answers
  in-process with a page naming it, its image and revision, if the target port is one of its container ports
  (else 502, a refused connection).
"""

from __future__ import annotations

import html
import itertools
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from kubesim import http1
from kubesim.cluster import Cluster
from kubesim.selectors import parse_label_selector
from kubesim.serving import serve
from kubesim.store import Event

log = logging.getLogger("kubesim.edge")

MIDDLEWARES_ANNOTATION = "traefik.ingress.kubernetes.io/router.middlewares"
TRAEFIK_CONTROLLER = "traefik.io/ingress-controller"
REVISION_KEYS = ("paas.dev/revision", "app.kubernetes.io/version", "deployment.kubernetes.io/revision",
                 "pod-template-hash")
SABLIER_READY = "ready"
SABLIER_PASSED_HEADERS = ("content-type", "cache-control", "x-sablier-session-status")  # of a not-ready answer


@dataclass
class Router:
    """One Ingress rule path, as Traefik's kubernetes ingress provider turns it into a router."""

    ingress: dict[str, Any]
    host: str  # "" matches any host
    path: str
    path_type: str
    service: dict[str, Any]  # the Ingress backend's service {name, port: {number|name}}

    @property
    def rule(self) -> str:
        match = f"Path(`{self.path}`)" if self.path_type == "Exact" else f"PathPrefix(`{self.path}`)"
        return f"Host(`{self.host}`) && {match}" if self.host else match

    def matches(self, host: str, path: str) -> bool:
        if self.host.startswith("*."):
            if not (host.endswith(self.host[1:]) and "." not in host[: -len(self.host) + 1]):
                return False
        elif self.host and host != self.host:
            return False
        if self.path_type == "Exact":
            return path == self.path
        prefix = self.path.rstrip("/")
        if self.path_type == "Prefix":  # element-wise: /foo matches /foo and /foo/bar, not /foobar
            return not prefix or path == prefix or path.startswith(prefix + "/")
        return path.startswith(self.path)


class Edge:
    """`await Edge(cluster, sablier_url=...).start(host, port)`; `base_domain` only shapes the printed URLs."""

    def __init__(self, cluster: Cluster, *, sablier_url: str = "", base_domain: str = "") -> None:
        self.cluster = cluster
        self.sablier_url = sablier_url.rstrip("/")
        self.base_domain = base_domain
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner: web.AppRunner | None = None
        self._pools: dict[str, http1.Pool] = {}  # Sablier base URL -> keep-alive connections
        self._plugin_requests: dict[tuple[str, str, str], tuple[http1.Pool, bytes]] = {}
        self.port = 0
        self.url = ""
        self._turns: dict[tuple[str, str], itertools.count[int]] = {}
        self._announced: dict[tuple[str, str], tuple[str, ...]] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.runner, self.url = await serve(self.app, host, port)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.cluster.store.listeners.append(self._announce)
        return self.url

    async def stop(self) -> None:
        if self._announce in self.cluster.store.listeners:
            self.cluster.store.listeners.remove(self._announce)
        if self.runner is not None:
            await self.runner.cleanup()
        for pool in self._pools.values():
            pool.close()

    def reset(self) -> None:
        self._turns.clear()
        self._announced.clear()
        self._plugin_requests.clear()

    # --- routing ---------------------------------------------------------------------------------

    def _rt(self, api_version: str, kind: str) -> Any:
        return self.cluster.rt_for(api_version, kind)

    def _handled(self, ingress: dict[str, Any]) -> bool:
        name = (ingress.get("spec") or {}).get("ingressClassName") or \
            (ingress["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
        if not name or name == "traefik":
            return True
        cls = self.cluster.find(self._rt("networking.k8s.io/v1", "IngressClass"), "", name)
        return bool(cls) and (cls.get("spec") or {}).get("controller") == TRAEFIK_CONTROLLER

    def routers(self) -> list[Router]:
        routers = []
        defaults = []
        for ing in self.cluster.list(self._rt("networking.k8s.io/v1", "Ingress")):
            if not self._handled(ing):
                continue
            spec = ing.get("spec") or {}
            for rule in spec.get("rules") or []:
                for p in ((rule.get("http") or {}).get("paths") or []):
                    if "service" in (p.get("backend") or {}):
                        routers.append(Router(ing, rule.get("host", ""), p.get("path") or "/",
                                              p.get("pathType", "Prefix"), p["backend"]["service"]))
            if "service" in (spec.get("defaultBackend") or {}):
                defaults.append(Router(ing, "", "/", "Prefix", spec["defaultBackend"]["service"]))
        routers.sort(key=lambda r: len(r.rule), reverse=True)  # Traefik's default priority
        return routers + defaults

    def route(self, host: str, path: str) -> Router | None:
        return next((r for r in self.routers() if r.matches(host, path)), None)

    def middlewares(self, router: Router) -> list[dict[str, Any]] | None:
        """The router's Middleware objects in order; None when a reference resolves to nothing."""
        refs = (router.ingress["metadata"].get("annotations") or {}).get(MIDDLEWARES_ANNOTATION, "")
        try:
            rt = self._rt("traefik.io/v1alpha1", "Middleware")
        except Exception:  # noqa: BLE001 - the Traefik CRDs are not installed: no middleware can resolve
            rt = None
        found = []
        for ref in (r.strip() for r in refs.split(",") if r.strip()):
            name, _, provider = ref.partition("@")
            if not provider:  # no provider: the Ingress's own provider, which serves no middlewares
                return None
            match = provider == "kubernetescrd" and rt is not None and next(
                (m for m in self.cluster.list(rt) if f"{m['metadata']['namespace']}-{m['metadata']['name']}" == name),
                None)
            spec = (match or {}).get("spec") or {}
            if not match or ("sablier" not in (spec.get("plugin") or {}) and "redirectRegex" not in spec):
                return None
            found.append(match)
        return found

    # --- request handling ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0].lower() if not request.host.startswith("[") else request.host
        router = self.route(host, request.path)
        if router is None:
            return _not_found()
        middlewares = self.middlewares(router)
        if middlewares is None:
            log.info("edge: %s: a middleware of %s/%s does not resolve", host, router.ingress["metadata"]["namespace"],
                     router.ingress["metadata"]["name"])
            return _not_found()
        for mw in middlewares:
            if "redirectRegex" in mw["spec"]:
                answer = _redirect(mw["spec"]["redirectRegex"], request)
            else:
                answer = await self._sablier(mw)
            if answer is not None:
                return answer
        return self.forward(router, request)

    async def _sablier(self, middleware: dict[str, Any]) -> web.Response | None:
        """The Sablier plugin: None lets the request through; otherwise Sablier's answer goes to the client.

        Like the plugin, it asks Sablier on every request (that call is what extends the session), with a request
        built once per middleware version over pooled keep-alive connections."""
        pool, request = self._plugin_request(middleware)
        try:
            reply = await pool.send(request)
        except OSError as err:  # refused, reset, or a bad answer: the plugin answers 500 with the error
            return web.Response(status=500, text=f"{err}\n")
        if reply.headers.get("X-Sablier-Session-Status") == SABLIER_READY:
            return None
        return web.Response(status=reply.status, body=reply.body, headers={
            k: v for k, v in reply.headers.items() if k.lower() in SABLIER_PASSED_HEADERS})

    def _plugin_request(self, middleware: dict[str, Any]) -> tuple[http1.Pool, bytes]:
        """The plugin's request to Sablier, built once per middleware version (the plugin's New() does it once)."""
        meta = middleware["metadata"]
        key = (meta["namespace"], meta["name"], meta.get("resourceVersion", ""))
        built = self._plugin_requests.get(key)
        if built is None:
            config = middleware["spec"]["plugin"]["sablier"]
            base = self.sablier_url or str(config.get("sablierUrl") or "http://sablier:10000").rstrip("/")
            pool = self._pools.get(base) or self._pools.setdefault(base, http1.Pool(base))
            strategy = "blocking" if "blocking" in config else "dynamic"
            built = pool, pool.request_bytes(f"/api/strategies/{strategy}?{urlencode(_plugin_query(config, strategy))}",
                                             {"User-Agent": "sablier-traefik-plugin (kubesim edge)"})
            self._plugin_requests = {k: v for k, v in self._plugin_requests.items() if k[:2] != key[:2]}
            self._plugin_requests[key] = built
        return built

    def endpoints(self, namespace: str, service: dict[str, Any]) -> list[dict[str, Any]]:
        """Ready, not terminating pods the Service selects (what its EndpointSlices would list as ready)."""
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            return []
        match = parse_label_selector(",".join(f"{k}={v}" for k, v in selector.items()))
        return [p for p in self.cluster.list(self._rt("v1", "Pod"), namespace, label=match)
                if not p["metadata"].get("deletionTimestamp") and _ready(p)]

    def forward(self, router: Router, request: web.Request) -> web.Response:
        namespace = router.ingress["metadata"]["namespace"]
        svc = self.cluster.find(self._rt("v1", "Service"), namespace, router.service.get("name", ""))
        if svc is None:
            return _not_found()
        port = _service_port(svc, router.service.get("port") or {})
        if port is None:
            return _not_found()
        pods = self.endpoints(namespace, svc)
        if not pods:
            return web.Response(status=503, text="Service Unavailable")  # allowEmptyServices
        turn = next(self._turns.setdefault((namespace, svc["metadata"]["name"]), itertools.count()))
        pod = sorted(pods, key=lambda p: p["metadata"]["name"])[turn % len(pods)]
        container = _container_for(pod, port.get("targetPort", port.get("port")))
        if container is None:
            return web.Response(status=502, text="Bad Gateway")  # nothing listens on the target port
        return pod_response(pod, container, pod_revision(self.cluster, pod), request)

    # --- printed URLs ----------------------------------------------------------------------------

    def _announce(self, event: Event) -> None:
        """Print each routed host once when an Ingress appears or changes, so a try-out user sees the URL."""
        if event.key != ("networking.k8s.io", "ingresses"):
            return
        meta = event.obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if event.type == "DELETED":
            self._announced.pop(key, None)
            return
        hosts = tuple(sorted({r.get("host", "") for r in (event.obj.get("spec") or {}).get("rules") or []
                              if r.get("host")}))
        if hosts and self._announced.get(key) != hosts and self._handled(event.obj):
            self._announced[key] = hosts
            suffix = "" if self.port == 80 else f":{self.port}"
            for h in hosts:
                print(f"edge: http://{h}{suffix}/ serves {key[0]}/{key[1]}", flush=True)


def _plugin_query(config: dict[str, Any], strategy: str) -> list[tuple[str, str]]:
    """The query the plugin sends Sablier for its config (its BuildRequest)."""
    params: list[tuple[str, str]] = []
    if config.get("group"):
        params.append(("group", config["group"]))
    params += [("names", n.strip()) for n in str(config.get("names") or "").split(",") if n.strip()]
    if config.get("sessionDuration"):
        params.append(("session_duration", str(config["sessionDuration"])))
    options = config.get(strategy) or {}
    keys = {"timeout": "timeout"} if strategy == "blocking" else {
        "displayName": "display_name", "showDetails": "show_details", "theme": "theme",
        "refreshFrequency": "refresh_frequency"}
    params += [(q, str(options[k]).lower() if isinstance(options[k], bool) else str(options[k]))
               for k, q in keys.items() if options.get(k) not in (None, "")]
    return params


def _redirect(config: dict[str, Any], request: web.Request) -> web.Response | None:
    """Traefik's redirectRegex: the request URL matched against `regex` becomes `replacement` (302 unless
    `permanent`); a URL that does not match passes through."""
    url = str(request.url)
    if not re.search(str(config.get("regex", "")), url):
        return None
    # Go's regexp writes groups as $1; Python's as \1.
    target = re.sub(str(config["regex"]), re.sub(r"\$(\d+)", r"\\\1", str(config.get("replacement", ""))), url,
                    count=1)
    return web.Response(status=301 if config.get("permanent") else 302, headers={"Location": target})


def _not_found() -> web.Response:
    return web.Response(status=404, text="404 page not found\n")


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _service_port(svc: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any] | None:
    for port in (svc.get("spec") or {}).get("ports") or []:
        if ("number" in ref and port.get("port") == ref["number"]) or \
                ("name" in ref and port.get("name") == ref["name"]):
            return port  # type: ignore[no-any-return]
    return None


def _container_for(pod: dict[str, Any], target: int | str) -> dict[str, Any] | None:
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("containerPort") == target or (isinstance(target, str) and p.get("name") == target):
                return c  # type: ignore[no-any-return]
    return None


def _owner(cluster: Cluster, obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    ref = next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") == kind), None)
    return cluster.find(cluster.rt_for("apps/v1", kind), obj["metadata"]["namespace"], ref["name"]) if ref else None


def pod_revision(cluster: Cluster, pod: dict[str, Any]) -> str:
    """The release revision the pod runs: a revision label or annotation on the pod, its ReplicaSet or Deployment;
    else the Deployment's rollout revision; else the pod template hash."""
    rs = _owner(cluster, pod, "ReplicaSet")
    chain = [o for o in (pod, rs, rs and _owner(cluster, rs, "Deployment")) if o]
    for key in REVISION_KEYS:
        for obj in chain:
            meta = obj["metadata"]
            value = (meta.get("labels") or {}).get(key) or (meta.get("annotations") or {}).get(key)
            if value:
                return str(value)
    return ""


def pod_response(pod: dict[str, Any], container: dict[str, Any], revision: str, request: web.Request
                 ) -> web.Response:
    """What an emulated pod answers: a page naming it, its image and revision."""
    meta = pod["metadata"]
    name, image = meta["name"], container.get("image", "")
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(name)}</title></head>"
            f"<body><h1>Hello from {html.escape(name)}</h1><dl>"
            f"<dt>Namespace</dt><dd>{html.escape(meta['namespace'])}</dd>"
            f"<dt>Image</dt><dd>{html.escape(image)}</dd>"
            f"<dt>Revision</dt><dd>{html.escape(revision or '-')}</dd>"
            f"<dt>Path</dt><dd>{html.escape(request.path_qs)}</dd></dl>"
            f"<p>Served by kubesim: an emulated pod answers in place of the container.</p></body></html>\n")
    return web.Response(text=page, content_type="text/html", headers={
        "X-Kubesim-Pod": f"{meta['namespace']}/{name}", "X-Kubesim-Image": image})
