"""Simulated controllers: rollouts, scale, failure markers, Jobs, the K3s Helm controller, Services, Ingress."""

from __future__ import annotations

import pytest
from kubernetes import client

from kubesim.testing import KubeSim
from kubesim.tests.helpers import deployment


@pytest.fixture
def apps(kube_api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api)


def _ready(kubesim: KubeSim, name: str, ns: str = "default", replicas: int = 2) -> dict:
    def check() -> dict | None:
        d = kubesim.get("Deployment", ns, name) or {}
        st = d.get("status") or {}
        return d if st.get("readyReplicas") == replicas and st.get("observedGeneration") == \
            d["metadata"]["generation"] and st.get("updatedReplicas") == replicas else None
    return kubesim.wait_for(check, 5)


def test_it_rolls_a_deployment_out_to_running_ready_pods(kubesim: KubeSim, apps: client.AppsV1Api,
                                                         kube_api: client.ApiClient) -> None:
    """Deployment -> ReplicaSet -> Pods Running+Ready with IPs and nodes; statuses and conditions of all three."""
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    _ready(kubesim, "web")
    d = apps.read_namespaced_deployment("web", "default")
    conds = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conds == {"Available": ("True", "MinimumReplicasAvailable"),
                     "Progressing": ("True", "NewReplicaSetAvailable")}
    assert d.status.observed_generation == 1 and d.status.available_replicas == 2
    rs = apps.list_namespaced_replica_set("default").items
    assert len(rs) == 1 and rs[0].status.ready_replicas == 2
    assert rs[0].metadata.owner_references[0].uid == d.metadata.uid
    assert rs[0].metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = client.CoreV1Api(kube_api).list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 2
    for p in pods:
        assert p.status.phase == "Running" and p.status.pod_ip.startswith("10.42.") and p.spec.node_name
        assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"
        assert p.status.container_statuses[0].state.running is not None
        assert p.metadata.labels["pod-template-hash"] == rs[0].metadata.labels["pod-template-hash"]


def test_it_rolls_a_new_template_to_a_new_replicaset(kubesim: KubeSim, apps: client.AppsV1Api) -> None:
    """A template change creates a new ReplicaSet (revision 2) and scales the old one to 0."""
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    _ready(kubesim, "web", replicas=1)
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.28"}]}}}})
    _ready(kubesim, "web", replicas=1)
    kubesim.wait_for(lambda: sorted(rs["spec"]["replicas"] for rs in kubesim.list("ReplicaSet", "default")) == [0, 1])
    pods = kubesim.wait_for(lambda: [p for p in kubesim.list("Pod", "default")] if len(
        kubesim.list("Pod", "default")) == 1 else None)
    assert pods[0]["spec"]["containers"][0]["image"] == "nginx:1.28"


def test_it_deletes_pods_when_scaled_to_zero(kubesim: KubeSim, apps: client.AppsV1Api) -> None:
    """Scaling a Deployment to 0 through the scale subresource deletes its pods (scale-to-zero)."""
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    _ready(kubesim, "web")
    scale = apps.replace_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0},
                                                                        "metadata": {"name": "web"}})
    assert scale.spec.replicas == 0
    kubesim.wait_for(lambda: not kubesim.list("Pod", "default"), 3)
    d = kubesim.wait_for(lambda: (kubesim.get("Deployment", "default", "web") or {}).get("status", {}).get(
        "replicas", 0) == 0 and kubesim.get("Deployment", "default", "web"))
    assert "readyReplicas" not in d["status"]
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    _ready(kubesim, "web", replicas=1)


