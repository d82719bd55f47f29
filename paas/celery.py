"""The Celery application; configuration lives in settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")

app = Celery("paas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="paas.ping")
def ping(value: str) -> str:
    """Round-trip check used by health checks and the integration tests."""
    return f"pong:{value}"
