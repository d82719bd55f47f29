"""Authentication, the RBAC authorizer and escalation prevention, as kube-apiserver enforces them."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from kubesim.testing import KubeSim
from kubesim.tests.helpers import deployment, pod, raw, status_body

SA = "system:serviceaccount:default:robot"
SA_GROUPS = '["system:serviceaccounts" "system:serviceaccounts:default" "system:authenticated"]'
RBAC = "rbac.authorization.k8s.io"
Clients = Callable[..., client.ApiClient]


@pytest.fixture
def admin(kube_api: client.ApiClient) -> client.ApiClient:
    return kube_api


@pytest.fixture
def as_sa(kubesim: KubeSim, admin: client.ApiClient) -> Iterator[Clients]:
    """`as_sa(name="robot", namespace="default")`: an ApiClient authenticated as that (new) ServiceAccount."""
    made: list[client.ApiClient] = []

    def make(name: str = "robot", namespace: str = "default") -> client.ApiClient:
        core = client.CoreV1Api(admin)
        if kubesim.get("ServiceAccount", namespace, name) is None:
            core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        api = kubesim.api_client(kubesim.service_account_token(namespace, name))
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


def grant(admin: client.ApiClient, rules: list[dict[str, Any]], *, namespace: str | None = "default",
          name: str = "grant", subject: dict[str, Any] | None = None, cluster_role: bool = False) -> None:
    """A Role (or ClusterRole) with `rules`, bound to the robot ServiceAccount in `namespace` (None: cluster-wide)."""
    rbac = client.RbacAuthorizationV1Api(admin)
    subject = subject or {"kind": "ServiceAccount", "name": "robot", "namespace": "default"}
    kind = "ClusterRole" if cluster_role or namespace is None else "Role"
    ref = {"apiGroup": RBAC, "kind": kind, "name": name}
    meta = {"name": name}
    if kind == "ClusterRole":
        rbac.create_cluster_role({"metadata": meta, "rules": rules})
    else:
        rbac.create_namespaced_role(namespace, {"metadata": meta, "rules": rules})
    if namespace is None:
        rbac.create_cluster_role_binding({"metadata": meta, "roleRef": ref, "subjects": [subject]})
    else:
        rbac.create_namespaced_role_binding(namespace, {"metadata": meta, "roleRef": ref, "subjects": [subject]})


def denied(call: Callable[[], Any], code: int = 403) -> dict[str, Any]:
    with pytest.raises(ApiException) as exc:
        call()
    assert exc.value.status == code, exc.value.body
    return status_body(exc.value)


# --- authentication --------------------------------------------------------------------------------


def test_requests_without_a_valid_token_are_unauthorized(kubesim: KubeSim) -> None:
    """No token and a wrong token both get kube-apiserver's 401 Status; the admin token gets through."""
    for token in (None, "not-a-token", kubesim.admin_token + "x"):
        cfg = client.Configuration(host=kubesim.url)
        if token:
            cfg.api_key, cfg.api_key_prefix = {"authorization": token}, {"authorization": "Bearer"}
        with client.ApiClient(cfg) as api:
            body = denied(lambda api=api: client.CoreV1Api(api).list_namespace(), 401)
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    with kubesim.api_client() as api:
        assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"


def test_open_mode_lets_every_request_through() -> None:
    """`KubeSim(auth=False)` keeps the old behaviour for tools that need it: no token needed."""
    with KubeSim(auth=False, preload_crds=False, controllers=False) as sim, \
            client.ApiClient(client.Configuration(host=sim.url)) as api:
        assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"


def test_the_kubeconfig_carries_the_admin_token(kubesim: KubeSim, tmp_path: Path) -> None:
    path = kubesim.write_kubeconfig(tmp_path / "kubeconfig")
    assert kubesim.admin_token in path.read_text() and path.stat().st_mode & 0o077 == 0
    config = client.Configuration()
    from kubernetes import config as kube_config
    kube_config.load_kube_config(str(path), client_configuration=config)
    with client.ApiClient(config) as api:
        me = client.AuthenticationV1Api(api).create_self_subject_review({"metadata": {}})
    assert me.status.user_info.username == "system:admin"
    assert "system:masters" in me.status.user_info.groups


