"""Reading the agent's observed state: where a release's rollout stands (projects.status.assess)."""

from __future__ import annotations

from projects.status import assess


def deployment(rollout: str, revision: str | None, ready: int = 1) -> dict:
    return {"replicas": 1, "ready": ready, "updated": 1, "available": ready, "rollout": rollout, "sleeps": False,
            "revision": revision}


def pod(service: str, waiting: str | None = None) -> dict:
    return {"phase": "Pending" if waiting else "Running", "ready": not waiting, "restarts": 0, "waiting": waiting,
            "labels": {"paas.dev/service": service}}


def test_a_state_still_showing_the_previous_releases_deployment_does_not_make_the_release_live():
    # Reported by the agent just before it applied revision 2: the old Deployment is complete.
    state = {"deployments": {"web": deployment("complete", "1")}, "pods": {"web-a": pod("web")}, "events": []}
    verdict = assess(state, {"web": "nginx:does-not-exist"}, revision=2)
    assert verdict.status == "progressing" and verdict.pending == ("web",)


def test_the_releases_own_complete_deployment_is_live_and_its_pull_failure_fails_it():
    live = {"deployments": {"web": deployment("complete", "2")}, "pods": {"web-b": pod("web")}, "events": []}
    assert assess(live, {"web": "nginx:1.27"}, revision=2).status == "live"
    # A later revision (suspension re-applies with revisions of its own) still shows this release's rollout.
    assert assess(live, {"web": "nginx:1.27"}, revision=1).status == "live"
    failing = {"deployments": {"web": deployment("progressing", "2", ready=0)},
               "pods": {"web-b": pod("web", "ImagePullBackOff")},
               "events": [{"type": "Warning", "object": "Pod/web-b", "message": 'Failed to pull image "nginx:bad"'}]}
    verdict = assess(failing, {"web": "nginx:bad"}, revision=2)
    assert (verdict.status, verdict.code) == ("failed", "image_not_found")
    assert "image nginx:bad could not be pulled" in verdict.message


def test_an_agent_that_does_not_report_revisions_is_read_as_before():
    state = {"deployments": {"web": deployment("complete", None)}, "pods": {}, "events": []}
    assert assess(state, {"web": "nginx:1.27"}, revision=5).status == "live"
