"""What a K3s runs by itself, stood in for kubesim, so the end-to-end steps can run without a cluster.

- the agent's pod: when the install manifest is applied, `python -m agent` starts with the Deployment's
  environment, the token from its Secret (as the kubelet would mount it) and the ServiceAccount's token
  (TokenRequest; the kubeconfig's own credentials only when the emulator has no TokenRequest);
- the CloudNativePG operator's visible part: our Cluster marked ready, its superuser Secret published; the
  shared PostgreSQL it would run is the local one (`postgres_host`, superuser `postgres` with trust auth);
- Garage: the admin API double, which takes its admin token from the Secret the bootstrap creates, as the
  chart does.
Pods never run in kubesim, so nothing answers HTTP at a service's URL.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from agent import charts
from agent.bootstrap import PG_CLUSTER
from agent.data import services as agent_data
from agent.k8s import Kube, KubeError
from agent.tests.garage_double import GarageDouble
from e2e.run import kube_configuration, service_account_token, token_kubeconfig
from kubesim.testing import KubeSim
from paas.testing.cnpg import play_cnpg_backups

BASE_DIR = Path(__file__).resolve().parent.parent
UNCHECKED_PASSWORD = "trust-auth-does-not-check-it"  # noqa: S105


def play_cnpg_operator(kube: Kube) -> None:
    """Once the bootstrap created our postgresql.cnpg.io Cluster: publish its superuser Secret, report it ready;
    archive WAL and take the first base backup once it has its backup section."""
    pg = kube.get(PG_CLUSTER, charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE)
    if pg is None:
        return
    play_cnpg_backups(kube)
    if (pg.get("status") or {}).get("readyInstances"):
        return
    superuser = agent_data.secret_object(charts.DATA_NAMESPACE, charts.POSTGRES_SUPERUSER_SECRET,
                                         {"username": "postgres", "password": UNCHECKED_PASSWORD},
                                         {"cnpg.io/userType": "superuser"})
    kube.apply(agent_data.SECRET, superuser, charts.DATA_NAMESPACE)
    ready = {"instances": pg["spec"]["instances"], "readyInstances": pg["spec"]["instances"],
             "phase": "Cluster in healthy state"}
    kube.request("PATCH", PG_CLUSTER.item(charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) + "/status",
                 body={"status": ready}, content_type="application/merge-patch+json")


class SimulatedCluster:
    def __init__(self, kubeconfig: str = "", postgres_host: str = "127.0.0.1") -> None:
        self.work = Path(tempfile.mkdtemp(prefix="paas-e2e-"))
        self.kubeconfig = kubeconfig
        self.postgres_host = postgres_host
        self.sim: KubeSim | None = None
        self.garage: GarageDouble | None = None
        self.agent: subprocess.Popen | None = None
        self.agent_log = self.work / "agent.log"
        self.agent_identity = ""
        self._stop = threading.Event()
        self._operators: threading.Thread | None = None

    def start(self) -> str:
        """Start what is missing; returns the kubeconfig of the (admin) cluster."""
        if not self.kubeconfig:
            self.sim = KubeSim(controller_delay=0.2, k3s_addons=True).start()
            self.kubeconfig = str(self.sim.write_kubeconfig(self.work / "kubeconfig"))
        self.garage = GarageDouble().start()
        self._operators = threading.Thread(target=self._play_operators, name="e2e-operators", daemon=True)
        self._operators.start()
        return self.kubeconfig

    def stop(self, keep_log: bool = False) -> None:
        """Stop everything; the work directory goes too unless `keep_log` (its agent.log then stays)."""
        self._stop.set()
        if self.agent and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(15)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        if self._operators:
            self._operators.join(5)
        if self.garage:
            self.garage.stop()
        if self.sim:
            self.sim.stop()
        for path in self.work.iterdir():
            if not (keep_log and path == self.agent_log):
                path.unlink()
        if not keep_log:
            self.work.rmdir()

    def _play_operators(self) -> None:
        kube = Kube(self.kubeconfig)
        try:
            while not self._stop.wait(0.2):
                try:
                    play_cnpg_operator(kube)
                    secret = agent_data.read_secret(kube, charts.DATA_NAMESPACE, charts.GARAGE_ADMIN_SECRET)
                except (KubeError, OSError):
                    continue  # as a controller would: try again on the next pass
                if secret and secret.get("token") and self.garage:
                    self.garage.token = secret["token"]
        finally:
            kube.close()

    def run_agent_pod(self, docs: list[dict[str, Any]]) -> None:
        """The kubelet's part for the agent's Deployment in the applied install manifest."""
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        namespace = deployment["metadata"]["namespace"]
        container = pod["containers"][0]
        cfg = kube_configuration(self.kubeconfig)
        with kubernetes.client.ApiClient(cfg) as api:
            volume = next(v for v in pod["volumes"] if v.get("secret"))
            secret = kubernetes.client.CoreV1Api(api).read_namespaced_secret(volume["secret"]["secretName"], namespace)
            token = service_account_token(api, namespace, pod["serviceAccountName"])
        agent_token = self.work / "agent-token"
        agent_token.write_bytes(base64.b64decode(secret.data["token"]))
        agent_kubeconfig = self.kubeconfig
        self.agent_identity = f"ServiceAccount {namespace}/{pod['serviceAccountName']}"
        if token:
            agent_kubeconfig = str(self.work / "agent-kubeconfig")
            Path(agent_kubeconfig).write_text(yaml.safe_dump(token_kubeconfig(cfg, token)))
        else:
            self.agent_identity = "the kubeconfig's user (the emulator has no TokenRequest)"
        env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
               "AGENT_TOKEN_FILE": str(agent_token), "AGENT_KUBECONFIG": agent_kubeconfig,
               "AGENT_HEALTH_PORT": "0", "AGENT_BOOTSTRAP_INTERVAL": "0.5", "AGENT_BACKOFF_CAP": "2",
               # The in-cluster addresses of the shared services, as this machine reaches the stand-ins.
               "AGENT_POSTGRES_HOST": self.postgres_host, "AGENT_GARAGE_ADMIN_URL": self.garage.url,
               "PYTHONUNBUFFERED": "1"}
        with self.agent_log.open("ab") as log:
            self.agent = subprocess.Popen([sys.executable, "-m", "agent"], cwd=BASE_DIR, env=env,  # noqa: S603
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