def test_token_request_issues_a_service_account_token(kubesim: KubeSim, admin: client.ApiClient) -> None:
    """TokenRequest answers authentication.k8s.io/v1 with a token identifying the ServiceAccount."""
    core = client.CoreV1Api(admin)
    sa = core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    _, resp, _ = raw(admin, "POST", "/api/v1/namespaces/default/serviceaccounts/robot/token",
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"expirationSeconds": 1200}})
    assert (resp["kind"], resp["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
    assert resp["metadata"]["name"] == "robot" and resp["spec"]["expirationSeconds"] == 1200
    assert resp["status"]["expirationTimestamp"].endswith("Z")
    with kubesim.api_client(resp["status"]["token"]) as api:
        me = client.AuthenticationV1Api(api).create_self_subject_review({"metadata": {}}).status.user_info
    assert (me.username, me.uid) == (SA, sa.metadata.uid)
    assert me.groups == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    body = denied(lambda: core.create_namespaced_service_account_token(
        "robot", "default", {"spec": {"expirationSeconds": 60}}), 422)
    assert body["message"] == ('TokenRequest.authentication.k8s.io "robot" is invalid: spec.expirationSeconds: '
                               "Invalid value: 60: may not specify a duration less than 10 minutes")
    assert denied(lambda: core.create_namespaced_service_account_token("ghost", "default", {"spec": {}}),
                  404)["message"] == 'serviceaccounts "ghost" not found'


def test_tokens_die_with_their_service_account(kubesim: KubeSim, admin: client.ApiClient) -> None:
    """Deleting the ServiceAccount invalidates its tokens, also when one of the same name is created again."""
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    token = kubesim.service_account_token("default", "robot")
    with kubesim.api_client(token) as api:
        client.VersionApi(api).get_code()
        core.delete_namespaced_service_account("robot", "default")
        denied(lambda: client.VersionApi(api).get_code(), 401)
        core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
        denied(lambda: client.VersionApi(api).get_code(), 401)


def test_tokens_for_other_audiences_are_not_accepted(kubesim: KubeSim, admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    token = core.create_namespaced_service_account_token("robot", "default",
                                                         {"spec": {"audiences": ["vault"]}}).status.token
    with kubesim.api_client(token) as api:
        denied(lambda: client.VersionApi(api).get_code(), 401)
    review = client.AuthenticationV1Api(admin).create_token_review({"spec": {"token": token, "audiences": ["vault"]}})
    assert review.status.authenticated and review.status.user.username == SA


def test_legacy_token_secrets_are_filled_and_die_with_the_account(kubesim: KubeSim, admin: client.ApiClient) -> None:
    """The token controller fills `kubernetes.io/service-account-token` Secrets, and removes them with the SA."""
    core = client.CoreV1Api(admin)
    sa = core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    core.create_namespaced_secret("default", {"metadata": {"name": "robot-token", "annotations": {
        "kubernetes.io/service-account.name": "robot"}}, "type": "kubernetes.io/service-account-token"})
    secret = kubesim.wait_for(lambda: (s := kubesim.get("Secret", "default", "robot-token")) and
                              (s.get("data") or {}).get("token") and s)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["namespace"] == "default" and "BEGIN CERTIFICATE" in data["ca.crt"]
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa.metadata.uid
    with kubesim.api_client(data["token"]) as api:
        me = client.AuthenticationV1Api(api).create_self_subject_review({"metadata": {}})
        assert me.status.user_info.username == SA
        core.delete_namespaced_service_account("robot", "default")
        kubesim.wait_for(lambda: kubesim.get("Secret", "default", "robot-token") is None)
        denied(lambda: client.VersionApi(api).get_code(), 401)


# --- authorization ---------------------------------------------------------------------------------


def test_denials_are_worded_as_kube_apiserver_words_them(as_sa: Clients, admin: client.ApiClient) -> None:
    """403 Forbidden naming user, verb, resource[/subresource], group and namespace or cluster scope."""
    client.CoreV1Api(admin).create_namespaced_pod("default", pod("x"))
    api = as_sa()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    body = denied(lambda: core.read_namespaced_pod("x", "default"))
    assert body["message"] == (f'pods "x" is forbidden: User "{SA}" cannot get resource "pods" in API group "" '
                               'in the namespace "default"')
    assert (body["reason"], body["details"]) == ("Forbidden", {"name": "x", "kind": "pods"})
    assert denied(lambda: core.list_namespaced_pod("default"))["message"] == (
        f'pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" in the namespace "default"')
    assert denied(lambda: core.list_node())["message"] == (
        f'nodes is forbidden: User "{SA}" cannot list resource "nodes" in API group "" at the cluster scope')
    body = denied(lambda: apps.create_namespaced_deployment("default", deployment()))
    assert body["message"] == (f'deployments.apps is forbidden: User "{SA}" cannot create resource "deployments" '
                               'in API group "apps" in the namespace "default"')
    assert body["details"] == {"group": "apps", "kind": "deployments"}
    assert denied(lambda: core.read_namespaced_pod_log("x", "default"))["message"] == (
        f'pods "x" is forbidden: User "{SA}" cannot get resource "pods/log" in API group "" in the namespace '
        '"default"')
    status, body, _ = raw(api, "GET", "/metrics")
    assert status == 403 and body["message"] == f'forbidden: User "{SA}" cannot get path "/metrics"'


def test_any_authenticated_user_may_discover_and_review_itself(as_sa: Clients) -> None:
    """The default system:discovery, system:public-info-viewer and system:basic-user bindings."""
    api = as_sa()
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    assert any(g.name == "apps" for g in client.ApisApi(api).get_api_versions().groups)
    assert client.CoreV1Api(api).get_api_resources().group_version == "v1"
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "default"}}})
    assert review.status.allowed is False


