"""Observed state, interpreted: the one place that reads the agent's summaries of a namespace.

`service_states`/`fold_observed` turn a summary into the project's Service rows (the clusters app's
observed_changed signal calls `fold_observed_state` for every summary it stores); `assess` says where a
release's rollout stands (the deploy pipeline follows it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from lib.realtime import org_group, publish
from projects.compose import labels
from projects.models import Project

PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")
CRASH_LOOP = "CrashLoopBackOff"
QUOTA_PATTERN = re.compile(r"exceeded quota|forbidden: .*quota", re.IGNORECASE)


def service_states(project: Project, state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per service: status, replicas, ready, restarts, message, from the agent's observed summary."""
    state = state or {}
    result: dict[str, dict[str, Any]] = {}
    for name, dep in (state.get("deployments") or {}).items():
        result[name] = {"replicas": dep.get("replicas", 0), "ready": dep.get("ready", 0), "restarts": 0,
                        "status": live_status(dep), "message": ""}
    for pod in (state.get("pods") or {}).values():
        service = (pod.get("labels") or {}).get(labels.SERVICE)
        if service in result:
            result[service]["restarts"] += int(pod.get("restarts") or 0)
            if pod.get("waiting") in (*PULL_FAILURES, CRASH_LOOP):
                result[service].update(status="failing", message=pod["waiting"])
    return result


def live_status(dep: dict[str, Any]) -> str:
    """running, sleeping (Sablier scaled it to zero), waking (Sablier is scaling it up), starting..."""
    rollout = dep.get("rollout")
    if dep.get("sleeps"):
        if rollout == "scaled-to-zero":
            return "sleeping"
        if rollout == "progressing" and not dep.get("ready"):
            return "waking"
    return {"complete": "running", "scaled-to-zero": "scaled to zero", "failed": "failed"}.get(rollout, "starting")


def fold_observed(project: Project, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Fold an observed state into the Service rows and publish them to the project page."""
    states = service_states(project, state)
    for service in project.services.all():
        s = states.get(service.name)
        if s is None:
            continue
        changed = (service.status, service.replicas, service.ready_replicas, service.restarts, service.message) != (
            s["status"], s["replicas"], s["ready"], s["restarts"], s["message"])
        if changed:
            service.status, service.replicas, service.ready_replicas = s["status"], s["replicas"], s["ready"]
            service.restarts, service.message = s["restarts"], s["message"]
            service.save(update_fields=["status", "replicas", "ready_replicas", "restarts", "message", "updated_at"])
    services = [s.as_dict() for s in project.services.all()]
    transaction.on_commit(lambda: publish(org_group(project.organization_id), "project.services",
                                          {"project": project.slug, "services": services}))
    return services


def fold_observed_state(cluster_id: int, namespace: str, state: dict[str, Any] | None) -> None:
    """The observed_changed receiver's work: the namespace's project (if any) gets the new state."""
    project = Project.objects.active().select_related("organization").filter(
        cluster_id=cluster_id, namespace=namespace).first()
    if project is not None:
        fold_observed(project, state)


@dataclass
class Verdict:
    status: str  # "live", "progressing" or "failed"
    code: str = ""
    message: str = ""
    pending: tuple[str, ...] = ()
    asleep: tuple[str, ...] = ()  # sleeping-enabled services Sablier holds at zero


def quota_message(raw: str) -> str:
    return ("The project's resource quota is exceeded, so Kubernetes refused to create pods. Lower replicas or "
            f"resources in the compose file, or ask an operator for a larger plan. ({raw.strip()[:300]})")


def assess(state: dict[str, Any], expected: dict[str, str], revision: int) -> Verdict:
    """Where the rollout of `revision` stands, from one observed state; the first actionable failure wins.

    `expected` maps the release's Deployments (named after their services) to their images.
    """
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
        if pod.get("waiting") == CRASH_LOOP:
            return Verdict("failed", "crash_loop", name)
    for event in events:
        if event.get("type") == "Warning" and QUOTA_PATTERN.search(event.get("message", "")):
            return Verdict("failed", "quota_exceeded", quota_message(event["message"]))
    pending, asleep = [], []
    for service in sorted(expected):
        dep = deployments.get(service)
        if dep and not reflects(dep, revision):
            # Still the previous release's Deployment (the agent reported before it applied this one).
            pending.append(service)
            continue
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


def reflects(dep: dict[str, Any], revision: int) -> bool:
    """Whether an observed Deployment is (at least) `revision`'s; agents that do not report it count as yes."""
    reported = dep.get("revision")
    return reported is None or not str(reported).isdigit() or int(reported) >= revision


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
