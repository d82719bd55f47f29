"""The deploy pipeline of one release: data services -> apply -> follow the rollout.

run_release(pk) is the body of the Celery task. The release was rendered when it was created
(projects.releases); the pipeline claims it with a compare-and-set (pending -> deploying), so a second
run is a no-op, and checks between steps (and while following the rollout) whether a newer release
superseded it, in which case it stops quietly.

While it runs, a thread renews the release's heartbeat; resume_stalled() (a beat job) puts a release whose
heartbeat stopped (its worker was killed) back to pending and has it queued again, so a deploy is never left
"deploying" by a dead worker, and re-queues a pending release whose queue message was lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from agent import protocol
from clusters import data, observed, rpc
from clusters import services as cluster_services
from clusters.converge import OFFLINE, TIMEOUT, converge
from clusters.models import Cluster, ClusterStatus, ObservedProject
from projects import manifests, releases, wake
from projects.models import IN_FLIGHT, Release, ReleaseStatus
from projects.services import data_ops_available
from projects.status import QUOTA_PATTERN, Verdict, assess, live_message, quota_message

log = logging.getLogger(__name__)
CONNECTED = (ClusterStatus.ONLINE, ClusterStatus.DEGRADED)
MAX_ATTEMPTS = 3  # claims of one release before resume_stalled fails it instead of queueing it again


AGENT_AWAY = "Waiting for the cluster's agent to reconnect; the release is saved and is applied when it is back."


class Superseded(Exception):
    pass


class Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


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
        releases.publish_progress(self.release, message)

    def finish(self, status: str, code: str = "", error: str = "") -> bool:
        """Compare-and-set deploying -> status; False when someone else moved the release meanwhile."""
        now = timezone.now()
        done = Release.objects.filter(pk=self.release.pk, status=ReleaseStatus.DEPLOYING).update(
            status=status, error=error, error_code=code, finished_at=now)
        if done:
            self.release.status, self.release.error, self.release.error_code = status, error, code
            self.release.finished_at = now
            releases.publish_progress(self.release, error)
        return bool(done)

    # --- steps --------------------------------------------------------------------------------

    def render(self) -> None:
        """The release was rendered when it was created: check billing again and update the Service rows."""
        self.step("render", "running")
        releases.ensure_can_deploy(self.project.organization)
        with transaction.atomic():
            releases.sync_services(self.project, self.release.manifests)
        self.step("render", "done", f"{len(self.release.sealed_manifests)} objects")

    def data(self) -> None:
        wanted = [w for w, on in (("database", self.project.wants_database), ("bucket", self.project.wants_bucket))
                  if on]
        if not wanted:
            self.step("data", "running")
            self.step("data", "skipped", "not wanted")
            return
        self.step("data", "running")
        available = data_ops_available(self.project.cluster)
        missing = [w for w in wanted if not available[w]]
        for what in wanted:
            if not available[what]:
                continue
            ensure = data.ensure_database if what == "database" else data.ensure_bucket
            outcome = ensure(self.project.cluster_id, self.project.namespace, self.project.labels)
            deadline = time.monotonic() + settings.PROJECTS_AGENT_WAIT
            while outcome.agent_away and time.monotonic() < deadline:  # as in apply(): wait, saying so
                self.step("data", "running", AGENT_AWAY)
                self.wait_for_agent(deadline)
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
        """Store the desired state and converge it now; returns (when it started, whether workloads changed)."""
        self.step("apply", "running")
        started = timezone.now().timestamp()
        try:
            desired = cluster_services.set_desired_project(
                self.project.cluster, self.project.namespace, self.project.labels, self.release.revision,
                self.release.sealed_manifests, push=False)
        except ValidationError:
            raise Superseded() from None  # a newer revision is already desired
        # Converged here rather than by clusters' push task: a solo worker running this task would only
        # get to that task after the rollout timeout.
        applied = converge(desired, timeout=settings.PROJECTS_APPLY_TIMEOUT)
        # An agent that is away (or went away with the call in flight) is waited for, with the step saying so:
        # the apply is idempotent, so sending it again once the agent is back is safe.
        deadline = time.monotonic() + settings.PROJECTS_AGENT_WAIT
        while applied.code in (OFFLINE, TIMEOUT) and time.monotonic() < deadline:
            self.step("apply", "running", AGENT_AWAY)
            self.wait_for_agent(deadline)
            applied = converge(desired, timeout=settings.PROJECTS_APPLY_TIMEOUT)
        if applied.code == OFFLINE:
            raise Failed("agent_offline", f"The cluster's agent stayed offline for {settings.PROJECTS_AGENT_WAIT}s. "
                         "The release is saved and the cluster will converge to it when the agent reconnects; "
                         "deploy again to follow it.")
        if applied.code == TIMEOUT:
            raise Failed("timeout", "The cluster's agent did not answer in time; try again.")
        if applied.code == protocol.ERR_STALE_REVISION:
            raise Superseded()
        if applied.code == protocol.ERR_NOT_OWNED:
            raise Failed("namespace_not_owned", f"The cluster refused the release and changed nothing: "
                         f"{applied.error}. Ask an operator to look at the namespace.")
        if applied.code:
            raise Failed("apply_failed", f"The cluster refused the release: {applied.error}")
        if applied.failed:
            quota = next((r for r in applied.failed if QUOTA_PATTERN.search(r.get("message", ""))), None)
            if quota:
                raise Failed("quota_exceeded", quota_message(quota.get("message", "")))
            raise Failed("apply_failed", f"Some objects could not be applied: {applied.error}")
        changed = any(r.get("action") == "created" or r.get("action") == "configured" and r.get("spec_changed", True)
                      for r in applied.results if r.get("kind") == "Deployment")
        self.step("apply", "done", f"{len(applied.results)} objects applied")
        return started, changed

    def wait_for_agent(self, deadline: float) -> None:
        """Until the cluster's agent is connected again (or the deadline), checking the release is still current."""
        while time.monotonic() < deadline:
            self.check_current()
            if Cluster.objects.filter(pk=self.project.cluster_id, status__in=CONNECTED).exists():
                return
            time.sleep(settings.PROJECTS_ROLLOUT_RECHECK)

    def observed_state(self, applied_at: float, changed: bool) -> dict[str, Any] | None:
        """The namespace's stored observed state, if it can tell about this release (None: not yet)."""
        found = ObservedProject.objects.filter(cluster_id=self.project.cluster_id,
                                               namespace=self.project.namespace).first()
        # When Deployments changed, only a state stored after the apply started can show their rollout.
        if found is None or changed and found.updated_at.timestamp() < applied_at:
            return None
        return found.state

    def rollout(self, applied_at: float, changed: bool) -> None:
        """Follow the rollout in the states the agent reports; woken by each new one (clusters.observed)."""
        self.step("rollout", "running")
        objects = self.release.sealed_manifests
        expected = {name: image for name, image in manifests.workload_images(objects).items()
                    if name in manifests.deployment_names(objects)}
        if self.project.suspended or not expected:
            self.step("rollout", "done", "nothing to roll out")
            return
        deadline = time.monotonic() + settings.PROJECTS_ROLLOUT_TIMEOUT
        verdict: Verdict | None = None
        last_message = ""
        crashed_checked: set[str] = set()
        with observed.Watch(self.project.cluster_id, self.project.namespace) as watch:
            while True:
                state = self.observed_state(applied_at, changed)
                if state is not None:
                    verdict = assess(state, expected, self.release.revision)
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
                        wake.start_idle_clocks(self.project, awake=set(expected) - set(verdict.asleep))
                        self.step("rollout", "done", live_message(expected, verdict.asleep))
                        return
                    message = f"waiting for {', '.join(verdict.pending)}" if verdict.pending else ""
                    if message and message != last_message:
                        self.step("rollout", "running", message)
                        last_message = message
                left = deadline - time.monotonic()
                if left <= 0:
                    pending = verdict.pending if verdict is not None else tuple(sorted(expected))
                    raise Failed("timeout", f"Timed out after {settings.PROJECTS_ROLLOUT_TIMEOUT:g}s: "
                                 f"{', '.join(pending)} did not become ready.")
                # Until the agent's next state (or a newer release superseding this one) pokes us.
                watch.wait(min(left, settings.PROJECTS_ROLLOUT_RECHECK))
                self.check_current()

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

