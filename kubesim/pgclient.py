"""Exec of PostgreSQL's client programs in a container of a PostgreSQL image, played by this machine's binaries.

Pods run no containers in kubesim, but a dump or a restore is only worth testing against a real database: so an
exec of `pg_dump`, `pg_restore` or `psql` in a container whose image is a PostgreSQL image (`postgres:17`,
`ghcr.io/cloudnative-pg/postgresql:18.1-...`) runs the host's program of that name, with the container's
environment as the kubelet would build it (`env` values, `secretKeyRef`/`configMapKeyRef`, `envFrom`, from the
objects in the store) and its stdin, stdout and stderr wired to the exec's channels, bytes unchanged.

Cluster DNS: in-cluster names (`paas-postgres-rw.paas-data.svc.cluster.local`) mean nothing on this machine.
`ApiServer.cluster_dns` maps such names to addresses here; when PGHOST is one of them, PGHOSTADDR carries the
address (libpq then connects there and still calls the server PGHOST), as CoreDNS would have resolved it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.streams import ExecSession

PROGRAMS = ("pg_dump", "pg_restore", "psql")
CHUNK = 64 * 1024


def is_postgres_image(image: str) -> bool:
    repository = image.rsplit("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return repository.startswith("postgres")


def handles(pod: dict[str, Any], container: str, command: list[str]) -> bool:
    """Whether this exec runs a PostgreSQL client program of the host."""
    if not command or command[0].rsplit("/", 1)[-1] not in PROGRAMS:
        return False
    image = next((c.get("image", "") for c in pod["spec"].get("containers") or [] if c["name"] == container), "")
    return is_postgres_image(image)


def _lookup(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, str] | None:
    obj = cluster.find(cluster.rt_for("v1", kind), namespace, name)
    if obj is None:
        return None
    if kind == "Secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


def container_env(cluster: Cluster, pod: dict[str, Any], container: str) -> dict[str, str]:
    """The container's environment: `envFrom` first, then `env` (which wins), as the kubelet builds it.

    A reference to a missing Secret, ConfigMap or key that is not optional stops the container from starting on
    a real node (CreateContainerConfigError); here the variable is left out.
    """
    namespace = pod["metadata"]["namespace"]
    spec = next((c for c in pod["spec"].get("containers") or [] if c["name"] == container), {})
    env: dict[str, str] = {}
    for source in spec.get("envFrom") or []:
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in source:
                values = _lookup(cluster, kind, namespace, source[key].get("name", "")) or {}
                env.update({source.get("prefix", "") + k: v for k, v in values.items()})
    for var in spec.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in ref:
                values = _lookup(cluster, kind, namespace, ref[key].get("name", "")) or {}
                if ref[key].get("key") in values:
                    env[var["name"]] = values[ref[key]["key"]]
    return env


async def run(session: ExecSession, env: dict[str, str], cluster_dns: dict[str, str]) -> int:
    """Run the host's program with the container's env; returns its exit code."""
    program = session.command[0].rsplit("/", 1)[-1]
    binary = shutil.which(program)
    if binary is None:
        await session.stderr(f"kubesim: {program} is not installed on the machine running kubesim\n")
        return 127
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "PGCONNECT_TIMEOUT": "10", **env}  # noqa: S108
    if env.get("PGHOST") in cluster_dns:
        env["PGHOSTADDR"] = cluster_dns[env["PGHOST"]]
    proc = await asyncio.create_subprocess_exec(
        binary, *session.command[1:], env=env, stdin=asyncio.subprocess.PIPE if session.stdin_enabled else
        asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            while (chunk := await session.read()) is not None:
                proc.stdin.write(chunk)
                await proc.stdin.drain()  # back-pressure: read the next chunk once the program took this one
        except (BrokenPipeError, ConnectionResetError):
            pass  # the program exited without reading everything (e.g. on an error)
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.close()

    async def relay(reader: asyncio.StreamReader | None, write: Any) -> None:
        assert reader is not None
        while chunk := await reader.read(CHUNK):
            if session.ws.closed:  # the client went away: stop the program rather than let it block on a pipe
                raise ConnectionResetError("the exec connection closed")
            await write(chunk)

    feeder = asyncio.get_running_loop().create_task(feed()) if session.stdin_enabled else None
    try:
        await asyncio.gather(relay(proc.stdout, session.stdout), relay(proc.stderr, session.stderr))
        return await proc.wait()
    except ConnectionResetError:
        return 137
    finally:
        if feeder is not None:
            feeder.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
