"""Label keys and well-known names shared by everything the converter emits.

They live in one module so the agent (prune by label), billing (usage by label) and log queries
select on exactly the same keys.
"""

from __future__ import annotations

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "paas"
ORGANIZATION = "paas.dev/organization"
PROJECT = "paas.dev/project"
SERVICE = "paas.dev/service"
REVISION = "paas.dev/revision"
# Marks tenant namespaces so shared services (CNPG, Garage) can allow ingress from them.
TENANT = "paas.dev/tenant"
# Explains the kind of a platform object (policy, volume, config...) for humans and queries.
COMPONENT = "app.kubernetes.io/component"

# Keys of the Secret named by RenderContext.database_secret; the data issue writes them.
DATABASE_SECRET_KEYS = ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD")
# Keys of the Secret named by RenderContext.bucket_secret.
BUCKET_SECRET_KEYS = ("S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")

# Pod Security Admission: baseline is enforced (many images run as root), restricted is reported.
POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/audit-version": "latest",
}
