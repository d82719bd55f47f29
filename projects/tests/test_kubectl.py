"""kubectl for a project (docs/kubectl.md): members' credentials, and Kubernetes API requests relayed through the
control plane and the agent tunnel as the project's ServiceAccounts. Real daphne, Redis, Celery, agent, kubesim;
the official kubernetes client and /usr/bin/kubectl as the members' tools."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from paas.testing.plane import poll
from projects import kubeaccess, releases
from projects.kubeaccess import PROXY_PREFIX
from projects.models import ReleaseStatus


def deployed(project, user) -> None:
    release = releases.deploy(project, user)

    def done() -> bool:
        release.refresh_from_db()
        return release.status in (ReleaseStatus.LIVE, ReleaseStatus.FAILED)

    poll(done, 90, "the release to finish")
    assert release.status == ReleaseStatus.LIVE, release.error


def api_for(base_url: str, project, token: str) -> client.ApiClient:
    cfg = client.Configuration(host=f"{base_url}{PROXY_PREFIX}{project.uid}")
    cfg.api_key, cfg.api_key_prefix = {"authorization": token}, {"authorization": "Bearer"}
    return client.ApiClient(cfg)


def refused(call, code: int) -> str:
    with pytest.raises(ApiException) as exc:
        call()
    assert exc.value.status == code, exc.value.body
    return exc.value.body if isinstance(exc.value.body, str) else exc.value.body.decode()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_member_reads_the_namespace_with_the_official_client(connected, daphne_server, personas, project, viewer):
    deployed(project, personas.owner)
    _, member_token = kubeaccess.create_access(personas.member, project, "laptop")
    api = api_for(daphne_server, project, member_token)
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(project.namespace).items
    assert sorted(p.metadata.labels["paas.dev/service"] for p in pods) == ["api", "web", "worker"]
    assert [d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(project.namespace).items] \
        == ["api", "web", "worker"]
    body = refused(lambda: core.list_namespaced_secret(project.namespace), 403)
    assert (f'User \\"system:serviceaccount:{project.namespace}:project-deployer\\" cannot list resource '
            f'\\"secrets\\"') in body
    body = refused(lambda: client.AppsV1Api(api).delete_namespaced_deployment("web", project.namespace), 403)
    assert "cannot delete resource" in body
    body = refused(lambda: core.list_namespaced_pod("kube-system"), 403)
    assert "outside this project's namespace" in body
    body = refused(lambda: core.list_node(), 403)
    api.close()
