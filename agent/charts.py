"""Every version the platform installs on a cluster, and where each chart comes from: ONE place.

Bump a version here (and in docs/infrastructure.md); the next bootstrap sees the HelmChart drift
from what it wants and updates it, and the control plane shows the new versions.

Sources (checked 2026-11):
- CloudNativePG: chart `cloudnative-pg` 0.29.0 (operator 1.30.0) from https://cloudnative-pg.github.io/charts
  (github.com/cloudnative-pg/charts, tag cloudnative-pg-v0.29.0).
- Sablier: chart `sablier` 1.7.1 (Sablier 1.16.1) from https://sablierapp.github.io/helm-charts
  (github.com/sablierapp/helm-charts, charts/sablier). Its Service is `sablier-<release>` on port 10000.
- Sablier's Traefik plugin: github.com/sablierapp/sablier-traefik-plugin v1.3.1 (the plugin left the main
  Sablier repository in Nov 2025). Traefik downloads it from the plugin catalog when it starts.
- cert-manager: chart `cert-manager` v1.21.1 (cert-manager v1.21.1) from https://charts.jetstack.io
  (github.com/cert-manager/cert-manager, deploy/charts/cert-manager); `crds.enabled: true` installs its CRDs
  (the same ones kubesim/crds/cert-manager.io holds).
- Garage 2.0.0 (image dxflrs/garage:v2.0.0, admin API v2). Garage publishes no Helm repository and no
  chart archive; its own chart only lives in its source tree (script/helm/garage). The platform ships a
  small chart of its own in agent/chart_files/garage (single node, admin port in a Service, tokens from
  Secrets) and hands it to the Helm controller inline as `chartContent` (a base64 .tgz built here,
  byte for byte reproducible so an unchanged chart never looks like drift).
"""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HELM_NAMESPACE = "kube-system"  # where K3s's Helm controller expects HelmCharts (and runs their Jobs)
DATA_NAMESPACE = "paas-data"  # shared PostgreSQL and Garage (projects.compose.context agrees)


@dataclass(frozen=True)
class ChartPin:
    release: str  # HelmChart metadata.name == Helm release name
    chart: str
    version: str
    app_version: str
    target_namespace: str
    repo: str = ""  # empty: the chart travels inline as chartContent


CNPG = ChartPin("cnpg", "cloudnative-pg", "0.29.0", "1.30.0", "cnpg-system",
                repo="https://cloudnative-pg.github.io/charts")
SABLIER = ChartPin("sablier", "sablier", "1.7.1", "1.16.1", "sablier-system",
                   repo="https://sablierapp.github.io/helm-charts")
GARAGE = ChartPin("garage", "garage", "0.1.0", "v2.0.0", DATA_NAMESPACE)
CERT_MANAGER = ChartPin("cert-manager", "cert-manager", "v1.21.1", "v1.21.1", "cert-manager",
                        repo="https://charts.jetstack.io")
ACME_ACCOUNT_SECRET = "paas-acme-account-key"  # noqa: S105 (a Secret's name, in cert-manager's namespace)

SABLIER_PLUGIN_MODULE = "github.com/sablierapp/sablier-traefik-plugin"
SABLIER_PLUGIN_VERSION = "v1.3.1"
GARAGE_IMAGE = f"dxflrs/garage:{GARAGE.app_version}"

# In-cluster addresses (no port-forwarding: the agent runs in the cluster).
SABLIER_URL = f"http://sablier-{SABLIER.release}.{SABLIER.target_namespace}.svc.cluster.local:10000"
POSTGRES_CLUSTER = "paas-postgres"
POSTGRES_HOST = f"{POSTGRES_CLUSTER}-rw.{DATA_NAMESPACE}.svc.cluster.local"
POSTGRES_PORT = 5432
POSTGRES_SUPERUSER_SECRET = f"{POSTGRES_CLUSTER}-superuser"
GARAGE_S3_URL = f"http://{GARAGE.release}.{DATA_NAMESPACE}.svc.cluster.local:3900"
GARAGE_ADMIN_URL = f"http://{GARAGE.release}-admin.{DATA_NAMESPACE}.svc.cluster.local:3903"
GARAGE_REGION = "garage"
GARAGE_ADMIN_SECRET = "garage-admin-token"  # noqa: S105 (a Secret's name)
GARAGE_RPC_SECRET = "garage-rpc-secret"  # noqa: S105

# Continuous backup of the shared PostgreSQL (CNPG's in-tree Barman Cloud object store, docs/infrastructure.md).
BACKUP_BUCKET = "paas-postgres-backups"  # not tenant-*: no project bucket can take this alias
BACKUP_DESTINATION = f"s3://{BACKUP_BUCKET}/"  # barman adds <serverName> (the Cluster's name) below it
BACKUP_S3_SECRET = "paas-backup-s3"  # noqa: S105 (a Secret's name)
SCHEDULED_BACKUP = f"{POSTGRES_CLUSTER}-daily"

CHART_FILES = Path(__file__).with_name("chart_files")


def versions() -> dict[str, dict[str, str]]:
    """What the control plane shows: component -> chart and application versions."""
    return {
        "cnpg": {"chart": f"{CNPG.chart} {CNPG.version}", "app": CNPG.app_version},
        "sablier": {"chart": f"{SABLIER.chart} {SABLIER.version}", "app": SABLIER.app_version,
                    "traefik_plugin": SABLIER_PLUGIN_VERSION},
        "garage": {"chart": f"{GARAGE.chart} {GARAGE.version} (inline)", "app": GARAGE.app_version},
        "traefik": {"chart": "packaged by K3s (HelmChartConfig)", "app": ""},
        "postgres": {"chart": "CloudNativePG Cluster", "app": f"operator {CNPG.app_version} default image"},
        "backups": {"chart": "CloudNativePG ScheduledBackup (in-tree Barman Cloud)",
                    "app": f"operator {CNPG.app_version}"},
        "tls": {"chart": f"{CERT_MANAGER.chart} {CERT_MANAGER.version}", "app": CERT_MANAGER.app_version},
    }


@cache
def garage_chart_content() -> str:
    """The Garage chart as a base64 .tgz. Fixed mtimes/owners and sorted entries: same bytes every time."""
    root = CHART_FILES / "garage"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"garage/{path.relative_to(root).as_posix()}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    compressed = gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)
    return base64.b64encode(compressed).decode()


def chart_file(name: str) -> str:
    return (CHART_FILES / "garage" / name).read_text()


def garage_chart_version() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(chart_file("Chart.yaml"))
