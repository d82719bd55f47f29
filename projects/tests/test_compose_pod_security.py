"""The converter and Pod Security agree: what it renders passes the tenant namespace's `baseline` enforce level,
and what `baseline` forbids, it refuses before anything is applied (kubesim's Pod Security evaluator)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubesim import podsecurity
from projects.compose import ComposeRefusal, render_project

from .compose_helpers import CONFORMANCE, compose_inputs, make_ctx, sample_ctx, sample_id
from .test_compose_conformance import EXPECTED

BASELINE = podsecurity.LevelVersion("baseline", None)


def violations(objects: list[dict[str, Any]], level: podsecurity.LevelVersion) -> dict[str, str]:
    """`Kind/name: reasons` for every rendered pod template the level refuses."""
    found = {}
    for obj in objects:
        parts = podsecurity.pod_parts(obj)
        if parts is not None:
            results = podsecurity.evaluate(level, *parts)
            if results:
                found[f"{obj['kind']}/{obj['metadata']['name']}"] = podsecurity.describe(results)
    return found


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance is not checked out")
@pytest.mark.parametrize("path", [p for p in compose_inputs() if EXPECTED.get(sample_id(p), "") is None],
                         ids=sample_id)
def test_every_converted_corpus_sample_passes_its_namespaces_enforce_level(path) -> None:
    ctx = sample_ctx(path, database_secret="db-credentials", bucket_secret="bucket-credentials", members=["alice"])
    objects = render_project(path.read_text(), ctx).objects
    policy = podsecurity.policy_of(objects[0]["metadata"]["labels"])
    assert policy.enforce == BASELINE and not policy.errors
    assert any(podsecurity.pod_parts(o) for o in objects)
    assert violations(objects, policy.enforce) == {}


# Each thing the converter refuses on Pod Security grounds, and how a naive converter (kompose) would render it.
# (compose service keys, pod spec fields of the unconverted equivalent, the baseline check that flags it)
REFUSED: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("privileged", {"privileged": True}, {"container": {"securityContext": {"privileged": True}}}, "privileged"),
    ("cap_add", {"cap_add": ["SYS_ADMIN"]},
     {"container": {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}}, "non-default capabilities"),
    ("network_mode host", {"network_mode": "host"}, {"hostNetwork": True}, "host namespaces"),
    ("pid host", {"pid": "host"}, {"hostPID": True}, "host namespaces"),
    ("ipc host", {"ipc": "host"}, {"hostIPC": True}, "host namespaces"),
    ("host path", {"volumes": ["/srv/data:/data"]}, {"volumes": [{"name": "v", "hostPath": {"path": "/srv/data"}}]},
     "hostPath volumes"),
    ("docker socket", {"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]},
     {"volumes": [{"name": "v", "hostPath": {"path": "/var/run/docker.sock"}}]}, "hostPath volumes"),
    ("devices", {"devices": ["/dev/fuse:/dev/fuse"]}, {"volumes": [{"name": "v", "hostPath": {"path": "/dev/fuse"}}]},
     "hostPath volumes"),
    ("host-mode port", {"ports": [{"target": 80, "published": 8080, "mode": "host"}]},
     {"container": {"ports": [{"containerPort": 80, "hostPort": 8080}]}}, "hostPort"),
    ("sysctls", {"sysctls": {"kernel.msgmax": "65536"}},
     {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}}, "forbidden sysctls"),
    ("seccomp unconfined", {"security_opt": ["seccomp:unconfined"]},
     {"container": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}}, "seccompProfile"),
    ("apparmor unconfined", {"security_opt": ["apparmor=unconfined"]},
     {"container": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}}, "forbidden AppArmor profile"),
    ("selinux disabled", {"security_opt": ["label:disable"]},
     {"container": {"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}}, "seLinuxOptions"),
    ("unmasked /proc", {"security_opt": ["systempaths=unconfined"]},
     {"container": {"securityContext": {"procMount": "Unmasked"}}}, "procMount"),
]


def _compose(service: dict[str, Any]) -> str:
    return yaml.safe_dump({"services": {"app": {"image": "nginx:1.27", **service}}})


def _naive_pod(fields: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1.27", **fields.get("container", {})}
    return {"containers": [container], **{k: v for k, v in fields.items() if k != "container"}}


@pytest.mark.parametrize(("case", "service", "naive", "reason"), REFUSED, ids=[c[0] for c in REFUSED])
def test_what_baseline_forbids_the_converter_refuses(case: str, service: dict[str, Any], naive: dict[str, Any],
                                                     reason: str) -> None:
    assert [r for r, _ in podsecurity.evaluate(BASELINE, {}, _naive_pod(naive))] == [reason]
    with pytest.raises(ComposeRefusal):
        render_project(_compose(service), make_ctx())


def test_what_the_converter_accepts_passes_baseline() -> None:
    """Every accepted setting near the line: root user, default capabilities kept, binds of project files,
    tmpfs, named volumes, published ports, harmless security_opt, healthchecks."""
    text = _compose({
        "user": "0:0", "cap_drop": ["ALL"], "read_only": True, "ports": ["8080:80", "9090:9090/udp"],
        "expose": [7000], "tmpfs": ["/tmp"], "volumes": ["data:/var/lib/data", {"type": "tmpfs", "target": "/run"}],
        "security_opt": ["no-new-privileges:true"], "healthcheck": {"test": ["CMD", "true"], "interval": "10s"},
        "environment": {"A": "1"}, "deploy": {"replicas": 2, "resources": {"limits": {"memory": "256M"}}},
    }) + "volumes:\n  data: {}\n"
    objects = render_project(text, make_ctx()).objects
    assert violations(objects, BASELINE) == {}
    assert any(podsecurity.pod_parts(o) for o in objects)
