"""Project data services, joined to Kubernetes: credentials in, Secrets out.

The superuser password and the Garage admin token are read from their Secrets in the data
namespace on every call (a rotation needs no agent restart). Each project's credentials go into a
Secret in the project's namespace and nowhere else: the results returned to the control plane never
carry a password or a secret key.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from agent import charts, reconcile
from agent import protocol as p
from agent.data import garage, postgres
from agent.k8s import NAMESPACE, Kind, Kube

log = logging.getLogger("agent.data")

SECRET = Kind("v1", "Secret", "secrets")


class NotReady(Exception):
    """The shared service is not there yet (bootstrap still running): retry later."""


@dataclass(frozen=True)
class Endpoints:
    """Where the agent itself reaches the shared services. Tenants always get the in-cluster names.

    Overridable for development and tests (a kubesim "cluster" next to a local PostgreSQL).
    """

    postgres_host: str = charts.POSTGRES_HOST
    postgres_port: int = charts.POSTGRES_PORT
    garage_admin_url: str = charts.GARAGE_ADMIN_URL
    garage_s3_url: str = charts.GARAGE_S3_URL

    @classmethod
    def from_env(cls) -> Endpoints:
        env = os.environ.get
        return cls(postgres_host=env("AGENT_POSTGRES_HOST", charts.POSTGRES_HOST),
                   postgres_port=int(env("AGENT_POSTGRES_PORT", str(charts.POSTGRES_PORT))),
                   garage_admin_url=env("AGENT_GARAGE_ADMIN_URL", charts.GARAGE_ADMIN_URL),
                   garage_s3_url=env("AGENT_GARAGE_S3_URL", charts.GARAGE_S3_URL))


# --- Secrets ----------------------------------------------------------------------------------------


def read_secret(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    obj = kube.get(SECRET, name, namespace)
    if obj is None:
        return None
    return read_secret_data(obj)


def read_secret_data(obj: dict[str, Any]) -> dict[str, str]:
    """A Secret object's values, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def secret_object(namespace: str, name: str, data: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())}}


def _write_project_secret(kube: Kube, namespace: str, service: str, data: dict[str, str]) -> None:
    # Labelled managed-by but without the project's labels: a release's prune (which selects on the
    # project labels) leaves it alone, and deleting the namespace removes it.
    labels = {p.MANAGED_BY_LABEL: p.MANAGED_BY_VALUE, p.DATA_SERVICE_LABEL: service}
    kube.apply(SECRET, secret_object(namespace, p.DATA_SECRETS[service], data, labels), namespace)


def credentials(kube: Kube, namespace: str, service: str) -> dict[str, str] | None:
    """The project's credentials as stored in its Secret, for a member who asked to reveal them."""
    return read_secret(kube, namespace, p.DATA_SECRETS[service])


# --- a deleted project's credentials, kept for its grace period ------------------------------------------


def retained_secret_name(namespace: str) -> str:
    return f"retained-{namespace}-database"


