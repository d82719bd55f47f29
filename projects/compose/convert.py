"""One compose service -> its Kubernetes objects, following Kompose's mapping where it is safe.

Differences from Kompose, on purpose (see docs/compose.md):
- `restart: "no"` without ports is a Job (named per revision: a Job's template is immutable), not a
  bare Pod; a service with ports is always a Deployment.
- Anonymous volumes are emptyDir (Kompose makes PVCs); relative bind mounts are a ConfigMap when the
  file's content is given, otherwise a PVC `<service>-claim<N>` that starts empty (with a warning).
- env_file contents are a ConfigMap per file (like Kompose) referenced through envFrom.
- Health checks become readiness and liveness probes; shell forms run through `sh -c`.
- Every pod drops capabilities, disables privilege escalation and the service-account token, and
  gets resources from the plan when the file sets none.
"""

from __future__ import annotations

import base64
import math
import posixpath
from dataclasses import dataclass, field
from typing import Any

from . import labels as L
from . import sleep
from .context import RenderContext, ServiceSummary, dns_label, hashed_label
from .interpolate import InterpolationError, Interpolator
from .k8s import fit, is_annotation_key, metadata, pod_labels, selector
from .model import Mount, Port, Project, Service
from .quantities import (
    cpu_quantity,
    memory_bytes,
    memory_quantity,
    millicpus,
    parse_quantity,
)
from .report import Report

# Capabilities kept after dropping ALL: what common images (nginx, databases) need to start as root
# and switch user. NET_RAW, MKNOD, AUDIT_WRITE and SETFCAP are left out.
KEPT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"]
VOLUME_SIZE_LABEL = "kompose.volume.size"
DOCKER_DEFAULT_INTERVAL = 30.0


@dataclass
class Shared:
    """Objects several services may reference (volumes, env files, secrets) and per-render state."""

    ctx: RenderContext
    project: Project
    report: Report
    strict_files: bool
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Service name -> first Service port, for depends_on waits.
    service_ports: dict[str, int] = field(default_factory=dict)
    jobs: set[str] = field(default_factory=set)
    # Env var overrides per service (postgres replacement): name -> secret key.
    db_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, obj: dict[str, Any]) -> None:
        self.objects.setdefault((obj["kind"], obj["metadata"]["name"]), obj)

    def file(self, relative: str, path: tuple[str | int, ...], what: str) -> str | None:
        key = posixpath.normpath(relative.replace("\\", "/"))
        if key in self.ctx.files:
            return self.ctx.files[key]
        message = f"the {what} {relative!r} was not provided with the compose file"
        if self.strict_files:
            self.report.refuse(path, message)
        else:
            self.report.warn(path, message + "; deploying will refuse until it is")
        return None


# --- environment ----------------------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """docker compose's env-file format: KEY=VALUE lines, `#` comments, optional quotes/`export`."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not key or not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _environment(service: Service, shared: Shared) -> list[dict[str, Any]]:
    ctx, report = shared.ctx, shared.report
    env: list[dict[str, Any]] = []
    seen: set[str] = set()
    overrides = shared.db_env.get(service.name, {})
    for name, value in service.environment.items():
        if name in overrides and ctx.database_secret:
            env.append(_secret_env(name, ctx.database_secret, overrides[name]))
        elif value is None:
            if name not in ctx.variables:
                report.warn(
                    ("services", service.name, "environment", name),
                    f"{name} has no value and is not a project variable; it is left unset",
                )
                continue
            env.append({"name": name, "value": ctx.variables[name]})
        else:
            env.append({"name": name, "value": value})
        seen.add(name)
    for secret, keys in ((ctx.database_secret, L.DATABASE_SECRET_KEYS), (ctx.bucket_secret, L.BUCKET_SECRET_KEYS)):
        if not secret:
            continue
        for key in keys:
            if key in seen:
                report.warn(
                    ("services", service.name, "environment", key),
                    f"{key} is set in the file, so the platform's {key} is not injected",
                )
            else:
                env.append(_secret_env(key, secret, key))
    return env


