"""A normalized compose model: every short/long syntax turned into one shape, types checked.

Normalizing is faithful (a host path stays a host path); policy lives in `refusals.py`.
Wrong shapes become refusals with the key's position; the rest of the file is still read so one
pass reports as much as possible.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .parse import Path
from .quantities import compose_bytes, compose_millicpus, duration_seconds
from .report import Invalid, Report

MAX_PORTS = 100  # per service, after expanding ranges


@dataclass
class Port:
    target: int
    published: int | None = None
    protocol: str = "TCP"
    host_ip: str | None = None
    mode: str | None = None
    path: Path = ()


@dataclass
class Mount:
    kind: str  # "volume" (named), "anonymous", "bind", "tmpfs", or another long-syntax type
    target: str
    source: str = ""
    read_only: bool = False
    path: Path = ()


@dataclass
class FileRef:
    source: str
    target: str
    mode: int | None = None
    path: Path = ()


@dataclass
class Healthcheck:
    test: list[str] | None
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    retries: int | None = None
    disabled: bool = False


@dataclass
class Service:
    name: str
    raw: dict[str, Any]
    image: str | None = None
    has_build: bool = False
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str | None] = field(default_factory=dict)
    env_files: list[tuple[str, bool, Path]] = field(default_factory=list)  # path, required, key
    ports: list[Port] = field(default_factory=list)
    expose: list[Port] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    healthcheck: Healthcheck | None = None
    replicas: int = 1
    cpu_limit: int | None = None  # millicores
    cpu_request: int | None = None
    memory_limit: int | None = None  # bytes
    memory_request: int | None = None
    user: str | None = None
    working_dir: str | None = None
    read_only: bool = False
    stop_grace_period: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    deploy_labels: dict[str, str] = field(default_factory=dict)
    secrets: list[FileRef] = field(default_factory=list)
    configs: list[FileRef] = field(default_factory=list)
    restart: str = "always"
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    profiles: list[str] = field(default_factory=list)


@dataclass
class TopLevelFile:
    name: str
    file: str | None = None
    environment: str | None = None
    content: str | None = None
    external: bool = False


@dataclass
class Volume:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    external: bool = False


@dataclass
class Project:
    name: str | None
    services: dict[str, Service]
    volumes: dict[str, Volume]
    secrets: dict[str, TopLevelFile]
    configs: dict[str, TopLevelFile]


# --- small typed readers; each raises Invalid(path, message) -------------------------------------


def _text(value: Any, path: Path) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise Invalid(path, "expected a string")


def _mapping(value: Any, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(path, "expected a mapping")
    return value


def _list(value: Any, path: Path) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(path, "expected a list")
    return value


def _bool(value: Any, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise Invalid(path, "expected true or false")


def _int(value: Any, path: Path, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid(path, "expected a whole number")
    try:
        number = int(value)
    except ValueError:
        raise Invalid(path, "expected a whole number") from None
    if not minimum <= number <= maximum:
        raise Invalid(path, f"expected a number between {minimum} and {maximum}")
    return number


def _command(value: Any, path: Path) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise Invalid(path, f"cannot split the command like a shell would: {exc}") from None
    return [_text(item, (*path, i)) for i, item in enumerate(_list(value, path))]


def _key_values(value: Any, path: Path, *, keep_none: bool) -> dict[str, str | None]:
    """`environment`/`labels`: a mapping, or a list of KEY=VALUE (KEY alone means unset)."""
    result: dict[str, str | None] = {}
    if isinstance(value, list):
        for i, item in enumerate(value):
            text = _text(item, (*path, i))
            key, sep, val = text.partition("=")
            if not key:
                raise Invalid((*path, i), "expected KEY=VALUE")
            result[key] = val if sep else None
    else:
        for key, val in _mapping(value, path).items():
            result[key] = None if val is None else _text(val, (*path, key))
    if not keep_none:
        return {k: v or "" for k, v in result.items()}
    return result


def _duration(value: Any, path: Path) -> float | None:
    if value is None:
        return None
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise Invalid(path, str(exc)) from None


# --- ports ----------------------------------------------------------------------------------------

_PORT_RANGE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")


def _port_range(text: str, path: Path) -> list[int]:
    match = _PORT_RANGE.match(text.strip())
    if not match:
        raise Invalid(path, f"{text!r} is not a port or port range")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if not 1 <= start <= end <= 65535:
        raise Invalid(path, f"{text!r} is not a valid port range (1-65535)")
    if end - start >= MAX_PORTS:
        raise Invalid(path, f"port range {text!r} is larger than {MAX_PORTS} ports")
    return list(range(start, end + 1))


def parse_port(value: Any, path: Path) -> list[Port]:
    if isinstance(value, dict):
        target = _int(value.get("target"), (*path, "target"), minimum=1, maximum=65535)
        published = value.get("published")
        protocol = _text(value.get("protocol") or "tcp", (*path, "protocol")).upper()
        if protocol not in ("TCP", "UDP", "SCTP"):
            raise Invalid((*path, "protocol"), f"unknown protocol {protocol.lower()!r}")
        pub = None if published in (None, "") else _int(published, (*path, "published"), minimum=1, maximum=65535)
        mode = value.get("mode")
        return [Port(target, pub, protocol, value.get("host_ip"), None if mode is None else str(mode), path)]
    text = _text(value, path)
    spec, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").upper()
    if protocol not in ("TCP", "UDP", "SCTP"):
        raise Invalid(path, f"unknown protocol {protocol.lower()!r}")
    host_ip = None
    if spec.startswith("["):  # [::1]:8080:80
        host_ip, _, spec = spec[1:].partition("]:")
    parts = spec.rsplit(":", 2)
    if len(parts) == 3:
        host_ip = parts[0] or None
        parts = parts[1:]
    targets = _port_range(parts[-1], path)
    if len(parts) == 1 or not parts[0]:
        return [Port(t, None, protocol, host_ip, None, path) for t in targets]
    published = _port_range(parts[0], path)
    if len(published) == 1 and len(targets) > 1:
        raise Invalid(path, "a port range must publish a range of the same length")
    if len(published) != len(targets) and len(targets) > 1:
        raise Invalid(path, "published and container port ranges differ in length")
    if len(targets) == 1:
        published = published[:1]  # docker picks one free port of a published range
    return [Port(t, p, protocol, host_ip, None, path) for p, t in zip(published, targets, strict=True)]


# --- volumes --------------------------------------------------------------------------------------

_WINDOWS = re.compile(r"^[A-Za-z]:[\\/]")


def _mount_kind(source: str) -> str:
    if not source:
        return "anonymous"
    if source.startswith((".", "/", "~")) or _WINDOWS.match(source) or "\\" in source:
        return "bind"
    return "volume"


def parse_mount(value: Any, path: Path) -> Mount:
    if isinstance(value, dict):
        kind = _text(value.get("type") or "volume", (*path, "type"))
        source = _text(value.get("source") or "", (*path, "source"))
        target = _text(value.get("target") or "", (*path, "target"))
        read_only = _bool(value.get("read_only", False), (*path, "read_only"))
        if kind == "volume" and not source:
            kind = "anonymous"
    else:
        text = _text(value, path)
        source, target, options = "", text, ""
        drive = _WINDOWS.match(text)
        rest = text[2:] if drive else text
        if ":" in rest:
            head, _, tail = rest.partition(":")
            source = text[:2] + head if drive else head
            target, _, options = tail.partition(":")
            if _WINDOWS.match(tail):  # C:\a:D:\b[:rw]
                target = tail[:2] + tail[2:].partition(":")[0]
                options = tail[2:].partition(":")[2]
            elif source and not target:
                raise Invalid(path, "expected SOURCE:TARGET[:MODE]")
        kind = _mount_kind(source)
        read_only = "ro" in options.split(",")
    if not target:
        raise Invalid(path, "the mount has no target path in the container")
    if kind == "bind" and not source:
        raise Invalid(path, "the bind mount has no source path")
    return Mount(kind, target, source, read_only, path)


# --- the service ----------------------------------------------------------------------------------


def _guarded(report: Report, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Invalid as exc:
        report.refuse(exc.path, exc.message)


def _file_refs(value: Any, path: Path, default_dir: str) -> list[FileRef]:
    refs = []
    for i, item in enumerate(_list(value, path)):
        item_path = (*path, i)
        if isinstance(item, dict):
            source = _text(item.get("source") or "", (*item_path, "source"))
            target = _text(item.get("target") or source, (*item_path, "target"))
            mode = item.get("mode")
            refs.append(
                FileRef(source, target, None if mode is None else _int(mode, (*item_path, "mode")), item_path)
            )
        else:
            source = _text(item, item_path)
            refs.append(FileRef(source, source, None, item_path))
        if not refs[-1].source:
            raise Invalid(item_path, "expected the name of a top-level entry")
        if not refs[-1].target.startswith("/"):
            refs[-1].target = f"{default_dir}/{refs[-1].target}" if default_dir else f"/{refs[-1].target}"
    return refs


def _healthcheck(value: Any, path: Path) -> Healthcheck:
    data = _mapping(value, path)
    test = data.get("test")
    command: list[str] | None
    if test is None:
        command = None
    elif isinstance(test, str):
        command = ["sh", "-c", test]
    else:
        items = [_text(t, (*path, "test", i)) for i, t in enumerate(_list(test, (*path, "test")))]
        if not items or items[0] == "NONE":
            return Healthcheck(None, disabled=True)
        if items[0] == "CMD-SHELL":
            command = ["sh", "-c", " ".join(items[1:])]
        elif items[0] == "CMD":
            command = items[1:]
        else:
            command = items
        if not command:
            raise Invalid((*path, "test"), "the health check has no command")
    retries = data.get("retries")
    return Healthcheck(
        test=command,
        interval=_duration(data.get("interval"), (*path, "interval")),
        timeout=_duration(data.get("timeout"), (*path, "timeout")),
        start_period=_duration(data.get("start_period"), (*path, "start_period")),
        retries=None if retries is None else _int(retries, (*path, "retries"), maximum=1000),
        disabled=_bool(data.get("disable", False), (*path, "disable")),
    )


def _restart(raw: dict[str, Any], path: Path) -> str:
    value = raw.get("restart")
    policy = _mapping(_mapping(raw.get("deploy"), (*path, "deploy")).get("restart_policy"), path)
    if value is None and policy.get("condition") is not None:
        condition = _text(policy["condition"], (*path, "deploy", "restart_policy", "condition"))
        value = {"none": "no", "any": "always"}.get(condition, condition)
    if value is None:
        return "always"
    if value is False:
        return "no"
    text = _text(value, (*path, "restart"))
    if text.split(":")[0] not in ("no", "always", "on-failure", "unless-stopped"):
        raise Invalid((*path, "restart"), f"unknown restart policy {text!r} (no, always, on-failure, unless-stopped)")
    return text.split(":")[0]


def _depends_on(value: Any, path: Path) -> dict[str, str]:
    if isinstance(value, list):
        return {_text(v, (*path, i)): "service_started" for i, v in enumerate(value)}
    result = {}
    for name, spec in _mapping(value, path).items():
        condition = _mapping(spec, (*path, name)).get("condition") or "service_started"
        result[name] = _text(condition, (*path, name, "condition"))
    return result


def _deploy(service: Service, value: Any, path: Path, report: Report) -> None:
    deploy = _mapping(value, path)
    if deploy.get("replicas") is not None:
        service.replicas = _int(deploy["replicas"], (*path, "replicas"), maximum=100_000)
    service.deploy_labels = {
        k: v or "" for k, v in _key_values(deploy.get("labels") or {}, (*path, "labels"), keep_none=True).items()
    }
    resources = _mapping(deploy.get("resources"), (*path, "resources"))
    for section, cpu_attr, mem_attr in (
        ("limits", "cpu_limit", "memory_limit"),
        ("reservations", "cpu_request", "memory_request"),
    ):
        spec = _mapping(resources.get(section), (*path, "resources", section))
        _guarded(report, lambda s=spec, sec=section, a=cpu_attr: _set_cpu(service, a, s, (*path, "resources", sec)))
        _guarded(
            report, lambda s=spec, sec=section, a=mem_attr: _set_memory(service, a, s, (*path, "resources", sec))
        )


def _set_cpu(service: Service, attr: str, spec: dict[str, Any], path: Path) -> None:
    if spec.get("cpus") is not None:
        try:
            setattr(service, attr, compose_millicpus(spec["cpus"]))
        except ValueError as exc:
            raise Invalid((*path, "cpus"), str(exc)) from None


def _set_memory(service: Service, attr: str, spec: dict[str, Any], path: Path) -> None:
    if spec.get("memory") is not None:
        try:
            setattr(service, attr, compose_bytes(spec["memory"]) or None)
        except ValueError as exc:
            raise Invalid((*path, "memory"), str(exc)) from None


def _env_files(value: Any, path: Path) -> list[tuple[str, bool, Path]]:
    if isinstance(value, str):
        return [(value, True, path)]
    files = []
    for i, item in enumerate(_list(value, path)):
        if isinstance(item, dict):
            files.append(
                (
                    _text(item.get("path") or "", (*path, i, "path")),
                    _bool(item.get("required", True), (*path, i, "required")),
                    (*path, i),
                )
            )
        else:
            files.append((_text(item, (*path, i)), True, (*path, i)))
    return files


def parse_service(name: str, raw: dict[str, Any], report: Report) -> Service:
    path: Path = ("services", name)
    service = Service(name=name, raw=raw)

    def read(key: str, fn: Callable[[Any, Path], None]) -> None:
        if key in raw:
            _guarded(report, lambda: fn(raw[key], (*path, key)))

    def set_(attr: str, conv: Callable[[Any, Path], Any]) -> Callable[[Any, Path], None]:
        return lambda v, p: setattr(service, attr, conv(v, p))

    read("image", set_("image", lambda v, p: _text(v, p) if v is not None else None))
    service.has_build = raw.get("build") is not None
    read("command", set_("command", _command))
    read("entrypoint", set_("entrypoint", _command))
    read("environment", set_("environment", lambda v, p: _key_values(v, p, keep_none=True)))
    read("env_file", set_("env_files", _env_files))
    read("labels", set_("labels", lambda v, p: _key_values(v, p, keep_none=False)))
    read("user", set_("user", _text))
    read("working_dir", set_("working_dir", _text))
    read("read_only", set_("read_only", _bool))
    read("stop_grace_period", set_("stop_grace_period", _duration))
    read("healthcheck", set_("healthcheck", _healthcheck))
    read("depends_on", set_("depends_on", _depends_on))
    read("profiles", set_("profiles", lambda v, p: [_text(x, (*p, i)) for i, x in enumerate(_list(v, p))]))
    read("secrets", set_("secrets", lambda v, p: _file_refs(v, p, "/run/secrets")))
    read("configs", set_("configs", lambda v, p: _file_refs(v, p, "")))
    read("deploy", lambda v, p: _deploy(service, v, p, report))
    _guarded(report, lambda: setattr(service, "restart", _restart(raw, path)))
    read("mem_limit", lambda v, p: _set_memory(service, "memory_limit", {"memory": v}, p[:-1]))
    read("mem_reservation", lambda v, p: _set_memory(service, "memory_request", {"memory": v}, p[:-1]))
    read("cpus", lambda v, p: _set_cpu(service, "cpu_limit", {"cpus": v}, p[:-1]))

    def ports(value: Any, p: Path) -> None:
        for i, item in enumerate(_list(value, p)):
            _guarded(report, lambda i=i, item=item: service.ports.extend(parse_port(item, (*p, i))))

    def expose(value: Any, p: Path) -> None:
        for i, item in enumerate(_list(value, p)):
            _guarded(report, lambda i=i, item=item: service.expose.extend(parse_port(item, (*p, i))))

    def mounts(value: Any, p: Path) -> None:
        for i, item in enumerate(_list(value, p)):
            _guarded(report, lambda i=i, item=item: service.mounts.append(parse_mount(item, (*p, i))))

    def tmpfs(value: Any, p: Path) -> None:
        items = [value] if isinstance(value, str) else _list(value, p)
        for i, item in enumerate(items):
            target = _text(item, (*p, i)).partition(":")[0]
            if target:
                service.mounts.append(Mount("tmpfs", target, "", False, (*p, i)))

    read("ports", ports)
    read("expose", expose)
    read("volumes", mounts)
    read("tmpfs", tmpfs)
    if len(service.ports) + len(service.expose) > MAX_PORTS:
        report.refuse((*path, "ports"), f"more than {MAX_PORTS} ports")
    return service


def _top_level_files(raw: Any, kind: str, report: Report) -> dict[str, TopLevelFile]:
    result = {}
    try:
        entries = _mapping(raw, (kind,))
    except Invalid as exc:
        report.refuse(exc.path, exc.message)
        return result
    for name, spec in entries.items():
        path = (kind, name)
        try:
            data = _mapping(spec, path)
            entry = TopLevelFile(name=name)
            entry.external = bool(data.get("external"))
            for attr in ("file", "environment", "content"):
                if data.get(attr) is not None:
                    setattr(entry, attr, _text(data[attr], (*path, attr)))
            result[name] = entry
        except Invalid as exc:
            report.refuse(exc.path, exc.message)
    return result


def parse_project(data: dict[str, Any], report: Report) -> Project:
    services: dict[str, Service] = {}
    raw_services = data.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        report.refuse(
            ("services",),
            "the file has no `services` mapping (version 1 files without `services:` are not supported)",
        )
        raw_services = {}
    for name, raw in raw_services.items():
        if not isinstance(raw, dict):
            report.refuse(("services", name), "a service must be a mapping")
            continue
        services[name] = parse_service(name, raw, report)
    volumes: dict[str, Volume] = {}
    raw_volumes = data.get("volumes")
    if raw_volumes is not None and not isinstance(raw_volumes, dict):
        report.refuse(("volumes",), "expected a mapping")
        raw_volumes = {}
    for name, spec in (raw_volumes or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        volumes[name] = Volume(name, external=bool(spec.get("external")))
        _guarded(report, lambda s=spec, v=volumes[name]: v.labels.update(
            _key_values(s.get("labels") or {}, ("volumes", v.name, "labels"), keep_none=False)  # type: ignore[arg-type]
        ))
    name = data.get("name")
    return Project(
        name=str(name) if isinstance(name, str | int) else None,
        services=services,
        volumes=volumes,
        secrets=_top_level_files(data.get("secrets"), "secrets", report),
        configs=_top_level_files(data.get("configs"), "configs", report),
    )
