"""kube-controller-manager's tokens controller: legacy ServiceAccount token Secrets get their token."""

from __future__ import annotations

import base64
from collections.abc import Iterable

from kubesim.auth import SA_NAME_ANNOTATION, SA_TOKEN_TYPE, SA_UID_ANNOTATION, Tokens
from kubesim.cluster import ROOT_CA
from kubesim.controllers.base import Controller, Key
from kubesim.store import Event


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TokenController(Controller):
    """A `kubernetes.io/service-account-token` Secret annotated with a ServiceAccount's name gets `data.token`,
    `data.ca.crt` and `data.namespace`; it is deleted when its ServiceAccount is (or never was)."""

    name = "tokens"
    primary = ("", "secrets")
    tokens: Tokens | None = None  # the emulator's signer, set when the emulator wires its parts together

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key != ("", "serviceaccounts"):
            return super().keys_for(event)
        meta = event.obj["metadata"]
        return [(meta["namespace"], s["metadata"]["name"])
                for s in self.cluster.store.list(("", "secrets"), meta["namespace"])
                if s.get("type") == SA_TOKEN_TYPE
                and (s["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION) == meta["name"]]

    def reconcile(self, namespace: str, name: str) -> None:
        secret_rt, sa_rt = self.rt("v1", "Secret"), self.rt("v1", "ServiceAccount")
        secret = self.fetch(secret_rt, namespace, name)
        if secret is None or secret.get("type") != SA_TOKEN_TYPE or self.tokens is None:
            return
        annotations = secret["metadata"].setdefault("annotations", {})
        sa = self.fetch(sa_rt, namespace, annotations.get(SA_NAME_ANNOTATION, ""))
        if sa is None or annotations.get(SA_UID_ANNOTATION, sa["metadata"]["uid"]) != sa["metadata"]["uid"]:
            self.cluster.delete(secret_rt, namespace, name)
            return
        data = secret.setdefault("data", {})
        if data.get("token") and annotations.get(SA_UID_ANNOTATION):
            return
        annotations[SA_UID_ANNOTATION] = sa["metadata"]["uid"]
        data.update({"token": _b64(self.tokens.legacy_token(secret, sa)), "ca.crt": _b64(ROOT_CA),
                     "namespace": _b64(namespace)})
        self.cluster.write(secret_rt, secret, self.manager)