def _env_from(service: Service, shared: Shared) -> list[dict[str, Any]]:
    refs = []
    for relative, required, path in service.env_files:
        content = shared.file(relative, path, "env file") if required else shared.ctx.files.get(
            posixpath.normpath(relative)
        )
        if content is None:
            continue
        interpolator = Interpolator(shared.ctx.variables)
        data = {}
        for key, value in parse_env_file(content).items():
            try:
                data[key] = interpolator.expand(value)
            except InterpolationError as exc:
                shared.report.refuse(path, f"in {relative}: {exc}")
        name = fit("env-" + dns_label(posixpath.normpath(relative).replace("/", "-").replace(".", "-")))
        shared.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(shared.ctx, name), "data": data})
        refs.append({"configMapRef": {"name": name}})
    return refs


# --- resources and probes -------------------------------------------------------------------------


def _resources(service: Service, shared: Shared) -> dict[str, Any]:
    plan, report = shared.ctx.plan, shared.report
    path = ("services", service.name, "deploy", "resources")
    cpu_limit = service.cpu_limit or max(millicpus(plan.default_cpu_limit), service.cpu_request or 0)
    cpu_request = service.cpu_request or min(millicpus(plan.default_cpu_request), cpu_limit)
    mem_limit = service.memory_limit or max(memory_bytes(plan.default_memory_limit), service.memory_request or 0)
    mem_request = service.memory_request or min(memory_bytes(plan.default_memory_request), mem_limit)
    if cpu_request > cpu_limit or mem_request > mem_limit:
        report.refuse(path, "reservations must not exceed limits")
    if cpu_limit > millicpus(plan.max_container_cpu):
        report.refuse(path, f"a CPU limit of {cpu_quantity(cpu_limit)} exceeds the plan's {plan.max_container_cpu}")
    if mem_limit > memory_bytes(plan.max_container_memory):
        report.refuse(
            path, f"a memory limit of {memory_quantity(mem_limit)} exceeds the plan's {plan.max_container_memory}"
        )
    return {
        "limits": {"cpu": cpu_quantity(cpu_limit), "memory": memory_quantity(mem_limit)},
        "requests": {"cpu": cpu_quantity(cpu_request), "memory": memory_quantity(mem_request)},
    }


def _probe(service: Service, shared: Shared) -> dict[str, Any] | None:
    check = service.healthcheck
    if check is None or check.disabled:
        return None
    if not check.test:
        shared.report.note(
            ("services", service.name, "healthcheck"),
            "the health check has no test (the image's own HEALTHCHECK is not visible here): no probe is set",
        )
        return None
    probe: dict[str, Any] = {
        "exec": {"command": list(check.test)},
        "periodSeconds": max(1, math.ceil(check.interval or DOCKER_DEFAULT_INTERVAL)),
        "timeoutSeconds": max(1, math.ceil(check.timeout or DOCKER_DEFAULT_INTERVAL)),
        "failureThreshold": max(1, check.retries or 3),
    }
    if check.start_period:
        probe["initialDelaySeconds"] = math.ceil(check.start_period)
    return probe


def _security_context(service: Service, shared: Shared) -> dict[str, Any]:
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": list(KEPT_CAPABILITIES)},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if service.read_only:
        context["readOnlyRootFilesystem"] = True
    if service.user:
        uid, _, gid = service.user.partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()) and int(uid) < 2**31 and int(gid or 0) < 2**31:
            context["runAsUser"] = int(uid)
            if gid:
                context["runAsGroup"] = int(gid)
            if int(uid) != 0:
                context["runAsNonRoot"] = True
        else:
            shared.report.warn(
                ("services", service.name, "user"),
                f"user {service.user!r} is not numeric; Kubernetes needs a uid, so the image's user is used",
            )
    return context


# --- volumes --------------------------------------------------------------------------------------


def _claim(shared: Shared, name: str, size: str) -> None:
    shared.add(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata(shared.ctx, name, component="volume"),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
        }
    )


def _size(labels: dict[str, str], shared: Shared, path: tuple[str | int, ...]) -> str | None:
    size = labels.get(VOLUME_SIZE_LABEL)
    if size is None:
        return None
    try:
        if parse_quantity(size) <= 0:
            raise ValueError(f"{size!r} is not a positive size")
    except ValueError as exc:
        shared.report.refuse(path, f"{VOLUME_SIZE_LABEL}: {exc}")
        return None
    return size


