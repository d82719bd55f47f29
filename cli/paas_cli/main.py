"""The `paas` command. Every command talks to the public REST API (/api/v1/) or its WebSockets with a personal
API token; `--json` prints what the API answered, for scripts."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
from click.shell_completion import get_completion_class
from websockets.exceptions import ConnectionClosed

from paas_cli import __version__
from paas_cli.api import APIError, Client, path
from paas_cli.config import (
    Login,
    config_path,
    find_link,
    forget_login,
    load_login,
    save_login,
    stored_url,
    write_link,
)

STEP_ORDER = ("render", "data", "apply", "rollout")  # the server's pipeline (projects.models.STEPS)
FINISHED = {"live", "failed", "superseded"}
COMPOSE_FILES = ("compose.yml", "compose.yaml", "docker-compose.yml", "docker-compose.yaml")


# --- shared state: --json, --org, --project on the group and on every command ------------------------------


@dataclass
class State:
    json: bool = False
    org: str | None = None
    project: str | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(load_login())
        return self._client

    def org_slug(self) -> str:
        """--org, else PAAS_ORG, else the linked directory's, else the caller's only organization."""
        if self.org:
            return self.org
        link = find_link()
        if link and link[1].get("organization"):
            return str(link[1]["organization"])
        orgs = self.client.list("organizations/")
        if len(orgs) == 1:
            return orgs[0]["slug"]
        names = ", ".join(o["slug"] for o in orgs) or "none"
        raise click.UsageError(f"you belong to several organizations ({names}): pass --org or run `paas link`")

    def project_slug(self) -> str:
        if self.project:
            return self.project
        link = find_link()
        # A linked project belongs to the linked organization: with another --org it does not apply.
        if link and link[1].get("project") and (not self.org or self.org == link[1].get("organization")):
            return str(link[1]["project"])
        raise click.UsageError("which project? Pass --project or run `paas link --project <slug>` in this directory")

    def project_url(self, *rest: str) -> str:
        return path("organizations", self.org_slug(), "projects", self.project_slug(), *rest)

    def emit(self, data: Any, human: Callable[[], None]) -> None:
        if self.json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            human()


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:  # a command's own flag overrides the group's
            setattr(ctx.ensure_object(State), name, value)
    return callback


def common_options(command: Callable[..., Any], *, env: bool = False) -> Callable[..., Any]:
    """--json, --org and --project, accepted after the command name too (`paas status --json`). Only the group
    reads PAAS_ORG / PAAS_PROJECT, so a flag always beats the environment wherever it is written."""
    options = [
        click.option("--json", "json_", is_flag=True, expose_value=False, callback=_remember("json"),
                     help="Print the API's answer as JSON."),
        click.option("--org", expose_value=False, envvar="PAAS_ORG" if env else None, callback=_remember("org"),
                     help="Organization slug (default: the linked one, or your only one)."),
        click.option("--project", "-p", expose_value=False, envvar="PAAS_PROJECT" if env else None,
                     callback=_remember("project"), help="Project slug (default: the linked one)."),
    ]
    for option in options:
        command = option(command)
    return command


def common(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.pass_obj(common_options(command))


def table(rows: Iterable[Iterable[Any]], headers: Iterable[str]) -> None:
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    if len(cells) == 1:
        click.echo("(none)")
        return
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def credits(millicredits: int | float) -> str:
    return f"{millicredits / 1000:,.3f}"


# --- the group -------------------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paas")
@functools.partial(common_options, env=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Deploy and operate projects on the PaaS from a terminal.

    Start with `paas login`, then `paas link` in a project's directory.
    Shell completion: eval "$(paas completion bash)" (or zsh, fish).
    """
    ctx.ensure_object(State)


