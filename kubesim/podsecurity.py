"""Pod Security admission: the Pod Security Standards checked from namespace labels, as kube-apiserver does.

The checks, their order, their versions and their messages follow the Pod Security Standards and the upstream
`pod-security-admission` evaluator: a Pod that violates the namespace's `enforce` level is refused (403); Pods
and workload objects (their pod templates) that violate `warn` get `Warning` headers. `audit` labels are
parsed and validated, but kubesim keeps no audit log. No namespace, user or RuntimeClass is exempt (the
admission configuration of a default K3s exempts none).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesim import schema

PREFIX = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")
LATEST = int(schema.KUBERNETES_VERSION.split(".")[1])  # "latest" means the checks of this apiserver's release

Result = tuple[str, str]  # (forbidden reason, detail)
CheckFn = Callable[[dict[str, Any], dict[str, Any]], Result | None]


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: int | None  # minor version of 1.x; None is "latest"

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.version is None else f'v1.{self.version}'}"


@dataclass
class Policy:
    enforce: LevelVersion = LevelVersion("privileged", None)
    audit: LevelVersion = LevelVersion("privileged", None)
    warn: LevelVersion = LevelVersion("privileged", None)
    errors: list[dict[str, str]] = field(default_factory=list)  # apiserver-style causes for bad labels


def _parse_version(value: str) -> int | None:
    if value == "latest":
        return None
    m = re.fullmatch(r"v1\.(0|[1-9][0-9]*)", value)
    if not m:
        raise ValueError('must be "latest" or "v1.x"')
    return int(m.group(1))


def policy_of(labels: dict[str, str]) -> Policy:
    """The namespace's policy. Unparseable labels fail closed for enforce and open for warn and audit."""
    p = Policy()
    explicit: set[str] = set()
    for mode in ("enforce", "audit", "warn"):
        level, version = getattr(p, mode).level, getattr(p, mode).version
        key = PREFIX + mode
        if key in labels:
            if mode == "warn" or labels[key] in LEVELS:
                explicit.add(mode)  # an invalid enforce level does not set warn's default; an invalid warn does
            if labels[key] in LEVELS:
                level = labels[key]
            else:
                level = "restricted" if mode == "enforce" else "privileged"
                p.errors.append(_label_cause(key, labels[key], "must be one of privileged, baseline, restricted"))
        if key + "-version" in labels:
            explicit.add(mode + "-version")
            try:
                version = _parse_version(labels[key + "-version"])
            except ValueError as exc:
                version = None
                p.errors.append(_label_cause(key + "-version", labels[key + "-version"], str(exc)))
        setattr(p, mode, LevelVersion(level, version))
    # Warn defaults to the enforce level when enforce is stricter and warn is not set.
    if "enforce" in explicit and "warn" not in explicit and \
            LEVELS.index(p.enforce.level) > LEVELS.index(p.warn.level):
        p.warn = LevelVersion(p.enforce.level, p.warn.version if "warn-version" in explicit else p.enforce.version)
    return p


def _label_cause(key: str, value: str, message: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "field": f"metadata.labels[{key}]",
            "message": f'Invalid value: "{value}": {message}'}


# --- helpers -------------------------------------------------------------------------------------


def _quote(items: list[str]) -> str:
    return ", ".join(f'"{i}"' for i in items)


def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init, regular and ephemeral containers, in the evaluator's order."""
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or [] if isinstance(c, dict)]


def _name(container: dict[str, Any]) -> str:
    return str(container.get("name", ""))


def _sc(obj: dict[str, Any]) -> dict[str, Any]:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _named(kind: str, names: list[str]) -> str:
    return f"{_plural(kind, kind + 's', len(names))} {_quote(names)}"


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    return (["pod"] if pod_bad else []) + ([_named("container", containers)] if containers else [])


def _offenders(spec: dict[str, Any], values_of: Callable[[dict[str, Any]], list[str]]) -> tuple[list[str], list[str]]:
    """Names of the containers with forbidden values, and those values (sorted, unique)."""
    names, values = [], set()
    for c in _containers(spec):
        found = values_of(c)
        if found:
            names.append(_name(c))
            values.update(found)
    return names, sorted(values)