def test_it_crash_loops_pods_whose_image_says_crash(kubesim: KubeSim, kube_api: client.ApiClient,
                                                   apps: client.AppsV1Api) -> None:
    """An image with `:crash` goes to CrashLoopBackOff (restarts, not ready); the Deployment stays unavailable."""
    apps.create_namespaced_deployment("default", deployment(replicas=1, image="myapp:crash"))
    pod = kubesim.wait_for(lambda: next((p for p in kubesim.list("Pod", "default")
                                         if p.get("status", {}).get("containerStatuses")), None), 3)
    cs = pod["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["restartCount"] >= 1 and not cs["ready"]
    d = kubesim.wait_for(lambda: (kubesim.get("Deployment", "default", "web") or {}).get("status", {}).get(
        "conditions") and kubesim.get("Deployment", "default", "web"))
    assert {c["type"]: c["status"] for c in d["status"]["conditions"]}["Available"] == "False"
    core = client.CoreV1Api(kube_api)
    assert "simulated crash" in core.read_namespaced_pod_log(pod["metadata"]["name"], "default", previous=True)


def test_it_reports_a_stalled_rollout_after_its_progress_deadline(kubesim: KubeSim, apps: client.AppsV1Api) -> None:
    """Progressing=False with ProgressDeadlineExceeded once progressDeadlineSeconds pass without availability."""
    body = deployment(replicas=1, image="myapp:crash")
    body["spec"]["progressDeadlineSeconds"] = 1
    apps.create_namespaced_deployment("default", body)

    def progressing() -> tuple[str, str] | None:
        conds = (kubesim.get("Deployment", "default", "web") or {}).get("status", {}).get("conditions", [])
        return next(((c["status"], c["reason"]) for c in conds if c["type"] == "Progressing"), None)

    kubesim.wait_for(lambda: progressing() == ("False", "ProgressDeadlineExceeded"), 4)


def test_it_backs_off_pulling_missing_images(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """An image containing `does-not-exist` stays Pending in ImagePullBackOff, with a Warning event."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "registry.example/does-not-exist:1"}]}})
    pod = kubesim.wait_for(lambda: (kubesim.get("Pod", "default", "p") or {}).get("status", {}).get(
        "containerStatuses") and kubesim.get("Pod", "default", "p"), 3)
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=p").items
    assert any(e.type == "Warning" and e.reason == "Failed" for e in events)


def test_it_completes_jobs(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """A Job runs a pod to Succeeded and gets Complete=True with succeeded=1 and a completionTime."""
    batch = client.BatchV1Api(kube_api)
    job = batch.create_namespaced_job("default", {"metadata": {"name": "migrate"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox:1.36"}]}}}})
    assert job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    done = kubesim.wait_for(lambda: (kubesim.get("Job", "default", "migrate") or {}).get("status", {}).get(
        "completionTime") and kubesim.get("Job", "default", "migrate"), 3)
    assert done["status"]["succeeded"] == 1
    assert {c["type"]: c["status"] for c in done["status"]["conditions"]}["Complete"] == "True"
    pods = client.CoreV1Api(kube_api).list_namespaced_pod("default", label_selector="job-name=migrate").items
    assert pods[0].status.phase == "Succeeded"


def test_it_fails_jobs_past_their_backoff_limit(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """A pod that exits non-zero (`:fail` image) counts as failed; past backoffLimit the Job is Failed."""
    client.BatchV1Api(kube_api).create_namespaced_job("default", {"metadata": {"name": "j"}, "spec": {
        "backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "m", "image": "tool:fail"}]}}}})
    job = kubesim.wait_for(lambda: any(c["type"] == "Failed" for c in (kubesim.get("Job", "default", "j") or {})
                                       .get("status", {}).get("conditions", [])) and kubesim.get("Job", "default", "j"),
                           3)
    assert job["status"]["failed"] == 2
    assert {c["type"]: c["reason"] for c in job["status"]["conditions"]}["Failed"] == "BackoffLimitExceeded"


def _chart(name: str, **spec: object) -> dict:
    return {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": name,
                                                                               "namespace": "kube-system"},
            "spec": {"repo": "https://charts.example", "chart": name, "version": "1.0.0", **spec}}


def _job_done(kubesim: KubeSim, name: str) -> dict:
    return kubesim.wait_for(lambda: next((c["type"] for c in (kubesim.get(
        "Job", "kube-system", f"helm-install-{name}") or {}).get("status", {}).get("conditions", [])
        if c["type"] in ("Complete", "Failed")), None) and kubesim.get("Job", "kube-system", f"helm-install-{name}"), 5)


def test_it_installs_helm_charts_like_the_k3s_helm_controller(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """HelmChart -> helm-install-<name> Job (chart label, SA helm-<name>) that completes, then the release."""
    co = client.CustomObjectsApi(kube_api)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "cloudnative-pg", targetNamespace="cnpg-system", createNamespace=True, valuesContent="replicaCount: 2"))
    job = _job_done(kubesim, "cloudnative-pg")
    assert {c["type"] for c in job["status"]["conditions"]} >= {"Complete"} and job["spec"]["suspend"] is False
    assert job["metadata"]["labels"]["helmcharts.helm.cattle.io/chart"] == "cloudnative-pg"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "helm-cloudnative-pg"
    core = client.CoreV1Api(kube_api)
    pod = core.list_namespaced_pod("kube-system", label_selector="job-name=helm-install-cloudnative-pg").items[0]
    assert "STATUS: deployed" in core.read_namespaced_pod_log(pod.metadata.name, "kube-system")
    kubesim.wait_for(lambda: kubesim.get("Deployment", "cnpg-system", "cloudnative-pg"), 3)
    d = _ready(kubesim, "cloudnative-pg", ns="cnpg-system", replicas=2)
    assert d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    secret = kubesim.wait_for(lambda: kubesim.get("Secret", "cnpg-system", "sh.helm.release.v1.cloudnative-pg.v1"))
    assert secret["metadata"]["labels"]["status"] == "deployed"
    chart = co.get_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", "cloudnative-pg")
    assert chart["status"]["jobName"] == "helm-install-cloudnative-pg"
    assert {c["type"] for c in chart["status"]["conditions"]} == {"JobCreated"}


def test_it_fails_helm_installs_with_a_failure_marker(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """A chart whose values contain `fail-install` gets a Failed Job and a Failed=True HelmChart condition."""
    co = client.CustomObjectsApi(kube_api)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "garage", targetNamespace="garage", createNamespace=True, valuesContent="mode: fail-install"))
    job = _job_done(kubesim, "garage")
    assert any(c["type"] == "Failed" for c in job["status"]["conditions"])
    kubesim.wait_for(lambda: any(c["type"] == "Failed" and c["status"] == "True" for c in (
        kubesim.get("HelmChart", "kube-system", "garage") or {}).get("status", {}).get("conditions", [])), 3)
    assert kubesim.get("Deployment", "garage", "garage") is None


def test_it_fails_helm_installs_on_request_and_without_a_target_namespace(kubesim: KubeSim,
                                                                         kube_api: client.ApiClient) -> None:
    """KubeSim.fail_helm_chart injects a failure; a missing targetNamespace without createNamespace fails."""
    co = client.CustomObjectsApi(kube_api)
    kubesim.fail_helm_chart("kube-system", "sablier")
    kubesim.fail_helm_chart("kube-system", "other-chart")
    kubesim.fail_helm_chart("kube-system", "other-chart", fail=False)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "other-chart", targetNamespace="default"))
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "sablier", targetNamespace="sablier", createNamespace=True))
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "other", targetNamespace="missing"))
    for name in ("sablier", "other"):
        assert any(c["type"] == "Failed" for c in _job_done(kubesim, name)["status"]["conditions"])
    assert any(c["type"] == "Complete" for c in _job_done(kubesim, "other-chart")["status"]["conditions"])


def test_it_reruns_the_helm_job_when_the_chart_changes(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """Changing the spec changes the configHash annotation and re-runs helm-install-<name>."""
    co = client.CustomObjectsApi(kube_api)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "app", targetNamespace="default"))
    first = _job_done(kubesim, "app")
    co.patch_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", "app",
                                      {"spec": {"version": "1.1.0"}})
    kubesim.wait_for(lambda: (kubesim.get("Job", "kube-system", "helm-install-app") or first)["metadata"]["uid"]
                     != first["metadata"]["uid"], 3)
    kubesim.wait_for(lambda: kubesim.get("Secret", "default", "sh.helm.release.v1.app.v2"), 5)


def test_it_applies_a_helm_chart_config_of_the_same_name(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """A HelmChartConfig (same name/namespace) merges its values over the chart's and re-runs the install Job."""
    co = client.CustomObjectsApi(kube_api)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "traefik", targetNamespace="kube-system", valuesContent="replicaCount: 1"))
    first = _job_done(kubesim, "traefik")
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmchartconfigs", {
        "apiVersion": "helm.cattle.io/v1", "kind": "HelmChartConfig",
        "metadata": {"name": "traefik", "namespace": "kube-system"}, "spec": {"valuesContent": "replicaCount: 3"}})
    kubesim.wait_for(lambda: (kubesim.get("Job", "kube-system", "helm-install-traefik") or first)["metadata"]["uid"]
                     != first["metadata"]["uid"], 3)
    kubesim.wait_for(lambda: (kubesim.get("Deployment", "kube-system", "traefik") or {}).get("spec", {}).get(
        "replicas") == 3, 5)