@cli.command()
@click.option("--url", help="The control plane's address, e.g. https://paas.example.com")
@click.option("--token", help="A personal API token (Settings -> API tokens); asked for when missing.")
@common
def login(state: State, url: str | None, token: str | None) -> None:
    """Check a personal API token and store it (mode 0600) in your config directory."""
    url = (url or click.prompt("Control plane URL", default=stored_url() or "http://127.0.0.1:8000")).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("the URL starts with http:// or https://", param_hint="--url")
    token = token or click.prompt("API token", hide_input=True)
    me = Client(Login(url, token.strip())).get("me/")
    where = save_login(Login(url, token.strip()))
    state.emit({"url": url, "email": me["email"], "config": str(where)},
               lambda: click.echo(f"Logged in to {url} as {me['email']} (token stored in {where})."))


@cli.command()
@common
def logout(state: State) -> None:
    """Forget the stored token (revoke it on the API tokens page to end it everywhere)."""
    removed = forget_login()
    click.echo(f"Removed {config_path()}." if removed else "Not logged in.")


@cli.command()
@common
def whoami(state: State) -> None:
    """Who the stored token belongs to."""
    me = state.client.get("me/")
    state.emit({**me, "url": state.client.login.url}, lambda: click.echo(f"{me['email']} on {state.client.login.url}"))


@cli.command()
@common
def orgs(state: State) -> None:
    """Your organizations and your role in each."""
    items = state.client.list("organizations/")
    state.emit(items, lambda: table(([o["slug"], o["name"], o["role"]] for o in items), ["slug", "name", "role"]))


@cli.command()
@common
def link(state: State) -> None:
    """Link this directory to an organization and project (writes .paas.json here)."""
    org = state.org_slug()
    project = state.project
    if project:
        state.client.get(path("organizations", org, "projects", project))  # it exists and you may see it
    else:
        state.client.get(path("organizations", org))
    written = write_link(org, project)
    state.emit({"organization": org, "project": project, "file": str(written)},
               lambda: click.echo(f"Linked {Path.cwd()} to {org}{'/' + project if project else ''}."))


# --- projects --------------------------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@common_options
@click.pass_context
def projects(ctx: click.Context) -> None:
    """List, create, delete and restore projects (default: list)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(projects_list)


@projects.command("list")
@common
def projects_list(state: State) -> None:
    """The organization's projects and their latest release."""
    items = state.client.list(path("organizations", state.org_slug(), "projects"))

    def human() -> None:
        table(([p["slug"], p["name"], p["cluster"],
                f"r{p['latest_release']['revision']} {p['latest_release']['status']}" if p["latest_release"] else "-",
                "suspended" if p["suspended"] else ""] for p in items),
              ["slug", "name", "cluster", "latest release", ""])
    state.emit(items, human)


@projects.command("create")
@click.argument("name")
@click.option("--slug", help="Short name in URLs (default: from the name).")
@click.option("--cluster", help="Cluster slug (default: the first open to the organization).")
@click.option("-f", "--file", "compose_file", type=click.File("r"), help="A compose file to store (not deployed).")
@click.option("--database", is_flag=True, help="Give the project a managed PostgreSQL database.")
@click.option("--bucket", is_flag=True, help="Give the project an S3 bucket.")
@click.option("--internet-egress", is_flag=True, help="Let its containers reach the internet.")
@click.option("--link/--no-link", "link_here", default=False, help="Also link this directory to it.")
@common
def projects_create(state: State, name: str, slug: str | None, cluster: str | None, compose_file: Any,
                    database: bool, bucket: bool, internet_egress: bool, link_here: bool) -> None:
    """Create a project called NAME."""
    org = state.org_slug()
    body: dict[str, Any] = {"name": name, "wants_database": database, "wants_bucket": bucket,
                            "allow_internet_egress": internet_egress}
    if slug:
        body["slug"] = slug
    if cluster:
        body["cluster"] = cluster
    if compose_file:
        body["compose"] = compose_file.read()
    project = state.client.post(path("organizations", org, "projects"), body)
    if link_here:
        write_link(org, project["slug"])
    state.emit(project, lambda: click.echo(f"Created project {project['slug']} in {org} on {project['cluster']}."
                                           + (" Linked this directory to it." if link_here else "")))