def _mount(
    service: Service, index: int, mount: Mount, shared: Shared
) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """(volume, volumeMount, needs Recreate) for one compose mount."""
    ctx = shared.ctx
    volume_name = f"vol{index}"
    mount_spec: dict[str, Any] | None = {"name": volume_name, "mountPath": mount.target}
    if mount.read_only:
        mount_spec["readOnly"] = True  # type: ignore[index]
    default_size = _size(service.labels, shared, ("services", service.name, "labels")) or ctx.plan.default_volume_size
    if mount.kind == "tmpfs":
        return {"name": volume_name, "emptyDir": {"medium": "Memory"}}, mount_spec, False
    if mount.kind == "anonymous":
        return {"name": volume_name, "emptyDir": {}}, mount_spec, False
    if mount.kind == "volume":
        volume = shared.project.volumes[mount.source]
        claim = fit(dns_label(mount.source.replace("_", "-").replace(".", "-")))
        _claim(shared, claim, _size(volume.labels, shared, ("volumes", mount.source)) or default_size)
        return {"name": volume_name, "persistentVolumeClaim": {"claimName": claim}}, mount_spec, True
    # A relative bind mount: a ConfigMap when the file was provided, else an empty claim.
    relative = posixpath.normpath(mount.source)
    if relative in ctx.files:
        name = fit(f"{service.name}-file{index}")
        key = dns_label(posixpath.basename(relative).replace("_", "-")) if relative != "." else "content"
        shared.add(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(ctx, name, service=service.name),
                "data": {key: ctx.files[relative]},
            }
        )
        mount_spec["subPath"] = key  # type: ignore[index]
        shared.report.note(mount.path, f"{mount.source} is mounted read-only from a ConfigMap with its content")
        mount_spec["readOnly"] = True  # type: ignore[index]
        return {"name": volume_name, "configMap": {"name": name}}, mount_spec, False
    claim = fit(f"{service.name}-claim{index}")
    _claim(shared, claim, default_size)
    shared.report.warn(
        mount.path,
        f"{mount.source} is a path on your machine: it becomes an empty persistent volume "
        "(its files are not uploaded); bake them into the image or use `configs`",
    )
    return {"name": volume_name, "persistentVolumeClaim": {"claimName": claim}}, mount_spec, True


def _file_mounts(service: Service, shared: Shared) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Secrets and configs: one object per top-level entry, mounted file by file."""
    volumes, mounts = [], []
    for kind, refs, table in (
        ("secret", service.secrets, shared.project.secrets),
        ("config", service.configs, shared.project.configs),
    ):
        for index, ref in enumerate(refs):
            entry = table.get(ref.source)
            if entry is None:
                continue
            name = fit(f"{kind}-{dns_label(ref.source.replace('_', '-'))}")
            volume: dict[str, Any] = {"name": f"{kind}{index}"}
            source: dict[str, Any] = {"secretName": name} if kind == "secret" else {"name": name}
            if ref.mode is not None:
                source["defaultMode"] = ref.mode & 0o777
            if entry.external:
                shared.report.warn(
                    ref.path, f"the {kind} {ref.source!r} is external: it must exist as {name!r} in the namespace"
                )
                source["optional"] = True
            else:
                content = _entry_content(entry, kind, shared)
                if content is None:
                    continue
                shared.add(_file_object(kind, name, content, shared))
            volume["secret" if kind == "secret" else "configMap"] = source
            volumes.append(volume)
            mounts.append({"name": volume["name"], "mountPath": ref.target, "subPath": "content", "readOnly": True})
    return volumes, mounts


def _entry_content(entry: Any, kind: str, shared: Shared) -> str | None:
    path = (f"{kind}s", entry.name)
    if entry.content is not None:
        return entry.content
    if entry.environment is not None:
        if entry.environment not in shared.ctx.variables:
            shared.report.refuse((*path, "environment"), f"project variable {entry.environment} is not set")
            return None
        return shared.ctx.variables[entry.environment]
    if entry.file is not None:
        return shared.file(entry.file, (*path, "file"), f"{kind} file")
    shared.report.refuse(path, f"the {kind} needs `file`, `environment` or `content`")
    return None


def _file_object(kind: str, name: str, content: str, shared: Shared) -> dict[str, Any]:
    meta = metadata(shared.ctx, name, component=kind)
    if kind == "secret":
        encoded = base64.b64encode(content.encode()).decode()
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": {"content": encoded}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"content": content}}


# --- ports, Service and Ingress -------------------------------------------------------------------


def _service_ports(service: Service) -> list[dict[str, Any]]:
    """Kompose's rule: port = published (or target), targetPort = target, name = the port."""
    result: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for port in [*service.ports, *service.expose]:
        number = port.published or port.target
        if (number, port.protocol) in seen:
            continue
        seen.add((number, port.protocol))
        name = str(number) if port.protocol == "TCP" else f"{number}-{port.protocol.lower()}"
        result.append({"name": name, "port": number, "targetPort": port.target, "protocol": port.protocol})
    return result


