"""The `db_dump` / `db_restore` stream ops: a real tunnel (to a stand-in control plane), kubesim running the host's
pg_dump / pg_restore in the Job's pod, and this machine's PostgreSQL holding the project's database."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from agent import protocol as p
from agent.data import services as data
from agent.dumps import JOB
from agent.k8s import NAMESPACE, POD, Kube
from agent.tests.conftest import agent_tunnel
from agent.tests.test_tunnel import FakeControlPlane
from conftest import skip_or_fail

NS = "tenant-acme-dumps"
LABELS = {"paas.dev/organization": "acme", "paas.dev/project": "dumps", "paas.dev/project-uid": "uid-dumps"}
WINDOW = 5000
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def superuser(dbname: str) -> psycopg.Connection:
    return psycopg.connect(**PG, dbname=dbname, connect_timeout=3)


@pytest.fixture
def database(kube, kubesim, tmp_path):
    """The project's namespace (Pod Security `restricted` enforced) and database, made by the agent's data layer."""
    try:
        superuser("postgres").close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
    kubesim.set_cluster_dns(data.charts.POSTGRES_HOST, "127.0.0.1")
    data.ensure_database(kube, NS, data.Endpoints(), labels=LABELS, connect=superuser)
    admin = Kube(str(kubesim.write_kubeconfig(tmp_path / "admin-kubeconfig")))
    admin.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {
        **LABELS, "pod-security.kubernetes.io/enforce": "restricted"}}})
    admin.close()
    secret = data.read_secret(kube, NS, p.DATABASE_SECRET)
    yield lambda: psycopg.connect(host="127.0.0.1", user=secret["PGUSER"], password=secret["PGPASSWORD"],
                                  dbname=secret["PGDATABASE"], autocommit=True)
    from agent.data import postgres
    postgres.drop_database(superuser, NS)


@pytest.fixture
async def plane(kube, database):
    async with agent_tunnel(kube) as cp:
        yield cp


async def run(plane: FakeControlPlane, sid: int, op: str, upload: bytes | None = None,
              labels: dict | None = None, namespace: str = NS) -> tuple[dict[int, bytes], dict | None, str]:
    """Open `op`, send `upload` (then end of input), read until the stream closes: (output, status, reason)."""
    ws = plane.connections[0]
    # A small window: output frames must be cut to the credit, each keeping its channel byte.
    await ws.send(p.encode({"type": "stream.open", "id": sid, "op": op, "window": WINDOW,
                            "payload": {"namespace": namespace, "labels": labels or LABELS}}))
    if upload is not None:
        for start in range(0, len(upload), 32 * 1024):
            await ws.send(p.pack_data(sid, bytes([p.EXEC_STDIN]) + upload[start:start + 32 * 1024]))
        await ws.send(p.pack_data(sid, bytes([p.EXEC_STDIN_EOF])))
    out = {p.EXEC_STDOUT: b"", p.EXEC_STDERR: b""}
    status = None
    async with asyncio.timeout(60):
        while True:
            _, message = await plane.inbox.get()
            if isinstance(message, bytes):
                got, chunk = p.unpack_data(message)
                if got != sid:
                    continue
                await ws.send(p.encode({"type": "stream.credit", "id": sid, "bytes": len(chunk)}))
                if not chunk:
                    continue
                assert chunk[0] in (p.EXEC_STDOUT, p.EXEC_STDERR, p.EXEC_STATUS), "a frame lost its channel byte"
                if chunk[0] == p.EXEC_STATUS:
                    status = json.loads(chunk[1:])
                else:
                    out[chunk[0]] += chunk[1:]
            elif message.get("type") == "stream.close" and message.get("id") == sid:
                return out, status, message.get("reason", "")


async def test_a_dump_restores_the_database_as_it_was(plane, database, kube):
    with database() as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
        conn.execute("INSERT INTO orders SELECT n, 'item ' || n || ' ' || (SELECT string_agg(md5(random()::text || g "
                     "|| n), '') FROM generate_series(1, 8) g) FROM generate_series(1, 500) n")  # hardly compressible

    out, status, _ = await run(plane, 1, p.STREAM_DB_DUMP)
    assert status == {"exit_code": 0, "message": ""}, out[p.EXEC_STDERR]
    assert out[p.EXEC_STDOUT].startswith(b"PGDMP")  # pg_dump's custom format, byte for byte
    assert len(out[p.EXEC_STDOUT]) > 4 * WINDOW
    assert kube.list(JOB, NS) == []  # the Job is gone once the dump is over

    with database() as conn:
        conn.execute("DELETE FROM orders WHERE id > 10")
        conn.execute("CREATE TABLE scratch (x int)")
    out, status, _ = await run(plane, 3, p.STREAM_DB_RESTORE, upload=out[p.EXEC_STDOUT])
    assert status == {"exit_code": 0, "message": ""}, out[p.EXEC_STDERR]
    with database() as conn:
        assert conn.execute("SELECT count(*), max(left(item, 7)) FROM orders").fetchone() == (500, "item 99")
    assert kube.list(JOB, NS) == []


async def test_a_broken_upload_changes_nothing_and_says_why(plane, database):
    with database() as conn:
        conn.execute("CREATE TABLE orders (id int)")
        conn.execute("INSERT INTO orders VALUES (1), (2)")
    out, status, _ = await run(plane, 5, p.STREAM_DB_RESTORE, upload=b"this is not a dump")
    assert status["exit_code"] == 1
    assert b"input file does not appear to be a valid archive" in out[p.EXEC_STDERR]
    with database() as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)


@pytest.mark.parametrize(("namespace", "labels", "reason"), [
    (NS, {**LABELS, "paas.dev/project-uid": "uid-other"}, "forbidden: namespace tenant-acme-dumps does not belong"),
    ("kube-system", LABELS, "bad request: kube-system is not a project namespace"),
    (NS, {"paas.dev/project": "dumps"}, "bad request: 'labels' must carry"),
])
async def test_another_project_s_database_is_refused(plane, kube, namespace, labels, reason):
    out, status, closed = await run(plane, 7, p.STREAM_DB_DUMP, labels=labels, namespace=namespace)
    assert closed.startswith(reason) and status is None and out[p.EXEC_STDOUT] == b""
    assert kube.list(JOB, NS) == [] and kube.list(POD, NS) == []


async def test_a_pod_that_cannot_start_is_reported_and_its_job_removed(plane, kube, monkeypatch):
    monkeypatch.setenv("AGENT_DUMP_IMAGE", "registry.example/postgres-does-not-exist:18")
    out, status, closed = await run(plane, 9, p.STREAM_DB_DUMP)
    assert closed.startswith("the paas-db-dump-") and "cannot start: ImagePullBackOff" in closed
    assert status is None and out[p.EXEC_STDOUT] == b""
    assert kube.list(JOB, NS) == []
