"""Run test agents as they run on a cluster: as the ServiceAccount the install manifest creates.

The install manifest (`clusters.manifest.objects`, what `agent.yaml` serves) is applied to kubesim with the
admin token, then a TokenRequest for the agent's ServiceAccount gives the token the agent runs with, so
every Kubernetes call the agent makes passes kubesim's RBAC and escalation checks as on a real cluster.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agent.k8s import Kube
from clusters import manifest
from kubesim.testing import KubeSim


def agent_kubeconfig(sim: KubeSim, path: Path) -> Path:
    """A kubeconfig for the agent's ServiceAccount (never the admin's), after installing the agent."""
    admin = sim.write_kubeconfig(path.with_name(path.name + ".admin"))
    try:
        return manifest.install_for_local_agent(admin, path)
    finally:
        admin.unlink(missing_ok=True)


_ADMINS: dict[tuple[str, str], Kube] = {}


def admin_kube(sim: KubeSim) -> Kube:
    """The cluster's administrator (K3s itself, an operator, a human with kubectl): for what tests do in place
    of parts of a cluster, never for what the agent does. One client per emulator, kept for the session."""
    key = (sim.url, sim.admin_token)
    if key not in _ADMINS:
        workdir = Path(tempfile.mkdtemp(prefix="kubesim-admin-"))
        _ADMINS[key] = Kube(str(sim.write_kubeconfig(workdir / "kubeconfig")))
    return _ADMINS[key]