def test_it_can_boot_like_k3s_with_its_addons() -> None:
    """k3s_addons: CoreDNS (k8s-app=kube-dns), the default traefik IngressClass, and K3s's traefik HelmChart,
    which the Helm controller installs into kube-system (app.kubernetes.io/name=traefik)."""
    with KubeSim(k3s_addons=True) as sim:
        assert sim.get("Service", "kube-system", "kube-dns")["spec"]["clusterIP"] == "10.43.0.10"
        assert sim.get("IngressClass", None, "traefik")["spec"]["controller"] == "traefik.io/ingress-controller"
        traefik = sim.wait_for(lambda: sim.get("Deployment", "kube-system", "traefik"), 5)
        assert traefik["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "traefik"


def test_it_uninstalls_when_the_helm_chart_is_deleted(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """The controller's finalizer holds a deleted HelmChart until the release's workloads are removed."""
    co = client.CustomObjectsApi(kube_api)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", _chart(
        "app", targetNamespace="default"))
    kubesim.wait_for(lambda: kubesim.get("Deployment", "default", "app"), 5)
    chart = co.get_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", "app")
    assert chart["metadata"]["finalizers"] == ["wrangler.cattle.io/on-helm-chart-remove"]
    co.delete_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", "app")
    kubesim.wait_for(lambda: kubesim.get("HelmChart", "kube-system", "app") is None, 3)
    assert kubesim.get("Deployment", "default", "app") is None
    assert kubesim.get("Job", "kube-system", "helm-install-app") is None  # owned by the chart: collected


