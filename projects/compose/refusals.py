"""Policy: what a tenant's compose file may not do, and what we warn about.

Refusals name the service and the key and say why; the whole file is refused, nothing applied.
Keys we understand but cannot honour on Kubernetes are warnings, never silence.
"""

from __future__ import annotations

import re
from typing import Any

from .context import RenderContext
from .model import Project, Service
from .report import Report

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "tmpfs", "healthcheck", "deploy", "user", "working_dir", "read_only", "stop_grace_period", "labels",
    "secrets", "configs", "restart", "depends_on", "profiles", "mem_limit", "mem_reservation", "cpus",
    "cap_drop", "privileged", "cap_add", "devices", "network_mode", "pid", "ipc", "userns_mode", "uts",
    "cgroup", "security_opt", "sysctls", "device_cgroup_rules", "extends", "gpus",
}
# Understood, but without an equivalent here: shown as warnings with the reason.
IGNORED_KEYS = {
    "container_name": "the service name is the container's name and hostname",
    "hostname": "other services reach it by its service name",
    "domainname": "other services reach it by its service name",
    "networks": "all services of a project share one network, isolated from other projects",
    "links": "services reach each other by service name",
    "external_links": "only services of this file are reachable",
    "dns": "the cluster DNS is used",
    "dns_search": "the cluster DNS is used",
    "dns_opt": "the cluster DNS is used",
    "extra_hosts": "host entries are not supported",
    "logging": "logs are collected from stdout and stderr",
    "stop_signal": "Kubernetes stops containers with SIGTERM",
    "stdin_open": "there is no attached terminal; use the web terminal",
    "tty": "there is no attached terminal; use the web terminal",
    "ulimits": "ulimits cannot be set per container",
    "platform": "images run on the nodes' platform",
    "runtime": "containers use the cluster's default runtime",
    "mac_address": "network addresses are assigned by the cluster",
    "cgroup_parent": "cgroups are managed by the cluster",
    "group_add": "supplementary groups are not supported",
    "init": "no init process is injected",
    "shm_size": "the shared memory size keeps its default",
    "volumes_from": "mount the same named volume in both services instead",
    "pull_policy": "images are pulled by the cluster's default policy",
    "oom_score_adj": "not supported",
    "oom_kill_disable": "not supported",
    "mem_swappiness": "not supported",
    "memswap_limit": "not supported",
    "cpu_shares": "use deploy.resources",
    "cpu_quota": "use deploy.resources",
    "cpu_period": "use deploy.resources",
    "cpuset": "use deploy.resources",
    "cpu_count": "use deploy.resources",
    "cpu_percent": "use deploy.resources",
    "pids_limit": "not supported",
    "blkio_config": "not supported",
    "storage_opt": "not supported",
    "isolation": "not supported",
    "attach": "not supported",
    "develop": "development watch mode is not supported",
    "scale": "use deploy.replicas",
    "annotations": "not supported",
    "label_file": "not supported",
    "post_start": "lifecycle hooks are not supported",
    "pre_stop": "lifecycle hooks are not supported",
}
TOP_LEVEL_KEYS = {"services", "volumes", "secrets", "configs", "name", "networks", "version"}
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFINEMENT_OFF = re.compile(
    r"^(seccomp|apparmor|systempaths)[:=]unconfined$|^label[:=]disable$|^no-new-privileges[:=]false$"
)
_POSTGRES = re.compile(
    r"^(?:(?:docker\.io|index\.docker\.io)/)?(?:library/)?postgres(?::[^/@]+)?(?:@sha256:[0-9a-f]+)?$"
)


def is_official_postgres(image: str | None) -> bool:
    return bool(image and _POSTGRES.match(image))


def name_rule_broken(name: str) -> str | None:
    """Which DNS-1035 label rule a service name breaks (it becomes a Service and a hostname)."""
    if len(name) > 63:
        return "must be at most 63 characters"
    if name != name.lower():
        return "must be lowercase"
    if re.search(r"[^a-z0-9-]", name):
        bad = sorted(set(re.findall(r"[^a-z0-9-]", name)))
        return f"may contain only lowercase letters, digits and '-' (found {' '.join(repr(c) for c in bad)})"
    if not name[:1].isalpha():
        return "must start with a letter"
    if not _DNS_1035.match(name):
        return "must end with a letter or a digit"
    return None


def check_top_level(data: dict[str, Any], report: Report) -> None:
    for key in data:
        if key.startswith("x-") or key in TOP_LEVEL_KEYS:
            continue
        if key == "include":
            report.refuse((key,), "including other compose files is not supported; paste one complete file")
        else:
            report.warn((key,), f"unknown top-level key {key!r} is ignored")
    if "version" in data:
        report.note(("version",), "the `version` key is obsolete and ignored")
    if data.get("networks"):
        report.warn(("networks",), "networks are ignored: " + IGNORED_KEYS["networks"])


