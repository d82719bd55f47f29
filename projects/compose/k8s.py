"""Small builders for Kubernetes object metadata, names and labels."""

from __future__ import annotations

import re
from typing import Any

from . import labels as L
from .context import RenderContext, dns_label

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_value(value: str) -> str:
    return value if len(value) <= 63 and _LABEL_VALUE.match(value) else dns_label(value)


def is_annotation_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return bool(_QUALIFIED_NAME.match(name))


def fit(name: str, limit: int = 63) -> str:
    """A DNS label no longer than `limit`, hashed when it had to be shortened or rewritten."""
    return dns_label(name, limit=limit)


def base_labels(ctx: RenderContext) -> dict[str, str]:
    return {
        L.MANAGED_BY: L.MANAGED_BY_VALUE,
        L.ORGANIZATION: label_value(ctx.org_slug),
        L.PROJECT: label_value(ctx.project_slug),
    }


def pod_labels(ctx: RenderContext, service: str) -> dict[str, str]:
    # No revision here: a new release must not restart pods whose template did not change.
    return {**base_labels(ctx), L.SERVICE: label_value(service)}


def selector(ctx: RenderContext, service: str) -> dict[str, str]:
    return {L.PROJECT: label_value(ctx.project_slug), L.SERVICE: label_value(service)}


def metadata(
    ctx: RenderContext,
    name: str,
    *,
    service: str | None = None,
    component: str | None = None,
    namespaced: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {**base_labels(ctx), L.REVISION: str(ctx.revision)}
    if service:
        labels[L.SERVICE] = label_value(service)
    if component:
        labels[L.COMPONENT] = component
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespaced:
        meta["namespace"] = ctx.namespace
    if annotations:
        meta["annotations"] = annotations
    return meta
