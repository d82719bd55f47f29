"""The K3s Helm controller (helm.cattle.io/v1 HelmChart), simulated.

A HelmChart gets a `helm-install-<name>` Job in its own namespace (created suspended, then resumed),
with the `helmcharts.helm.cattle.io/chart` label and a `helm-<name>` ServiceAccount. When the Job
completes, the "release" appears: the target namespace (if `createNamespace`), one representative
Deployment named after the chart release, and a `sh.helm.release.v1.<name>.v<N>` Secret.
A failure marker (`fail-install`) in the chart name/version/values, or `KubeSim.fail_helm_chart`, makes
the Job's pod exit 1; with the sim's default backoff limit of 0 the Job then fails at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from kubesim.controllers.base import Controller, Key, owner_ref, set_condition
from kubesim.controllers.workloads import EXIT_CODE_ANNOTATION, LOG_LINES_ANNOTATION
from kubesim.errors import ApiError
from kubesim.store import Event, clone

CHART_LABEL = "helmcharts.helm.cattle.io/chart"
HASH_ANNOTATION = "helmcharts.helm.cattle.io/configHash"
UNMANAGED_ANNOTATION = "helmcharts.helm.cattle.io/unmanaged"
FINALIZER = "wrangler.cattle.io/on-helm-chart-remove"
FAIL_MARKER = "fail-install"


class HelmController(Controller):
    name = "helm"
    manager = "helm-controller"
    primary = ("helm.cattle.io", "helmcharts")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forced_failures: set[Key] = set()

    def keys_for(self, event: Event) -> Iterable[Key]:
        # A HelmChartConfig customises the HelmChart of the same name and namespace.
        if event.key in (("helm.cattle.io", "helmcharts"), ("helm.cattle.io", "helmchartconfigs")):
            return [(event.obj["metadata"]["namespace"], event.obj["metadata"]["name"])]
        if event.key == ("batch", "jobs"):
            chart = (event.obj["metadata"].get("labels") or {}).get(CHART_LABEL)
            return [(event.obj["metadata"]["namespace"], chart)] if chart else []
        return ()

    def reconcile(self, namespace: str, name: str) -> None:
        try:
            chart_rt = self.rt("helm.cattle.io/v1", "HelmChart")
        except ApiError:
            return  # the HelmChart CRD is not installed
        chart = self.fetch(chart_rt, namespace, name)
        if chart is None:
            return
        if (chart["metadata"].get("annotations") or {}).get(UNMANAGED_ANNOTATION):
            return
        if chart["metadata"].get("deletionTimestamp"):
            self._uninstall(chart)
            return
        if FINALIZER not in (chart["metadata"].get("finalizers") or []):
            chart["metadata"].setdefault("finalizers", []).append(FINALIZER)
            chart = self.cluster.write(chart_rt, chart, self.manager)
        spec = chart.get("spec") or {}
        config = self._config(namespace, name)
        digest = hashlib.sha256(json.dumps([spec, config], sort_keys=True).encode()).hexdigest()
        config_hash = "SHA256=" + digest.upper()
        job_rt = self.rt("batch/v1", "Job")
        job_name = f"helm-install-{name}"
        job = self.fetch(job_rt, namespace, job_name)
        if job is not None and (job["metadata"].get("annotations") or {}).get(HASH_ANNOTATION) != config_hash:
            self.cluster.delete(job_rt, namespace, job_name, propagation="Background")
            job = None
        if job is None:
            self._create_job(chart, job_name, config_hash)
            status = chart.get("status") or {}
            status["jobName"] = job_name
            status["conditions"] = set_condition(
                [c for c in status.get("conditions") or [] if c["type"] != "Failed"],
                "JobCreated", "True", "Job created", f"Applying HelmChart using Job {namespace}/{job_name}")
            self.write_status(chart_rt, self.fetch(chart_rt, namespace, name) or chart, status)
            return
        conds = {c["type"]: c["status"] for c in (job.get("status") or {}).get("conditions") or []}
        if conds.get("Complete") == "True":
            self._install(chart, config_hash)
        elif conds.get("Failed") == "True":
            status = chart.get("status") or {}
            status["conditions"] = set_condition(status.get("conditions") or [], "Failed", "True",
                                                 "Job failed", f"Helm Job {job_name} has failed")
            self.write_status(chart_rt, chart, status)

    def _fails(self, chart: dict[str, Any]) -> bool:
        key = (chart["metadata"]["namespace"], chart["metadata"]["name"])
        spec = chart.get("spec") or {}
        config = self._config(*key)
        haystack = " ".join([chart["metadata"]["name"], str(spec.get("chart", "")), str(spec.get("version", "")),
                             str(spec.get("valuesContent", "")), json.dumps(spec.get("values") or {}),
                             str(config.get("valuesContent", "")), json.dumps(config.get("values") or {})])
        if FAIL_MARKER in haystack or key in self.forced_failures:
            return True
        target = spec.get("targetNamespace") or "default"
        # helm install without --create-namespace fails when the namespace is missing.
        return not spec.get("createNamespace") and self.cluster.find(self.rt("v1", "Namespace"), "", target) is None

    def _create_job(self, chart: dict[str, Any], job_name: str, config_hash: str) -> None:
        ns, name = chart["metadata"]["namespace"], chart["metadata"]["name"]
        spec = chart.get("spec") or {}
        sa_rt = self.rt("v1", "ServiceAccount")
        if self.cluster.find(sa_rt, ns, f"helm-{name}") is None:
            self.create(sa_rt, ns, {"metadata": {"name": f"helm-{name}", "ownerReferences": [owner_ref(chart)]}})
        fails = self._fails(chart)
        target = spec.get("targetNamespace") or "default"
        lines = [f"+ helm_v3 install --namespace {target} {name} {spec.get('chart', '')}"
                 + (f" --version {spec['version']}" if spec.get("version") else "")]
        if fails:
            lines += [f"Error: INSTALLATION FAILED: chart {spec.get('chart', name)} could not be installed "
                      f"(kubesim failure marker)"]
        else:
            lines += [f"NAME: {name}", "LAST DEPLOYED: now", f"NAMESPACE: {target}", "STATUS: deployed",
                      "REVISION: 1"]
        labels = {CHART_LABEL: name}
        job_rt = self.rt("batch/v1", "Job")
        job = self.create(job_rt, ns, {
            "metadata": {"name": job_name, "labels": labels, "annotations": {HASH_ANNOTATION: config_hash},
                         "ownerReferences": [owner_ref(chart)]},
            "spec": {"backoffLimit": int(spec.get("backOffLimit", 0)), "suspend": True, "template": {
                "metadata": {"labels": labels, "annotations": {
                    EXIT_CODE_ANNOTATION: "1" if fails else "0", LOG_LINES_ANNOTATION: json.dumps(lines)}},
                "spec": {"serviceAccountName": f"helm-{name}", "restartPolicy": "OnFailure",
                         "containers": [{"name": "helm", "image": spec.get("jobImage") or "rancher/klipper-helm:v0.9",
                                         "args": ["install"],
                                         "env": [{"name": "NAME", "value": name},
                                                 {"name": "VERSION", "value": str(spec.get("version", ""))},
                                                 {"name": "REPO", "value": str(spec.get("repo", ""))},
                                                 {"name": "TARGET_NAMESPACE", "value": target},
                                                 {"name": "CHART", "value": str(spec.get("chart", ""))}]}]}}}})
        # The controller creates its Jobs suspended and resumes them once their config is in place.
        job["spec"]["suspend"] = False
        self.cluster.write(job_rt, job, self.manager)

    def _config(self, namespace: str, name: str) -> dict[str, Any]:
        """The spec of the HelmChartConfig with the chart's name and namespace, if any."""
        try:
            rt = self.rt("helm.cattle.io/v1", "HelmChartConfig")
        except ApiError:
            return {}
        config = self.cluster.find(rt, namespace, name)
        return dict((config or {}).get("spec") or {})

    def _values(self, *specs: dict[str, Any]) -> dict[str, Any]:
        """Chart values, later specs (the HelmChartConfig) overriding earlier ones key by key."""
        values: dict[str, Any] = {}
        for spec in specs:
            try:
                content = yaml.safe_load(spec.get("valuesContent") or "") or {}
            except yaml.YAMLError:
                content = {}
            values.update(content if isinstance(content, dict) else {})
            values.update(spec.get("values") or {})
        return values

    def _install(self, chart: dict[str, Any], config_hash: str) -> None:
        name = chart["metadata"]["name"]
        spec = chart.get("spec") or {}
        target = spec.get("targetNamespace") or "default"
        ns_rt, secret_rt, d_rt = self.rt("v1", "Namespace"), self.rt("v1", "Secret"), self.rt("apps/v1", "Deployment")
        if self.cluster.find(ns_rt, "", target) is None:
            self.create(ns_rt, "", {"metadata": {"name": target}})
        releases = self._releases(target, name)
        if any((s["metadata"].get("annotations") or {}).get(HASH_ANNOTATION) == config_hash for s in releases):
            return
        values = self._values(spec, self._config(chart["metadata"]["namespace"], name))
        # `traefik`, from `traefik`, `repo/traefik` or `https://.../traefik-37.1.1+up37.1.0.tgz`.
        chart_name = re.sub(r"-v?\d+\.\d+.*$", "", str(spec.get("chart", name)).rstrip("/").rsplit("/", 1)[-1]
                            .removesuffix(".tgz"))
        labels = {"app.kubernetes.io/name": chart_name, "app.kubernetes.io/instance": name}
        release_meta = {"labels": {**labels, "app.kubernetes.io/managed-by": "Helm"},
                        "annotations": {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": target}}
        replicas = values.get("replicaCount", 1)
        image = f"kubesim/{chart_name}:{spec.get('version') or 'latest'}"
        deployment = {"metadata": {"name": name, **release_meta},
                      "spec": {"replicas": replicas if isinstance(replicas, int) else 1,
                               "selector": {"matchLabels": labels},
                               "template": {"metadata": {"labels": labels},
                                            "spec": {"containers": [{"name": chart_name, "image": image}]}}}}
        current = self.fetch(d_rt, target, name)
        if current is None:
            self.create(d_rt, target, deployment)
        else:
            current["spec"] = {**current["spec"], **deployment["spec"]}
            self.cluster.write(d_rt, current, "helm")
        version = len(releases) + 1
        for old in releases:
            updated = clone(old)
            updated["metadata"]["labels"]["status"] = "superseded"
            self.cluster.write(secret_rt, updated, "helm")
        self.create(secret_rt, target, {
            "metadata": {"name": f"sh.helm.release.v1.{name}.v{version}",
                         "labels": {"owner": "helm", "name": name, "status": "deployed", "version": str(version)},
                         "annotations": {HASH_ANNOTATION: config_hash}},
            "type": "helm.sh/release.v1",
            "data": {"release": base64.b64encode(json.dumps({"name": name, "version": version,
                                                             "chart": chart_name}).encode()).decode()}})

    def _releases(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Helm's release Secrets (`owner=helm,name=<release>`) in a namespace."""
        return [s for s in self.cluster.list(self.rt("v1", "Secret"), namespace)
                if (s["metadata"].get("labels") or {}).get("owner") == "helm"
                and s["metadata"]["labels"].get("name") == name]

    def _uninstall(self, chart: dict[str, Any]) -> None:
        ns, name = chart["metadata"]["namespace"], chart["metadata"]["name"]
        target = (chart.get("spec") or {}).get("targetNamespace") or "default"
        d_rt, secret_rt = self.rt("apps/v1", "Deployment"), self.rt("v1", "Secret")
        if self.cluster.find(d_rt, target, name) is not None:
            self.cluster.delete(d_rt, target, name)
        for s in self._releases(target, name):
            self.cluster.delete(secret_rt, target, s["metadata"]["name"])
        chart["metadata"]["finalizers"] = [f for f in chart["metadata"].get("finalizers", []) if f != FINALIZER]
        self.cluster.write(self.rt("helm.cattle.io/v1", "HelmChart"), chart, self.manager)
        self.forced_failures.discard((ns, name))
