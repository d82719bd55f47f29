"""The end-to-end steps: the control plane through its REST API, the cluster through a kubeconfig.

Each step is timed; the first failure stops the run (the project, once created, is still deleted)
and the table printed at the end names it.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import kubernetes
import yaml
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.stream import stream

AGENT_NAMESPACE = "paas-system"
AGENT_NAME = "paas-agent"  # the install manifest's ServiceAccount, Deployment and pod label app.kubernetes.io/name
FIELD_MANAGER = "paas-e2e"
WEB_SERVICE = "web"
EXEC_MARKER = "paas-e2e-exec"

# nginx (it has a shell for the exec check) and postgres, which the platform replaces with the managed database.
SAMPLE_COMPOSE = """\
services:
  web:
    image: nginx:1.27-alpine
    ports:
      - "8080:80"
    environment:
      POSTGRES_PASSWORD: e2e-not-a-secret
    depends_on:
      - db
  db:
    image: postgres:16-alpine
    environment:
      POSTGRES_PASSWORD: e2e-not-a-secret
    volumes:
      - dbdata:/var/lib/postgresql/data
volumes:
  dbdata:
"""


class StepFailed(Exception):
    pass


class StepSkipped(Exception):
    pass


@dataclass
class Config:
    url: str  # the control plane, e.g. https://paas.example.com
    operator_token: str  # an API token of a staff user (registers the cluster)
    user_token: str  # an API token of a user who may deploy in `org`
    org: str
    kubeconfig: str  # admin access to the disposable cluster
    base_domain: str
    cluster_name: str = ""
    resolve_ip: str = ""  # send the public URL's request to this address (Host header kept)
    dry_run: bool = False
    bootstrap_timeout: float = 900
    deploy_timeout: float = 600
    delete_timeout: float = 300
    poll_interval: float = 2.0


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    result: str = "not run"
    detail: str = ""


@dataclass
class Outcome:
    steps: list[Step]

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.result == "FAILED"), None)


# --- clients ------------------------------------------------------------------------------------


class ControlPlane:
    """The REST API with a bearer token; errors carry the answer's `detail`."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (the operator's control plane URL)
            f"{self.url}/api/v1/{path.lstrip('/')}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:500]
            raise StepFailed(f"{method} /api/v1/{path} answered {exc.code}: {text}") from None
        except urllib.error.URLError as exc:
            raise StepFailed(f"{method} {self.url}/api/v1/{path}: {exc.reason}") from None
        return json.loads(raw) if raw else {}


def kube_configuration(kubeconfig: str) -> kubernetes.client.Configuration:
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return cfg


def with_token(cfg: kubernetes.client.Configuration, token: str) -> kubernetes.client.Configuration:
    """The same API server and CA, authenticated only by `token` (no client certificate, no basic auth)."""
    out = copy.deepcopy(cfg)
    out.api_key = {"authorization": token}
    out.api_key_prefix = {"authorization": "Bearer"}
    out.cert_file = out.key_file = out.username = out.password = None
    out.refresh_api_key_hook = None
    return out


def service_account_token(api: kubernetes.client.ApiClient, namespace: str, name: str) -> str | None:
    """A short-lived token of the ServiceAccount (TokenRequest); None when the API server has no TokenRequest."""
    body = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    try:
        answer = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, body)
    except ApiException as exc:
        if exc.status in (404, 405):
            return None
        raise
    return answer.status.token


def may(api: kubernetes.client.ApiClient, verb: str, resource: str, subresource: str, namespace: str) -> bool | None:
    """Whether the client's own identity may do this (SelfSubjectAccessReview); None when the server cannot say."""
    review = kubernetes.client.V1SelfSubjectAccessReview(spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=kubernetes.client.V1ResourceAttributes(
            verb=verb, resource=resource, subresource=subresource, namespace=namespace)))
    try:
        return kubernetes.client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed
    except ApiException as exc:
        if exc.status in (404, 405):
            return None
        raise


def token_kubeconfig(cfg: kubernetes.client.Configuration, token: str) -> dict[str, Any]:
    """A kubeconfig document for the server in `cfg`, authenticated by `token` (for processes started here)."""
    cluster: dict[str, Any] = {"server": cfg.host}
    if cfg.ssl_ca_cert:
        cluster["certificate-authority"] = cfg.ssl_ca_cert
    if not cfg.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    return {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "sa", "cluster": cluster}], "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "sa", "user": "sa"}}]}


