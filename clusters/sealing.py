"""Encryption at rest for secret values (Fernet), and sealing of Kubernetes Secret objects.

Secret values never sit in clear in the database: variables marked secret are stored encrypted
(projects.models.Variable), Release.manifests keep only a content hash of each Secret's data, and a
DesiredProject's Secrets carry their data sealed in an annotation that `unseal_objects` opens just
before the payload goes to the agent (DesiredProject.rpc_payload). Sealing is part of the desired-state
contract, so it lives here and the projects app imports it: the dependency runs one way.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SEALED_ANNOTATION = "paas.dev/sealed-data"
REDACTED_PREFIX = "redacted:sha256:"


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    if not key:
        raise ImproperlyConfigured("PAAS_ENCRYPTION_KEY is not set")
    return Fernet(key.encode())


def fernet() -> Fernet:
    # settings.py derives a development key from SECRET_KEY when DEBUG is on and none is set.
    return _fernet(getattr(settings, "PAAS_ENCRYPTION_KEY", "") or "")


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("a stored secret cannot be decrypted: was PAAS_ENCRYPTION_KEY changed?") from None


def digest(values: dict[str, str]) -> str:
    """A stable content hash of a Secret's data: shows in diffs when a value changed, reveals nothing."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _secret_values(obj: dict[str, Any]) -> dict[str, str]:
    """A Secret's values as text (data is base64; stringData is text)."""
    values = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    values.update(obj.get("stringData") or {})
    return values


def is_secret(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def seal_objects(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sealed, redacted) copies of `objects`.

    sealed: each Secret's data moved, encrypted, into an annotation (for the desired state);
    redacted: each Secret's data replaced by one hash per key (for the release record and diffs).
    """
    sealed, redacted = [], []
    for obj in objects:
        if not is_secret(obj):
            sealed.append(obj)
            redacted.append(obj)
            continue
        values = _secret_values(obj)
        s = copy.deepcopy(obj)
        s.pop("data", None)
        s.pop("stringData", None)
        s.setdefault("metadata", {}).setdefault("annotations", {})[SEALED_ANNOTATION] = encrypt(json.dumps(values))
        sealed.append(s)
        r = copy.deepcopy(obj)
        r.pop("stringData", None)
        r["data"] = {k: REDACTED_PREFIX + digest({k: v}) for k, v in sorted(values.items())}
        redacted.append(r)
    return sealed, redacted


def unseal_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects as the agent must apply them: sealed Secret data decrypted back into `data`."""
    out = []
    for obj in objects:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not is_secret(obj) or SEALED_ANNOTATION not in annotations:
            out.append(obj)
            continue
        o = copy.deepcopy(obj)
        values = json.loads(decrypt(o["metadata"]["annotations"].pop(SEALED_ANNOTATION)))
        if not o["metadata"]["annotations"]:
            del o["metadata"]["annotations"]
        o["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        out.append(o)
    return out
