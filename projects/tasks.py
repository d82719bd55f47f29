"""Celery tasks of the projects app: thin wrappers taking primary keys, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from projects import deletion, domains, pipeline


@shared_task(ignore_result=True)
def deploy_release(release_pk: int) -> str:
    return pipeline.run_release(release_pk)


@shared_task(name="projects.resume_stalled_releases", ignore_result=True)
def resume_stalled_releases() -> int:
    """Beat: queue again the releases whose worker died or whose queue message was lost."""
    resumed = pipeline.resume_stalled()
    for pk in resumed:
        deploy_release.delay(pk)
    return len(resumed)


@shared_task(ignore_result=True)
def purge_project(project_pk: int) -> bool:
    return deletion.purge_project(project_pk)


@shared_task(ignore_result=True)
def purge_due_projects() -> int:
    return deletion.purge_due_projects()


@shared_task(ignore_result=True)
def reverify_domains() -> int:
    """Beat, hourly: re-check every verified custom domain's DNS record (projects/domains.py)."""
    return domains.reverify_all()


@shared_task(name="projects.record_usage", ignore_result=True)
def record_usage() -> int:
    """Beat, once per billing window: measure running services for billing (see projects/usage.py)."""
    from projects.usage import record_last_window

    return record_last_window()