def test_roles_and_bindings_grant_in_their_namespace(as_sa: Clients, admin: client.ApiClient) -> None:
    """A RoleBinding grants in its namespace only; a ClusterRoleBinding everywhere; the cache follows changes."""
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": "other"}})
    core = client.CoreV1Api(as_sa())
    grant(admin, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}], cluster_role=True)
    core.list_namespaced_pod("default")
    denied(lambda: core.list_namespaced_pod("other"))
    denied(lambda: core.list_pod_for_all_namespaces())
    client.RbacAuthorizationV1Api(admin).create_cluster_role_binding({
        "metadata": {"name": "everywhere"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "grant"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]})
    core.list_namespaced_pod("other")
    core.list_pod_for_all_namespaces()
    client.RbacAuthorizationV1Api(admin).delete_cluster_role_binding("everywhere")
    denied(lambda: core.list_namespaced_pod("other"))


def test_group_and_user_subjects(as_sa: Clients, admin: client.ApiClient) -> None:
    core = client.CoreV1Api(as_sa())
    grant(admin, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], name="by-group",
          subject={"kind": "Group", "name": "system:serviceaccounts:default", "apiGroup": RBAC})
    core.list_namespaced_config_map("default")
    grant(admin, [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}], name="by-user",
          subject={"kind": "User", "name": SA, "apiGroup": RBAC})
    core.list_namespaced_secret("default")
    denied(lambda: core.list_namespaced_service_account("default"))


def test_verbs_groups_and_resource_names(as_sa: Clients, admin: client.ApiClient) -> None:
    """`*` verbs and groups, resourceNames (never matching list or create), watch and deletecollection."""
    for name in ("mine", "theirs"):
        client.CoreV1Api(admin).create_namespaced_config_map("default", {"metadata": {"name": name}})
    grant(admin, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update", "delete"],
                   "resourceNames": ["mine"]},
                  {"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["*"]},
                  {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])
    api = as_sa()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.read_namespaced_config_map("mine", "default")
    denied(lambda: core.read_namespaced_config_map("theirs", "default"))
    denied(lambda: core.list_namespaced_config_map("default"))
    apps.create_namespaced_deployment("default", deployment())
    apps.delete_collection_namespaced_deployment("default")
    core.list_namespaced_secret("default")
    assert "cannot watch resource" in denied(
        lambda: core.list_namespaced_secret("default", watch=True, timeout_seconds=1, _preload_content=False)
    )["message"]
    assert "cannot deletecollection resource" in denied(
        lambda: core.delete_collection_namespaced_secret("default"))["message"]