def apply_documents(api: kubernetes.client.ApiClient, docs: list[dict[str, Any]]) -> list[str]:
    """Server-side apply each object, as `kubectl apply --server-side` would; returns kind/name of each."""
    dynamic = DynamicClient(api)
    applied = []
    for doc in docs:
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        resource.server_side_apply(body=doc, name=doc["metadata"]["name"], namespace=namespace,
                                   field_manager=FIELD_MANAGER, force_conflicts=True)
        applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return applied


def fetch(url: str, resolve_ip: str = "", timeout: float = 15) -> tuple[int, str]:
    """GET `url`; with resolve_ip the connection goes to that address and the Host header stays the URL's."""
    parts = urllib.parse.urlsplit(url)
    target, headers = url, {}
    if resolve_ip:
        port = f":{parts.port}" if parts.port else ""
        target = urllib.parse.urlunsplit((parts.scheme, f"{resolve_ip}{port}", parts.path or "/", parts.query, ""))
        headers["Host"] = parts.netloc
    request = urllib.request.Request(target, headers=headers)  # noqa: S310 (the deployed service's URL)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode(errors="replace")


def poll(check: Callable[[], Any], timeout: float, interval: float, what: Callable[[], str]) -> Any:
    """Call `check` until it returns something truthy; on timeout fail with `what()` (the last state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise StepFailed(f"not within {timeout:.0f}s: {what()}")
        time.sleep(interval)


# --- the run ------------------------------------------------------------------------------------


class EndToEnd:
    """Runs the steps in order. `after_install` is called with the applied manifest (the dry run starts
    the agent's pod there, as a kubelet would); on a real cluster nothing needs to happen."""

    def __init__(self, cfg: Config, out: TextIO, after_install: Callable[[list[dict[str, Any]]], None] | None = None):
        self.cfg, self.out, self.after_install = cfg, out, after_install
        self.operator = ControlPlane(cfg.url, cfg.operator_token)
        self.user = ControlPlane(cfg.url, cfg.user_token)
        self.kube_cfg = kube_configuration(cfg.kubeconfig)
        self.kube = kubernetes.client.ApiClient(self.kube_cfg)
        self.stamp = time.strftime("%m%d%H%M%S")
        self.cluster: dict[str, Any] = {}
        self.project: dict[str, Any] = {}
        self.deleted = False
        self.agent: kubernetes.client.ApiClient | None = None
        self.agent_who = ""

    def say(self, text: str) -> None:
        self.out.write(f"{text}\n")
        self.out.flush()

    def run(self) -> Outcome:
        steps = [
            ("1 register cluster", self.register),
            ("2 apply install manifest", self.install),
            ("3 agent connected, bootstrap done", self.bootstrap),
            ("4 deploy compose with database", self.deploy),
            ("5a fetch public URL", self.fetch_url),
            ("5b wake from zero", self.wake),
            ("6a pod logs as the agent", self.logs),
            ("6b pod exec as the agent", self.exec),
            ("7 delete project", self.delete),
        ]
        done: list[Step] = []
        failed = False
        for name, action in steps:
            step = Step(name)
            done.append(step)
            if failed:
                continue
            self.say(f"==> {name}")
            start = time.monotonic()
            try:
                step.detail = action() or ""
                step.result = "ok"
            except StepSkipped as exc:
                step.result, step.detail = "skipped", str(exc)
            except (StepFailed, ApiException, OSError, KeyError, ValueError) as exc:
                step.result, step.detail, failed = "FAILED", _describe(exc), True
            except KeyboardInterrupt:  # Ctrl-C: still delete the project and print the table
                step.result, step.detail, failed = "FAILED", "interrupted", True
            step.seconds = time.monotonic() - start
            self.say(f"    {step.result} in {step.seconds:.1f}s{': ' + step.detail if step.detail else ''}")
        if failed and self.project and not self.deleted:
            self.cleanup()
        if self.agent:
            self.agent.close()
        self.kube.close()
        return Outcome(done)

    def cleanup(self) -> None:
        self.say("==> cleanup: deleting the project after the failure")
        try:
            self.delete()
            self.say("    project deleted, namespace gone")
        except (StepFailed, ApiException, OSError) as exc:
            self.say(f"    cleanup failed: {_describe(exc)}")

    # 1
    def register(self) -> str:
        name = self.cfg.cluster_name or f"e2e {self.stamp}"
        self.cluster = self.operator.call("POST", "clusters/", {"name": name, "base_domain": self.cfg.base_domain})
        return f"cluster {self.cluster['slug']!r}; install line: kubectl apply -f '<install URL>'"

    # 2
    def install(self) -> str:
        # Fetched like `kubectl apply -f URL` does: a single-use URL, so fetched once.
        try:
            with urllib.request.urlopen(self.cluster["install_url"], timeout=30) as response:  # noqa: S310
                docs = [d for d in yaml.safe_load_all(response.read()) if d]
        except urllib.error.HTTPError as exc:
            raise StepFailed(f"the install URL answered {exc.code}") from None
        applied = apply_documents(self.kube, docs)
        if self.after_install:
            self.after_install(docs)
        return f"{len(applied)} objects: {', '.join(applied)}"

    # 3
    def bootstrap(self) -> str:
        slug = self.cluster["slug"]
        seen: dict[str, Any] = {}

        def ready() -> bool:
            seen.update(self.operator.call("GET", f"clusters/{slug}/"))
            parts = seen["infrastructure"]
            return seen["connected"] and seen["status"] == "online" and all(c["state"] == "ready" for c in parts)

        def state() -> str:
            parts = ", ".join(f"{c['component']}={c['state']}{' (' + c['reason'] + ')' if c['reason'] else ''}"
                              for c in seen.get("infrastructure", []))
            pods = "" if seen.get("connected") else f"; {self._agent_pods()}"
            return f"status {seen.get('status')}, connected {seen.get('connected')}{pods}; {parts}"

        poll(ready, self.cfg.bootstrap_timeout, self.cfg.poll_interval, state)
        return f"online; Kubernetes {seen['kubernetes_version']}, agent {seen['agent_version']}"

    def _agent_pods(self) -> str:
        """Why the agent may not have connected, as its pods show it (image pulls, crashes)."""
        pods = kubernetes.client.CoreV1Api(self.kube).list_namespaced_pod(
            AGENT_NAMESPACE, label_selector=f"app.kubernetes.io/name={AGENT_NAME}").items
        if not pods:
            return f"no agent pod in {AGENT_NAMESPACE}"
        states = []
        for pod in pods:
            waiting = [c.state.waiting for c in pod.status.container_statuses or [] if c.state and c.state.waiting]
            why = f" ({waiting[0].reason}: {waiting[0].message or ''})" if waiting else ""
            states.append(f"agent pod {pod.metadata.name} {pod.status.phase}{why}")
        return ", ".join(states)

    # 4
    def deploy(self) -> str:
        org = self.cfg.org
        self.project = self.user.call("POST", f"organizations/{org}/projects/", {
            "name": f"e2e {self.stamp}", "cluster": self.cluster["slug"], "wants_database": True,
            "compose": SAMPLE_COMPOSE})
        base = f"organizations/{org}/projects/{self.project['slug']}/"
        release = self.user.call("POST", base + "releases/", {})
        revision = release["revision"]

        def finished() -> dict[str, Any] | None:
            release.update(self.user.call("GET", f"{base}releases/{revision}/"))
            return release if release["status"] in ("live", "failed", "superseded") else None

        poll(finished, self.cfg.deploy_timeout, self.cfg.poll_interval,
             lambda: f"release {revision} is {release['status']}: {_steps(release)}")
        if release["status"] != "live":
            raise StepFailed(f"release {revision} is {release['status']}: {release.get('error') or _steps(release)}")
        self.project = self.user.call("GET", base)
        namespace = self.project["namespace"]
        db = kubernetes.client.CoreV1Api(self.kube).read_namespaced_service("db", namespace)
        if db.spec.type != "ExternalName":
            raise StepFailed(f"service db is a {db.spec.type} Service, not the managed database (ExternalName)")
        # The managed database's credentials reach web from a Secret, never inlined in the Deployment.
        web = kubernetes.client.AppsV1Api(self.kube).read_namespaced_deployment(WEB_SERVICE, namespace)
        env = {e.name: e for e in web.spec.template.spec.containers[0].env or []}
        for name in ("DATABASE_URL", "POSTGRES_PASSWORD"):
            if name not in env or not (env[name].value_from and env[name].value_from.secret_key_ref):
                raise StepFailed(f"{WEB_SERVICE}'s {name} is not taken from the database Secret: {env.get(name)}")
        return f"release {revision} live in namespace {namespace}; db -> {db.spec.external_name}; " \
               f"{WEB_SERVICE} reads DATABASE_URL and POSTGRES_PASSWORD from a Secret"

    # 5
    def fetch_url(self) -> str:
        web = next((s for s in self.project["services"] if s["name"] == WEB_SERVICE), None)
        if not web or not web.get("url"):
            raise StepFailed(f"service {WEB_SERVICE!r} has no public URL: {web}")
        # Plain HTTP through the cluster's Traefik: without PAAS_ACME_EMAIL there are no certificates (domains.md).
        url = f"http://{urllib.parse.urlsplit(web['url']).netloc}/"
        if self.cfg.dry_run:
            raise StepSkipped(f"kubesim pods serve no HTTP; not fetched: {url}")
        seen: dict[str, Any] = {}

        def answered() -> bool:
            try:
                seen["status"], seen["body"] = fetch(url, self.cfg.resolve_ip)
            except OSError as exc:
                seen["status"], seen["body"] = None, str(exc)
            return seen["status"] == 200 and "nginx" in seen["body"]

        poll(answered, 120, self.cfg.poll_interval,
             lambda: f"{url} answered {seen.get('status')}: {str(seen.get('body'))[:200]}")
        via = f" via {self.cfg.resolve_ip}" if self.cfg.resolve_ip else ""
        return f"{url}{via} answered 200 from nginx"

    def wake(self) -> str:
        """web sleeps when idle: shortest idle timeout, blocking strategy (the request is held, so the first byte
        is the wake), redeploy, wait until Sablier has scaled it to zero, then time one request."""
        if self.cfg.dry_run:
            raise StepSkipped("kubesim's dry run has no edge or Sablier; tests cover the wake (test_sleep_cluster)")
        org, slug, namespace = self.cfg.org, self.project["slug"], self.project["namespace"]
        base = f"organizations/{org}/projects/{slug}/"
        self.user.call("PUT", f"{base}services/{WEB_SERVICE}/sleep/",
                       {"enabled": True, "idle_timeout": 60, "strategy": "blocking", "blocking_timeout": 120})
        revision = self.user.call("POST", base + "releases/", {})["revision"]
        poll(lambda: self.user.call("GET", f"{base}releases/{revision}/")["status"] == "live",
             self.cfg.deploy_timeout, self.cfg.poll_interval, lambda: f"release {revision} is not live")
        apps = kubernetes.client.AppsV1Api(self.kube)
        started = time.monotonic()
        # Sablier checks for expired sessions every 20 s, after the 60 s idle timeout.
        poll(lambda: apps.read_namespaced_deployment(WEB_SERVICE, namespace).spec.replicas == 0, 180,
             self.cfg.poll_interval, lambda: f"{WEB_SERVICE} still has replicas after the idle timeout")
        slept = time.monotonic() - started
        web = next(s for s in self.project["services"] if s["name"] == WEB_SERVICE)
        url = f"http://{urllib.parse.urlsplit(web['url']).netloc}/"
        requested = time.monotonic()
        status, body = fetch(url, self.cfg.resolve_ip, timeout=150)
        first_byte = time.monotonic() - requested
        if status != 200 or "nginx" not in body:
            raise StepFailed(f"the request that should wake {WEB_SERVICE} answered {status}: {body[:200]}")
        return f"{WEB_SERVICE} slept {slept:.0f}s after the redeploy; a request woke it and answered 200 from nginx " \
               f"in {first_byte:.2f}s (request to first byte, blocking strategy)"

    # 6: the platform's own logs and terminal do not exist yet; these check the permissions they will use.
    def _as_agent(self) -> tuple[kubernetes.client.ApiClient, str, str]:
        """An API client holding only the agent ServiceAccount's token, who that is, and the web pod's name."""
        if self.agent is None:
            token = service_account_token(self.kube, AGENT_NAMESPACE, AGENT_NAME)
            self.agent_who = f"system:serviceaccount:{AGENT_NAMESPACE}:{AGENT_NAME}"
            if token is None:  # only an emulator without authentication lacks TokenRequest
                self.agent_who = "the kubeconfig's user (this API server has no TokenRequest)"
            self.agent = kubernetes.client.ApiClient(with_token(self.kube_cfg, token) if token else self.kube_cfg)
        namespace = self.project["namespace"]
        pods = kubernetes.client.CoreV1Api(self.agent).list_namespaced_pod(
            namespace, label_selector=f"paas.dev/service={WEB_SERVICE}").items
        running = [p.metadata.name for p in pods if p.status.phase == "Running"]
        if not running:
            raise StepFailed(f"no running pod of {WEB_SERVICE!r} in {namespace}")
        return self.agent, self.agent_who, running[0]

    def logs(self) -> str:
        agent, who, pod = self._as_agent()
        log = kubernetes.client.CoreV1Api(agent).read_namespaced_pod_log(pod, self.project["namespace"],
                                                                         tail_lines=20)
        if not log.strip():
            raise StepFailed(f"pods/log of {pod} is empty")
        return f"as {who}: {len(log.splitlines())} log lines of {pod}"

    def exec(self) -> str:
        agent, who, pod = self._as_agent()
        namespace = self.project["namespace"]
        if may(agent, "create", "pods", "exec", namespace) is False:
            raise StepSkipped("the agent's ClusterRole does not grant pods/exec yet: the browser terminal and SSH "
                              "work adds it, and then this step runs")
        output = stream(kubernetes.client.CoreV1Api(agent).connect_get_namespaced_pod_exec, pod, namespace,
                        command=["sh", "-c", f"echo {EXEC_MARKER}; hostname"],
                        stderr=True, stdin=False, stdout=True, tty=False)
        if output.split() != [EXEC_MARKER, pod]:
            raise StepFailed(f"exec in {pod} printed {output!r}, expected {EXEC_MARKER} and the pod's name")
        return f"as {who}: exec in {pod} printed its hostname"

    # 7
    def delete(self) -> str:
        if not self.project:
            raise StepFailed("no project was created")
        namespace = self.project["namespace"]
        slug = self.project["slug"]
        self.user.call("DELETE", f"organizations/{self.cfg.org}/projects/{slug}/?confirm={slug}")
        self.deleted = True
        core = kubernetes.client.CoreV1Api(self.kube)
        phase: dict[str, str] = {}

        def gone() -> bool:
            try:
                phase["now"] = core.read_namespace(namespace).status.phase
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        poll(gone, self.cfg.delete_timeout, self.cfg.poll_interval,
             lambda: f"namespace {namespace} is still {phase.get('now')}")
        return f"namespace {namespace} is gone (the database is dropped after the data grace period)"


def _steps(release: dict[str, Any]) -> str:
    steps = release.get("steps") or {}
    if isinstance(steps, dict):
        return ", ".join(f"{name} {s.get('status') if isinstance(s, dict) else s}" for name, s in steps.items())
    return str(steps)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"Kubernetes API {exc.status} {exc.reason}: {(exc.body or '')[:300]}"
    return str(exc) or type(exc).__name__


def table(outcome: Outcome) -> str:
    width = max(len(s.name) for s in outcome.steps)
    lines = [f"{'step':<{width}}  {'seconds':>8}  result", f"{'-' * width}  {'-' * 8}  ------"]
    for s in outcome.steps:
        seconds = f"{s.seconds:8.1f}" if s.result != "not run" else f"{'-':>8}"
        why = f" ({s.detail})" if s.result == "skipped" else ""
        lines.append(f"{s.name:<{width}}  {seconds}  {s.result}{why}")
    total = sum(s.seconds for s in outcome.steps)
    lines.append(f"{'total':<{width}}  {total:8.1f}")
    if outcome.failed:
        lines.append(f"FAILED at step {outcome.failed.name}: {outcome.failed.detail}")
    return "\n".join(lines)
