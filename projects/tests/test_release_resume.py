"""A release whose worker died, or whose queue message was lost, is queued again (projects.pipeline.resume_stalled);
the chaos tests (paas/tests/test_chaos.py) prove it with real processes, these the rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from projects import pipeline, releases
from projects.models import Release, ReleaseStatus

pytestmark = pytest.mark.django_db


def _aged(release: Release, seconds: float, **fields) -> Release:
    Release.objects.filter(pk=release.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds), **fields)
    release.refresh_from_db()
    return release


def test_a_deploying_release_whose_heartbeat_stopped_goes_back_to_pending_once(personas, project, settings):
    release = _aged(releases.deploy(project, personas.owner), settings.PROJECTS_RELEASE_LEASE + 1,
                    status=ReleaseStatus.DEPLOYING, attempts=1, steps={"apply": {"status": "running"}})
    assert pipeline.resume_stalled() == [release.pk]
    release.refresh_from_db()
    assert (release.status, release.steps) == ("pending", {})
    assert pipeline.resume_stalled() == []  # its heartbeat is fresh again: a second sweep leaves it alone


def test_a_release_with_a_live_heartbeat_is_left_to_its_worker(personas, project, settings):
    _aged(releases.deploy(project, personas.owner), settings.PROJECTS_RELEASE_LEASE - 5,
          status=ReleaseStatus.DEPLOYING, attempts=1)
    assert pipeline.resume_stalled() == []


def test_a_pending_release_whose_message_was_lost_is_queued_again_as_it_is(personas, project, settings):
    release = releases.deploy(project, personas.owner)
    Release.objects.filter(pk=release.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.PROJECTS_RELEASE_LEASE + 1))
    assert pipeline.resume_stalled() == [release.pk]
    release.refresh_from_db()
    assert release.status == "pending" and release.heartbeat_at is not None


def test_after_three_interrupted_attempts_the_release_fails_and_says_why(personas, project, settings):
    release = _aged(releases.deploy(project, personas.owner), settings.PROJECTS_RELEASE_LEASE + 1,
                    status=ReleaseStatus.DEPLOYING, attempts=pipeline.MAX_ATTEMPTS)
    assert pipeline.resume_stalled() == []
    release.refresh_from_db()
    assert (release.status, release.error_code) == ("failed", "interrupted")
    assert release.error.startswith("The deploy was interrupted 3 times")
    assert releases.deploy(project, personas.owner).status == "pending"  # and a new deploy may start
