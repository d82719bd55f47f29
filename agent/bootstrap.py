"""Bootstrap: turn a bare K3s cluster into the platform, through K3s's own Helm controller.

Components, each checked and then created or corrected only where missing or drifted:

    traefik   HelmChartConfig kube-system/traefik: Sablier plugin, allowEmptyServices, ingress nodes
    cnpg      HelmChart (CloudNativePG operator)
    sablier   HelmChart (Sablier, scale to zero)
    garage    Secrets (admin token, RPC secret) + HelmChart (inline chart) + cluster layout (admin API)
    postgres  CloudNativePG Cluster with superuser access, once the operator is ready
    backups   Garage bucket + key, their S3 Secret, the Cluster's WAL archive + base backups to it (in-tree
              Barman Cloud), a ScheduledBackup; ready once CNPG reports WAL archiving working
    tls       HelmChart (cert-manager, with its CRDs) + the ACME ClusterIssuer protocol.ACME_CLUSTER_ISSUER
              (HTTP-01 through Traefik), when an ACME e-mail is set; ready once the issuer is Ready

Every pass reads the cluster and derives each component's state from its objects (HelmChart ->
`helm-install-<name>` Job -> released workloads -> the service answering), so an agent that
restarts in the middle simply continues. The little that cannot be read from those objects
(settings, retry bookkeeping) lives in the ConfigMap kube-system/paas-bootstrap, not in memory.
A failed chart is retried with exponential backoff by deleting its Job (the Helm controller then
creates a fresh one); its failure, with the Job's last log lines, stays visible meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import yaml

from agent import charts, protocol
from agent.data import services
from agent.data.garage import BucketCredentials, GarageError
from agent.k8s import NAMESPACE, NODE, Kind, Kube, KubeError
from agent.quantities import parse_quantity

log = logging.getLogger("agent.bootstrap")

HELMCHART = Kind("helm.cattle.io/v1", "HelmChart", "helmcharts")
HELMCHARTCONFIG = Kind("helm.cattle.io/v1", "HelmChartConfig", "helmchartconfigs")
CLUSTER_ISSUER = Kind("cert-manager.io/v1", "ClusterIssuer", "clusterissuers")
PG_CLUSTER = Kind("postgresql.cnpg.io/v1", "Cluster", "clusters")
PG_SCHEDULED_BACKUP = Kind("postgresql.cnpg.io/v1", "ScheduledBackup", "scheduledbackups")
PG_BACKUP = Kind("postgresql.cnpg.io/v1", "Backup", "backups")
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps")
JOB = Kind("batch/v1", "Job", "jobs")
POD = Kind("v1", "Pod", "pods")
WORKLOADS = (Kind("apps/v1", "Deployment", "deployments"), Kind("apps/v1", "StatefulSet", "statefulsets"),
             Kind("apps/v1", "DaemonSet", "daemonsets"))

PART_OF = {"app.kubernetes.io/part-of": "paas"}  # not managed-by=paas: that marks tenant namespaces
STATE_CONFIGMAP = "paas-bootstrap"
RELEASE_ANNOTATION = "meta.helm.sh/release-name"
INGRESS_LABEL = "ingress-ready"
HELM_BACKOFF_LIMIT = 3  # pod retries inside one Job before the Helm controller marks the chart Failed
LOG_TAIL = 15

DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
PENDING, INSTALLING, READY, FAILED = "pending", "installing", "ready", "failed"
COMPONENTS = ("traefik", "cnpg", "sablier", "garage", "postgres", "backups", "tls")

Publish = Callable[[str, dict[str, Any]], Awaitable[bool]]


# --- settings ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Sizing, sent by the control plane (PAAS_BOOTSTRAP_* settings) and kept in the state ConfigMap."""

    postgres_instances: int = 1
    postgres_storage: str = "10Gi"
    postgres_storage_class: str = ""
    postgres_cpu: str = "250m"
    postgres_memory: str = "512Mi"
    garage_data_size: str = "10Gi"
    garage_meta_size: str = "1Gi"
    garage_zone: str = "dc1"
    backup_schedule: str = "0 0 3 * * *"  # CNPG's six-field cron (seconds first): daily at 03:00 UTC
    backup_retention: str = "30d"
    # The folder of the bucket this Cluster archives into. A Cluster restored from the bucket must archive
    # into a new one (barman refuses a non-empty archive): docs/infrastructure.md, "Restoring the cluster".
    backup_server_name: str = charts.POSTGRES_CLUSTER
    # cert-manager's ACME account: no e-mail, no ClusterIssuer (and no TLS for service hosts).
    acme_email: str = ""
    acme_server: str = "https://acme-staging-v02.api.letsencrypt.org/directory"

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Settings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if raw and f.name in raw and raw[f.name] not in (None, ""):
                value = raw[f.name]
                values[f.name] = int(value) if f.type in ("int", int) else str(value)
        settings = cls(**values)
        for quantity in (settings.postgres_storage, settings.garage_data_size, settings.garage_meta_size):
            quantity_bytes(quantity)  # raises ValueError for junk
        if settings.postgres_instances < 1:
            raise ValueError("postgres_instances must be at least 1")
        if not re.fullmatch(protocol.BACKUP_SCHEDULE_PATTERN, settings.backup_schedule):
            raise ValueError(f"backup_schedule {settings.backup_schedule!r} is not a six-field cron expression "
                             "(seconds first) like '0 0 3 * * *'")
        if not re.fullmatch(protocol.BACKUP_RETENTION_PATTERN, settings.backup_retention):
            raise ValueError(f"backup_retention {settings.backup_retention!r} is not a number of days, weeks or "
                             "months like 30d, 4w or 6m")
        if not DNS_NAME.fullmatch(settings.backup_server_name):
            raise ValueError(f"backup_server_name {settings.backup_server_name!r} must be lower-case letters, digits "
                             "and '-' (a folder name in the backup bucket)")
        if not settings.acme_server.startswith("https://"):
            raise ValueError(f"acme_server {settings.acme_server!r} must be an https:// ACME directory URL")
        if settings.acme_email and "@" not in settings.acme_email:
            raise ValueError(f"acme_email {settings.acme_email!r} is not an e-mail address")
        return settings


