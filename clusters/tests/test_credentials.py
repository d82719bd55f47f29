"""Agent tokens and install secrets: shown once, stored hashed, rotatable with a grace period, revocable."""

from __future__ import annotations

from datetime import timedelta

import yaml
from django.utils import timezone

from clusters import services
from clusters.models import Cluster, EventKind, hash_secret


def test_it_stores_only_the_hash_of_a_token(cluster):
    token = services.issue_token(cluster)
    cluster.refresh_from_db()
    assert token not in str(Cluster.objects.filter(pk=cluster.pk).values().first())
    assert cluster.token_hash == hash_secret(token)
    assert services.authenticate_agent(token) == cluster


def test_it_refuses_bad_tokens(cluster):
    token = services.issue_token(cluster)
    assert services.authenticate_agent(token + "x") is None
    assert services.authenticate_agent(f"{cluster.pk + 1}.{token.split('.', 1)[1]}") is None
    assert services.authenticate_agent("garbage") is None
    assert services.authenticate_agent("") is None


def test_it_keeps_the_old_token_valid_for_the_grace_period_after_rotation(cluster, settings):
    settings.AGENT_TOKEN_GRACE_MINUTES = 10
    old = services.issue_token(cluster)
    new = services.issue_token(cluster)
    assert services.authenticate_agent(new) == cluster
    assert services.authenticate_agent(old) == cluster
    cluster.refresh_from_db()
    later = timezone.now() + timedelta(minutes=11)
    assert cluster.token_matches(new, now=later)
    assert not cluster.token_matches(old, now=later)
    assert cluster.events.filter(kind=EventKind.TOKEN_ROTATED).exists()


def test_it_revokes_every_token(cluster):
    old = services.issue_token(cluster)
    new = services.issue_token(cluster)
    services.revoke_token(cluster)
    assert services.authenticate_agent(old) is None
    assert services.authenticate_agent(new) is None
    assert cluster.events.filter(kind=EventKind.TOKEN_REVOKED).exists()


def test_the_install_link_works_once_and_carries_a_working_token(cluster, client):
    secret = services.issue_install_secret(cluster)
    url = f"/clusters/{cluster.pk}/agent.yaml?secret={secret}"
    response = client.get(url)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    docs = list(yaml.safe_load_all(response.content))
    token = next(d for d in docs if d["kind"] == "Secret")["stringData"]["token"]
    assert services.authenticate_agent(token) == cluster
    assert secret not in response.content.decode()  # the install secret is not the token
    assert client.get(url).status_code == 404  # single use


def test_the_install_link_expires(cluster, client):
    secret = services.issue_install_secret(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(install_secret_expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/clusters/{cluster.pk}/agent.yaml?secret={secret}").status_code == 404


def test_the_install_link_refuses_a_wrong_secret(cluster, client):
    services.issue_install_secret(cluster)
    assert client.get(f"/clusters/{cluster.pk}/agent.yaml?secret=guess").status_code == 404
    assert client.get(f"/clusters/{cluster.pk}/agent.yaml").status_code == 404