def test_subresources_need_their_own_rules(kubesim: KubeSim, as_sa: Clients, admin: client.ApiClient) -> None:
    """deployments/scale and */scale; pods/log; exec needs create on pods/exec (WebSocket GET included)."""
    client.AppsV1Api(admin).create_namespaced_deployment("default", deployment())
    client.CoreV1Api(admin).create_namespaced_pod("default", pod("p"))
    kubesim.wait_for(lambda: (kubesim.get("Pod", "default", "p") or {}).get("status", {}).get("phase") == "Running")
    grant(admin, [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
                  {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]},
                  {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                  {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}])
    api = as_sa()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert 'cannot patch resource "deployments"' in denied(
        lambda: apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}}))["message"]
    assert "started" in core.read_namespaced_pod_log("p", "default")
    exec_pod = core.connect_get_namespaced_pod_exec
    with pytest.raises(ApiException) as exc:
        stream(exec_pod, "p", "default", command=["echo", "hi"], stdout=True, stderr=True, stdin=False, tty=False)
    assert "403 Forbidden" in str(exc.value)  # the WebSocket handshake is refused
    grant(admin, [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}], name="exec")
    assert stream(exec_pod, "p", "default", command=["echo", "hi"], stdout=True, stderr=True, stdin=False,
                  tty=False) == "hi\n"


def test_server_side_apply_needs_create_when_the_object_is_new(as_sa: Clients, admin: client.ApiClient) -> None:
    grant(admin, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}])
    api = as_sa()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    path = "/api/v1/namespaces/default/configmaps/c"
    query = [("fieldManager", "robot")]
    status, body, _ = raw(api, "PATCH", path, cm, query, "application/apply-patch+yaml")
    assert status == 403 and body["message"] == (
        f'configmaps "c" is forbidden: User "{SA}" cannot create resource "configmaps" in API group "" in the '
        'namespace "default"')
    client.CoreV1Api(admin).create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert raw(api, "PATCH", path, cm, query, "application/apply-patch+yaml")[0] == 200


def test_access_reviews_answer_with_the_reason(as_sa: Clients, admin: client.ApiClient) -> None:
    """SelfSubjectAccessReview, SubjectAccessReview (as admin) and SelfSubjectRulesReview."""
    grant(admin, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    mine = client.AuthorizationV1Api(as_sa())
    ask = {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "default"}}
    assert mine.create_self_subject_access_review({"spec": ask}).status.allowed
    review = client.AuthorizationV1Api(admin).create_subject_access_review({"spec": {"user": SA, **ask}})
    assert review.status.allowed and review.status.reason == (
        'RBAC: allowed by RoleBinding "grant/default" of Role "grant" to ServiceAccount "robot/default"')
    other = {"spec": {"user": SA, "resourceAttributes": {**ask["resourceAttributes"], "namespace": "kube-system"}}}
    assert not client.AuthorizationV1Api(admin).create_subject_access_review(other).status.allowed
    assert denied(lambda: mine.create_subject_access_review({"spec": {"user": SA, **ask}}))["message"].startswith(
        f'subjectaccessreviews.authorization.k8s.io is forbidden: User "{SA}" cannot create')
    rules = mine.create_self_subject_rules_review({"spec": {"namespace": "default"}}).status
    assert {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list"]} in [
        {k: v for k, v in r.to_dict().items() if v} for r in rules.resource_rules]
    assert any("/version" in r.non_resource_urls for r in rules.non_resource_rules)


