"""Scale to zero: per-service sleep settings (docs/scale-to-zero.md)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("projects", "0002_project_uid_service_cluster")]

    operations = [
        migrations.AddField(
            model_name="service", name="sleep_enabled",
            field=models.BooleanField(default=True, help_text="Sleep when idle (public web services only)."),
        ),
        migrations.AddField(
            model_name="service", name="idle_timeout",
            field=models.PositiveIntegerField(default=900, help_text="Seconds without requests."),
        ),
        migrations.AddField(
            model_name="service", name="sleep_strategy",
            field=models.CharField(choices=[("dynamic", "Starting page (browsers)"),
                                            ("blocking", "Hold the request (API clients)")],
                                   default="dynamic", max_length=10),
        ),
        migrations.AddField(
            model_name="service", name="blocking_timeout",
            field=models.PositiveIntegerField(default=60, help_text="Seconds a held request waits for the service."),
        ),
    ]