def quantity_bytes(quantity: str) -> int:
    """A storage size in bytes: a whole number and a byte unit ("10Gi", "500G"); ValueError for anything else
    (fractions such as "1.5Ti" and millis are refused: the charts want whole sizes)."""
    text = quantity.strip()
    if "." in text or text.endswith("m"):
        raise ValueError(f"{quantity!r} is not a storage quantity like 10Gi")
    try:
        return int(parse_quantity(text))
    except ValueError:
        raise ValueError(f"{quantity!r} is not a storage quantity like 10Gi") from None


# --- desired objects ------------------------------------------------------------------------------------


def _dump(values: dict[str, Any]) -> str:
    return yaml.safe_dump(values, sort_keys=True, default_flow_style=False)


def helmchart(pin: charts.ChartPin, values: dict[str, Any], *, content: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"chart": pin.chart, "targetNamespace": pin.target_namespace, "createNamespace": True,
                            "backOffLimit": HELM_BACKOFF_LIMIT, "valuesContent": _dump(values)}
    if content:
        spec["chartContent"] = content
    else:
        spec.update(repo=pin.repo, version=pin.version)
    return {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
            "metadata": {"name": pin.release, "namespace": charts.HELM_NAMESPACE, "labels": dict(PART_OF)},
            "spec": spec}


def cnpg_chart() -> dict[str, Any]:
    return helmchart(charts.CNPG, {"replicaCount": 1})


def sablier_chart() -> dict[str, Any]:
    return helmchart(charts.SABLIER, {"replicas": 1})


def garage_chart(settings: Settings) -> dict[str, Any]:
    values = {"image": charts.GARAGE_IMAGE, "region": charts.GARAGE_REGION, "replicationFactor": "1",
              "adminTokenSecret": charts.GARAGE_ADMIN_SECRET, "rpcSecretSecret": charts.GARAGE_RPC_SECRET,
              "storage": {"metaSize": settings.garage_meta_size, "dataSize": settings.garage_data_size}}
    return helmchart(charts.GARAGE, values, content=charts.garage_chart_content())


def cert_manager_chart() -> dict[str, Any]:
    return helmchart(charts.CERT_MANAGER, {"crds": {"enabled": True}})


def cluster_issuer(settings: Settings) -> dict[str, Any]:
    """Let's Encrypt (or the configured ACME directory) answering HTTP-01 challenges through K3s's Traefik."""
    return {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": protocol.ACME_CLUSTER_ISSUER, "labels": dict(PART_OF)},
            "spec": {"acme": {"email": settings.acme_email, "server": settings.acme_server,
                              "privateKeySecretRef": {"name": charts.ACME_ACCOUNT_SECRET},
                              "solvers": [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]}}}