def delete_project_keeping_credentials(kube: Kube, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """Delete the project's namespace, first copying its database Secret into the data namespace.

    The role's password exists nowhere else in clear (PostgreSQL holds a verifier): without the copy, restoring
    the project within its grace period would have to issue a new one. The copy is not readable by tenants
    (paas-data) and goes when the project comes back (ensure_database) or its data is purged (drop_database).
    Raises reconcile.NotOwned, before anything is copied or deleted, for a namespace that is not the project's.
    """
    existing = kube.get(NAMESPACE, namespace)
    if existing is not None:
        reconcile.check_owner(kube, namespace, existing, labels)
        values = read_secret(kube, namespace, p.DATABASE_SECRET)
        if values:
            kube.apply(SECRET, secret_object(charts.DATA_NAMESPACE, retained_secret_name(namespace), values, {
                "app.kubernetes.io/part-of": "paas", p.RETAINED_SECRET_LABEL: namespace,
                p.DATA_SERVICE_LABEL: "database"}), charts.DATA_NAMESPACE)
            log.info("kept the database credentials of %s for its grace period", namespace)
    return reconcile.delete_project(kube, namespace, labels)


def _retained(kube: Kube, namespace: str) -> dict[str, str] | None:
    obj = kube.get(SECRET, retained_secret_name(namespace), charts.DATA_NAMESPACE)
    if obj is None or (obj["metadata"].get("labels") or {}).get(p.RETAINED_SECRET_LABEL) != namespace:
        return None
    return read_secret_data(obj)


def _forget_retained(kube: Kube, namespace: str) -> None:
    if _retained(kube, namespace) is not None:
        kube.delete(SECRET, retained_secret_name(namespace), charts.DATA_NAMESPACE)


# --- PostgreSQL ---------------------------------------------------------------------------------------


def superuser_connect(kube: Kube, endpoints: Endpoints) -> postgres.Connect:
    secret = read_secret(kube, charts.DATA_NAMESPACE, charts.POSTGRES_SUPERUSER_SECRET)
    if not secret or not secret.get("password"):
        raise NotReady(f"the superuser Secret {charts.DATA_NAMESPACE}/{charts.POSTGRES_SUPERUSER_SECRET} does not "
                       "exist yet (is the shared PostgreSQL bootstrapped?)")
    user, password = secret.get("username") or "postgres", secret["password"]

    def connect(dbname: str) -> psycopg.Connection:
        return psycopg.connect(host=endpoints.postgres_host, port=endpoints.postgres_port, user=user,
                               password=password, dbname=dbname, connect_timeout=5)

    return connect


def ensure_database(kube: Kube, namespace: str, endpoints: Endpoints, *, labels: dict[str, str],
                    rotate: bool = False, connect: postgres.Connect | None = None) -> dict[str, Any]:
    """`labels` are the project's (with its uid): nothing is made for a namespace that is not the project's."""
    connect = connect or superuser_connect(kube, endpoints)
    reconcile.claim_namespace(kube, namespace, labels)
    # A restored project's Secret went with its namespace: the copy kept at deletion gives the same password back.
    existing = read_secret(kube, namespace, p.DATABASE_SECRET) or _retained(kube, namespace) or {}
    creds = postgres.ensure_database(connect, namespace, password=existing.get(p.DATABASE_PASSWORD_KEY), rotate=rotate)
    _write_project_secret(kube, namespace, "database", creds.secret_data(charts.POSTGRES_HOST, charts.POSTGRES_PORT))
    _forget_retained(kube, namespace)
    return {"namespace": namespace, "secret": p.DATABASE_SECRET, "database": creds.name, "user": creds.user,
            "host": charts.POSTGRES_HOST, "port": charts.POSTGRES_PORT, "created": creds.created,
            "rotated": creds.rotated}


def drop_database(kube: Kube, namespace: str, endpoints: Endpoints, *,
                  connect: postgres.Connect | None = None) -> dict[str, Any]:
    connect = connect or superuser_connect(kube, endpoints)
    result = postgres.drop_database(connect, namespace)
    _forget_retained(kube, namespace)
    secret_deleted = kube.get(NAMESPACE, namespace) is not None and kube.delete(SECRET, p.DATABASE_SECRET, namespace)
    return {"namespace": namespace, **result, "secret_deleted": bool(secret_deleted)}


# --- Garage ---------------------------------------------------------------------------------------------


def garage_admin(kube: Kube, endpoints: Endpoints) -> garage.GarageAdmin:
    secret = read_secret(kube, charts.DATA_NAMESPACE, charts.GARAGE_ADMIN_SECRET)
    if not secret or not secret.get("token"):
        raise NotReady(f"the Garage admin token Secret {charts.DATA_NAMESPACE}/{charts.GARAGE_ADMIN_SECRET} does "
                       "not exist yet (is Garage bootstrapped?)")
    return garage.GarageAdmin(endpoints.garage_admin_url, secret["token"])


def ensure_bucket(kube: Kube, namespace: str, endpoints: Endpoints, *, labels: dict[str, str]) -> dict[str, Any]:
    """`labels` are the project's (with its uid): nothing is made for a namespace that is not the project's."""
    admin = garage_admin(kube, endpoints)
    reconcile.claim_namespace(kube, namespace, labels)
    creds = admin.ensure_bucket(garage.bucket_name_for(namespace))
    _write_project_secret(kube, namespace, "bucket", creds.secret_data(charts.GARAGE_S3_URL, charts.GARAGE_REGION))
    return {"namespace": namespace, "secret": p.BUCKET_SECRET, "bucket": creds.bucket, "bucket_id": creds.bucket_id,
            "access_key_id": creds.access_key_id, "endpoint": charts.GARAGE_S3_URL, "region": charts.GARAGE_REGION,
            "created": creds.created}


# --- Metering ----------------------------------------------------------------------------------------------


def provisioned(kube: Kube) -> dict[str, set[str]]:
    """namespace -> the data services ("database", "bucket") this agent provisioned there, from the Secrets it wrote."""
    selector = f"{p.MANAGED_BY_LABEL}={p.MANAGED_BY_VALUE},{p.DATA_SERVICE_LABEL}"
    found: dict[str, set[str]] = {}
    for secret in kube.list(SECRET, None, label_selector=selector):
        meta = secret["metadata"]
        service = (meta.get("labels") or {}).get(p.DATA_SERVICE_LABEL)
        if service in p.DATA_SECRETS and meta.get("name") == p.DATA_SECRETS[service]:
            found.setdefault(meta["namespace"], set()).add(service)
    return found


def data_usage(kube: Kube, endpoints: Endpoints, namespaces: list[str] | None = None, *,
               connect: postgres.Connect | None = None, admin: garage.GarageAdmin | None = None) -> dict[str, Any]:
    """Database and bucket sizes in bytes of the given namespaces (both services each), or of every namespace
    this agent provisioned a service in.

    One item per namespace: `database_bytes` / `bucket_bytes` are None where there is no such database or
    bucket; a service that could not be measured leaves its size None and says why in `errors[service]`,
    and the other items and services are still answered.
    """
    wanted = provisioned(kube) if namespaces is None else {ns: {"database", "bucket"} for ns in namespaces}
    items = {ns: {"namespace": ns, "database_bytes": None, "bucket_bytes": None, "errors": {}} for ns in wanted}
    databases = sorted(ns for ns, services in wanted.items() if "database" in services)
    if databases:
        try:
            sizes = postgres.database_sizes(connect or superuser_connect(kube, endpoints), databases)
        except (NotReady, psycopg.Error) as exc:
            for ns in databases:
                items[ns]["errors"]["database"] = f"not measured: {exc}"
        else:
            for ns in databases:
                items[ns]["database_bytes"] = sizes.get(ns)
    buckets = sorted(ns for ns, services in wanted.items() if "bucket" in services)
    if buckets:
        try:
            admin = admin or garage_admin(kube, endpoints)
        except NotReady as exc:
            for ns in buckets:
                items[ns]["errors"]["bucket"] = f"not measured: {exc}"
        else:
            for ns in buckets:
                try:
                    items[ns]["bucket_bytes"] = admin.bucket_bytes(garage.bucket_name_for(ns))
                except (garage.GarageError, OSError) as exc:  # OSError: Garage unreachable (URLError, timeouts)
                    items[ns]["errors"]["bucket"] = f"not measured: {exc}"
    return {"items": [items[ns] for ns in sorted(items)]}


EmptyBucket = Callable[[str, str, str, str, str], int]  # (endpoint, region, bucket, key id, secret) -> deleted


def empty_bucket(endpoint: str, region: str, bucket: str, access_key_id: str, secret_access_key: str) -> int:
    """Delete every object (and object version) through S3: Garage's admin API cannot."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key_id,
                      aws_secret_access_key=secret_access_key,
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def delete_bucket(kube: Kube, namespace: str, endpoints: Endpoints, *,
                  empty: EmptyBucket = empty_bucket) -> dict[str, Any]:
    admin = garage_admin(kube, endpoints)
    alias = garage.bucket_name_for(namespace)
    objects_deleted = 0
    key = admin.key_by_name(alias)
    if admin.bucket_by_alias(alias) is not None and key is not None:
        objects_deleted = empty(endpoints.garage_s3_url, charts.GARAGE_REGION, alias, key["accessKeyId"],
                                key["secretAccessKey"])
    result = admin.delete_bucket(alias)
    secret_deleted = kube.get(NAMESPACE, namespace) is not None and kube.delete(SECRET, p.BUCKET_SECRET, namespace)
    return {"namespace": namespace, "bucket": alias, "objects_deleted": objects_deleted, **result,
            "secret_deleted": bool(secret_deleted)}
