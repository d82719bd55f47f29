"""watch=true streams: event types, resourceVersion resume, timeouts, bookmarks, 410 Gone."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubesim.testing import KubeSim
from kubesim.tests.helpers import configmap


def _first(n: int, fn: object, *args: object, **kw: object) -> list[tuple[str, str]]:
    """The first n events of a watch, then stop (no need to wait for the server's timeout)."""
    w = watch.Watch()
    out = []
    for e in w.stream(fn, *args, timeout_seconds=5, **kw):
        out.append((e["type"], e["object"].metadata.name))
        if len(out) == n:
            w.stop()
    return out


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def test_it_streams_added_modified_deleted(core: client.CoreV1Api) -> None:
    """A watch from a resourceVersion sees ADDED, MODIFIED and DELETED after it, in order."""
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("a", "default")
    events = _first(3, core.list_namespaced_config_map, "default", resource_version=rv)
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_it_sends_existing_objects_as_added_without_resource_version(core: client.CoreV1Api) -> None:
    """A watch without resourceVersion starts with synthetic ADDED events for the current state."""
    core.create_namespaced_config_map("default", configmap("old"))
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", timeout_seconds=1)]
    assert ("ADDED", "old") in events


def test_it_delivers_live_events_and_ends_at_timeout(core: client.CoreV1Api) -> None:
    """Events written during a watch arrive live; the stream ends after timeoutSeconds."""
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    timer = threading.Timer(0.2, lambda: core.create_namespaced_config_map("default", configmap("live")))
    timer.start()
    start = time.monotonic()
    events = [e["object"].metadata.name for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)]
    assert events == ["live"] and 0.9 < time.monotonic() - start < 3


def test_it_filters_watches_by_label_selector(core: client.CoreV1Api) -> None:
    """A selector watch sees only matching objects; one that stops matching is reported DELETED."""
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a", {"app": "x"}))
    core.create_namespaced_config_map("default", configmap("b", {"app": "y"}))
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "z"}}})
    events = _first(2, core.list_namespaced_config_map, "default", resource_version=rv, label_selector="app=x")
    assert events == [("ADDED", "a"), ("DELETED", "a")]


def test_it_sends_bookmarks_when_allowed(kube_api: client.ApiClient) -> None:
    """allowWatchBookmarks=true gets BOOKMARK events carrying only a resourceVersion."""
    core = client.CoreV1Api(kube_api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv,
                          allow_watch_bookmarks=True, timeout_seconds=3, deserialize=False):
        assert event["type"] == "BOOKMARK" and set(event["object"]["metadata"]) == {"resourceVersion"}
        w.stop()


def test_it_answers_gone_for_a_compacted_resource_version(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """A watch from a resourceVersion older than the compacted history gets 410 Gone (Expired)."""
    rv = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    core.create_namespaced_config_map("default", configmap("b"))
    kubesim.compact()
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv,
                                  timeout_seconds=1))
    assert exc.value.status == 410 and "too old resource version" in exc.value.reason


def test_it_watches_across_namespaces_and_cluster_scoped_kinds(core: client.CoreV1Api) -> None:
    """/api/v1/configmaps?watch and /api/v1/namespaces?watch stream every namespace / cluster-scoped objects."""
    rv = core.list_namespace().metadata.resource_version
    core.create_namespace({"metadata": {"name": "w1"}})
    core.create_namespaced_config_map("w1", configmap("a"))
    assert _first(1, core.list_namespace, resource_version=rv) == [("ADDED", "w1")]
    assert _first(1, core.list_config_map_for_all_namespaces, resource_version=rv,
                  field_selector="metadata.name=a") == [("ADDED", "a")]


def test_it_answers_gone_for_an_exact_list_of_a_compacted_version(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """list with resourceVersionMatch=Exact and a compacted resourceVersion is 410 Expired."""
    rv = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    core.create_namespaced_config_map("default", configmap("b"))
    kubesim.compact()
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map("default", resource_version=rv, resource_version_match="Exact")
    assert exc.value.status == 410