def _linux_only(check: CheckFn) -> CheckFn:
    """From v1.25 some restricted checks skip pods that declare `os.name: windows`."""
    return lambda meta, spec: None if (spec.get("os") or {}).get("name") == "windows" else check(meta, spec)


def _user_namespace(spec: dict[str, Any]) -> bool:
    return spec.get("hostUsers") is False


# --- baseline checks -----------------------------------------------------------------------------


def _host_process(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad = [_name(c) for c in _containers(spec) if (_sc(c).get("windowsOptions") or {}).get("hostProcess") is True]
    setters = _setters((_sc(spec).get("windowsOptions") or {}).get("hostProcess") is True, bad)
    if setters:
        return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    return None


def _host_namespaces(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return ("host namespaces", ", ".join(used)) if used else None


def _privileged(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    return ("privileged", f"{_named('container', bad)} must not set securityContext.privileged=true") if bad else None


BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _capabilities_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, caps = _offenders(spec, lambda c: [str(a) for a in (_sc(c).get("capabilities") or {}).get("add") or []
                                            if a not in BASELINE_CAPABILITIES])
    if bad:
        return ("non-default capabilities",
                f"{_named('container', bad)} must not include {_quote(caps)} in securityContext.capabilities.add")
    return None


def _host_path_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad = [v.get("name", "") for v in spec.get("volumes") or [] if isinstance(v, dict) and v.get("hostPath")]
    return ("hostPath volumes", _named("volume", bad)) if bad else None


def _host_ports(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, ports = _offenders(spec, lambda c: [str(p["hostPort"]) for p in c.get("ports") or []
                                             if isinstance(p, dict) and p.get("hostPort")])
    if bad:
        return ("hostPort", f"{_named('container', bad)} {_plural('uses', 'use', len(bad))} "
                            f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(ports)}")
    return None


def _probe_hosts(c: dict[str, Any]) -> list[str]:
    handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    handlers += [(c.get("lifecycle") or {}).get(h) for h in ("postStart", "preStop")]
    return [h[a]["host"] for h in handlers if isinstance(h, dict)
            for a in ("httpGet", "tcpSocket") if isinstance(h.get(a), dict) and h[a].get("host")]


def _host_probes(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, hosts = _offenders(spec, _probe_hosts)
    if bad:
        bad = sorted(set(bad))
        return ("probe or lifecycle host",
                f"{_named('container', bad)} {_plural('uses', 'use', len(bad))} "
                f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_quote(hosts)}")
    return None


def _apparmor(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    ok = ("RuntimeDefault", "Localhost")
    values: set[str] = set()
    pod_type = (_sc(spec).get("appArmorProfile") or {}).get("type")
    pod_bad = pod_type is not None and pod_type not in ok
    if pod_bad:
        values.add(str(pod_type))
    bad = []
    for c in _containers(spec):
        t = (_sc(c).get("appArmorProfile") or {}).get("type")
        if t is not None and t not in ok:
            bad.append(_name(c))
            values.add(str(t))
    setters = _setters(pod_bad, bad)
    annotations = sorted(f'{k}="{v}"' for k, v in (meta.get("annotations") or {}).items()
                         if k.startswith("container.apparmor.security.beta.kubernetes.io/")
                         and v and v != "runtime/default" and not v.startswith("localhost/"))
    listed = sorted(values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if setters:
        return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(listed)),
                f"{' and '.join(setters)} must not set AppArmor profile type to {_quote(listed)}")
    return None


def _selinux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
        types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Any) -> bool:
            if not isinstance(opts, dict):
                return True
            ok = True
            if opts.get("type", "") not in allowed:
                types.add(opts.get("type", ""))
                ok = False
            for k in flags:
                if opts.get(k):
                    flags[k], ok = True, False
            return ok

        pod_bad = not valid(_sc(spec).get("seLinuxOptions"))
        bad = [_name(c) for c in _containers(spec) if not valid(_sc(c).get("seLinuxOptions"))]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = ([f"{_plural('type', 'types', len(types))} {_quote(sorted(types))}"] if types else []) + \
            [f"{k} may not be set" for k, v in flags.items() if v]
        return "seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: " \
                                 f"{'; '.join(data)}"
    return check


_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})


def _proc_mount(relax_user_namespaces: bool) -> CheckFn:
    def check(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
        if relax_user_namespaces and _user_namespace(spec):
            return None
        bad, kinds = _offenders(spec, lambda c: [str(pm)] if (pm := _sc(c).get("procMount")) not in (None, "Default")
                                else [])
        if bad:
            return "procMount", f"{_named('container', bad)} must not set securityContext.procMount to " \
                                f"{_quote(kinds)}"
        return None
    return check


def _valid_seccomp(t: Any) -> bool:
    return t in ("RuntimeDefault", "Localhost")


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotations(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    """Before v1.19 seccomp was set with annotations."""
    annotations = meta.get("annotations") or {}
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION + _name(c) for c in _containers(spec)]
    bad = sorted({f'{k}="{annotations[k]}"' for k in keys if k in annotations and not (
        annotations[k] in ("runtime/default", "docker/default") or annotations[k].startswith("localhost/"))})
    if bad:
        return "seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(bad))} {', '.join(bad)}"
    return None


def _seccomp(required: bool) -> CheckFn:
    """Baseline forbids Unconfined; restricted (required=True) also needs a profile on the pod or every container."""
    def check(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
        values: set[str] = set()
        pod_profile = _sc(spec).get("seccompProfile")
        pod_type = pod_profile.get("type", "") if isinstance(pod_profile, dict) else None
        pod_bad = pod_type is not None and not _valid_seccomp(pod_type)
        if pod_bad:
            values.add(str(pod_type))
        bad, unset = [], []
        for c in _containers(spec):
            profile = _sc(c).get("seccompProfile")
            if isinstance(profile, dict):
                if not _valid_seccomp(profile.get("type")):
                    bad.append(_name(c))
                    values.add(str(profile.get("type", "")))
            elif pod_type is None or pod_bad:
                unset.append(_name(c))
        setters = _setters(pod_bad, bad)
        if setters:
            return "seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type " \
                                     f"to {_quote(sorted(values))}"
        if required and unset:
            return "seccompProfile", f"pod or {_named('container', unset)} must set securityContext.seccompProfile" \
                                     '.type to "RuntimeDefault" or "Localhost"'
        return None
    return check


_SAFE_SYSCTLS = {
    0: {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"},
    27: {"net.ipv4.ip_local_reserved_ports"},
    29: {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
         "net.ipv4.tcp_keepalive_probes"},
    32: {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"},
}


def _sysctls(since: int) -> CheckFn:
    allowed = set().union(*(names for v, names in _SAFE_SYSCTLS.items() if v <= since))

    def check(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
        bad = [str(s.get("name")) for s in _sc(spec).get("sysctls") or []
               if isinstance(s, dict) and s.get("name") not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None
    return check


# --- restricted checks ---------------------------------------------------------------------------


def _privilege_escalation(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false",
                f"{_named('container', bad)} must set securityContext.allowPrivilegeEscalation=false")
    return None


def _capabilities_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    no_drop, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if not isinstance(capabilities, dict):
            no_drop.append(_name(c))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            no_drop.append(_name(c))
        extra = [str(a) for a in capabilities.get("add") or [] if a != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details = []
    if no_drop:
        details.append(f'{_named("container", no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_named('container', adding)} must not include {_quote(sorted(caps))} in "
                       "securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


_ALLOWED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                    "projected", "secret")
_RESTRICTED_VOLUMES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                       "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                       "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
                       "scaleIO", "storageos")


def _restricted_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, types = [], set()
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict) or any(v.get(k) is not None for k in _ALLOWED_VOLUMES):
            continue
        bad.append(v.get("name", ""))
        types.add(next((k for k in _RESTRICTED_VOLUMES if v.get(k) is not None), "unknown"))
    if bad:
        return ("restricted volume types", f"{_named('volume', bad)} {_plural('uses', 'use', len(bad))} "
                f"{_plural('restricted volume type', 'restricted volume types', len(types))} {_quote(sorted(types))}")
    return None


def _run_as_non_root(relax_user_namespaces: bool) -> CheckFn:
    def check(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
        if relax_user_namespaces and _user_namespace(spec):
            return None
        pod_value = _sc(spec).get("runAsNonRoot")
        explicit = [_name(c) for c in _containers(spec) if _sc(c).get("runAsNonRoot") is False]
        implicit = [_name(c) for c in _containers(spec)
                    if _sc(c).get("runAsNonRoot") is None and pod_value is not True]
        setters = _setters(pod_value is False, explicit)
        if setters:
            return "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
        if implicit:
            return "runAsNonRoot != true", f"pod or {_named('container', implicit)} must set " \
                                           "securityContext.runAsNonRoot=true"
        return None
    return check


def _run_as_user(relax_user_namespaces: bool) -> CheckFn:
    def check(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
        if relax_user_namespaces and _user_namespace(spec):
            return None
        bad = [_name(c) for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
        setters = _setters(_sc(spec).get("runAsUser") == 0, bad)
        return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None
    return check


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[tuple[int, CheckFn], ...]  # (first minor version, check), ascending
    overrides: tuple[str, ...] = ()  # baseline checks this restricted check replaces
    overrides_since: int = 0

    def at(self, minor: int) -> CheckFn | None:
        fn = None
        for since, f in self.versions:
            if since <= minor:
                fn = f
        return fn


CHECKS = (
    Check("appArmorProfile", "baseline", ((0, _apparmor),)),
    Check("capabilities_baseline", "baseline", ((0, _capabilities_baseline),)),
    Check("hostNamespaces", "baseline", ((0, _host_namespaces),)),
    Check("hostPathVolumes", "baseline", ((0, _host_path_volumes),)),
    Check("hostPorts", "baseline", ((0, _host_ports),)),
    Check("hostProbesAndHostLifecycle", "baseline", ((34, _host_probes),)),
    Check("privileged", "baseline", ((0, _privileged),)),
    Check("procMount", "baseline", ((0, _proc_mount(False)), (35, _proc_mount(True)))),
    Check("seLinuxOptions", "baseline", ((0, _selinux(_SELINUX_TYPES)),
                                         (31, _selinux(_SELINUX_TYPES | {"container_engine_t"})))),
    Check("seccompProfile_baseline", "baseline", ((0, _seccomp_annotations), (19, _seccomp(False)))),
    Check("sysctls", "baseline", tuple((v, _sysctls(v)) for v in sorted(_SAFE_SYSCTLS))),
    Check("windowsHostProcess", "baseline", ((0, _host_process),)),
    Check("allowPrivilegeEscalation", "restricted", ((8, _privilege_escalation),
                                                     (25, _linux_only(_privilege_escalation)))),
    Check("capabilities_restricted", "restricted", ((22, _capabilities_restricted),
                                                    (25, _linux_only(_capabilities_restricted))),
          ("capabilities_baseline",), 22),
    Check("procMount_restricted", "restricted", ((35, _proc_mount(False)),), ("procMount",), 35),
    Check("restrictedVolumes", "restricted", ((0, _restricted_volumes),), ("hostPathVolumes",), 0),
    Check("runAsNonRoot", "restricted", ((0, _run_as_non_root(False)), (35, _run_as_non_root(True)))),
    Check("runAsUser", "restricted", ((23, _run_as_user(False)), (35, _run_as_user(True)))),
    Check("seccompProfile_restricted", "restricted", ((19, _seccomp(True)), (25, _linux_only(_seccomp(True)))),
          ("seccompProfile_baseline",), 19),
)


def evaluate(lv: LevelVersion, meta: dict[str, Any], spec: dict[str, Any]) -> list[Result]:
    """Violations of one level at one version, in the evaluator's order (baseline checks, then restricted)."""
    if lv.level == "privileged":
        return []
    minor = LATEST if lv.version is None else min(lv.version, LATEST)
    active = [c for c in CHECKS if c.level == "baseline" or lv.level == "restricted"]
    overridden = {o for c in active if c.level == "restricted" and c.at(minor) and c.overrides_since <= minor
                  for o in c.overrides}
    out = []
    for c in active:
        fn = c.at(minor)
        if fn is not None and c.id not in overridden:
            result = fn(meta, spec)
            if result is not None:
                out.append(result)
    return out


def describe(results: list[Result]) -> str:
    """`reason (detail), reason (detail)`, as the apiserver joins them."""
    return ", ".join(f"{r} ({d})" if d else r for r, d in results)


# --- admission -----------------------------------------------------------------------------------

# Kinds whose pod template PSA reads, and where the template sits.
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"), "ReplicaSet": ("spec", "template"), "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"), "Job": ("spec", "template"), "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"), "PodTemplate": ("template",),
}


def pod_parts(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(metadata, spec) of a Pod or of a workload's pod template; None for other kinds or no template."""
    if obj.get("kind") == "Pod":
        return obj.get("metadata") or {}, obj.get("spec") or {}
    path = _TEMPLATE_PATHS.get(str(obj.get("kind")))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    spec = node.get("spec")
    return (node.get("metadata") or {}), (spec if isinstance(spec, dict) else {})


@dataclass
class Decision:
    denied: str | None = None  # "violates PodSecurity ..." when enforce refuses the pod
    warnings: list[str] = field(default_factory=list)


def admit(ns_labels: dict[str, str], obj: dict[str, Any], old: dict[str, Any] | None) -> Decision:
    """Decide a create (old is None) or update of a Pod or workload in a namespace with these labels.

    Workloads are never refused; their template is checked against `warn` on every create and update.
    """
    parts = pod_parts(obj)
    if parts is None:
        return Decision()
    is_pod = obj.get("kind") == "Pod"
    if is_pod and old is not None and not _significant_pod_update(obj, old):
        return Decision()  # only image changes can make an existing pod violate anything
    policy = policy_of(ns_labels)
    decision = Decision()
    if is_pod:
        results = evaluate(policy.enforce, *parts)
        if results:
            decision.denied = f'violates PodSecurity "{policy.enforce}": {describe(results)}'
            return decision  # a refused request carries no warnings
    results = evaluate(policy.warn, *parts)
    if results:
        decision.warnings.append(f'would violate PodSecurity "{policy.warn}": {describe(results)}')
    return decision


def _significant_pod_update(new: dict[str, Any], old: dict[str, Any]) -> bool:
    def images(pod: dict[str, Any], key: str) -> list[Any]:
        return [c.get("image") for c in (pod.get("spec") or {}).get(key) or [] if isinstance(c, dict)]

    if any(images(new, k) != images(old, k) for k in ("containers", "initContainers")):
        return True
    old_eph = {c.get("name"): c.get("image") for c in (old.get("spec") or {}).get("ephemeralContainers") or []}
    return any(old_eph.get(c.get("name"), object()) != c.get("image")
               for c in (new.get("spec") or {}).get("ephemeralContainers") or [])


def existing_pod_warnings(namespace: str, enforce: LevelVersion, pods: list[dict[str, Any]]) -> list[str]:
    """Warnings when a namespace's enforce level tightens: which existing pods would now be refused."""
    counts: dict[str, list[Any]] = {}  # reasons -> [first pod name, count]
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        results = evaluate(enforce, pod.get("metadata") or {}, pod.get("spec") or {})
        if results:
            reasons = ", ".join(r for r, _ in results)
            entry = counts.setdefault(reasons, [pod["metadata"]["name"], 0])
            entry[1] += 1
    if not counts:
        return []
    lines = []
    for reasons, (name, n) in counts.items():
        others = "" if n == 1 else " (and 1 other pod)" if n == 2 else f" (and {n - 1} other pods)"
        lines.append(f"{name}{others}: {reasons}")
    return [f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "{enforce}"',
            *sorted(lines)]


def namespace_warnings(new: dict[str, Any], old: dict[str, Any] | None, pods: list[dict[str, Any]]) -> list[str]:
    """Warnings for a namespace update that makes its enforce level stricter, as the admission plugin gives."""
    if old is None:
        return []
    now = policy_of(new["metadata"].get("labels") or {}).enforce
    before = policy_of(old["metadata"].get("labels") or {}).enforce
    if now == before or now.level == "privileged":
        return []
    if now.version == before.version and LEVELS.index(now.level) <= LEVELS.index(before.level):
        return []
    return existing_pod_warnings(new["metadata"]["name"], now, pods)


def label_causes(new: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """Invalid Pod Security labels on a namespace; on update only when they changed."""
    errors = policy_of(new["metadata"].get("labels") or {}).errors
    if errors and old is not None and policy_of(old["metadata"].get("labels") or {}).errors == errors:
        return []
    return errors