def test_it_gives_services_cluster_ips_and_load_balancer_status(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """Services get a ClusterIP at create; LoadBalancer ones get status.loadBalancer.ingress (ServiceLB)."""
    core = client.CoreV1Api(kube_api)
    svc = core.create_namespaced_service("default", {"metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}})
    assert svc.spec.cluster_ip and 30000 <= svc.spec.ports[0].node_port < 32768
    lb = kubesim.wait_for(lambda: (kubesim.get("Service", "default", "lb") or {}).get("status", {}).get(
        "loadBalancer", {}).get("ingress"), 3)
    assert lb[0]["ip"]


def test_it_gives_ingresses_a_load_balancer_status(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """Traefik publishes its address in Ingress status.loadBalancer.ingress."""
    client.NetworkingV1Api(kube_api).create_namespaced_ingress("default", {"metadata": {"name": "web"}, "spec": {
        "ingressClassName": "traefik", "rules": [{"host": "web.example.com", "http": {"paths": [{
            "path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    kubesim.wait_for(lambda: (kubesim.get("Ingress", "default", "web") or {}).get("status", {}).get(
        "loadBalancer", {}).get("ingress"), 3)


def test_it_runs_statefulsets_in_order(kubesim: KubeSim, apps: client.AppsV1Api) -> None:
    """StatefulSet pods are named <set>-0..N-1 and all become ready."""
    body = deployment(name="db", replicas=2)
    body["kind"] = "StatefulSet"
    body["spec"]["serviceName"] = "db"
    apps.create_namespaced_stateful_set("default", body)
    kubesim.wait_for(lambda: (kubesim.get("StatefulSet", "default", "db") or {}).get("status", {}).get(
        "readyReplicas") == 2, 3)
    assert sorted(p["metadata"]["name"] for p in kubesim.list("Pod", "default")) == ["db-0", "db-1"]


def test_it_binds_persistent_volume_claims(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """local-path binds a PVC: phase Bound, a volumeName and the requested capacity."""
    client.CoreV1Api(kube_api).create_namespaced_persistent_volume_claim("default", {
        "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                               "resources": {"requests": {"storage": "2Gi"}}}})
    pvc = kubesim.wait_for(lambda: (kubesim.get("PersistentVolumeClaim", "default", "data") or {}).get(
        "status", {}).get("phase") == "Bound" and kubesim.get("PersistentVolumeClaim", "default", "data"), 3)
    assert pvc["status"]["capacity"] == {"storage": "2Gi"} and pvc["spec"]["volumeName"].startswith("pvc-")


def test_it_can_switch_controllers_off_and_delay_them(kubesim: KubeSim, apps: client.AppsV1Api) -> None:
    """With controllers off nothing progresses; with a delay, progress is observable step by step."""
    kubesim.configure_controllers(enabled=False)
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    with pytest.raises(TimeoutError):
        kubesim.wait_for(lambda: kubesim.list("ReplicaSet", "default"), 0.3)
    kubesim.configure_controllers(enabled=True, delay=0.05)  # resyncs: the missed Deployment is picked up
    _ready(kubesim, "web", replicas=1)
