"""Waking a sleeping service (scale to zero) through Sablier, and starting idle clocks after a deploy."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError

from agent import protocol
from clusters import rpc
from projects.compose import sleep as sleep_render
from projects.models import Project, Service

log = logging.getLogger(__name__)


class WakeError(ValidationError):
    pass


def wake_service(service: Service, *, timeout: int = 60) -> dict[str, Any]:
    """Wake a sleeping service through Sablier (blocking strategy) and return once it is ready.

    For features that need a running pod (terminal, SSH, logs) and the "Wake now" action. Sablier holds a
    session of the service's idle timeout, so it puts the service back to sleep itself; a service that does
    not sleep is simply running (or stopped on purpose) and is left alone.
    """
    project = service.project
    if Project.objects.filter(pk=project.pk, suspended=True).exists():  # fresh: suspension may be seconds old
        raise WakeError(f"{project.name} is suspended: its services stay asleep until the organization's billing "
                        "is settled.", code="suspended")
    if not service.sleeps:
        return {"woken": False, "ready": service.status == "running",
                "message": f"{service.name} does not sleep: {service.sleep_blocker() or 'sleeping is turned off'}."}
    payload = {"namespace": project.namespace, "deployment": service.name, "timeout": timeout,
               "session_duration": sleep_render.duration(service.idle_timeout)}
    try:
        result = rpc.call(project.cluster_id, protocol.OP_WAKE, payload, timeout=timeout + 15)
    except rpc.RPCError as exc:
        raise WakeError(f"{service.name} could not be woken: {exc}", code="wake_failed") from None
    if not result.get("ready"):
        raise WakeError(f"{service.name} did not start: {result.get('error') or 'not ready in time'}",
                        code="wake_failed")
    return {"woken": True, "ready": True, "message": f"{service.name} is awake."}


def start_idle_clocks(project: Project, awake: set[str]) -> None:
    """Sablier puts a service to sleep when its session expires, and only a request opens one: give each awake
    sleeping-enabled service a session after a deploy, so one nobody visits still goes to sleep."""
    for service in project.services.filter(name__in=awake):
        if service.sleeps:
            try:
                wake_service(service, timeout=10)
            except WakeError as exc:
                log.info("no idle clock for %s: %s", service, " ".join(exc.messages))