@projects.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask; SLUG is the confirmation.")
@common
def projects_delete(state: State, slug: str, yes: bool) -> None:
    """Delete project SLUG: its namespace now, its database and bucket after the grace period."""
    org = state.org_slug()
    if not yes:
        typed = click.prompt(f"This deletes {org}/{slug} and everything it runs. Type its slug to confirm")
        if typed != slug:
            raise click.ClickException("the slug does not match; nothing was deleted")
    state.client.delete(path("organizations", org, "projects", slug), confirm=slug)
    state.emit({"deleted": slug}, lambda: click.echo(f"Deleted project {slug}. An owner can restore it "
                                                     f"(paas projects restore {slug}) until its data is removed."))


@projects.command("deleted")
@common
def projects_deleted(state: State) -> None:
    """Deleted projects that can still be restored, and until when (owners)."""
    items = state.client.list(path("organizations", state.org_slug(), "deleted-projects"))

    def human() -> None:
        table(([p["slug"], p["name"], p["deleted_at"], p["purge_after"],
                f"r{p['live_revision']}" if p["live_revision"] else "-"] for p in items),
              ["slug", "name", "deleted", "restorable until", "redeploys"])
    state.emit(items, human)


@projects.command("restore")
@click.argument("slug")
@common
def projects_restore(state: State, slug: str) -> None:
    """Restore deleted project SLUG within its grace period (owners): the same database and bucket, and its live
    release redeployed."""
    result = state.client.post(path("organizations", state.org_slug(), "deleted-projects", slug, "restore"))
    release = result["release"]
    state.emit(result, lambda: click.echo(f"Restored project {slug}" + (
        f"; revision {release['revision']} redeploys its live release." if release else ".")))


# --- deploy, releases, rollback, status -------------------------------------------------------------------------


def _compose_text(compose_file: str | None) -> str | None:
    if compose_file == "-":
        return sys.stdin.read()
    if compose_file:
        try:
            return Path(compose_file).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {compose_file}: {exc.strerror}", param_hint="-f") from None
    for name in COMPOSE_FILES:
        if Path(name).is_file():
            return Path(name).read_text()
    return None  # the project's stored compose file


def _step_line(name: str, step: dict[str, Any]) -> str:
    seconds = f" ({step['seconds']:.1f}s)" if isinstance(step.get("seconds"), int | float) else ""
    message = f": {step['message']}" if step.get("message") else ""
    return f"  {name:<8} {step.get('status', 'pending')}{seconds}{message}"


