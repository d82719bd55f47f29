"""Waiting for a namespace's next observed state (clusters.observed) over the real Redis."""

from __future__ import annotations

import threading

import pytest

from clusters import observed, services


def test_a_poke_wakes_the_watch_of_its_namespace_and_a_burst_counts_once():
    with observed.Watch(7, "tenant-acme-shop") as watch:
        observed.poke(7, "tenant-acme-other")
        observed.poke(8, "tenant-acme-shop")
        assert not watch.wait(0.3)  # other namespaces, other clusters: not ours
        observed.poke(7, "tenant-acme-shop")
        observed.poke(7, "tenant-acme-shop")
        assert watch.wait(10)
        assert not watch.wait(0.3)  # the second poke of the burst was taken with the first


def test_a_waiter_blocked_in_wait_is_woken_by_the_poke_not_by_its_timeout():
    with observed.Watch(7, "tenant-acme-shop") as watch:
        woken = []
        waiter = threading.Thread(target=lambda: woken.append(watch.wait(30)))
        waiter.start()
        observed.poke(7, "tenant-acme-shop")
        waiter.join(10)
        assert woken == [True]


@pytest.mark.django_db(transaction=True)
def test_storing_an_observed_state_wakes_whoever_follows_the_namespace(cluster):
    with observed.Watch(cluster.pk, "tenant-acme-shop") as watch:
        services.record_observed(cluster.pk, "tenant-acme-shop", {"deployments": {}, "pods": {}, "events": []})
        assert watch.wait(10)
        services.record_observed(cluster.pk, "tenant-acme-shop", None)  # the namespace is gone: also news
        assert watch.wait(10)
