"""Label keys and well-known names shared by everything the converter emits.

They live in one module so the agent (prune by label), billing (usage by label) and log queries
select on exactly the same keys. Those the agent reads too are agent.protocol's (the wire contract);
the rest only the control plane uses.
"""

from __future__ import annotations

from agent import protocol

MANAGED_BY = protocol.MANAGED_BY_LABEL
MANAGED_BY_VALUE = protocol.MANAGED_BY_VALUE
ORGANIZATION = protocol.ORGANIZATION_LABEL
PROJECT = protocol.PROJECT_LABEL
# The project's stable identity (Project.uid); the agent's ownership mark on the project's namespace.
PROJECT_UID = protocol.PROJECT_UID_LABEL
SERVICE = protocol.SERVICE_LABEL
REVISION = protocol.REVISION_LABEL
# Marks tenant namespaces so shared services (CNPG, Garage) can allow ingress from them.
TENANT = "paas.dev/tenant"
TENANT_NAMESPACE_PREFIX = protocol.TENANT_NAMESPACE_PREFIX
# Explains the kind of a platform object (policy, volume, config...) for humans and queries.
COMPONENT = "app.kubernetes.io/component"

# Keys of the Secrets named by RenderContext.database_secret / bucket_secret; the agent's data services write them.
DATABASE_SECRET_KEYS = protocol.DATABASE_SECRET_KEYS
BUCKET_SECRET_KEYS = protocol.BUCKET_SECRET_KEYS

# Pod Security Admission: baseline is enforced (many images run as root), restricted is reported.
POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/audit-version": "latest",
}