def watch_release(state: State, release: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Print each step as it changes until the release finishes; raise (exit 1) with the reason if it fails."""
    out = (lambda line: click.echo(line, err=True)) if state.json else click.echo
    url = state.project_url("releases", str(release["revision"]))
    shown: dict[str, tuple[Any, ...]] = {}
    for warning in release.get("warnings") or []:
        out(f"  warning: {warning.get('message', warning)}")
    deadline = time.monotonic() + timeout
    while True:
        steps = release.get("steps") or {}
        for name in [*STEP_ORDER, *sorted(set(steps) - set(STEP_ORDER))]:
            step = steps.get(name)
            key = (step.get("status"), step.get("message"), step.get("seconds")) if step else None
            if step and shown.get(name) != key:
                shown[name] = key
                out(_step_line(name, step))
        if release["status"] in FINISHED:
            break
        if time.monotonic() > deadline:
            raise click.ClickException(f"release r{release['revision']} is still {release['status']} after "
                                       f"{timeout:.0f}s; follow it with `paas releases`")
        time.sleep(0.5)
        release = state.client.get(url)
    if release["status"] == "failed":
        code = f" [{release['error_code']}]" if release.get("error_code") else ""
        if state.json:
            click.echo(json.dumps(release, indent=2))
        reason = release.get("error") or "no reason given"
        raise click.ClickException(f"release r{release['revision']} failed{code}: {reason}")
    if release["status"] == "superseded":
        raise click.ClickException(f"release r{release['revision']} was superseded by a newer release")
    return release


def _finish(state: State, release: dict[str, Any], wait: bool, timeout: float, verb: str) -> None:
    if not state.json:
        click.echo(f"{verb} r{release['revision']} ({release['status']}).")
    if wait:
        release = watch_release(state, release, timeout)
        state.emit(release, lambda: click.echo(f"Release r{release['revision']} is live."))
    elif state.json:
        click.echo(json.dumps(release, indent=2))


@cli.command()
@click.option("-f", "--file", "compose_file", help=f"Compose file ('-' for stdin; default: {COMPOSE_FILES[0]} "
              "or another usual name here, else the project's stored one).")
@click.option("--wait", is_flag=True, help="Show the steps live until the release is live or failed; exit 1 if it "
              "fails.")
@click.option("--timeout", default=900, show_default=True, help="Seconds --wait waits.")
@common
def deploy(state: State, compose_file: str | None, wait: bool, timeout: int) -> None:
    """Deploy a new release; exits non-zero with the reason when it fails."""
    compose = _compose_text(compose_file)
    release = state.client.post(state.project_url("releases"), {} if compose is None else {"compose": compose})
    _finish(state, release, wait, timeout, "Deploying")


@cli.command()
@common
def releases(state: State) -> None:
    """The project's releases, newest first."""
    items = state.client.list(state.project_url("releases"))
    state.emit(items, lambda: table(
        ([f"r{r['revision']}", r["kind"] + (f" of r{r['rollback_of']}" if r.get("rollback_of") else ""),
          r["status"], (r["created_at"] or "")[:19].replace("T", " "), r.get("created_by") or "",
          (r.get("error") or "")[:60]] for r in items),
        ["revision", "kind", "status", "created (UTC)", "by", "error"]))


@cli.command()
@click.argument("revision")
@click.option("--wait", is_flag=True, help="Show the steps live until the rollback is live or failed; exit 1 if it "
              "fails.")
@click.option("--timeout", default=900, show_default=True, help="Seconds --wait waits.")
@common
def rollback(state: State, revision: str, wait: bool, timeout: int) -> None:
    """Deploy REVISION's exact objects again (as a new release)."""
    number = revision.lower().removeprefix("r")
    if not number.isdigit():
        raise click.BadParameter(f"{revision!r} is not a revision number (e.g. 3 or r3)", param_hint="REVISION")
    release = state.client.post(state.project_url("releases", number, "rollback"))
    _finish(state, release, wait, timeout, f"Rolling back to r{number} as")


@cli.command()
@common
def status(state: State) -> None:
    """The project's services and latest release."""
    project = state.client.get(state.project_url())

    def human() -> None:
        latest = project.get("latest_release")
        click.echo(f"{project['name']} ({project['slug']}) on {project['cluster']}, namespace {project['namespace']}"
                   + (" - SUSPENDED" if project.get("suspended") else ""))
        click.echo(f"Latest release: r{latest['revision']} {latest['status']}" if latest else "Never deployed.")
        click.echo()
        table(([s["name"], s["kind"], s["status"], f"{s['ready']}/{s['replicas']}", s["restarts"], s["url"] or "",
                s.get("message") or ""] for s in project.get("services", [])),
              ["service", "kind", "status", "ready", "restarts", "url", "message"])
    state.emit(project, human)


# --- variables -------------------------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@common_options
@click.pass_context
def vars(ctx: click.Context) -> None:
    """Project variables and service environment variables (default: list)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(vars_list)


@vars.command("list")
@click.option("--service", "-s", help="Only this service's variables (default: all).")
@common
def vars_list(state: State, service: str | None) -> None:
    """Variables; a secret's value is never shown."""
    items = [v for v in state.client.list(state.project_url("variables"))
             if service is None or v["service"] == service]
    state.emit(items, lambda: table(([v["name"], v["service"] or "(project)",
                                      "(secret)" if v["secret"] else v["value"]] for v in items),
                                    ["name", "service", "value"]))


@vars.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option("--service", "-s", default="", help="Set it in this service's environment (default: the project's "
              "variables, used in the compose file).")
@click.option("--secret", is_flag=True, help="Store encrypted and never show it again. NAME alone asks for the value.")
@common
def vars_set(state: State, assignments: tuple[str, ...], service: str, secret: bool) -> None:
    """Set variables; they apply on the next deploy."""
    pairs = []
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            if not secret:
                raise click.BadParameter(f"{item!r}: write NAME=VALUE (or NAME alone with --secret to be asked)")
            value = click.prompt(f"Value of {name}", hide_input=True)
        pairs.append((name, value))
    done = [state.client.post(state.project_url("variables"),
                              {"name": name, "value": value, "service": service, "secret": secret})
            for name, value in pairs]
    state.emit(done, lambda: click.echo(f"Set {', '.join(v['name'] for v in done)}"
                                        f"{' in service ' + service if service else ''}; deploy to apply."))


@vars.command("unset")
@click.argument("names", nargs=-1, required=True)
@click.option("--service", "-s", default="", help="The service whose variable it is (default: the project's).")
@common
def vars_unset(state: State, names: tuple[str, ...], service: str) -> None:
    """Remove variables; the change applies on the next deploy."""
    existing = {v["name"]: v for v in state.client.list(state.project_url("variables")) if v["service"] == service}
    missing = [n for n in names if n not in existing]
    if missing:  # checked first: nothing is removed when one name is wrong
        where = f"service {service}" if service else "the project (use --service for a service's)"
        raise click.ClickException(f"no variable {', '.join(missing)} in {where}; nothing was removed")
    for name in names:
        state.client.delete(state.project_url("variables", str(existing[name]["id"])))
    state.emit({"removed": list(names)}, lambda: click.echo(f"Removed {', '.join(names)}; deploy to apply."))


# --- logs, exec, ssh -------------------------------------------------------------------------------------------


def check_service(state: State, service: str) -> None:
    """Before opening a socket, which can only be refused without a reason: a missing project or service."""
    project = state.client.get(state.project_url())
    if service not in {s["name"] for s in project.get("services", [])}:
        raise click.ClickException(f"project {project['slug']} has no service {service}")


def _log_text(frame: dict[str, Any]) -> str | None:
    if "line" in frame:
        return f"{frame.get('ts', '')} {frame['pod']}/{frame['container']} {frame['line']}".lstrip()
    if "skipped" in frame:
        return f"[{frame['skipped']} lines skipped]"
    if "notice" in frame:
        return f"[{frame.get('pod') or 'logs'}: {frame['notice']}]"
    return None


def _logs_socket_path(state: State, service: str | None) -> str:
    base = f"ws/o/{state.org_slug()}/projects/{state.project_slug()}/"
    return base + (f"services/{service}/logs/" if service else "logs/")


def follow_logs(state: State, service: str | None, tail: int, since: int | None) -> None:
    """The live log socket: print frames, acknowledge each batch, resume after an agent or connection break
    from the last line printed (per container: its timestamp and how many lines carried it)."""
    resume: dict[str, list[Any]] = {}
    ws_path = _logs_socket_path(state, service)
    while True:
        with state.client.socket(ws_path) as ws:
            start: dict[str, Any] = {"type": "start", "follow": True, "tail": tail}
            if resume:
                start["resume"] = resume
            elif since:
                start["since_seconds"] = since
            ws.send(json.dumps(start))
            try:
                for message in ws:
                    header, _, body = str(message).partition("\n")
                    event = json.loads(header)
                    if event.get("type") == "lines":
                        ws.send(json.dumps({"type": "ack", "seq": event["seq"]}))
                        for raw in body.splitlines():
                            frame = json.loads(raw)
                            _remember_position(resume, frame)
                            text = json.dumps(frame) if state.json else _log_text(frame)
                            if text is not None:
                                click.echo(text)
                    elif event.get("type") == "end":
                        return
                    elif event.get("type") == "error":
                        if not event.get("retry"):
                            raise click.ClickException(event.get("message", "the log stream failed"))
                        click.echo(f"[{event.get('message')}; retrying]", err=True)
                        time.sleep(2)
                        ws.send(json.dumps({**start, "resume": resume} if resume else start))
                    elif event.get("event") == "access.lost":
                        raise click.ClickException("your access to this project changed")
            except ConnectionClosed as exc:
                if exc.rcvd and exc.rcvd.code == 4403:
                    raise click.ClickException("your access to this project ended; the stream was closed") from None
        click.echo("[connection lost; reconnecting]", err=True)
        time.sleep(2)


def _remember_position(resume: dict[str, list[Any]], frame: dict[str, Any]) -> None:
    if "line" not in frame or not frame.get("ts"):
        return
    key = f"{frame['pod']}/{frame['container']}"
    ts, count = resume.get(key, ["", 0])
    resume[key] = [ts, count + 1] if ts == frame["ts"] else [frame["ts"], 1]


@cli.command()
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines (Ctrl+C stops).")
@click.option("-n", "--tail", default=100, show_default=True, help="Lines per container to start with.")
@click.option("--since", type=int, help="Only lines of the last N seconds.")
@click.option("--previous", is_flag=True, help="The previous (crashed) container's log.")
@common
def logs(state: State, service: str | None, follow: bool, tail: int, since: int | None, previous: bool) -> None:
    """A service's log lines (every service without SERVICE): `<time> <pod>/<container> <line>`."""
    if follow:
        if previous:
            raise click.UsageError("--previous cannot be followed: that container has ended")
        if service:
            check_service(state, service)
        else:
            state.client.get(state.project_url())
        try:
            follow_logs(state, service, tail, since)
        except KeyboardInterrupt:
            pass
        return
    rest = ["services", service, "logs"] if service else ["logs"]
    params = {"tail": tail, "since_seconds": since, "previous": "true" if previous else None}
    text = state.client.request("GET", state.project_url(*rest),
                                params={k: v for k, v in params.items() if v is not None}).text
    if state.json:
        click.echo(json.dumps([_parse_log_line(line) for line in text.splitlines()], indent=2))
    else:
        click.echo(text, nl=False)


def _parse_log_line(line: str) -> dict[str, str]:
    ts, _, rest = line.partition(" ")
    source, _, text = rest.partition(" ")
    pod, _, container = source.partition("/")
    return {"ts": ts, "pod": pod, "container": container, "line": text}


STDOUT, STDERR = 1, 2  # the exec socket's channel byte (agent.protocol EXEC_STDOUT, EXEC_STDERR)


def run_exec(state: State, service: str, command: tuple[str, ...], stdin: bool, pod: str | None) -> int:
    check_service(state, service)
    query = [("cmd", part) for part in command] + ([("pod", pod)] if pod else [])
    ws_path = f"ws/o/{state.org_slug()}/projects/{state.project_slug()}/services/{service}/exec/"
    with state.client.socket(ws_path, query) as ws:
        first = json.loads(ws.recv(timeout=60))
        if first.get("type") != "ready":
            raise click.ClickException(first.get("message", "the command could not start"))
        if stdin:
            threading.Thread(target=_pump_stdin, args=(ws,), daemon=True).start()
        else:
            ws.send(json.dumps({"type": "eof"}))
        try:
            for message in ws:
                if isinstance(message, bytes):
                    stream = sys.stdout.buffer if message[:1] != bytes([STDERR]) else sys.stderr.buffer
                    stream.write(message[1:])
                    stream.flush()
                    continue
                event = json.loads(message)
                if event.get("type") == "exit":
                    code = event.get("exit_code")
                    if code is None:
                        raise click.ClickException(event.get("message") or "the command ended without a status")
                    return int(code)
                if event.get("type") in ("error", "idle"):
                    raise click.ClickException(event.get("message", "the session ended"))
                if event.get("event") == "access.lost":
                    raise click.ClickException("your access to this project changed; the session was closed")
        except ConnectionClosed as exc:
            reason = "your access to this project ended" if exc.rcvd and exc.rcvd.code == 4403 else str(exc)
            raise click.ClickException(f"the session was closed: {reason}") from None
    raise click.ClickException("the session ended without an exit status")


def _pump_stdin(ws: Any) -> None:
    try:
        while chunk := os.read(sys.stdin.fileno(), 65536):
            ws.send(chunk)
        ws.send(json.dumps({"type": "eof"}))
    except (ConnectionClosed, OSError):
        pass


@cli.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-i", "--stdin", is_flag=True, help="Pass this terminal's standard input to the command.")
@click.option("--pod", help="A pod of the service (default: the newest running one).")
@common
def exec_(state: State, service: str, command: tuple[str, ...], stdin: bool, pod: str | None) -> None:
    """Run COMMAND in SERVICE's container and exit with its exit status: paas exec web -- ls -la /app"""
    sys.exit(run_exec(state, service, command, stdin, pod))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-o", "--ssh-option", "ssh_options", multiple=True, metavar="OPTION",
              help="An ssh -o option, e.g. -o IdentityFile=~/.ssh/id_paas (repeatable).")
