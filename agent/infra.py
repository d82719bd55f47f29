"""Operations for the platform's infrastructure: bootstrap and the per-project data services.

    bootstrap          {settings?}                 store the sizing (if given) and (re)run the bootstrap
    bootstrap_status   {}                          every component's state as last seen, the pinned versions
    ensure_database    {namespace, labels, rotate?} role + database + Secret protocol.DATABASE_SECRET
    drop_database      {namespace}
    ensure_bucket      {namespace, labels}         bucket + key + Secret protocol.BUCKET_SECRET
    delete_bucket      {namespace}                 empty, delete bucket and key, delete the Secret
    data_credentials   {namespace, service}        the Secret's values, for a member who asked to see them
    data_usage         {namespaces?}               database and bucket sizes in bytes (all provisioned if no
                                                   namespaces), with per-item errors

`labels` are the project's, with its uid (protocol.PROJECT_UID_LABEL): the ensure operations create the
namespace marked as the project's, or refuse (not_owned) a namespace that is not the project's.

Results never carry a password or a secret key, except `data_credentials`, whose caller shows them
once and stores nothing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict
from typing import Any

from agent import bootstrap, charts, reconcile
from agent import protocol as p
from agent.data import garage, services
from agent.k8s import Kube
from agent.ops import OpError, OpHandler

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Namespaces no project may be: the platform's own and Kubernetes'.
RESERVED = {"default", "kube-system", "kube-public", "kube-node-lease", p.AGENT_NAMESPACE, charts.DATA_NAMESPACE,
            charts.CNPG.target_namespace, charts.SABLIER.target_namespace, charts.CERT_MANAGER.target_namespace}
MAX_USAGE_NAMESPACES = 10_000  # one metering call per cluster and window asks for all its projects at once


def _namespace(payload: dict[str, Any]) -> str:
    namespace = payload.get("namespace")
    if not isinstance(namespace, str) or not DNS_LABEL.fullmatch(namespace):
        raise OpError(p.ERR_BAD_REQUEST, "'namespace' must be a DNS-1123 label")
    if namespace in RESERVED:
        raise OpError(p.ERR_BAD_REQUEST, f"{namespace} is not a project namespace")
    return namespace


def _labels(payload: dict[str, Any]) -> dict[str, str]:
    labels = payload.get("labels")
    if not isinstance(labels, dict):
        raise OpError(p.ERR_BAD_REQUEST, "'labels' must be an object naming the project")
    return labels


async def _data(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except reconcile.NotOwned as exc:
        raise OpError(p.ERR_NOT_OWNED, str(exc)) from None
    except services.NotReady as exc:
        raise OpError(p.ERR_FAILED, f"not ready: {exc}") from None
    except garage.GarageError as exc:
        raise OpError(p.ERR_FAILED, f"Garage admin API: {exc}") from None
    except ValueError as exc:
        raise OpError(p.ERR_BAD_REQUEST, str(exc)) from None


def build_ops(kube: Kube, endpoints: services.Endpoints | None = None) -> dict[str, OpHandler]:
    boot = bootstrap.bootstrapper_for(kube)
    endpoints = endpoints or boot.endpoints

    async def run_bootstrap(payload: dict[str, Any]) -> dict[str, Any]:
        raw = payload.get("settings")
        if raw is not None and not isinstance(raw, dict):
            raise OpError(p.ERR_BAD_REQUEST, "'settings' must be an object")
        try:
            if raw:
                settings = await asyncio.to_thread(boot.store_settings, raw)
            else:
                settings = await asyncio.to_thread(boot.settings)
        except ValueError as exc:
            raise OpError(p.ERR_BAD_REQUEST, f"bad settings: {exc}") from None
        started = boot.trigger()
        return {"started": started, "settings": asdict(settings), **boot.snapshot()}

    async def bootstrap_status(payload: dict[str, Any]) -> dict[str, Any]:
        # Read-only: what the last pass saw (nothing yet on an agent that has not bootstrapped since it started).
        return boot.snapshot()

    async def ensure_database(payload: dict[str, Any]) -> dict[str, Any]:
        rotate = payload.get("rotate", False)
        if not isinstance(rotate, bool):
            raise OpError(p.ERR_BAD_REQUEST, "'rotate' must be a boolean")
        return await _data(services.ensure_database, kube, _namespace(payload), endpoints, labels=_labels(payload),
                           rotate=rotate)

    async def drop_database(payload: dict[str, Any]) -> dict[str, Any]:
        return await _data(services.drop_database, kube, _namespace(payload), endpoints)

    async def ensure_bucket(payload: dict[str, Any]) -> dict[str, Any]:
        return await _data(services.ensure_bucket, kube, _namespace(payload), endpoints, labels=_labels(payload))

    async def delete_bucket(payload: dict[str, Any]) -> dict[str, Any]:
        return await _data(services.delete_bucket, kube, _namespace(payload), endpoints)

    async def data_credentials(payload: dict[str, Any]) -> dict[str, Any]:
        namespace, service = _namespace(payload), payload.get("service")
        if service not in p.DATA_SECRETS:
            raise OpError(p.ERR_BAD_REQUEST, f"'service' must be one of {sorted(p.DATA_SECRETS)}")
        secret = await asyncio.to_thread(kube.get, services.SECRET, p.DATA_SECRETS[service], namespace)
        labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
        # Only Secrets this agent wrote: never a way to read arbitrary Secrets of a namespace.
        if secret is None or labels.get(p.MANAGED_BY_LABEL) != p.MANAGED_BY_VALUE \
                or labels.get(p.DATA_SERVICE_LABEL) != service:
            raise OpError(p.ERR_FAILED, f"no {service} provisioned in {namespace}")
        values = await asyncio.to_thread(services.credentials, kube, namespace, service)
        return {"namespace": namespace, "service": service, "secret": p.DATA_SECRETS[service], "values": values}

    async def data_usage(payload: dict[str, Any]) -> dict[str, Any]:
        raw = payload.get("namespaces")
        if raw is None:
            namespaces = None
        elif isinstance(raw, list) and len(raw) <= MAX_USAGE_NAMESPACES:
            namespaces = sorted({_namespace({"namespace": ns}) for ns in raw})
        else:
            raise OpError(p.ERR_BAD_REQUEST, f"'namespaces' must be a list of at most {MAX_USAGE_NAMESPACES} names")
        return await _data(services.data_usage, kube, endpoints, namespaces)

    return {p.OP_BOOTSTRAP: run_bootstrap, p.OP_BOOTSTRAP_STATUS: bootstrap_status,
            p.OP_ENSURE_DATABASE: ensure_database, p.OP_DROP_DATABASE: drop_database,
            p.OP_ENSURE_BUCKET: ensure_bucket, p.OP_DELETE_BUCKET: delete_bucket,
            p.OP_DATA_CREDENTIALS: data_credentials, p.OP_DATA_USAGE: data_usage}

