"""The gateway's host key: generated once, then read from SSH_HOST_KEY_PATH on every start.

The keys page reads the same file to show its fingerprint, so users can check what their client prints
on the first connection. Whoever needs it first (the gateway or the page) creates it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import asyncssh
from django.conf import settings


def load_or_create_host_key(path: Path | None = None) -> asyncssh.SSHKey:
    path = Path(path or settings.SSH_HOST_KEY_PATH)
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    key = asyncssh.generate_private_key("ssh-ed25519", comment="paas ssh gateway")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hostkey-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
        # link() fails if the file appeared meanwhile: two processes starting at once keep one key.
        os.link(tmp, path)
    except FileExistsError:
        return asyncssh.read_private_key(path)
    finally:
        os.unlink(tmp)
    return key


def host_key_fingerprint() -> str:
    """SHA256:... as OpenSSH prints it when it first meets the gateway."""
    return load_or_create_host_key().get_fingerprint("sha256")
