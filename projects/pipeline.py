"""The deploy pipeline of one release: render -> data services -> apply -> follow the rollout.

run_release(pk) is the body of the Celery task. It claims the release with a compare-and-set
(pending -> deploying), so a second run is a no-op, and checks between steps (and while following
the rollout) whether a newer release superseded it, in which case it stops quietly.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agent import protocol
from clusters import data, rpc
from clusters import services as cluster_services
from clusters.models import ObservedProject
from projects import crypto, services
from projects.compose import ComposeRefusal, labels
from projects.models import Release, ReleaseKind, ReleaseStatus

log = logging.getLogger(__name__)

PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")
QUOTA_PATTERN = re.compile(r"exceeded quota|forbidden: .*quota", re.IGNORECASE)


class Superseded(Exception):
    pass


class Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Verdict:
    status: str  # "live", "progressing" or "failed"
    code: str = ""
    message: str = ""
    pending: tuple[str, ...] = ()
    asleep: tuple[str, ...] = ()  # sleeping-enabled services Sablier holds at zero


class Run:
    def __init__(self, release: Release) -> None:
        self.release = release
        self.project = release.project
        self.step_started = 0.0

    # --- bookkeeping --------------------------------------------------------------------------

    def check_current(self) -> None:
        status = Release.objects.filter(pk=self.release.pk).values_list("status", flat=True).first()
        if status != ReleaseStatus.DEPLOYING:
            raise Superseded()

    def step(self, name: str, status: str, message: str = "") -> None:
        entry = dict(self.release.steps.get(name) or {})
        if status == "running":
            self.step_started = time.monotonic()
            entry = {"status": "running"}
        else:
            entry.update(status=status, seconds=round(time.monotonic() - self.step_started, 3))
        if message:
            entry["message"] = message
        self.release.steps = {**self.release.steps, name: entry}
        Release.objects.filter(pk=self.release.pk).update(steps=self.release.steps)
        services.publish_progress(self.release, message)

    def finish(self, status: str, code: str = "", error: str = "") -> bool:
        """Compare-and-set deploying -> status; False when someone else moved the release meanwhile."""
        now = timezone.now()
        done = Release.objects.filter(pk=self.release.pk, status=ReleaseStatus.DEPLOYING).update(
            status=status, error=error, error_code=code, finished_at=now)
        if done:
            self.release.status, self.release.error, self.release.error_code = status, error, code
            self.release.finished_at = now
            services.publish_progress(self.release, error)
        return bool(done)

    # --- steps --------------------------------------------------------------------------------

    def render(self) -> None:
        self.step("render", "running")
        services._ensure_can_deploy(self.project.organization)
        if self.release.kind == ReleaseKind.ROLLBACK and self.release.rollback_of:
            sealed = services.relabel(self.release.rollback_of.sealed_manifests, self.release.revision)
            redacted = services.relabel(self.release.rollback_of.manifests, self.release.revision)
            warnings: list[dict[str, Any]] = []
        else:
            try:
                objects, result = services.render_release(self.project, self.release)
            except ComposeRefusal as refusal:
                raise Failed("invalid_compose", "The compose file was refused: "
                             + "; ".join(str(p) for p in refusal.problems)) from None
            sealed, redacted = crypto.seal_objects(objects)
            warnings = [services.problem_dict(w) for w in result.warnings]
        self.release.manifests, self.release.sealed_manifests, self.release.warnings = redacted, sealed, warnings
        with transaction.atomic():
            self.release.save(update_fields=["manifests", "sealed_manifests", "warnings"])
            services.sync_services(self.project, redacted)
        self.step("render", "done", f"{len(sealed)} objects")

    def data(self) -> None:
        wanted = [w for w, on in (("database", self.project.wants_database), ("bucket", self.project.wants_bucket))
                  if on]
        if not wanted:
            self.step("data", "running")
            self.step("data", "skipped", "not wanted")
            return
        self.step("data", "running")
        available = services.data_ops_available(self.project.cluster)
        missing = [w for w in wanted if not available[w]]
        for what in wanted:
            if not available[what]:
                continue
            ensure = data.ensure_database if what == "database" else data.ensure_bucket
            outcome = ensure(self.project.cluster_id, self.project.namespace, self.project.labels)
            if not outcome.ok and outcome.retry:
                raise Failed(f"{what}_not_ready", f"The cluster's {what} service is not reachable yet "
                             f"({outcome.error}); deploy again in a few minutes.")
            if not outcome.ok:
                raise Failed(f"{what}_failed", f"The {what} could not be provisioned: {outcome.error}")
        if missing:
            self.step("data", "unavailable", f"{' and '.join(missing)} not available on this cluster "
                      "(its agent has no data services yet); deployed without them")
        else:
            self.step("data", "done", " and ".join(wanted) + " ready")

    def apply(self) -> tuple[float, bool]:
        """Send the desired state and apply it now; returns (when it started, whether workloads changed)."""
        self.step("apply", "running")
        started = timezone.now().timestamp()
        try:
            desired = cluster_services.set_desired_project(
                self.project.cluster, self.project.namespace, self.project.labels, self.release.revision,
                self.release.sealed_manifests)
        except ValidationError:
            raise Superseded() from None  # a newer revision is already desired
        # Apply inline rather than waiting for clusters' push task: a solo worker running this task
        # would only get to it after the rollout timeout. The queued push then sees it applied.
        try:
            result = rpc.call(self.project.cluster_id, "apply_project", desired.rpc_payload(),
                              timeout=settings.PROJECTS_APPLY_TIMEOUT)
        except rpc.AgentOffline:
            raise Failed("agent_offline", "The cluster's agent is offline. The release is saved and the cluster "
                         "will converge to it when the agent reconnects; deploy again to follow it.") from None
        except rpc.AgentTimeout:
            raise Failed("timeout", "The cluster's agent did not answer in time; try again.") from None
        except rpc.AgentError as exc:
            cluster_services.record_apply_result(desired.pk, self.release.revision, None, exc.message)
            if exc.code == protocol.ERR_STALE_REVISION:
                raise Superseded() from None
            if exc.code == protocol.ERR_NOT_OWNED:
                raise Failed("namespace_not_owned", f"The cluster refused the release and changed nothing: "
                             f"{exc.message}. Ask an operator to look at the namespace.") from None
            raise Failed("apply_failed", f"The cluster refused the release: {exc.message}") from None
        failed = [r for r in result.get("results", []) if r.get("action") == "failed"]
        error = "; ".join(f"{r['kind']}/{r['name']}: {r.get('message', '')}" for r in failed)
        cluster_services.record_apply_result(desired.pk, self.release.revision, result, error)
        if failed:
            quota = next((r for r in failed if QUOTA_PATTERN.search(r.get("message", ""))), None)
            if quota:
                raise Failed("quota_exceeded", quota_message(quota.get("message", "")))
            raise Failed("apply_failed", f"Some objects could not be applied: {error}")
        changed = any(r.get("action") == "created" or r.get("action") == "configured" and r.get("spec_changed", True)
                      for r in result.get("results", []) if r.get("kind") == "Deployment")
        self.step("apply", "done", f"{len(result.get('results', []))} objects applied")
        return started, changed

    def rollout(self, applied_at: float, changed: bool) -> None:
        self.step("rollout", "running")
        expected = {name: image for name, image in workload_images(self.release.sealed_manifests).items()
                    if name in deployment_names(self.release.sealed_manifests)}
        if self.project.suspended or not expected:
            self.step("rollout", "done", "nothing to roll out")
            return
        deadline = time.monotonic() + settings.PROJECTS_ROLLOUT_TIMEOUT
        last_state: Any = object()
        last_message = ""
        crashed_checked: set[str] = set()
        while True:
            observed = ObservedProject.objects.filter(cluster_id=self.project.cluster_id,
                                                      namespace=self.project.namespace).first()
            fresh = observed is not None and (not changed or observed.updated_at.timestamp() >= applied_at)
            state = observed.state if fresh and observed else None
            if state is not None:
                if state != last_state:
                    services.apply_observed(self.project, state)
                    last_state = state
                verdict = assess(state, expected, self.release.sealed_manifests)
                if verdict.status == "failed" and verdict.code == "crash_loop":
                    pod = verdict.message
                    if pod not in crashed_checked:
                        crashed_checked.add(pod)
                        failure = self.crash_failure(pod, expected)
                        if failure:
                            raise failure
                elif verdict.status == "failed":
                    raise Failed(verdict.code, verdict.message)
                elif verdict.status == "live":
                    services.start_idle_clocks(self.project, awake=set(expected) - set(verdict.asleep))
                    self.step("rollout", "done", live_message(expected, verdict.asleep))
                    return
                message = f"waiting for {', '.join(verdict.pending)}" if verdict.pending else ""
                if message and message != last_message:
                    self.step("rollout", "running", message)
                    last_message = message
            if time.monotonic() > deadline:
                pending = verdict.pending if state is not None else tuple(sorted(expected))
                raise Failed("timeout", f"Timed out after {settings.PROJECTS_ROLLOUT_TIMEOUT:g}s: "
                             f"{', '.join(pending)} did not become ready.")
            self.check_current()
            time.sleep(settings.PROJECTS_ROLLOUT_POLL)

    def crash_failure(self, pod: str, expected: dict[str, str]) -> Failed | None:
        """A crash-looping pod of this release: the failure with its last log lines (None if an old pod)."""
        try:
            logs = rpc.call(self.project.cluster_id, "pod_logs",
                            {"namespace": self.project.namespace, "pod": pod, "tail": 20}, timeout=15)
        except rpc.RPCError as exc:
            logs = {"lines": [], "image": "", "error": str(exc)}
        service = logs.get("service") or ""
        if logs.get("image") and logs["image"] not in expected.values():
            return None  # a pod of the previous ReplicaSet, on its way out
        lines = "\n".join(logs.get("lines") or []) or f"(no logs: {logs.get('error', 'none captured')})"
        who = f"service {service!r}" if service else f"pod {pod}"
        return Failed("crash_loop", f"{who} keeps crashing (CrashLoopBackOff). Last log lines:\n{lines}")


def deployment_names(objects: list[dict[str, Any]]) -> set[str]:
    return {((o["metadata"].get("labels") or {}).get(labels.SERVICE) or o["metadata"]["name"])
            for o in objects if o.get("kind") == "Deployment" and o["spec"].get("replicas", 1) != 0}


def workload_images(objects: list[dict[str, Any]]) -> dict[str, str]:
    images = {}
    for o in objects:
        if o.get("kind") in services.WORKLOAD_KINDS:
            name = (o["metadata"].get("labels") or {}).get(labels.SERVICE) or o["metadata"]["name"]
            images[name] = (o["spec"]["template"]["spec"].get("containers") or [{}])[0].get("image", "")
    return images


def quota_message(raw: str) -> str:
    return ("The project's resource quota is exceeded, so Kubernetes refused to create pods. Lower replicas or "
            f"resources in the compose file, or ask an operator for a larger plan. ({raw.strip()[:300]})")


def assess(state: dict[str, Any], expected: dict[str, str], objects: list[dict[str, Any]]) -> Verdict:
    """Where the rollout stands, from one observed state; the first actionable failure wins."""
    deployments = state.get("deployments") or {}
    # Deployment names equal service names (the converter's rule).
    events = state.get("events") or []
    for name, pod in sorted((state.get("pods") or {}).items()):
        service = (pod.get("labels") or {}).get(labels.SERVICE)
        if service not in expected:
            continue
        if pod.get("waiting") in PULL_FAILURES:
            pulled = pulled_image(events, name)
            if pulled and pulled not in expected.values():
                continue  # an old pod of a previous release
            image = pulled or expected[service]
            return Verdict("failed", "image_not_found", f"Service {service!r}: image {image} could not be pulled: "
                           "check the name and tag, or registry credentials.")
        if pod.get("waiting") == "CrashLoopBackOff":
            return Verdict("failed", "crash_loop", name)
    for event in events:
        if event.get("type") == "Warning" and QUOTA_PATTERN.search(event.get("message", "")):
            return Verdict("failed", "quota_exceeded", quota_message(event["message"]))
    pending, asleep = [], []
    for service in sorted(expected):
        dep = deployments.get(service)
        if dep and dep.get("sleeps") and dep.get("rollout") == "scaled-to-zero":
            asleep.append(service)  # live and sleeping: the new template starts on the next request
            continue
        if dep is None or dep.get("rollout") != "complete":
            if dep and dep.get("rollout") == "failed":
                return Verdict("failed", "timeout", f"Service {service!r} did not become ready before the "
                               "Kubernetes progress deadline.")
            pending.append(f"{service} ({dep.get('ready', 0)}/{dep.get('replicas', 0)} ready)" if dep else service)
    if pending:
        return Verdict("progressing", pending=tuple(pending))
    return Verdict("live", asleep=tuple(asleep))


def live_message(expected: dict[str, str], asleep: tuple[str, ...]) -> str:
    awake = len(expected) - len(asleep)
    message = f"{awake} service{'s' if awake != 1 else ''} ready"
    if asleep:
        message += (f"; {', '.join(asleep)} {'is' if len(asleep) == 1 else 'are'} asleep: updated without waking, "
                    "the new version starts on the next request")
    return message


def pulled_image(events: list[dict[str, Any]], pod: str) -> str:
    for event in events:
        if event.get("object") == f"Pod/{pod}":
            match = re.search(r'image "([^"]+)"', event.get("message", ""))
            if match:
                return match.group(1)
    return ""


def run_release(release_pk: int) -> str:
    claimed = Release.objects.filter(pk=release_pk, status=ReleaseStatus.PENDING).update(
        status=ReleaseStatus.DEPLOYING, started_at=timezone.now())
    if not claimed:
        return "not pending"  # already run, or superseded before it started
    release = Release.objects.select_related("project__organization", "project__cluster", "rollback_of").get(
        pk=release_pk)
    release.status = ReleaseStatus.DEPLOYING
    run = Run(release)
    try:
        run.render()
        run.check_current()
        run.data()
        run.check_current()
        applied_at, changed = run.apply()
        run.check_current()
        run.rollout(applied_at, changed)
    except Superseded:
        return "superseded"
    except Failed as failure:
        running = next((s for s, v in release.steps.items() if v.get("status") == "running"), None)
        if running:
            run.step(running, "failed", failure.message if failure.code != "crash_loop" else "crash loop")
        run.finish(ReleaseStatus.FAILED, failure.code, failure.message)
        return "failed"
    except ValidationError as exc:  # billing refused the deploy
        running = next((s for s, v in release.steps.items() if v.get("status") == "running"), None)
        if running:
            run.step(running, "failed")
        run.finish(ReleaseStatus.FAILED, exc.code or "refused", " ".join(exc.messages))
        return "failed"
    if run.finish(ReleaseStatus.LIVE):
        # An older live release is now history; at most one release of a project is live.
        Release.objects.filter(project=release.project, status=ReleaseStatus.LIVE,
                               revision__lt=release.revision).update(status=ReleaseStatus.SUPERSEDED)
        return "live"
    return "superseded"

