"""Where the CLI keeps what it knows: the login (URL and token, mode 0600 in the user's config dir) and the
linked organization and project of a directory (a `.paas.json` file, like `railway link`)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

LINK_FILE = ".paas.json"


class ConfigError(click.ClickException):
    pass


def config_dir() -> Path:
    # PAAS_CONFIG_DIR lets tests and several logins side by side use their own directory.
    return Path(os.environ.get("PAAS_CONFIG_DIR") or click.get_app_dir("paas"))


def config_path() -> Path:
    return config_dir() / "config.json"


@dataclass(frozen=True)
class Login:
    url: str
    token: str


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; delete it and run `paas login` again")
    return data


def load_login() -> Login:
    """The environment (PAAS_URL, PAAS_TOKEN: for CI) wins over the stored login."""
    stored = _read_json(config_path())
    url = os.environ.get("PAAS_URL") or stored.get("url")
    token = os.environ.get("PAAS_TOKEN") or stored.get("token")
    if not url or not token:
        raise ConfigError("not logged in: run `paas login` (or set PAAS_URL and PAAS_TOKEN)")
    return Login(url=str(url).rstrip("/"), token=str(token))


def stored_url() -> str | None:
    return _read_json(config_path()).get("url")


def save_login(login: Login) -> Path:
    """Write the token readable by its owner only: the file is created with mode 0600, never widened later."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a crash between open and replace
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": login.url, "token": login.token}, f, indent=2)
    os.replace(tmp, path)  # atomic: a crash never leaves half a token file
    return path


def forget_login() -> bool:
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True


# --- linked directory ----------------------------------------------------------------------------


def find_link(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest `.paas.json` in this directory or a parent, as git finds `.git`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / LINK_FILE
        if path.is_file():
            return path, _read_json(path)
    return None


def write_link(org: str, project: str | None, folder: Path | None = None) -> Path:
    path = (folder or Path.cwd()) / LINK_FILE
    data = {"organization": org, **({"project": project} if project else {})}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