@contextmanager
def heartbeat(release_pk: int) -> Iterator[None]:
    """Renew the release's lease while the block runs, from a thread: the steps block for minutes on the agent."""
    stop = threading.Event()
    interval = settings.PROJECTS_RELEASE_LEASE / 6

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    Release.objects.filter(pk=release_pk, status=ReleaseStatus.DEPLOYING).update(
                        heartbeat_at=timezone.now())
                except DatabaseError as exc:  # e.g. PostgreSQL restarting: the next beat reconnects
                    log.warning("release heartbeat failed: release=%s error=%s", release_pk, exc)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"release-{release_pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # Bounded: a beat may wait on a row lock held by the caller's own transaction (eager tasks in tests).
        thread.join(timeout=5)


def resume_stalled(now: Any = None) -> list[int]:
    """Releases to queue again, by primary key.

    Deploying ones whose heartbeat is older than the lease (their worker died) go back to pending with their
    steps cleared; after MAX_ATTEMPTS claims they fail with code "interrupted" instead. Pending ones not started
    within the lease (their queue message was lost) keep their state. Each is claimed with a compare-and-set on
    its heartbeat, so concurrent sweeps resume it once; run_release's own claim makes a duplicate delivery
    harmless."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PROJECTS_RELEASE_LEASE)
    stalled = Release.objects.filter(status__in=IN_FLIGHT).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
    resumed = []
    for pk, status, beat, attempts in stalled.values_list("pk", "status", "heartbeat_at", "attempts"):
        changes: dict[str, Any] = {"heartbeat_at": now}
        if status == ReleaseStatus.DEPLOYING and attempts >= MAX_ATTEMPTS:
            # Interrupted every time (or failing in a way the pipeline does not report): stop, and say so.
            message = (f"The deploy was interrupted {attempts} times (a worker stopped, or the control plane lost "
                       "its database or Redis); deploy again.")
            if Release.objects.filter(pk=pk, status=status, heartbeat_at=beat).update(
                    status=ReleaseStatus.FAILED, error_code="interrupted", error=message, finished_at=now):
                log.warning("release failed after %s interrupted attempts: release=%s", attempts, pk)
                releases.publish_progress(Release.objects.select_related("project").get(pk=pk), message)
            continue
        if status == ReleaseStatus.DEPLOYING:
            changes.update(status=ReleaseStatus.PENDING, steps={})
        if Release.objects.filter(pk=pk, status=status, heartbeat_at=beat).update(**changes):
            log.warning("release queued again: release=%s was=%s heartbeat=%s", pk, status, beat)
            resumed.append(pk)
            if status == ReleaseStatus.DEPLOYING:
                releases.publish_progress(Release.objects.select_related("project").get(pk=pk),
                                          "The worker deploying this release stopped; it is queued again.")
    return resumed


def run_release(release_pk: int) -> str:
    claimed = Release.objects.filter(pk=release_pk, status=ReleaseStatus.PENDING).update(
        status=ReleaseStatus.DEPLOYING, started_at=timezone.now(), heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1)
    if not claimed:
        return "not pending"  # already run, or superseded before it started
    with heartbeat(release_pk):
        return _run(release_pk)


def _run(release_pk: int) -> str:
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

