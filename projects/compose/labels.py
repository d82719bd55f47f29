"""Label keys and well-known names shared by everything the converter emits.

They live in one module so the agent (prune by label), billing (usage by label) and log queries
select on exactly the same keys.
"""

from __future__ import annotations

from agent.protocol import ORGANIZATION_LABEL, PROJECT_LABEL, PROJECT_UID_LABEL, REVISION_LABEL

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "paas"
ORGANIZATION = ORGANIZATION_LABEL
PROJECT = PROJECT_LABEL
# The project's stable identity (Project.uid); the agent's ownership mark on the project's namespace.
PROJECT_UID = PROJECT_UID_LABEL
SERVICE = "paas.dev/service"
REVISION = REVISION_LABEL
# Marks tenant namespaces so shared services (CNPG, Garage) can allow ingress from them.
TENANT = "paas.dev/tenant"
# Every project namespace starts with this, and no Kubernetes or platform namespace does (they are
# `default`, `kube-*`, `paas-*` and the `*-system` namespaces of the components), so no organization or
# project name can make a tenant namespace one of theirs.
TENANT_NAMESPACE_PREFIX = "tenant-"
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
