"""The `db_dump` and `db_restore` stream ops: pg_dump out of, or pg_restore into, a project's own database.

Each runs in a short-lived Job in the project's namespace whose pod gets the project's own credentials from its
database Secret (protocol.DATABASE_SECRET, through `envFrom`: never the superuser's, never a value inlined in
the spec). The pod only sleeps; the agent then execs pg_dump / pg_restore in it and relays the exec's
channels through the tunnel stream, as the `exec` op does (agent.shell.ExecSession):

    db_dump     pg_dump --format=custom            agent -> cp: EXEC_STDOUT (the dump), EXEC_STDERR, EXEC_STATUS
    db_restore  pg_restore --clean --if-exists     cp -> agent: EXEC_STDIN (the upload), EXEC_STDIN_EOF
                --no-owner --no-privileges         agent -> cp: EXEC_STDERR (pg_restore's errors), EXEC_STATUS

Why exec into a sleeping pod rather than a Job running pg_dump itself: exec is a binary-safe byte stream in
both directions with back-pressure, so a dump goes out and an upload comes in without touching a volume or a
log, and the tunnel's credit reaches all the way to pg_dump. The Job gives the pod a deadline
(activeDeadlineSeconds) and removes it even when the agent dies half-way; the agent deletes it when done.

Payload: {namespace, labels}; the namespace must carry the project's labels (its uid is the ownership mark) and
hold the Secret this agent wrote for the project's database.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import time
from typing import Any

from agent import protocol as p
from agent import reconcile, shell
from agent.data.services import SECRET
from agent.k8s import EVENT, NAMESPACE, POD, PROJECT_KINDS, Kube, KubeError
from agent.ops import Stream

log = logging.getLogger("agent.dumps")

JOB = next(kind for kind in PROJECT_KINDS if kind.kind == "Job")
# A PostgreSQL client at least as new as the shared server (pg_dump refuses newer servers). CloudNativePG's
# images run as the postgres user, uid 26. AGENT_DUMP_IMAGE overrides it (e.g. a mirror of the image).
DEFAULT_IMAGE = "ghcr.io/cloudnative-pg/postgresql:18.1-standard-trixie"
IMAGE_UID = 26
CONTAINER = "pg"
DEADLINE_SECONDS = 6 * 3600  # the longest a dump or restore may run before Kubernetes ends the pod
DUMP = ["pg_dump", "--format=custom", "--no-owner", "--no-privileges"]
RESTORE = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--exit-on-error",
           "--single-transaction", "--dbname"]  # + the database's name
WAITING_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                    "CreateContainerError")


class Refused(Exception):
    """The namespace is not the project's, it has no database, or the pod could not start."""


def image() -> str:
    return os.environ.get("AGENT_DUMP_IMAGE") or DEFAULT_IMAGE


def start_timeout() -> float:
    return float(os.environ.get("AGENT_DUMP_START_TIMEOUT") or 180)


