"""A default plan, and on PostgreSQL a trigger that keeps the ledger append-only even for raw SQL.

The trigger refuses UPDATE and DELETE of credit entries and suspension records, except the one
update Django makes on its own: setting created_by to NULL when that user is deleted.
TRUNCATE (test database flushes) is not affected.
"""

from django.db import migrations

TABLES = ["billing_creditentry", "billing_suspensionrecord"]

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION billing_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.created_by_id IS NULL
       AND (to_jsonb(NEW) - 'created_by_id') = (to_jsonb(OLD) - 'created_by_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: record a correcting entry instead', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def create_default_plan(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    if not Plan.objects.filter(is_default=True).exists():
        Plan.objects.get_or_create(slug="default", defaults={"name": "Default", "is_default": True})


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(CREATE_FUNCTION)  # no params: the '%' in RAISE is not a placeholder
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION billing_append_only()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS billing_append_only()")


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        migrations.RunPython(create_default_plan, migrations.RunPython.noop),
        migrations.RunPython(add_triggers, drop_triggers),
    ]
