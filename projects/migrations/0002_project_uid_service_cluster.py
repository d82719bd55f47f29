"""Project.uid (the namespace ownership mark) and one public host per cluster.

Existing projects keep their stored namespace (docs/projects.md, "Names"); each gets a uid, and the
desired state already recorded for it learns the uid too, so the agent's next apply (or the resync
after a reconnect) marks, or adopts, the project's namespace.
"""

import uuid

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q

PROJECT_UID = "paas.dev/project-uid"  # agent.protocol.PROJECT_UID_LABEL, frozen here as migrations are


def give_uids(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    DesiredProject = apps.get_model("clusters", "DesiredProject")
    Service = apps.get_model("projects", "Service")
    for project in Project.objects.all():
        project.uid = uuid.uuid4()
        project.save(update_fields=["uid"])
        for desired in DesiredProject.objects.filter(cluster_id=project.cluster_id, namespace=project.namespace):
            desired.labels = {**desired.labels, PROJECT_UID: str(project.uid)}
            desired.save(update_fields=["labels"])
        Service.objects.filter(project=project).update(cluster_id=project.cluster_id)
    # Hosts rendered by the old scheme may already collide across tenants; the first keeps it, the
    # others show no URL until their next deploy renders a host of the new scheme.
    seen = set()
    for service in Service.objects.exclude(public_host="").order_by("pk"):
        if (service.cluster_id, service.public_host) in seen:
            Service.objects.filter(pk=service.pk).update(public_host="")
        seen.add((service.cluster_id, service.public_host))


def drop_uids(apps, schema_editor):
    DesiredProject = apps.get_model("clusters", "DesiredProject")
    for desired in DesiredProject.objects.all():
        if PROJECT_UID in desired.labels:
            desired.labels = {k: v for k, v in desired.labels.items() if k != PROJECT_UID}
            desired.save(update_fields=["labels"])


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0002_bootstrap_components"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="uid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="service",
            name="cluster",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                    to="clusters.cluster"),
        ),
        migrations.RunPython(give_uids, drop_uids),
        migrations.AlterField(
            model_name="project",
            name="uid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name="service",
            name="cluster",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                    to="clusters.cluster"),
        ),
        migrations.AddConstraint(
            model_name="service",
            constraint=models.UniqueConstraint(condition=~Q(public_host=""), fields=("cluster", "public_host"),
                                               name="one_public_host_per_cluster"),
        ),
    ]