def traefik_config(ingress_nodes: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        # Sablier's middleware must exist while a service is scaled to zero: 503, not 404, for empty services.
        "providers": {"kubernetesIngress": {"allowEmptyServices": True},
                      "kubernetesCRD": {"allowEmptyServices": True}},
        "experimental": {"plugins": {"sablier": {"moduleName": charts.SABLIER_PLUGIN_MODULE,
                                                 "version": charts.SABLIER_PLUGIN_VERSION}}},
    }
    if ingress_nodes:
        # Only a nodeSelector: setting tolerations would replace (not extend) K3s's own list.
        values["nodeSelector"] = {INGRESS_LABEL: "true"}
    return {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChartConfig",
            "metadata": {"name": "traefik", "namespace": charts.HELM_NAMESPACE, "labels": dict(PART_OF)},
            "spec": {"valuesContent": _dump(values)}}


def backup_configuration(settings: Settings) -> dict[str, Any]:
    """The Cluster's `spec.backup`: WAL archive and base backups in the Garage bucket (in-tree Barman Cloud)."""

    def ref(key: str) -> dict[str, str]:
        return {"name": charts.BACKUP_S3_SECRET, "key": key}

    # `target` is what the CRD and CNPG's webhook default it to: spelled out, or every pass would see drift.
    return {"retentionPolicy": settings.backup_retention, "target": "prefer-standby",
            "barmanObjectStore": {
                "destinationPath": charts.BACKUP_DESTINATION, "endpointURL": charts.GARAGE_S3_URL,
                "serverName": settings.backup_server_name,
                "s3Credentials": {"accessKeyId": ref("ACCESS_KEY_ID"), "secretAccessKey": ref("ACCESS_SECRET_KEY"),
                                  "region": ref("REGION")},
                "wal": {"compression": "gzip"}, "data": {"compression": "gzip"}}}


