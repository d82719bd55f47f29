"""Every compose input of ../shared/conformance: converted (every object schema-valid) or refused
for the documented reason pinned here. A new corpus file fails until its outcome is pinned."""

from __future__ import annotations

import pytest

from projects.compose import ComposeRefusal, render_project

from .compose_helpers import CONFORMANCE, compose_inputs, invalid_objects, sample_ctx, sample_id

NO_BUILDER = "no image builder yet"
HOST_PATH = "bind mount of the host path"
DOCKER_SOCKET = "Docker socket"
NO_IMAGE = "has no `image`"  # partial override files meant to be merged with another file
UNDECLARED = "is not declared under top-level `volumes`"

# None: converted. A string: refused, and that text is part of the first reason.
EXPECTED: dict[str, str | None] = {
    "awesome-compose/angular/compose.yaml": NO_BUILDER,
    "awesome-compose/apache-php/compose.yaml": NO_BUILDER,
    "awesome-compose/aspnet-mssql/compose.yaml": NO_BUILDER,
    "awesome-compose/django/compose.yaml": NO_BUILDER,
    "awesome-compose/elasticsearch-logstash-kibana/compose.yaml": None,
    "awesome-compose/fastapi/compose.yaml": NO_BUILDER,
    "awesome-compose/flask/compose.yaml": NO_BUILDER,
    "awesome-compose/flask-redis/compose.yaml": NO_BUILDER,
    "awesome-compose/gitea-postgres/compose.yaml": None,
    "awesome-compose/minecraft/compose.yaml": HOST_PATH,
    "awesome-compose/nextcloud-postgres/compose.yaml": None,
    "awesome-compose/nextcloud-redis-mariadb/compose.yaml": None,
    "awesome-compose/nginx-aspnet-mysql/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-flask-mongo/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-flask-mysql/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-golang/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-golang-mysql/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-golang-postgres/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-nodejs-redis/compose.yaml": NO_BUILDER,
    "awesome-compose/nginx-wsgi-flask/compose.yaml": NO_BUILDER,
    "awesome-compose/pihole-cloudflared-DoH/compose.yaml": HOST_PATH,
    "awesome-compose/plex/compose.yaml": "network_mode 'host'",
    "awesome-compose/portainer/compose.yaml": DOCKER_SOCKET,
    "awesome-compose/postgresql-pgadmin/compose.yaml": None,
    "awesome-compose/prometheus-grafana/compose.yaml": None,
    "awesome-compose/react-express-mongodb/compose.yaml": NO_BUILDER,
    "awesome-compose/react-express-mysql/compose.yaml": NO_BUILDER,
    "awesome-compose/react-java-mysql/compose.yaml": NO_BUILDER,
    "awesome-compose/react-nginx/compose.yaml": NO_BUILDER,
    "awesome-compose/react-rust-postgres/compose.yaml": NO_BUILDER,
    "awesome-compose/sparkjava/compose.yaml": NO_BUILDER,
    "awesome-compose/sparkjava-mysql/compose.yaml": NO_BUILDER,
    "awesome-compose/spring-postgres/compose.yaml": NO_BUILDER,
    "awesome-compose/traefik-golang/compose.yaml": DOCKER_SOCKET,
    "awesome-compose/vuejs/compose.yaml": NO_BUILDER,
    "awesome-compose/wasmedge-kafka-mysql/compose.yaml": None,
    "awesome-compose/wasmedge-mysql-nginx/compose.yaml": None,
    "awesome-compose/wireguard/compose.yaml": "added capabilities",
    "awesome-compose/wordpress-mysql/compose.yaml": None,
    "kompose/buildargs/compose.yaml": NO_BUILDER,
    "kompose/buildconfig/compose-build-no-image.yaml": NO_BUILDER,
    "kompose/buildconfig/compose-dockerfile.yaml": None,
    "kompose/buildconfig/compose-v3.yaml": NO_BUILDER,
    "kompose/buildconfig/compose.yaml": None,
    "kompose/change-in-volume/compose.yaml": None,
    "kompose/compose-env-interpolation/compose.yaml": NO_BUILDER,
    "kompose/compose-env-no-interpolation/compose.yaml": None,
    "kompose/compose-file-env-variable/alternative-compose.yaml": None,
    "kompose/compose-file-env-variable/compose.yaml": None,
    "kompose/compose-v3.3-test/compose-config-long-warning.yaml": None,
    "kompose/compose-v3.3-test/compose-config-long.yaml": None,
    "kompose/compose-v3.3-test/compose-config-short-warning.yaml": None,
    "kompose/compose-v3.3-test/compose-config-short.yaml": None,
    "kompose/compose-v3.3-test/compose-endpoint-mode-1.yaml": None,
    "kompose/compose-v3.3-test/compose-endpoint-mode-2.yaml": None,
    "kompose/configmap-file-configs/compose-1.yaml": None,
    "kompose/configmap-file-configs/compose-2.yaml": None,
    "kompose/configmap-file-configs/compose-3.yaml": HOST_PATH,
    "kompose/configmap-pod/compose.yaml": None,
    "kompose/configmap-volume/compose-withlabel.yaml": None,
    "kompose/configmap-volume/compose.yaml": None,
    "kompose/controller/compose-controller-label-v3.yaml": None,
    "kompose/controller/compose-controller-label.yaml": "version 1 files",
    "kompose/controller/compose-global.yaml": None,
    "kompose/controller/compose.yaml": None,
    "kompose/cronjob/compose.yaml": None,
    "kompose/deploy-placement/compose-placement.yaml": None,
    "kompose/entrypoint-command/compose.yaml": None,
    "kompose/env/compose.yaml": None,
    "kompose/env-dotenv/compose.yaml": None,
    "kompose/envfile-interpolation/compose.yaml": None,
    "kompose/envvars-interpolation/compose.yaml": None,
    "kompose/expose/compose.yaml": None,
    "kompose/external-traffic-policy/compose-v1.yaml": None,
    "kompose/external-traffic-policy/compose-v2.yaml": None,
    "kompose/healthcheck/compose-healthcheck.yaml": None,
    "kompose/host-port-protocol/compose.yaml": "host-mode ports",
    "kompose/hpa/compose.yaml": None,
    "kompose/initcontainer/compose.yaml": None,
    "kompose/label/compose.yaml": None,
    "kompose/merge-multiple-compose/base.yml": None,
    "kompose/merge-multiple-compose/compose-new-service-prob.yml": NO_IMAGE,
    "kompose/merge-multiple-compose/compose-port-base.yml": None,
    "kompose/merge-multiple-compose/compose-port-prod.yml": NO_IMAGE,
    "kompose/merge-multiple-compose/dev.yml": NO_IMAGE,
    "kompose/merge-multiple-compose/other-toplevel-base.yml": UNDECLARED,
    "kompose/merge-multiple-compose/other-toplevel-dev.yml": None,
    "kompose/merge-multiple-compose/other-toplevel-ext.yml": "is external",
    "kompose/merge-multiple-compose/other-toplevel-override.yml": "version 1 files",
    "kompose/merge-multiple-compose/service-merge-concat-base.yml": HOST_PATH,
    "kompose/merge-multiple-compose/service-merge-concat-override.yml": HOST_PATH,
    "kompose/multiple-files/first.yaml": None,
    "kompose/multiple-files/second.yaml": NO_IMAGE,
    "kompose/multiple-type-volumes/compose.yaml": None,
    "kompose/network-mode-service/compose.yaml": "network_mode 'service:client'",
    "kompose/network-policies/compose.yaml": None,
    "kompose/no-profile-warning/compose.yaml": "nothing to deploy",
    "kompose/ports-with-ip/docker-compose.yml": None,
    "kompose/pvc-request-size/compose.yaml": HOST_PATH,
    "kompose/read-only/compose.yaml": None,
    "kompose/secrets/docker-compose-secrets-long.yml": None,
    "kompose/secrets/docker-compose-secrets-short.yml": None,
    "kompose/security-contexts/compose.yaml": "privileged containers",
    "kompose/service-group/compose.yaml": None,
    "kompose/statefulset/compose.yaml": None,
    "kompose/v2/compose.yaml": "exceeds the plan's 4Gi",  # mem_limit: 10000Mb
    "kompose/v3-deploy-resources/docker-compose-deploy.yaml": "unknown service 'redis'",
    "kompose/v3-deploy-resources/docker-compose-memcpu-partial.yaml": None,
    "kompose/v3-deploy-resources/docker-compose-memcpu.yaml": None,
    "kompose/v3-full-example/docker-compose-full-example.yaml": "added capabilities",
    "kompose/v3.0/compose.yaml": None,
    "kompose/volume-mounts-named-volume/docker-compose-v3.yml": UNDECLARED,
    "kompose/volume-mounts-named-volume/docker-compose.yml": UNDECLARED,
    "kompose/volume-mounts-tmpfs/docker-compose.yml": None,
    "kompose/volume-mounts-volumes-from/docker-compose-case.yml": None,
    "kompose/volume-mounts-volumes-from/docker-compose.yml": None,
    "kompose/volume-mounts-windows/compose.yaml": HOST_PATH,
}

pytestmark = pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance is not checked out")


def test_it_pins_an_outcome_for_every_corpus_file() -> None:
    assert sorted(sample_id(p) for p in compose_inputs()) == sorted(EXPECTED)


@pytest.mark.parametrize("path", compose_inputs(), ids=sample_id)
def test_it_converts_or_refuses_each_sample_as_pinned(path) -> None:
    expected = EXPECTED[sample_id(path)]
    ctx = sample_ctx(path, database_secret="db-credentials", bucket_secret="bucket-credentials", members=["alice"])
    if expected is None:
        result = render_project(path.read_text(), ctx)
        assert invalid_objects(result.objects) == {}
        assert result.objects[0]["kind"] == "Namespace"
    else:
        with pytest.raises(ComposeRefusal) as refusal:
            render_project(path.read_text(), ctx)
        assert expected in refusal.value.problems[0].message or any(
            expected in p.message for p in refusal.value.problems
        )
        assert all("\n" not in str(p) for p in refusal.value.problems)