def test_a_binding_to_a_missing_role_is_reported(as_sa: Clients, admin: client.ApiClient) -> None:
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding("default", {
        "metadata": {"name": "dangling"}, "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "nope"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]})
    body = denied(lambda: client.CoreV1Api(as_sa()).list_namespaced_pod("default"))
    assert body["message"].endswith(': RBAC: role.rbac.authorization.k8s.io "nope" not found')


# --- escalation prevention -------------------------------------------------------------------------


ROLE_WRITER = [{"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create", "update", "patch"]},
               {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]


def test_a_role_granting_more_than_the_writer_holds_is_refused(as_sa: Clients, admin: client.ApiClient) -> None:
    grant(admin, ROLE_WRITER)
    rbac = client.RbacAuthorizationV1Api(as_sa())
    rbac.create_namespaced_role("default", {"metadata": {"name": "reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    viewer = {"metadata": {"name": "viewer"}, "rules": [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]}]}
    body = denied(lambda: rbac.create_namespaced_role("default", viewer))
    assert body["message"] == (
        f'roles.rbac.authorization.k8s.io "viewer" is forbidden: user "{SA}" (groups={SA_GROUPS}) is attempting '
        "to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["watch"]}\n'
        '{APIGroups:[""], Resources:["pods/log"], Verbs:["get" "list" "watch"]}\n'
        '{APIGroups:["apps"], Resources:["replicasets"], Verbs:["list"]}')
    assert body["details"] == {"name": "viewer", "group": RBAC, "kind": "roles"}
    # A ClusterRole needs the permissions cluster-wide: held in one namespace is not enough.
    grant(admin, [{"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["create"]}], name="cr",
          namespace=None)
    assert "not currently held" in denied(lambda: rbac.create_cluster_role(
        {"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    ))["message"]


def test_updates_are_checked_but_no_op_writes_are_not(as_sa: Clients, admin: client.ApiClient) -> None:
    client.RbacAuthorizationV1Api(admin).create_namespaced_role("default", {"metadata": {"name": "big"}, "rules": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    grant(admin, ROLE_WRITER)
    rbac = client.RbacAuthorizationV1Api(as_sa())
    big = rbac_role = client.RbacAuthorizationV1Api(admin).read_namespaced_role("big", "default")
    rbac.replace_namespaced_role("big", "default", big)  # unchanged: allowed, as upstream (only GC fields)
    rbac_role.metadata.labels = {"touched": "yes"}
    assert "not currently held" in denied(lambda: rbac.replace_namespaced_role("big", "default", rbac_role))[
        "message"]


def test_escalate_allows_granting_more(as_sa: Clients, admin: client.ApiClient) -> None:
    grant(admin, [*ROLE_WRITER, {"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"]}])
    client.RbacAuthorizationV1Api(as_sa()).create_namespaced_role("default", {"metadata": {"name": "big"}, "rules": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})


def test_bindings_need_the_roles_permissions_or_bind(as_sa: Clients, admin: client.ApiClient) -> None:
    """A binding to a role whose permissions the writer lacks is refused, unless it may `bind` that role."""
    admin_rbac = client.RbacAuthorizationV1Api(admin)
    for name in ("big", "other"):
        admin_rbac.create_namespaced_role("default", {"metadata": {"name": name}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
    admin_rbac.create_namespaced_role("default", {"metadata": {"name": "small"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    grant(admin, ROLE_WRITER)
    rbac = client.RbacAuthorizationV1Api(as_sa())

    def bind(role: str, kind: str = "Role") -> Any:
        return rbac.create_namespaced_role_binding("default", {
            "metadata": {"name": f"to-{role}"}, "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": "someone", "apiGroup": RBAC}]})

    bind("small")
    body = denied(lambda: bind("big"))
    assert body["message"] == (
        f'rolebindings.rbac.authorization.k8s.io "to-big" is forbidden: user "{SA}" (groups={SA_GROUPS}) is '
        'attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], '
        'Verbs:["get"]}')
    assert denied(lambda: bind("nope"))["message"] == (
        'rolebindings.rbac.authorization.k8s.io "to-nope" is forbidden: roles.rbac.authorization.k8s.io "nope" '
        "not found")
    grant(admin, [{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["bind"], "resourceNames": ["big"]}],
          name="bind-big")
    bind("big")
    denied(lambda: bind("other"))
