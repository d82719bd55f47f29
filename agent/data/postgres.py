"""EnsureDatabase / DropDatabase on the shared PostgreSQL, as its superuser.

Every identifier goes through `psycopg.sql.Identifier` and every value through `sql.Literal`
(or a bound parameter), never through string building. Passwords are sent to the server already
hashed as SCRAM-SHA-256 verifiers, so the clear text never appears in a statement the server could
log (`log_statement = ddl`) or in `pg_stat_activity`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from agent.protocol import DATABASE_SECRET_KEYS

log = logging.getLogger("agent.data.postgres")

MAX_IDENTIFIER = 63  # NAMEDATALEN - 1 bytes
PREFIX = "p_"  # keeps tenant names away from postgres, app, streaming_replica and other built-in roles
SCRAM_ITERATIONS = 4096
# Databases every role could connect to by default; tenants have no business there.
MAINTENANCE_DATABASES = ("postgres", "app")

Connect = Callable[[str], psycopg.Connection]  # dbname -> an open superuser connection


@dataclass(frozen=True)
class DatabaseCredentials:
    name: str
    user: str
    password: str
    created: bool  # the database did not exist before this call
    rotated: bool  # the password changed in this call

    def url(self, host: str, port: int) -> str:
        return (f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{host}:{port}/"
                f"{quote(self.name, safe='')}")

    def secret_data(self, host: str, port: int) -> dict[str, str]:
        """The project's Secret: protocol.DATABASE_SECRET_KEYS (URL, host, port, database, user, password)."""
        values = (self.url(host, port), host, str(port), self.name, self.user, self.password)
        return dict(zip(DATABASE_SECRET_KEYS, values, strict=True))


def names_for(key: str) -> str:
    """Role and database name for a project key (its namespace): lower case, at most 63 bytes.

    Characters outside [a-z0-9_-] become "_"; hyphens stay, which is fine because the name is only
    ever used as a quoted identifier. When anything had to change, or the name is too long, a hash of
    the key is appended so that two keys never map to one name.
    """
    raw = (key or "").strip()
    if not raw:
        raise ValueError("a project key is required")
    body = re.sub(r"[^a-z0-9_-]", "_", raw.lower())
    name = PREFIX + body
    if body != raw or len(name) > MAX_IDENTIFIER:
        name = f"{name[: MAX_IDENTIFIER - 9]}_{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
    return name


def new_password() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, URL-safe: no quoting surprises in DATABASE_URL


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores in pg_authid.rolpassword (RFC 5802 / 7677)."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored SCRAM verifier was made from `password` (lets a re-run keep the password)."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier or "")
    if not match:
        return False
    iterations, salt = int(match[1]), base64.b64decode(match[2])
    return hmac.compare_digest(scram_verifier(password, salt, iterations), verifier or "")


def _role_attributes(password: str) -> sql.Composable:
    # Spelled out rather than relying on defaults: a tenant must never create roles or databases.
    return sql.SQL(" ").join([
        sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"),
        sql.SQL("PASSWORD"), sql.Literal(scram_verifier(password)),
    ])


def _one(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def ensure_database(connect: Connect, key: str, *, password: str | None = None,
                    rotate: bool = False) -> DatabaseCredentials:
    """Make the project's role and database exist, closed to every other role. Safe to repeat.

    `password` is the one the project already holds (read from its Secret): it is kept when the role
    still accepts it. A new one is generated when there is none, when it does not match (the Secret
    was lost or edited), or when `rotate` is set.
    """
    name = names_for(key)
    role, database = sql.Identifier(name), sql.Identifier(name)
    with connect("postgres") as conn:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction block
        verifier = _one(conn, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,))
        role_exists = _one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) is not None
        keep = bool(password) and not rotate and role_exists and verifier_matches(verifier, password or "")
        secret = password if keep and password else new_password()
        if not role_exists:
            conn.execute(sql.SQL("CREATE ROLE {} ").format(role) + _role_attributes(secret))
        else:
            # Re-assert the attributes every time: drift (e.g. someone granted CREATEDB) is undone.
            if keep:
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                     "NOBYPASSRLS").format(role))
            else:
                conn.execute(sql.SQL("ALTER ROLE {} ").format(role) + _role_attributes(secret))
        created = _one(conn, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)) is None
        if created:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                database, role))
        else:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))
        # PUBLIC has CONNECT and TEMPORARY on every new database: take them away, then give them back to
        # the owner alone, so no other tenant's role can even connect.
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, role))
        for maintenance in MAINTENANCE_DATABASES:
            if _one(conn, "SELECT 1 FROM pg_database WHERE datname = %s", (maintenance,)):
                conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(maintenance)))
    # Before PostgreSQL 15 every role could create objects in the public schema of any database it could
    # reach; from 15 on the schema belongs to the database owner. Make it so on every version.
    with connect(name) as conn:
        conn.autocommit = True
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))
    log.info("database %s %s%s", name, "created" if created else "present", "; password rotated" if not keep else "")
    return DatabaseCredentials(name=name, user=name, password=secret, created=created, rotated=not keep)


def database_sizes(connect: Connect, keys: list[str]) -> dict[str, int | None]:
    """Size in bytes (`pg_database_size`) of each project key's database; None where it does not exist.

    The names travel as one bound array parameter and the size is read by oid: no identifier is ever
    spliced into the statement, whatever the key.
    """
    names = {key: names_for(key) for key in keys}
    if not names:
        return {}
    with connect("postgres") as conn:
        rows = conn.execute("SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname = ANY(%s)",
                            (sorted(set(names.values())),)).fetchall()
    sizes = {name: int(size) for name, size in rows}
    return {key: sizes.get(name) for key, name in names.items()}


def drop_database(connect: Connect, key: str) -> dict[str, bool]:
    """Remove the project's database (closing its sessions) and its role. Safe to repeat."""
    name = names_for(key)
    with connect("postgres") as conn:
        conn.autocommit = True
        had_db = _one(conn, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)) is not None
        if had_db:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        had_role = _one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) is not None
        if had_role:
            # Objects the role owns elsewhere (there should be none) would block DROP ROLE.
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    log.info("database %s dropped (database existed: %s, role existed: %s)", name, had_db, had_role)
    return {"database_dropped": had_db, "role_dropped": had_role}
