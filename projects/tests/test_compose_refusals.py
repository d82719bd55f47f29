from __future__ import annotations

import pytest

from projects.compose import ComposeRefusal, PlanLimits, render_project, validate_compose

from .compose_helpers import make_ctx


def service(extra: str, name: str = "web") -> str:
    return f"services:\n  {name}:\n    image: nginx\n{extra}"


# (compose text, key of the problem, words the reason must contain)
HOSTILE = [
    (service("    privileged: true\n"), "services.web.privileged", "privileged"),
    (service("    cap_add: [NET_ADMIN]\n"), "services.web.cap_add", "capabilities"),
    (service("    devices: ['/dev/kvm:/dev/kvm']\n"), "services.web.devices", "devices"),
    (service("    network_mode: host\n"), "services.web.network_mode", "network_mode 'host'"),
    (service("    network_mode: 'container:abc'\n"), "services.web.network_mode", "network namespace"),
    (service("    network_mode: 'service:db'\n"), "services.web.network_mode", "network namespace"),
    (service("    pid: host\n"), "services.web.pid", "pid 'host'"),
    (service("    ipc: host\n"), "services.web.ipc", "ipc 'host'"),
    (service("    userns_mode: host\n"), "services.web.userns_mode", "userns_mode"),
    (service("    security_opt: ['seccomp:unconfined']\n"), "services.web.security_opt.0", "confinement"),
    (service("    security_opt: ['apparmor=unconfined']\n"), "services.web.security_opt.0", "confinement"),
    (service("    sysctls: {net.core.somaxconn: 1024}\n"), "services.web.sysctls", "kernel parameters"),
    (service("    volumes: ['/etc:/host-etc']\n"), "services.web.volumes.0", "host path '/etc'"),
    (
        service("    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n"),
        "services.web.volumes.0",
        "Docker socket",
    ),
    (
        service("    volumes: [{type: bind, source: /srv, target: /srv}]\n"),
        "services.web.volumes.0",
        "host path '/srv'",
    ),
    (service("    ports: [{target: 80, published: 80, mode: host}]\n"), "services.web.ports.0.mode", "host-mode"),
    ("services:\n  web:\n    build: .\n", "services.web.build", "no image builder yet"),
    (service("    deploy: {replicas: 9}\n"), "services.web.deploy.replicas", "plan's limit of 3"),
    (service("", name="Web"), "services.Web", "must be lowercase"),
    (service("", name="my_app"), "services.my_app", "only lowercase letters, digits and '-'"),
    (service("", name="1st"), "services.1st", "must start with a letter"),
    (service("", name="a" * 64), f"services.{'a' * 64}", "at most 63 characters"),
]


@pytest.mark.parametrize(("text", "key", "reason"), HOSTILE, ids=[h[1] + ":" + h[2] for h in HOSTILE])
def test_it_refuses_hostile_settings_naming_service_and_key(text: str, key: str, reason: str) -> None:
    with pytest.raises(ComposeRefusal) as caught:
        render_project(text, make_ctx())
    problems = [p for p in caught.value.problems if p.key == key]
    assert problems, [str(p) for p in caught.value.problems]
    line = str(problems[0])
    assert reason in line and key in line and problems[0].service in line and "\n" not in line
    assert problems[0].line is not None


def test_it_reports_every_problem_at_once_and_returns_nothing() -> None:
    text = service("    privileged: true\n    cap_add: [ALL]\n") + "  db:\n    image: x\n    pid: host\n"
    with pytest.raises(ComposeRefusal) as caught:
        render_project(text, make_ctx())
    assert {p.key for p in caught.value.problems} == {
        "services.web.privileged", "services.web.cap_add", "services.db.pid"
    }


def test_it_warns_about_unknown_and_ignored_keys() -> None:
    result = render_project(service("    stop_signal: SIGINT\n    frobnicate: 1\n") + "foo: bar\n", make_ctx())
    messages = {p.key: p.message for p in result.warnings}
    assert "SIGTERM" in messages["services.web.stop_signal"]
    assert "unknown key" in messages["services.web.frobnicate"]
    assert "unknown top-level key" in messages["foo"]


def test_it_honours_the_plan_for_service_count_and_sizes() -> None:
    text = "services:\n" + "".join(f"  s{i}:\n    image: nginx\n" for i in range(3))
    with pytest.raises(ComposeRefusal, match="exceed the plan's limit of 2"):
        render_project(text, make_ctx(plan=PlanLimits(max_services=2)))
    with pytest.raises(ComposeRefusal, match="exceeds the plan's 2"):
        render_project(service("    deploy: {resources: {limits: {cpus: '3'}}}\n"), make_ctx())


def test_it_turns_relative_binds_into_claims_or_configmaps_with_a_visible_decision() -> None:
    text = service("    volumes: ['./data:/data', './nginx.conf:/etc/nginx/nginx.conf:ro']\n")
    result = render_project(text, make_ctx(files={"nginx.conf": "events {}"}))
    kinds = {(o["kind"], o["metadata"]["name"]) for o in result.objects}
    assert ("PersistentVolumeClaim", "web-claim0") in kinds and ("ConfigMap", "web-file1") in kinds
    assert any("not uploaded" in p.message for p in result.warnings)


def test_it_refuses_a_missing_secret_file_on_render_but_only_warns_in_the_editor() -> None:
    text = service("    secrets: [pw]\n") + "secrets:\n  pw:\n    file: ./pw.txt\n"
    with pytest.raises(ComposeRefusal, match="was not provided"):
        render_project(text, make_ctx())
    assert any("was not provided" in p.message for p in validate_compose(text, make_ctx()).warnings)
    objects = render_project(text, make_ctx(files={"pw.txt": "s3cret"})).objects
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["data"] == {"content": "czNjcmV0"}


def test_it_replaces_official_postgres_with_the_managed_database() -> None:
    text = (
        "services:\n  app:\n    image: app\n    environment: {DB_PASSWORD: pw, DB_USER: u, DB_HOST: db}\n"
        "    depends_on: [db]\n  db:\n    image: postgres:16\n"
        "    environment: {POSTGRES_PASSWORD: pw, POSTGRES_USER: u}\n"
    )
    result = render_project(text, make_ctx(database_secret="db-creds"))
    db = next(s for s in result.services if s.name == "db")
    assert db.replaced_by_managed_db and db.kind == "ManagedDatabase"
    assert any("managed PostgreSQL" in n.message for n in result.notes)
    app = next(o for o in result.objects if o["kind"] == "Deployment")
    env = {e["name"]: e for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "db-creds", "key": "PGPASSWORD"}
    assert env["DB_USER"]["valueFrom"]["secretKeyRef"]["key"] == "PGUSER"
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "db-creds", "key": "DATABASE_URL"}
    assert not any("value" in e and "pw" in e["value"] for e in env.values())
    kept = render_project(text, make_ctx(database_secret="db-creds", replace_postgres={"db": False}))
    assert not next(s for s in kept.services if s.name == "db").replaced_by_managed_db