# boto3 >= 1.36 sends checksums that S3-compatible stores may reject; CNPG's object store appendix advises this.
BARMAN_CHECKSUM_ENV = [{"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
                       {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"}]


def postgres_cluster(settings: Settings, *, backups: bool = False) -> dict[str, Any]:
    """The shared Cluster; with `backups` once the backup bucket and its Secret exist (Barman Cloud expects the
    bucket to be there before a Cluster refers to it)."""
    storage: dict[str, Any] = {"size": settings.postgres_storage}
    if settings.postgres_storage_class:
        storage["storageClass"] = settings.postgres_storage_class
    spec: dict[str, Any] = {
        "instances": settings.postgres_instances,
        # Defaults to false, and then no superuser Secret exists: EnsureDatabase needs it.
        "enableSuperuserAccess": True,
        "storage": storage,
        "resources": {"requests": {"cpu": settings.postgres_cpu, "memory": settings.postgres_memory},
                      "limits": {"memory": settings.postgres_memory}}}
    if backups:
        spec["backup"] = backup_configuration(settings)
        spec["env"] = BARMAN_CHECKSUM_ENV
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": charts.POSTGRES_CLUSTER, "namespace": charts.DATA_NAMESPACE, "labels": dict(PART_OF)},
            "spec": spec}


def scheduled_backup(settings: Settings) -> dict[str, Any]:
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
            "metadata": {"name": charts.SCHEDULED_BACKUP, "namespace": charts.DATA_NAMESPACE,
                         "labels": dict(PART_OF)},
            "spec": {"cluster": {"name": charts.POSTGRES_CLUSTER}, "schedule": settings.backup_schedule,
                     "method": "barmanObjectStore",
                     # A first base backup at once: the WAL archive alone cannot restore anything.
                     "immediate": True,
                     # The Backup objects belong to the ScheduledBackup and go with it (the files in the bucket
                     # stay: the Cluster's retention policy prunes those).
                     "backupOwnerReference": "self"}}


def backup_s3_secret(credentials: BucketCredentials) -> dict[str, Any]:
    return services.secret_object(charts.DATA_NAMESPACE, charts.BACKUP_S3_SECRET, {
        "ACCESS_KEY_ID": credentials.access_key_id, "ACCESS_SECRET_KEY": credentials.secret_access_key,
        "REGION": charts.GARAGE_REGION}, dict(PART_OF))


def data_namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": charts.DATA_NAMESPACE, "labels": PART_OF}}


def desired_objects(settings: Settings, ingress_nodes: bool = True) -> list[dict[str, Any]]:
    """Everything bootstrap applies (the Secrets aside: their values are generated once)."""
    objects = [data_namespace(), traefik_config(ingress_nodes), cnpg_chart(), sablier_chart(), garage_chart(settings),
               postgres_cluster(settings, backups=True), scheduled_backup(settings), cert_manager_chart()]
    return objects + ([cluster_issuer(settings)] if settings.acme_email else [])


# --- reading state ------------------------------------------------------------------------------------


@dataclass
class Status:
    component: str
    state: str = PENDING
    reason: str = ""
    logs: list[str] = field(default_factory=list)
    attempt: int = 0
    version: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        return (self.state, self.reason, tuple(self.logs), self.attempt)


def _drifted(current: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    """Only the fields we set count: controllers' additions (status, finalizers, defaults) are theirs."""
    if current is None:
        return True
    labels = current["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (desired["metadata"].get("labels") or {}).items()):
        return True
    return any(current.get("spec", {}).get(k) != v for k, v in desired.get("spec", {}).items())


def _condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond
    return None


def _condition_of(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    """The condition of that type whatever its status (None when the controller has not set it)."""
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None)


def _workload_problem(kind: str, obj: dict[str, Any]) -> str | None:
    """None when the workload is fully rolled out and ready, else what it is waiting for."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    name = f"{kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
        return f"{name}: rollout not observed yet"
    if kind == "DaemonSet":
        want, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
    else:
        want, ready = spec.get("replicas", 1), status.get("readyReplicas", 0)
        if status.get("updatedReplicas", 0) < want:
            return f"{name}: {status.get('updatedReplicas', 0)}/{want} updated"
    if ready < want:
        return f"{name}: {ready}/{want} ready"
    return None


class Bootstrapper:
    def __init__(self, kube: Kube, endpoints: services.Endpoints | None = None, *, publish: Publish | None = None,
                 interval: float = 5.0, backoff_base: float = 15.0, backoff_cap: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.endpoints = endpoints or services.Endpoints.from_env()
        self.publish = publish
        self.interval = interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.statuses: dict[str, Status] = {}
        self._sent: dict[str, tuple[Any, ...]] = {}
        self._task: asyncio.Task[dict[str, Any]] | None = None
        self._rerun = False

    # --- the persisted bits -------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        cm = self.kube.get(CONFIGMAP, STATE_CONFIGMAP, charts.HELM_NAMESPACE)
        data = (cm or {}).get("data") or {}
        return {"settings": json.loads(data.get("settings") or "{}"),
                "retries": json.loads(data.get("retries") or "{}")}

    def _save_state(self, state: dict[str, Any]) -> None:
        data = {"settings": json.dumps(state["settings"], sort_keys=True),
                "retries": json.dumps(state["retries"], sort_keys=True)}
        current = self.kube.get(CONFIGMAP, STATE_CONFIGMAP, charts.HELM_NAMESPACE)
        if current is not None and (current.get("data") or {}) == data:
            return
        self.kube.apply(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": STATE_CONFIGMAP, "namespace": charts.HELM_NAMESPACE, "labels": dict(PART_OF)}, "data": data},
            charts.HELM_NAMESPACE)

    def settings(self) -> Settings:
        return Settings.from_dict(self._load_state()["settings"])

    def store_settings(self, raw: dict[str, Any]) -> Settings:
        settings = Settings.from_dict(raw)  # validate before anything is written
        state = self._load_state()
        state["settings"] = asdict(settings)
        self._save_state(state)
        return settings

    # --- one pass ----------------------------------------------------------------------------------

    def _ensure(self, kind: Kind, desired: dict[str, Any]) -> bool:
        """Apply `desired` when it is missing or drifted. Returns whether it wrote."""
        meta = desired["metadata"]
        current = self.kube.get(kind, meta["name"], meta.get("namespace"))
        if not _drifted(current, desired):
            return False
        self.kube.apply(kind, desired, meta.get("namespace"))
        log.info("%s %s/%s %s", desired["kind"], meta.get("namespace", ""), meta["name"],
                 "created" if current is None else "updated (drifted)")
        return True

    def _ensure_secret(self, name: str, key: str, value: Callable[[], str]) -> None:
        # Generated once and never rewritten: Garage keeps using the token it started with.
        if self.kube.get(services.SECRET, name, charts.DATA_NAMESPACE) is None:
            self.kube.apply(services.SECRET, services.secret_object(charts.DATA_NAMESPACE, name, {key: value()},
                                                                    dict(PART_OF)), charts.DATA_NAMESPACE)

    def _job_logs(self, job: dict[str, Any]) -> list[str]:
        namespace = job["metadata"]["namespace"]
        pods = [p for p in self.kube.list(POD, namespace)
                if any(r.get("uid") == job["metadata"]["uid"] for r in p["metadata"].get("ownerReferences") or [])]
        if not pods:
            return []
        latest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        try:
            text = self.kube.pod_log(latest["metadata"]["name"], namespace, tail_lines=LOG_TAIL)
        except KubeError as exc:
            return [f"(logs unavailable: {exc.message})"]
        return text.splitlines()[-LOG_TAIL:]

    def _chart(self, component: str, desired: dict[str, Any], retries: dict[str, Any]) -> Status:
        """HelmChart -> helm-install Job -> released workloads; with backoff retries of a failed Job."""
        status = Status(component)
        name = desired["metadata"]["name"]
        namespace = charts.HELM_NAMESPACE
        record = retries.setdefault(component, {"attempts": 0, "retry_at": 0.0, "failed_job": "",
                                                "superseded_job": ""})
        job = self.kube.get(JOB, f"helm-install-{name}", namespace)
        current = self.kube.get(HELMCHART, name, namespace)
        if _drifted(current, desired):
            # The Job of the previous spec may still say Complete until the controller replaces it.
            record["superseded_job"] = job["metadata"]["uid"] if job and current is not None else ""
            self.kube.apply(HELMCHART, desired, namespace)
            log.info("HelmChart %s %s", name, "created" if current is None else "updated (drifted)")
            return Status(component, INSTALLING, "HelmChart applied; waiting for the Helm controller's Job",
                          attempt=record["attempts"])
        status.attempt = record["attempts"]
        if job is None and _condition(current, "Failed"):  # e.g. the controller could not generate a Job
            chart_failed = _condition(current, "Failed") or {}
            return Status(component, FAILED, chart_failed.get("message") or "the Helm controller marked it Failed",
                          attempt=record["attempts"])
        if job is None or job["metadata"]["uid"] == record["superseded_job"]:
            status.state, status.reason = INSTALLING, f"waiting for Job {namespace}/helm-install-{name}"
            return status
        failed_pods = (job.get("status") or {}).get("failed", 0)
        # The Job's own condition, not the chart's: the chart may still say Failed while a retry runs.
        job_failed = _condition(job, "Failed")
        if job_failed:
            uid = job["metadata"]["uid"]
            if record["failed_job"] != uid:  # first time we see this Job fail: schedule a retry
                record["failed_job"] = uid
                record["attempts"] += 1
                delay = min(self.backoff_cap, self.backoff_base * 2 ** (record["attempts"] - 1))
                record["retry_at"] = self.clock() + delay
            status.attempt = record["attempts"]
            wait = record["retry_at"] - self.clock()
            status.state, status.logs = FAILED, self._job_logs(job)
            message = job_failed.get("message") or job_failed.get("reason") or "the install Job failed"
            if wait <= 0:
                self.kube.delete(JOB, job["metadata"]["name"], namespace)  # the controller creates a fresh one
                status.reason = f"helm install failed ({message}); retrying now (attempt {record['attempts'] + 1})"
            else:
                status.reason = f"helm install failed ({message}); retrying in {wait:.0f}s"
            return status
        if not _condition(job, "Complete") and not (job.get("status") or {}).get("succeeded"):
            if failed_pods:
                status.state, status.logs = FAILED, self._job_logs(job)
                status.reason = f"helm install failed {failed_pods} time(s); the Job is retrying"
            else:
                status.state, status.reason = INSTALLING, f"Job {namespace}/helm-install-{name} running"
            return status
        target = desired["spec"].get("targetNamespace") or "default"
        return self._released(status, name, target)

    def _released(self, status: Status, release: str, namespace: str) -> Status:
        # List items carry no `kind` (as from a real apiserver): keep it alongside.
        workloads = [(kind.kind, w) for kind in WORKLOADS for w in self.kube.list(kind, namespace)
                     if (w["metadata"].get("annotations") or {}).get(RELEASE_ANNOTATION) == release]
        if not workloads:
            status.state, status.reason = INSTALLING, f"installed; waiting for the workloads of release {release}"
            return status
        problems = [p for p in (_workload_problem(kind, w) for kind, w in workloads) if p]
        if problems:
            status.state, status.reason = INSTALLING, "; ".join(problems)
            return status
        status.state, status.reason = READY, f"{len(workloads)} workload(s) ready"
        return status

    def _traefik(self) -> Status:
        nodes = self.kube.list(NODE)
        ingress = any((n["metadata"].get("labels") or {}).get(INGRESS_LABEL) == "true" for n in nodes)
        self._ensure(HELMCHARTCONFIG, traefik_config(ingress))
        status = Status("traefik")
        chart = self.kube.get(HELMCHART, "traefik", charts.HELM_NAMESPACE)
        if chart is None:
            status.state = FAILED
            status.reason = ("K3s's Traefik is not installed (no HelmChart kube-system/traefik: was K3s started "
                             "with --disable=traefik?); the HelmChartConfig waits for it")
            return status
        job = self.kube.get(JOB, "helm-install-traefik", charts.HELM_NAMESPACE)
        if job is None or not (_condition(job, "Complete") or (job.get("status") or {}).get("succeeded")):
            if job is not None and _condition(job, "Failed"):
                status.state, status.logs = FAILED, self._job_logs(job)
                status.reason = "K3s's Traefik install Job failed"
            else:
                status.state, status.reason = INSTALLING, "waiting for K3s's Traefik install Job"
            return status
        return self._released(status, "traefik", chart.get("spec", {}).get("targetNamespace") or "kube-system")

    def _garage(self, settings: Settings, retries: dict[str, Any]) -> Status:
        self._ensure_secret(charts.GARAGE_ADMIN_SECRET, "token", lambda: secrets.token_hex(32))
        self._ensure_secret(charts.GARAGE_RPC_SECRET, "secret", lambda: secrets.token_hex(32))
        status = self._chart("garage", garage_chart(settings), retries)
        if status.state != READY:
            return status
        try:
            admin = services.garage_admin(self.kube, self.endpoints)
            layout = admin.ensure_layout(quantity_bytes(settings.garage_data_size), settings.garage_zone)
            health = admin.health()
        except (GarageError, OSError, services.NotReady) as exc:
            return Status("garage", INSTALLING, f"waiting for Garage's admin API: {exc}", attempt=status.attempt)
        if health.get("status") == "unavailable":
            return Status("garage", INSTALLING, f"layout v{layout['version']} applied; waiting for quorum",
                          attempt=status.attempt)
        status.reason = f"admin API answers; layout version {layout['version']}; {health.get('status')}"
        return status

    def _backup_store(self, garage: Status) -> tuple[bool, str]:
        """The backup bucket, its key and their Secret for CNPG: (whether the Secret exists, what went wrong).

        Once made, the Secret stays even while Garage is briefly away, so the Cluster's backup section is never
        taken back and forth. The key's secret is rewritten only when Garage answers with another one.
        """
        current = services.read_secret(self.kube, charts.DATA_NAMESPACE, charts.BACKUP_S3_SECRET)
        if garage.state != READY:
            return current is not None, "waiting for Garage"
        try:
            credentials = services.garage_admin(self.kube, self.endpoints).ensure_bucket(charts.BACKUP_BUCKET)
        except (GarageError, OSError, services.NotReady) as exc:
            return current is not None, f"could not make the backup bucket: {exc}"
        desired = backup_s3_secret(credentials)
        if current != services.read_secret_data(desired):
            self.kube.apply(services.SECRET, desired, charts.DATA_NAMESPACE)
            log.info("Secret %s/%s %s", charts.DATA_NAMESPACE, charts.BACKUP_S3_SECRET,
                     "created" if current is None else "updated (the key changed)")
        if credentials.created:
            log.info("backup bucket %s created in Garage", charts.BACKUP_BUCKET)
        return True, ""

    def _backups(self, settings: Settings, postgres: Status, store: tuple[bool, str]) -> Status:
        """ScheduledBackup once the Cluster archives; ready when CNPG reports WAL archiving working and a base
        backup completed (the WAL archive alone restores nothing)."""
        store_ready, store_problem = store
        if not store_ready:
            return Status("backups", PENDING, store_problem or "waiting for the backup bucket")
        if postgres.state != READY:
            return Status("backups", PENDING, "waiting for the shared PostgreSQL")
        try:
            self._ensure(PG_SCHEDULED_BACKUP, scheduled_backup(settings))
        except KubeError as exc:
            if exc.status == 404:
                return Status("backups", PENDING, "waiting for the CloudNativePG ScheduledBackup CRD")
            raise
        cluster = self.kube.get(PG_CLUSTER, charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) or {}
        archiving, last_backup = _condition_of(cluster, "ContinuousArchiving"), _condition_of(cluster,
                                                                                               "LastBackupSucceeded")
        if archiving and archiving.get("status") == "False":
            return Status("backups", FAILED, f"WAL archiving to {charts.BACKUP_DESTINATION} fails: "
                          f"{archiving.get('message') or archiving.get('reason') or 'no message'}")
        if last_backup and last_backup.get("status") == "False":
            return Status("backups", FAILED, f"the last base backup failed: "
                          f"{last_backup.get('message') or last_backup.get('reason') or 'no message'}")
        backups = self.kube.list(PG_BACKUP, charts.DATA_NAMESPACE,
                                 f"cnpg.io/scheduled-backup={charts.SCHEDULED_BACKUP}")
        completed = sorted((b.get("status") or {}).get("stoppedAt") or "" for b in backups
                           if (b.get("status") or {}).get("phase") == "completed")
        if not archiving or archiving.get("status") != "True":
            return Status("backups", INSTALLING, "waiting for the first WAL file to reach the object store")
        if not completed:
            return Status("backups", INSTALLING, "WAL archiving works; waiting for the first base backup")
        return Status("backups", READY, f"WAL archiving works; last base backup {completed[-1]}; schedule "
                      f"'{settings.backup_schedule}', retention {settings.backup_retention}")

    def _postgres(self, settings: Settings, operator: Status, *, backups: bool = False) -> Status:
        if operator.state != READY:
            return Status("postgres", PENDING, "waiting for the CloudNativePG operator")
        desired = postgres_cluster(settings, backups=backups)
        try:
            if self._ensure(PG_CLUSTER, desired):
                return Status("postgres", INSTALLING, "Cluster applied; waiting for the operator")
        except KubeError as exc:
            if exc.status == 404:  # the operator's CRDs are not served yet
                return Status("postgres", PENDING, "waiting for the CloudNativePG CRDs")
            raise
        cluster = self.kube.get(PG_CLUSTER, charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) or {}
        status = cluster.get("status") or {}
        ready, want = status.get("readyInstances", 0), settings.postgres_instances
        if ready < want:
            phase = status.get("phase") or "no status yet"
            return Status("postgres", INSTALLING, f"{ready}/{want} instance(s) ready ({phase})")
        try:
            connect = services.superuser_connect(self.kube, self.endpoints)
            with connect("postgres") as conn:
                conn.execute("SELECT 1")
        except services.NotReady as exc:
            return Status("postgres", INSTALLING, str(exc))
        except Exception as exc:  # psycopg.OperationalError and DNS errors alike: keep waiting
            return Status("postgres", INSTALLING, f"PostgreSQL does not accept connections yet: {exc}")
        return Status("postgres", READY, f"{ready} instance(s) ready; accepts superuser connections")

    def _tls(self, settings: Settings, retries: dict[str, Any]) -> Status:
        status = self._chart("tls", cert_manager_chart(), retries)
        if status.state != READY:
            return status
        if not settings.acme_email:
            status.reason = ("cert-manager installed; no ACME e-mail is set (PAAS_ACME_EMAIL), so there is no issuer "
                             "and service hosts stay http://")
            return status
        try:
            self._ensure(CLUSTER_ISSUER, cluster_issuer(settings))
        except KubeError as exc:
            if exc.status == 404:  # cert-manager's CRDs are not served yet
                return Status("tls", INSTALLING, "waiting for cert-manager's CRDs", attempt=status.attempt)
            raise
        issuer = self.kube.get(CLUSTER_ISSUER, protocol.ACME_CLUSTER_ISSUER) or {}
        ready = next((c for c in (issuer.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        name = f"ClusterIssuer {protocol.ACME_CLUSTER_ISSUER}"
        if ready.get("status") == "True":
            return Status("tls", READY, f"{name} ready: {ready.get('message') or 'ACME account registered'}",
                          attempt=status.attempt)
        if ready.get("status") == "False":
            return Status("tls", FAILED, f"{name} not ready: {ready.get('message') or ready.get('reason')}",
                          attempt=status.attempt)
        return Status("tls", INSTALLING, f"{name} applied; waiting for it to register with {settings.acme_server}",
                      attempt=status.attempt)

    def run_pass(self) -> dict[str, Status]:
        """Check everything once and fix what is missing or drifted. Blocking; safe to repeat at any time."""
        state = self._load_state()
        settings = Settings.from_dict(state["settings"])
        retries = state["retries"]
        if self.kube.get(NAMESPACE, charts.DATA_NAMESPACE) is None:
            self._ensure(NAMESPACE, data_namespace())
        out = {"traefik": self._traefik(),
               "cnpg": self._chart("cnpg", cnpg_chart(), retries),
               "sablier": self._chart("sablier", sablier_chart(), retries)}
        out["garage"] = self._garage(settings, retries)
        store = self._backup_store(out["garage"])
        out["postgres"] = self._postgres(settings, out["cnpg"], backups=store[0])
        out["backups"] = self._backups(settings, out["postgres"], store)
        out["tls"] = self._tls(settings, retries)
        for component, status in out.items():
            status.version = charts.versions()[component]
            if status.state == READY and component in retries:
                retries[component].update(attempts=0, failed_job="")
        self._save_state(state)
        self.statuses = out
        return out

    # --- the loop, reporting, triggers ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"components": {c: asdict(s) for c, s in self.statuses.items()},
                "ready": bool(self.statuses) and all(s.state == READY for s in self.statuses.values()),
                "running": self.running, "versions": charts.versions()}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _report(self) -> None:
        for component, status in self.statuses.items():
            if self._sent.get(component) == status.key():
                continue
            log.info("bootstrap %s: %s %s", component, status.state, status.reason)
            if self.publish is not None and await self.publish("bootstrap.progress", asdict(status)):
                self._sent[component] = status.key()

    async def run(self) -> dict[str, Any]:
        """Passes until every component is ready. Returns the final snapshot."""
        while True:
            self._rerun = False
            try:
                await asyncio.to_thread(self.run_pass)
            except Exception as exc:  # the API server away, a bug: report it on what is not ready, keep trying
                log.exception("bootstrap pass failed")
                previous = self.statuses
                self.statuses = {}
                for component in COMPONENTS:
                    status = previous.get(component) or Status(component)
                    if status.state != READY:
                        status = replace(status, reason=f"bootstrap pass failed: {exc}")
                    self.statuses[component] = status
            await self._report()
            if self.statuses and all(s.state == READY for s in self.statuses.values()) and not self._rerun:
                return self.snapshot()
            await asyncio.sleep(self.interval)

    def trigger(self) -> bool:
        """Start a run unless one is going (which then makes one more pass). Returns whether it started one."""
        if self.running:
            self._rerun = True
            return False
        self._task = asyncio.get_running_loop().create_task(self.run())
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def on_connect(self, run: bool = True) -> None:
        """After every (re)connect: the control plane may have missed transitions; send all, then run."""
        self._sent.clear()
        await self._report()
        if run:
            self.trigger()

    def attach(self, tunnel: Any, *, on_connect: bool = True) -> None:
        """Report through the tunnel's events; with `on_connect`, also bootstrap on every connect."""
        self.publish = tunnel.send_event
        tunnel.on_connect.append(lambda: self.on_connect(run=on_connect))


_BOOTSTRAPPERS: weakref.WeakKeyDictionary[Kube, Bootstrapper] = weakref.WeakKeyDictionary()


def bootstrapper_for(kube: Kube) -> Bootstrapper:
    """The one Bootstrapper of this agent process (handlers' ops and __main__'s wiring share it)."""
    if kube not in _BOOTSTRAPPERS:
        # AGENT_BOOTSTRAP_INTERVAL: seconds between passes while something is not ready (tests shorten it).
        _BOOTSTRAPPERS[kube] = Bootstrapper(kube, interval=float(os.environ.get("AGENT_BOOTSTRAP_INTERVAL", "5")))
    return _BOOTSTRAPPERS[kube]