def _container_ports(service: Service) -> list[dict[str, Any]]:
    seen: dict[tuple[int, str], None] = {}
    for port in [*service.ports, *service.expose]:
        seen.setdefault((port.target, port.protocol), None)
    return [{"containerPort": target, "protocol": protocol} for target, protocol in seen]


def public_port(service: Service, ctx: RenderContext, report: Report) -> int | None:
    """The Service port an Ingress routes to, or None for a private service."""
    choice = ctx.exposure.get(service.name)
    path = ("services", service.name, "ports")
    published: list[Port] = [p for p in service.ports if p.published and p.protocol == "TCP"]
    if choice == "private":
        return None
    if published:
        if published[0].host_ip in ("127.0.0.1", "::1", "localhost") and choice != "public":
            report.note(path, "the port is published on localhost only, so the service stays private")
            return None
        return published[0].published
    if choice == "public":
        exposed = [p for p in [*service.ports, *service.expose] if p.protocol == "TCP"]
        if exposed:
            return exposed[0].target
        report.warn(("services", service.name), "the service is set public but has no TCP port to route to")
    elif any(p.published for p in service.ports):
        report.warn(path, "only TCP (HTTP) ports can be public; the UDP ports stay inside the project")
    return None


def public_host(service: str, ctx: RenderContext) -> str:
    """`<service>-<project>-<org>-<hash>.<base domain>`: readable, and the hash of the (org, project, service)
    triple keeps two tenants whose names join alike apart (the database refuses a duplicate all the same)."""
    label = hashed_label(f"{service}-{ctx.project_slug}-{ctx.org_slug}", ctx.org_slug, ctx.project_slug, service)
    return f"{label}.{ctx.base_domain}"