def job_object(namespace: str, name: str, kind: str) -> dict[str, Any]:
    """The Job: Pod-Security `restricted`, no ServiceAccount token, the project's database Secret as its env."""
    labels = {p.MANAGED_BY_LABEL: p.MANAGED_BY_VALUE, p.DATA_JOB_LABEL: kind}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_SECONDS, "ttlSecondsAfterFinished": 60,
            "template": {
                "metadata": {"labels": {**labels, "job-name": name}},
                "spec": {
                    "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 5,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": CONTAINER, "image": image(), "command": ["sleep", str(DEADLINE_SECONDS)],
                        "envFrom": [{"secretRef": {"name": p.DATABASE_SECRET}}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }


def check_project(kube: Kube, namespace: str, labels: dict[str, Any]) -> str:
    """The namespace is the project's (it carries the project's labels) and holds the database Secret we wrote;
    returns the database's name (not a secret: pg_restore needs it on its command line to restore at all)."""
    try:
        reconcile.require_identity(labels)
    except ValueError as exc:
        raise Refused(f"bad request: {exc}") from None
    if not namespace.startswith(p.TENANT_NAMESPACE_PREFIX):
        raise Refused(f"bad request: {namespace} is not a project namespace")
    existing = kube.get(NAMESPACE, namespace)
    own = ((existing or {}).get("metadata") or {}).get("labels") or {}
    if existing is None or any(own.get(k) != v for k, v in labels.items()):
        raise Refused(f"forbidden: namespace {namespace} does not belong to this project")
    secret = kube.get(SECRET, p.DATABASE_SECRET, namespace)
    secret_labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
    if secret is None or secret_labels.get(p.DATA_SERVICE_LABEL) != "database" \
            or secret_labels.get(p.MANAGED_BY_LABEL) != p.MANAGED_BY_VALUE:
        raise Refused(f"no database is provisioned in {namespace}")
    return base64.b64decode((secret.get("data") or {}).get("PGDATABASE", "")).decode()


def start_pod(kube: Kube, namespace: str, kind: str) -> tuple[str, str]:
    """Create the Job and wait for its pod to run: (job name, pod name). Deletes the Job when it cannot start."""
    name = f"paas-db-{kind}-{secrets.token_hex(4)}"
    kube.apply(JOB, job_object(namespace, name, kind), namespace)
    try:
        return name, _wait_running(kube, namespace, name)
    except BaseException:
        delete_job(kube, namespace, name)
        raise


def _wait_running(kube: Kube, namespace: str, name: str) -> str:
    deadline = time.monotonic() + start_timeout()
    while time.monotonic() < deadline:
        for pod in kube.list(POD, namespace, f"job-name={name},{p.MANAGED_BY_LABEL}={p.MANAGED_BY_VALUE}"):
            status = pod.get("status") or {}
            if status.get("phase") == "Running":
                return str(pod["metadata"]["name"])
            if status.get("phase") in ("Failed", "Succeeded"):
                raise Refused(f"the {name} pod ended before it could run ({status.get('phase')})")
            for container in status.get("containerStatuses") or []:
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in WAITING_FAILURES:
                    raise Refused(f"the {name} pod cannot start: {waiting['reason']} "
                                  f"{waiting.get('message', '')}".strip())
        refused = _failed_create(kube, namespace, name)
        if refused:  # e.g. the project's quota is full, or Pod Security refused the pod
            raise Refused(f"the {name} pod cannot be created: {refused}")
        job = kube.get(JOB, name, namespace) or {}
        for condition in (job.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Failed" and condition.get("status") == "True":
                raise Refused(f"the {name} Job failed: {condition.get('message') or condition.get('reason')}")
        time.sleep(0.5)
    raise Refused(f"the {name} pod did not start within {start_timeout():g}s")


def _failed_create(kube: Kube, namespace: str, name: str) -> str:
    """The job controller's last FailedCreate message for this Job ("" when it has none)."""
    for event in reversed(kube.list(EVENT, namespace)):
        involved = event.get("involvedObject") or {}
        if involved.get("kind") == "Job" and involved.get("name") == name and event.get("reason") == "FailedCreate":
            return str(event.get("message", ""))
    return ""


def delete_job(kube: Kube, namespace: str, name: str) -> None:
    try:
        kube.delete(JOB, name, namespace)  # background propagation removes its pod
    except KubeError as exc:
        log.warning("could not delete job=%s namespace=%s: %s (its deadline ends it)", name, namespace, exc.message)


async def serve(kube: Kube, stream: Stream, payload: dict[str, Any], kind: str) -> None:
    """Run one dump ("dump") or restore ("restore") over `stream`; the Job is deleted whatever happens."""
    namespace, labels = payload.get("namespace"), payload.get("labels")
    if not isinstance(namespace, str) or not isinstance(labels, dict):
        await stream.close("bad request: 'namespace' (a string) and 'labels' (an object) are required")
        return
    try:
        database = await asyncio.to_thread(check_project, kube, namespace, labels)
        job, pod = await asyncio.to_thread(start_pod, kube, namespace, kind)
    except Refused as exc:
        await stream.close(str(exc))
        return
    except KubeError as exc:
        await stream.close(f"failed: {exc.message}")
        return
    command = DUMP if kind == "dump" else [*RESTORE, database]
    request = shell.ExecRequest(namespace=namespace, labels=labels, pod=pod, container=CONTAINER, command=command,
                                tty=False, stdin=kind == "restore")
    log.info("db_%s started namespace=%s job=%s", kind, namespace, job)
    try:
        await shell.ExecSession(kube, stream, request, CONTAINER).run()
    finally:
        await asyncio.to_thread(delete_job, kube, namespace, job)
        log.info("db_%s ended namespace=%s job=%s", kind, namespace, job)
