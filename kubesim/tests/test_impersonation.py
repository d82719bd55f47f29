"""Impersonation (`Impersonate-User` / `-Group`), as kube-apiserver's impersonation filter does it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from kubesim.testing import KubeSim
from kubesim.tests.test_rbac import denied, grant

VIEWER = "system:serviceaccount:default:viewer"


@pytest.fixture
def impersonator(kubesim: KubeSim, kube_api: client.ApiClient) -> Iterator[client.ApiClient]:
    """The robot ServiceAccount, allowed to impersonate only the `viewer` ServiceAccount, which may list pods."""
    admin = kube_api
    for name in ("robot", "viewer"):
        client.CoreV1Api(admin).create_namespaced_service_account("default", {"metadata": {"name": name}})
    api = kubesim.api_client(kubesim.service_account_token("default", "robot"))
    grant(admin, [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"],
                   "resourceNames": ["viewer"]}], name="impersonate")
    grant(admin, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], name="read-pods",
          subject={"kind": "ServiceAccount", "name": "viewer", "namespace": "default"})
    yield api
    api.close()


def test_a_request_is_authorized_as_the_impersonated_service_account(impersonator: client.ApiClient) -> None:
    """The robot may not list pods itself; impersonating the viewer it may, and it may do only what the viewer
    may: deleting a pod is refused in the viewer's name."""
    core = client.CoreV1Api(impersonator)
    body = denied(lambda: core.list_namespaced_pod("default"))
    assert 'User "system:serviceaccount:default:robot" cannot list resource "pods"' in body["message"]
    impersonator.set_default_header("Impersonate-User", VIEWER)
    assert core.list_namespaced_pod("default").items == []
    body = denied(lambda: core.delete_namespaced_pod("web", "default"))
    assert body["message"] == (f'pods "web" is forbidden: User "{VIEWER}" cannot delete resource "pods" in API '
                               'group "" in the namespace "default"')


def test_the_impersonated_account_has_its_groups_and_no_others(impersonator: client.ApiClient) -> None:
    impersonator.set_default_header("Impersonate-User", VIEWER)
    review = client.AuthenticationV1Api(impersonator).create_self_subject_review({})
    assert review.status.user_info.username == VIEWER
    assert review.status.user_info.groups == ["system:serviceaccounts", "system:serviceaccounts:default",
                                              "system:authenticated"]


def test_impersonating_anyone_else_is_forbidden(impersonator: client.ApiClient, kube_api: client.ApiClient) -> None:
    """Another ServiceAccount, a user, a group: each needs its own `impersonate` permission."""
    client.CoreV1Api(kube_api).create_namespaced_service_account("default", {"metadata": {"name": "boss"}})
    core = client.CoreV1Api(impersonator)
    impersonator.set_default_header("Impersonate-User", "system:serviceaccount:default:boss")
    body = denied(lambda: core.list_namespaced_pod("default"))
    assert body["message"] == ('serviceaccounts "boss" is forbidden: User "system:serviceaccount:default:robot" '
                               'cannot impersonate resource "serviceaccounts" in API group "" in the namespace '
                               '"default"')
    impersonator.set_default_header("Impersonate-User", "system:admin")
    body = denied(lambda: core.list_namespaced_pod("default"))
    assert body["message"].startswith('users "system:admin" is forbidden: User "system:serviceaccount:default:robot" '
                                      'cannot impersonate resource "users" in API group "" at the cluster scope')
    impersonator.set_default_header("Impersonate-User", VIEWER)
    impersonator.set_default_header("Impersonate-Group", "system:masters")
    body = denied(lambda: core.list_namespaced_pod("default"))
    assert body["message"].startswith('groups "system:masters" is forbidden')


def test_a_group_without_a_user_is_a_bad_request(impersonator: client.ApiClient) -> None:
    impersonator.set_default_header("Impersonate-Group", "system:masters")
    body = denied(lambda: client.CoreV1Api(impersonator).list_namespaced_pod("default"), code=400)
    assert body["message"] == "requested Impersonate-Group=system:masters without impersonating a user"


def test_the_admin_may_impersonate_and_then_holds_only_the_accounts_rights(kubesim: KubeSim,
                                                                           impersonator: client.ApiClient) -> None:
    api = kubesim.api_client()
    api.set_default_header("Impersonate-User", VIEWER)
    try:
        core = client.CoreV1Api(api)
        assert core.list_namespaced_pod("default").items == []
        denied(lambda: core.list_namespaced_secret("default"))
    finally:
        api.close()