@click.option("--print", "print_only", is_flag=True, help="Print the ssh command instead of running it.")
@common
def ssh(state: State, service: str, command: tuple[str, ...], ssh_options: tuple[str, ...], print_only: bool) -> None:
    """Open a shell in SERVICE over SSH with the system `ssh` (your key must be on your SSH keys page), or run
    COMMAND there: paas ssh web -- 'ls /app'. ssh's exit status (the command's) is paas's."""
    gateway = state.client.get("ssh/")
    target = f"{state.org_slug()}.{state.project_slug()}.{service}@{gateway['host']}"
    options = [part for option in ssh_options for part in ("-o", option)]
    argv = ["ssh", "-p", str(gateway["port"]), *options, target, *command]
    if print_only or state.json:
        state.emit({**gateway, "argv": argv}, lambda: click.echo(" ".join(argv)))
        return
    if shutil.which("ssh") is None:
        raise click.ClickException("the `ssh` command is not installed (OpenSSH client)")
    os.execvp("ssh", argv)  # noqa: S606 (ssh takes over the terminal; its exit status is ours)


# --- credits ---------------------------------------------------------------------------------------------------


@cli.command("credits")
@click.option("--days", default=30, show_default=True, help="Usage of the last N days.")
@common
def credits_(state: State, days: int) -> None:
    """The organization's balance and, for owners and admins, usage cost per project and service."""
    org = state.org_slug()
    balance = state.client.get(path("organizations", org, "billing", "balance"))
    since = (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
    try:
        usage = state.client.list(path("organizations", org, "billing", "usage"), since=since)
    except APIError as exc:
        if exc.status != 403:
            raise
        usage = None  # members see the balance only
    costs: dict[tuple[str, str], int] = {}
    for record in usage or []:
        key = (record["project"], record["service"])
        costs[key] = costs.get(key, 0) + record["cost_millicredits"]

    def human() -> None:
        state_words = ["SUSPENDED"] if balance["suspended"] else (["low"] if balance["low_balance"] else [])
        click.echo(f"{org}: {balance['balance_credits']} credits on plan {balance['plan']}"
                   + (f" ({', '.join(state_words)})" if state_words else ""))
        if usage is None:
            click.echo("Usage is shown to owners and admins.")
            return
        click.echo(f"\nUsage since {since}: {credits(sum(costs.values()))} credits")
        table(([p, s or "(project)", credits(c)] for (p, s), c in sorted(costs.items())),
              ["project", "service", "credits"])
    state.emit({"balance": balance, "since": since, "usage": usage,
                "cost_by_service": [{"project": p, "service": s, "cost_millicredits": c}
                                    for (p, s), c in sorted(costs.items())]}, human)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(paas completion bash)" in ~/.bashrc."""
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "paas", "_PAAS_COMPLETE").source())


def main() -> None:
    try:
        cli.main(prog_name="paas")
    except (httpx.HTTPError, ConnectionClosed, OSError, TimeoutError, ValueError) as exc:
        # No tracebacks: what went wrong in one line (click reports its own errors the same way).
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