def check_service(service: Service, project: Project, ctx: RenderContext, report: Report) -> None:
    raw, path = service.raw, ("services", service.name)
    rule = name_rule_broken(service.name)
    if rule:
        report.refuse(path, f"the service name {service.name!r} {rule}; it is used as a DNS name")
    _check_privileges(raw, path, report)
    _check_unknown_keys(raw, path, report)
    if service.image is None or not service.image.strip():
        if service.has_build:
            report.refuse(
                (*path, "build"),
                "the service is built from source, but there is no image builder yet: "
                "build and push the image to a registry and set `image`",
            )
        else:
            report.refuse(path, "the service has no `image`")
    elif service.has_build:
        report.warn((*path, "build"), f"`build` is ignored; the image {service.image!r} is pulled instead")
    if service.replicas > ctx.plan.max_replicas:
        report.refuse(
            (*path, "deploy", "replicas"),
            f"{service.replicas} replicas exceed the plan's limit of {ctx.plan.max_replicas}",
        )
    if raw.get("deploy", {}).get("mode") == "global" if isinstance(raw.get("deploy"), dict) else False:
        report.warn((*path, "deploy", "mode"), "global mode is not supported; the service runs replicated")
    _check_ports(service, report)
    _check_mounts(service, project, report)
    _check_references(service, project, report)


def _check_privileges(raw: dict[str, Any], path: tuple[str, ...], report: Report) -> None:
    if raw.get("privileged") not in (None, False, "false"):
        report.refuse((*path, "privileged"), "privileged containers could take over the node")
    for key, why in (
        ("cap_add", "added capabilities weaken the container's isolation"),
        ("devices", "host devices cannot be passed to containers"),
        ("device_cgroup_rules", "host devices cannot be passed to containers"),
        ("gpus", "GPUs are not available"),
        ("sysctls", "kernel parameters cannot be changed by tenants"),
    ):
        if raw.get(key):
            report.refuse((*path, key), why)
    network_mode = str(raw.get("network_mode") or "")
    if network_mode == "host" or network_mode.startswith(("container:", "service:")):
        report.refuse(
            (*path, "network_mode"),
            f"network_mode {network_mode!r} shares another network namespace; "
            "services reach each other by name, remove network_mode",
        )
    elif network_mode not in ("", "bridge", "default", "none"):
        report.warn((*path, "network_mode"), f"network_mode {network_mode!r} is ignored")
    for key in ("pid", "ipc", "userns_mode", "uts", "cgroup"):
        value = str(raw.get(key) or "")
        if value == "host" or value.startswith(("container:", "service:")):
            report.refuse((*path, key), f"{key} {value!r} shares a namespace outside the container")
        elif value and value not in ("private", "shareable"):
            report.warn((*path, key), f"{key} {value!r} is ignored")
    security_opt = raw.get("security_opt") or []
    for i, option in enumerate(security_opt if isinstance(security_opt, list) else [security_opt]):
        if _CONFINEMENT_OFF.match(str(option).strip()):
            report.refuse((*path, "security_opt", i), f"security_opt {option!r} disables the container's confinement")
        else:
            report.warn((*path, "security_opt", i), f"security_opt {option!r} is ignored")
    if raw.get("cap_drop"):
        report.note((*path, "cap_drop"), "every container already drops all capabilities it does not need")
    if raw.get("extends"):
        report.refuse((*path, "extends"), "`extends` is not supported; write the settings into the service")


def _check_unknown_keys(raw: dict[str, Any], path: tuple[str, ...], report: Report) -> None:
    for key in raw:
        if key in SERVICE_KEYS or key.startswith("x-"):
            continue
        if key in IGNORED_KEYS:
            report.warn((*path, key), f"`{key}` is ignored: {IGNORED_KEYS[key]}")
        else:
            report.warn((*path, key), f"unknown key {key!r} is ignored")


def _check_ports(service: Service, report: Report) -> None:
    for port in service.ports:
        if port.mode == "host":
            report.refuse(
                (*port.path, "mode"),
                "host-mode ports bind the node's network; publish the port normally (mode: ingress)",
            )
        if port.protocol == "SCTP":
            report.refuse(port.path, "SCTP ports are not supported")


def _check_mounts(service: Service, project: Project, report: Report) -> None:
    for mount in service.mounts:
        if mount.kind == "bind" and mount.source.rstrip("/").endswith("docker.sock"):
            report.refuse(mount.path, "mounting the Docker socket would give the container control of the node")
        elif mount.kind == "bind" and not mount.source.startswith("."):
            report.refuse(
                mount.path,
                f"bind mount of the host path {mount.source!r}: host paths are not available; use a named volume",
            )
        elif mount.kind not in ("bind", "volume", "anonymous", "tmpfs"):
            report.refuse(mount.path, f"volumes of type {mount.kind!r} are not supported")
        elif mount.kind == "volume":
            volume = project.volumes.get(mount.source)
            if volume is None:
                report.refuse(mount.path, f"the volume {mount.source!r} is not declared under top-level `volumes`")
            elif volume.external:
                report.refuse(
                    mount.path, f"the volume {mount.source!r} is external; external volumes do not exist here"
                )
        if not mount.target.startswith("/"):
            report.refuse(mount.path, f"the container path {mount.target!r} must be absolute")


def _check_references(service: Service, project: Project, report: Report) -> None:
    pairs = (("secret", service.secrets, project.secrets), ("config", service.configs, project.configs))
    for kind, refs, table in pairs:
        for ref in refs:
            if ref.source not in table:
                report.refuse(ref.path, f"the {kind} {ref.source!r} is not declared under top-level `{kind}s`")
    for name in service.depends_on:
        if name not in project.services:
            report.refuse(("services", service.name, "depends_on", name), f"depends on unknown service {name!r}")
