"""EnsureDatabase / DropDatabase against the real PostgreSQL on the machine (127.0.0.1:5432).

That server stands in for the CNPG superuser endpoint: the tests connect as `postgres` (trust auth),
exactly where the agent would connect with the superuser Secret. Privilege checks (CONNECT,
CREATEDB, CREATEROLE) do not depend on the authentication method, so isolation is proven for real.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from agent import charts
from agent import protocol as p
from agent.data import postgres, services
from agent.tests.test_reconcile import LABELS
from conftest import skip_or_fail

PG_HOST = os.environ.get("AGENT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AGENT_TEST_PG_PORT", "5432"))

pytestmark = pytest.mark.integration


def superuser(dbname: str) -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=dbname, connect_timeout=3)


def as_tenant(creds: postgres.DatabaseCredentials, dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=creds.user, password=creds.password,
                           dbname=dbname or creds.name, connect_timeout=3, autocommit=True)


@pytest.fixture
def keys() -> Iterator[list[str]]:
    """Unique project keys for this test; whatever they created is dropped afterwards."""
    try:
        superuser("postgres").close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({exc})")
    made: list[str] = []
    yield made
    for key in made:
        postgres.drop_database(superuser, key)


def grantees(dbname: str) -> set[str]:
    """Who holds any privilege on the database ("PUBLIC" for everyone), from its ACL."""
    with superuser("postgres") as conn:
        rows = conn.execute("SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END "
                            "FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s", (dbname,)).fetchall()
    return {r[0] for r in rows}


def new_key(keys: list[str], stem: str = "proj") -> str:
    key = f"{stem}-{uuid.uuid4().hex[:8]}"
    keys.append(key)
    return key


def test_it_creates_a_login_role_owning_its_database(keys):
    creds = postgres.ensure_database(superuser, new_key(keys))
    assert creds.created and creds.rotated
    with superuser("postgres") as conn:
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                             (creds.name,)).fetchone()[0]
        flags = conn.execute("SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication "
                             "FROM pg_roles WHERE rolname = %s", (creds.user,)).fetchone()
    assert owner == creds.user
    assert flags == (True, False, False, False, False)
    with as_tenant(creds) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'hello')")
        assert conn.execute("SELECT body FROM notes").fetchone()[0] == "hello"


def test_it_keeps_role_database_and_password_on_a_second_call(keys):
    key = new_key(keys)
    first = postgres.ensure_database(superuser, key)
    with as_tenant(first) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    second = postgres.ensure_database(superuser, key, password=first.password)
    assert (second.name, second.user, second.password) == (first.name, first.user, first.password)
    assert not second.created and not second.rotated
    with as_tenant(second) as conn:  # the data survived
        assert conn.execute("SELECT to_regclass('kept')").fetchone()[0] == "kept"


def test_it_rotates_the_password_on_request_and_when_the_old_one_is_unknown(keys):
    key = new_key(keys)
    first = postgres.ensure_database(superuser, key)
    rotated = postgres.ensure_database(superuser, key, password=first.password, rotate=True)
    assert rotated.rotated and rotated.password != first.password
    with superuser("postgres") as conn:
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (first.user,)).fetchone()[0]
    assert postgres.verifier_matches(verifier, rotated.password)
    assert not postgres.verifier_matches(verifier, first.password)
    # A lost Secret: nothing to keep, so a new password is issued rather than a broken one kept.
    recovered = postgres.ensure_database(superuser, key, password=None)
    assert recovered.rotated and recovered.password not in (first.password, rotated.password)


def test_it_stores_only_a_scram_verifier_never_the_password(keys):
    creds = postgres.ensure_database(superuser, new_key(keys))
    with superuser("postgres") as conn:
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (creds.user,)).fetchone()[0]
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert creds.password not in verifier
    assert postgres.verifier_matches(verifier, creds.password)


@pytest.mark.parametrize("stem", ["select", "Tenant-A", "drop table x; --", "ünïcode name", "a" * 80])
def test_it_handles_names_that_need_quoting(keys, stem):
    key = f"{stem}-{uuid.uuid4().hex[:6]}"
    keys.append(key)
    creds = postgres.ensure_database(superuser, key)
    assert len(creds.name.encode()) <= 63
    with superuser("postgres") as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (creds.name,)).fetchone()
    with as_tenant(creds) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == creds.user
    assert postgres.ensure_database(superuser, key, password=creds.password).password == creds.password


def test_it_keeps_tenants_out_of_each_other(keys):
    a = postgres.ensure_database(superuser, new_key(keys, "tenant-a"))
    b = postgres.ensure_database(superuser, new_key(keys, "tenant-b"))
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        as_tenant(a, b.name)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        as_tenant(b, a.name)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        as_tenant(a, "postgres")
    with as_tenant(a) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE DATABASE sneaky")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE ROLE sneaky LOGIN")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(b.name), sql.Identifier(a.user)))


def test_it_revokes_connect_from_public_and_grants_it_to_the_owner_only(keys):
    creds = postgres.ensure_database(superuser, new_key(keys))
    assert grantees(creds.name) == {creds.user}


def test_it_undoes_privileges_granted_behind_its_back(keys):
    key = new_key(keys)
    creds = postgres.ensure_database(superuser, key)
    with superuser("postgres") as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(creds.user)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(sql.Identifier(creds.name)))
        conn.commit()
    postgres.ensure_database(superuser, key, password=creds.password)
    with superuser("postgres") as conn:
        assert conn.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname = %s", (creds.user,)).fetchone()[0] is False
    assert grantees(creds.name) == {creds.user}


def test_it_drops_the_database_and_role_even_with_open_sessions(keys):
    key = new_key(keys)
    creds = postgres.ensure_database(superuser, key)
    session = as_tenant(creds)
    assert postgres.drop_database(superuser, key) == {"database_dropped": True, "role_dropped": True}
    session.close()
    assert postgres.drop_database(superuser, key) == {"database_dropped": False, "role_dropped": False}
    with superuser("postgres") as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (creds.user,)).fetchone() is None


def test_it_puts_the_credentials_in_a_secret_of_the_project_namespace(keys, kube, kubesim):
    namespace = new_key(keys, "acme-shop")
    endpoints = services.Endpoints(postgres_host=PG_HOST, postgres_port=PG_PORT)
    result = services.ensure_database(kube, namespace, endpoints, labels=LABELS, connect=superuser)
    secret = services.read_secret(kube, namespace, p.DATABASE_SECRET)
    assert secret is not None
    assert secret["PGHOST"] == charts.POSTGRES_HOST == "paas-postgres-rw.paas-data.svc.cluster.local"
    assert (secret["PGPORT"], secret["PGDATABASE"], secret["PGUSER"]) == ("5432", result["database"], result["user"])
    assert secret["DATABASE_URL"] == (f"postgresql://{secret['PGUSER']}:{secret['PGPASSWORD']}@"
                                      f"{charts.POSTGRES_HOST}:5432/{secret['PGDATABASE']}")
    assert secret["PGPASSWORD"] not in repr(result)
    # The Secret's password really opens the database (connecting through the machine's server).
    creds = postgres.DatabaseCredentials(secret["PGDATABASE"], secret["PGUSER"], secret["PGPASSWORD"], False, False)
    with as_tenant(creds) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == creds.name
    # A second call reads the password back from the Secret and keeps it.
    again = services.ensure_database(kube, namespace, endpoints, labels=LABELS, connect=superuser)
    assert not again["rotated"] and not again["created"]
    assert services.read_secret(kube, namespace, p.DATABASE_SECRET) == secret
    stored = kubesim.get("Secret", namespace, p.DATABASE_SECRET)
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "paas"
    dropped = services.drop_database(kube, namespace, endpoints, connect=superuser)
    assert dropped["database_dropped"] and dropped["secret_deleted"]
    assert kubesim.get("Secret", namespace, p.DATABASE_SECRET) is None