def _ingress(service: Service, port: int, shared: Shared) -> dict[str, Any]:
    host = public_host(service.name, shared.ctx)
    backend = {"service": {"name": service.name, "port": {"number": port}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(shared.ctx, service.name, service=service.name),
        "spec": {
            "ingressClassName": "traefik",
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


# --- the workload ---------------------------------------------------------------------------------


def _annotations(service: Service, shared: Shared) -> dict[str, str]:
    result = {}
    for key, value in {**service.labels, **service.deploy_labels}.items():
        path = ("services", service.name, "labels", key)
        if key.startswith("kompose."):
            if key != VOLUME_SIZE_LABEL:
                shared.report.warn(path, f"the Kompose label {key!r} is not supported and is ignored")
        elif key.startswith("traefik."):
            shared.report.warn(path, "Traefik's Docker labels are ignored; public services get an Ingress")
        elif not is_annotation_key(key):
            shared.report.warn(path, f"the label {key!r} is not a valid Kubernetes annotation key; ignored")
        else:
            result[key] = value
    return result


def _waits(service: Service, shared: Shared) -> list[dict[str, Any]]:
    """depends_on -> init containers that wait until the dependency's Service accepts connections.

    A Service only routes to ready pods, so this also approximates `service_healthy`.
    """
    inits = []
    for dependency, condition in service.depends_on.items():
        path = ("services", service.name, "depends_on", dependency)
        port = shared.service_ports.get(dependency)
        if dependency in shared.jobs or condition == "service_completed_successfully":
            shared.report.note(path, f"start order after {dependency!r} cannot be enforced; both start together")
            continue
        if port is None:
            shared.report.note(
                path, f"{dependency!r} has no ports to wait for, so both start together (depends_on not enforced)"
            )
            continue
        script = f"until nc -z -w 2 {dependency} {port}; do echo waiting for {dependency}; sleep 2; done"
        inits.append(
            {
                "name": fit(f"wait-for-{dependency}"),
                "image": shared.ctx.wait_image,
                "command": ["sh", "-c", script],
                "resources": {
                    "limits": {"cpu": "100m", "memory": "32Mi"},
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "runAsNonRoot": True,
                    "runAsUser": 65534,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }
        )
        shared.report.note(path, f"waits for {dependency}:{port} to accept connections before starting")
    return inits


def is_job(service: Service) -> bool:
    return service.restart == "no" and not service.ports and not service.expose


def convert_service(service: Service, shared: Shared) -> ServiceSummary:
    ctx, report = shared.ctx, shared.report
    container: dict[str, Any] = {"name": service.name, "image": service.image}
    if service.entrypoint is not None:
        container["command"] = service.entrypoint
    if service.command is not None:
        container["args"] = service.command
    env = _environment(service, shared)
    if env:
        container["env"] = env
    env_from = _env_from(service, shared)
    if env_from:
        container["envFrom"] = env_from
    ports = _container_ports(service)
    if ports:
        container["ports"] = ports
    container["resources"] = _resources(service, shared)
    probe = _probe(service, shared)
    if probe:
        container["readinessProbe"] = probe
        container["livenessProbe"] = dict(probe)
    container["securityContext"] = _security_context(service, shared)
    if service.working_dir:
        container["workingDir"] = service.working_dir
    volumes, mounts, recreate = [], [], False
    for index, mount in enumerate(service.mounts):
        volume, mount_spec, needs_recreate = _mount(service, index, mount, shared)
        volumes.append(volume)
        mounts.append(mount_spec)
        recreate = recreate or needs_recreate
    file_volumes, file_mounts = _file_mounts(service, shared)
    volumes += file_volumes
    mounts += file_mounts
    if mounts:
        container["volumeMounts"] = mounts
    if service.restart == "on-failure":
        report.note(("services", service.name, "restart"), "restart on-failure runs as a Deployment (always restarted)")
    job = is_job(service)
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        # Service links would inject REDIS_PORT=tcp://... and similar, which breaks many images.
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "restartPolicy": "Never" if job else "Always",
    }
    inits = _waits(service, shared)
    if inits:
        pod["initContainers"] = inits
    if volumes:
        pod["volumes"] = volumes
    if service.stop_grace_period is not None:
        pod["terminationGracePeriodSeconds"] = math.ceil(service.stop_grace_period)
    template = {"metadata": {"labels": pod_labels(ctx, service.name)}, "spec": pod}
    annotations = _annotations(service, shared)
    if job:
        name = fit(f"{service.name}-r{ctx.revision}")
        report.note(
            ("services", service.name, "restart"),
            f"restart: \"no\" without ports runs once per release as the Job {name}",
        )
        workload = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata(ctx, name, service=service.name, annotations=annotations),
            "spec": {"backoffLimit": 0, "template": template},
        }
    else:
        spec: dict[str, Any] = {
            "replicas": service.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(ctx, service.name)},
            "template": template,
        }
        if recreate:
            spec["strategy"] = {"type": "Recreate"}  # ReadWriteOnce volumes cannot be shared by two pods
        workload = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(ctx, service.name, service=service.name, annotations=annotations),
            "spec": spec,
        }
    shared.add(workload)
    service_ports = _service_ports(service)
    host = None
    if service_ports:
        shared.add(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(ctx, service.name, service=service.name),
                "spec": {"selector": selector(ctx, service.name), "ports": service_ports},
            }
        )
        port = public_port(service, ctx, report)
        if port is not None:
            ingress = _ingress(service, port, shared)
            if not job and service.replicas > 0 and sleep.settings_for(ctx, service.name).enabled:
                shared.add(sleep.make_sleepy(ctx, service.name, workload, ingress))
                if service.replicas > 1:
                    report.note(("services", service.name, "deploy", "replicas"),
                                "the service sleeps when idle, so it runs one replica when awake")
            shared.add(ingress)
            host = public_host(service.name, ctx)
    return ServiceSummary(
        name=service.name,
        kind=workload["kind"],
        public_host=host,
        ports=[{k: p[k] for k in ("port", "targetPort", "protocol")} for p in service_ports],
    )


def managed_database(service: Service, shared: Shared) -> ServiceSummary:
    """A replaced postgres service: its hostname now points at the shared CNPG cluster."""
    ctx = shared.ctx
    shared.add(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(ctx, service.name, service=service.name, component="managed-database"),
            "spec": {
                "type": "ExternalName",
                "externalName": ctx.postgres_host,
                "ports": [{"name": "postgres", "port": ctx.postgres_port, "targetPort": ctx.postgres_port}],
            },
        }
    )
    port = {"port": ctx.postgres_port, "targetPort": ctx.postgres_port, "protocol": "TCP"}
    return ServiceSummary(service.name, "ManagedDatabase", None, [port], True, True)
