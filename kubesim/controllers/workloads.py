"""kubelet/scheduler, ReplicaSet, Deployment, StatefulSet and Job controllers."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubesim.cluster import Cluster
from kubesim.controllers.base import (
    CRASH_MARKERS,
    PULL_FAIL_MARKERS,
    Controller,
    Key,
    now,
    owned_by,
    owner_ref,
    set_condition,
    short_hash,
)
from kubesim.store import Event, clone
from kubesim.streams import LogHub

EXIT_CODE_ANNOTATION = "kubesim.io/exit-code"  # run-to-completion pods exit with this code
LOG_LINES_ANNOTATION = "kubesim.io/log-lines"  # JSON list of lines the pod's first container logs


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _alive(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class Kubelet(Controller):
    """Schedules pods on a node and runs them: Running+Ready, or the failure states markers ask for."""

    name = "kubelet"
    manager = "kubelet"
    primary = ("", "pods")
    # Seconds a scheduled pod stays Pending before its containers run (an image pull and app start-up).
    start_delay = 0.0
    # Seconds between a pod's deletion and its removal: its processes exit on SIGTERM, then the kubelet deletes
    # it with a grace period of 0. Until then the pod is Terminating and its log can still be read.
    stop_delay = 1.0

    def __init__(self, cluster: Cluster, logs: LogHub, delay: float) -> None:
        super().__init__(cluster, logs, delay)
        self.starts_at: dict[str, float] = {}  # pod uid -> when its containers start
        self.stops_at: dict[str, float] = {}  # pod uid -> when the terminating pod is removed
        # pod uid -> when its containers started (startedAt has whole seconds only, too coarse for `sleep 1.5`)
        self.running_since: dict[str, float] = {}

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == ("", "pods") and event.type != "DELETED":
            return [(event.obj["metadata"]["namespace"], event.obj["metadata"]["name"])]
        if event.key == ("", "pods"):
            self.logs.forget_pod(event.obj["metadata"]["namespace"], event.obj["metadata"]["name"])
            self.starts_at.pop(event.obj["metadata"].get("uid", ""), None)
            self.stops_at.pop(event.obj["metadata"].get("uid", ""), None)
            self.running_since.pop(event.obj["metadata"].get("uid", ""), None)
        return ()

    def reconcile(self, namespace: str, name: str) -> None:
        pod_rt = self.rt("v1", "Pod")
        pod = self.fetch(pod_rt, namespace, name)
        if pod is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod)
            return
        status = pod.get("status") or {}
        if not pod["spec"].get("nodeName"):
            self._schedule(pod)
            return
        if status.get("phase") in ("Succeeded", "Failed") or status.get("containerStatuses"):
            if status.get("phase") == "Running" and pod["spec"].get("restartPolicy") in ("Never", "OnFailure") \
                    and all((cs.get("state") or {}).get("running") for cs in status["containerStatuses"]):
                remaining = _sleep_remaining(pod, self.running_since.get(pod["metadata"].get("uid", "")))
                if remaining > 0:  # `sleep N` runs for N seconds, as in a container
                    self.enqueue_later((namespace, name), remaining)
                    return
                self._finish(pod)
            return
        if self._waiting_to_start(pod):
            return
        self._start(pod)

    def _terminate(self, pod: dict[str, Any]) -> None:
        """A terminating pod: removed once its processes have had stop_delay to exit (never past its grace)."""
        meta = pod["metadata"]
        if meta.get("finalizers") or not pod["spec"].get("nodeName"):
            return  # held by a finalizer (the apiserver's business), or never ran
        delay = min(self.stop_delay, float(meta.get("deletionGracePeriodSeconds", 30)))
        remaining = self.stops_at.setdefault(meta["uid"], time.monotonic() + delay) - time.monotonic()
        if remaining > 0:
            self.enqueue_later((meta["namespace"], meta["name"]), remaining)
            return
        self.cluster.delete(self.rt("v1", "Pod"), meta["namespace"], meta["name"], grace_seconds=0)

    def _waiting_to_start(self, pod: dict[str, Any]) -> bool:
        if self.start_delay <= 0:
            return False
        uid = pod["metadata"]["uid"]
        remaining = self.starts_at.setdefault(uid, time.monotonic() + self.start_delay) - time.monotonic()
        if remaining > 0:
            self.enqueue_later((pod["metadata"]["namespace"], pod["metadata"]["name"]), remaining)
            return True
        self.starts_at.pop(uid, None)
        return False

    def _nodes(self) -> list[dict[str, Any]]:
        return self.cluster.list(self.rt("v1", "Node"))

    def _schedule(self, pod: dict[str, Any]) -> None:
        nodes = self._nodes()
        if not nodes:
            return
        selector = pod["spec"].get("nodeSelector") or {}
        fit = [n for n in nodes if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
        if not fit:
            status = pod.get("status") or {}
            status["conditions"] = set_condition(status.get("conditions") or [], "PodScheduled", "False",
                                                 "Unschedulable", "0/2 nodes are available: node(s) didn't match "
                                                 "Pod's node affinity/selector.")
            self.write_status(self.rt("v1", "Pod"), pod, status)
            return
        node = fit[int(short_hash(pod["metadata"]["uid"], 1), 36) % len(fit)]
        new = clone(pod)
        new["spec"]["nodeName"] = node["metadata"]["name"]
        self.cluster.write(self.rt("v1", "Pod"), new, "kube-scheduler")
        pod = self.fetch(self.rt("v1", "Pod"), pod["metadata"]["namespace"], pod["metadata"]["name"]) or new
        status = pod.get("status") or {}
        status["conditions"] = set_condition(status.get("conditions") or [], "PodScheduled", "True", "", "")
        self.write_status(self.rt("v1", "Pod"), pod, status)
        self.event(pod, "Scheduled", f"Successfully assigned {pod['metadata']['namespace']}/"
                   f"{pod['metadata']['name']} to {node['metadata']['name']}", component="default-scheduler")

    def _pod_ip(self, pod: dict[str, Any]) -> tuple[str, str]:
        node = self.cluster.find(self.rt("v1", "Node"), "", pod["spec"]["nodeName"])
        cidr = ((node or {}).get("spec") or {}).get("podCIDR", "10.42.0.0/24")
        host = next((a["address"] for a in ((node or {}).get("status") or {}).get("addresses", [])
                     if a["type"] == "InternalIP"), "172.18.0.2")
        # Unique among the node's live pods (NetworkPolicy evaluation finds pods by IP); .1 is the node's bridge.
        addresses = list(ipaddress.ip_network(cidr, strict=False).hosts())[1:]
        taken = {(p.get("status") or {}).get("podIP") for p in self.cluster.list(self.rt("v1", "Pod"))
                 if p["spec"].get("nodeName") == pod["spec"]["nodeName"] and _alive(p)
                 and p["metadata"]["uid"] != pod["metadata"]["uid"]}
        start = int(short_hash(pod["metadata"]["uid"], 3), 36) % len(addresses)
        for i in range(len(addresses)):
            ip = str(addresses[(start + i) % len(addresses)])
            if ip not in taken:
                return ip, host
        return str(addresses[start]), host  # the node's range is full: a real kubelet would fail the sandbox

    def _start(self, pod: dict[str, Any]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.running_since[pod["metadata"].get("uid", "")] = time.monotonic()
        pod_ip, host_ip = self._pod_ip(pod)
        statuses, phase, ready = [], "Running", True
        annotations = pod["metadata"].get("annotations") or {}
        for c in pod["spec"]["containers"]:
            image = c.get("image", "")
            cs: dict[str, Any] = {"name": c["name"], "image": image, "imageID": f"docker.io/{image}@sha256:"
                                  + short_hash(image, 16), "restartCount": 0, "started": True, "ready": True}
            if any(m in image for m in PULL_FAIL_MARKERS):
                cs.update(ready=False, started=False, state={"waiting": {
                    "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}})
                cs["imageID"] = ""
                phase, ready = "Pending", False
                self.event(pod, "Failed", f'Failed to pull image "{image}": not found', "Warning", "kubelet")
            elif any(m in image for m in CRASH_MARKERS):
                cs.update(ready=False, started=False, restartCount=1, containerID=f"containerd://{short_hash(name)}",
                          state={"waiting": {"reason": "CrashLoopBackOff", "message":
                                             f"back-off 10s restarting failed container={c['name']} pod={name}"}},
                          lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now(),
                                                    "finishedAt": now()}})
                ready = False
                self.logs.push(ns, name, c["name"], [f"[kubesim] {c['name']}: starting {image}",
                                                     "[kubesim] fatal error: simulated crash"])
                self.logs.restart(ns, name, c["name"])
                self.event(pod, "BackOff", "Back-off restarting failed container", "Warning", "kubelet")
            else:
                cs.update(containerID=f"containerd://{short_hash(name + c['name'], 32)}",
                          state={"running": {"startedAt": now()}})
                if LOG_LINES_ANNOTATION in annotations and c is pod["spec"]["containers"][0]:
                    lines = json.loads(annotations[LOG_LINES_ANNOTATION])
                else:
                    lines = list(self.logs.generator(pod, c["name"]))
                self.logs.push(ns, name, c["name"], lines)
            statuses.append(cs)
        status = pod.get("status") or {}
        conds = status.get("conditions") or []
        for ctype in ("Initialized", "PodReadyToStartContainers"):
            conds = set_condition(conds, ctype, "True", "", "")
        for ctype in ("ContainersReady", "Ready"):
            conds = set_condition(conds, ctype, "True" if ready else "False", "" if ready else "ContainersNotReady",
                                  "" if ready else "containers with unready status")
        status.update(phase=phase, podIP=pod_ip, podIPs=[{"ip": pod_ip}], hostIP=host_ip, hostIPs=[{"ip": host_ip}],
                      startTime=now(), containerStatuses=statuses, conditions=conds)
        self.write_status(self.rt("v1", "Pod"), pod, status)
        if ready:
            self.event(pod, "Started", "Started container " + pod["spec"]["containers"][0]["name"],
                       component="kubelet")
        if ready and pod["spec"].get("restartPolicy") in ("Never", "OnFailure"):
            self.enqueue((ns, name))

    def _finish(self, pod: dict[str, Any]) -> None:
        annotations = pod["metadata"].get("annotations") or {}
        images = " ".join(c.get("image", "") for c in pod["spec"]["containers"])
        code = int(annotations.get(EXIT_CODE_ANNOTATION, "1" if ":fail" in images else "0"))
        status = pod["status"]
        for cs in status["containerStatuses"]:
            started = (cs["state"].get("running") or {}).get("startedAt", now())
            cs.update(ready=False, started=False, state={"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": started, "finishedAt": now(), "containerID": cs.get("containerID", "")}})
        conds = status["conditions"]
        for ctype in ("ContainersReady", "Ready"):
            conds = set_condition(conds, ctype, "False", "PodCompleted", "")
        status.update(phase="Succeeded" if code == 0 else "Failed", conditions=conds)
        self.write_status(self.rt("v1", "Pod"), pod, status)


def _sleep_remaining(pod: dict[str, Any], since: float | None = None) -> float:
    """Seconds left of a run-to-completion pod whose first container runs `sleep N` (0: it exits now); `since`
    is when it started (time.monotonic()), else its status's startedAt."""
    container = pod["spec"]["containers"][0]
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if len(words) != 2 or words[0].rsplit("/", 1)[-1] != "sleep":
        return 0.0
    try:
        seconds = float(words[1])
    except ValueError:
        return 0.0
    if since is not None:
        return max(0.0, seconds - (time.monotonic() - since))
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    started = ((statuses[0].get("state") or {}).get("running") or {}).get("startedAt")
    if not started:
        return 0.0
    elapsed = (datetime.now(UTC) - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds()
    return max(0.0, seconds - elapsed)


def _pod_from_template(owner: dict[str, Any], name: str, extra_labels: dict[str, str]) -> dict[str, Any]:
    tpl = clone(owner["spec"]["template"])
    meta = tpl.get("metadata") or {}
    meta = {k: v for k, v in meta.items() if k in ("labels", "annotations")}
    meta["labels"] = {**(meta.get("labels") or {}), **extra_labels}
    meta["name"] = name
    meta["ownerReferences"] = [owner_ref(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tpl["spec"]}


class ReplicaSetController(Controller):
    name = "replicaset"
    primary = ("apps", "replicasets")
    children = (("", "pods"), "ReplicaSet")

    def reconcile(self, namespace: str, name: str) -> None:
        rs_rt, pod_rt = self.rt("apps/v1", "ReplicaSet"), self.rt("v1", "Pod")
        rs = self.fetch(rs_rt, namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self.cluster.list(pod_rt, namespace) if owned_by(p, rs) and _alive(p)]
        want = rs["spec"].get("replicas", 1)
        hash_label = {k: v for k, v in (rs["spec"]["template"].get("metadata", {}).get("labels") or {}).items()}
        failure = None
        for _ in range(want - len(pods)):
            pod_name = f"{name}-{short_hash(now() + str(self.cluster.store.rv), 5)}"
            created = self.create_or_report(rs, pod_rt, _pod_from_template(rs, pod_name, hash_label))
            if created is None:
                failure = self.last_failure.get((namespace, name))
                break
            self.event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                       component="replicaset-controller")
            pods.append(created)
        if len(pods) > want:
            # Like the controller, remove not-ready pods first, then the newest.
            doomed = sorted(pods, key=lambda p: (_is_ready(p), p["metadata"]["creationTimestamp"]))[:len(pods) - want]
            for p in doomed:
                self.cluster.delete(pod_rt, namespace, p["metadata"]["name"])
                self.event(rs, "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}",
                           component="replicaset-controller")
            pods = [p for p in pods if p not in doomed]
        ready = sum(1 for p in pods if _is_ready(p))
        rs = self.fetch(rs_rt, namespace, name)
        if rs is None:
            return
        status: dict[str, Any] = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                                  "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        conds = [c for c in (rs.get("status") or {}).get("conditions") or [] if c["type"] != "ReplicaFailure"]
        known = [c for c in (rs.get("status") or {}).get("conditions") or [] if c["type"] == "ReplicaFailure"]
        if failure is not None:
            # Like the controller: a refused pod create shows as ReplicaFailure (set once, not rewritten on each
            # retry) until a create succeeds.
            conds = (known or set_condition([], "ReplicaFailure", "True", "FailedCreate", failure)) + conds
        if conds:
            status["conditions"] = conds
        self.write_status(rs_rt, rs, status)


class DeploymentController(Controller):
    name = "deployment"
    primary = ("apps", "deployments")
    children = (("apps", "replicasets"), "Deployment")

    def reconcile(self, namespace: str, name: str) -> None:
        d_rt, rs_rt = self.rt("apps/v1", "Deployment"), self.rt("apps/v1", "ReplicaSet")
        d = self.fetch(d_rt, namespace, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        template = d["spec"]["template"]
        pth = short_hash(json.dumps(template, sort_keys=True))
        rs_name = f"{name}-{pth}"
        owned = [rs for rs in self.cluster.list(rs_rt, namespace) if owned_by(rs, d)]
        new_rs = next((rs for rs in owned if rs["metadata"]["name"] == rs_name), None)
        want = 0 if d["spec"].get("paused") else d["spec"].get("replicas", 1)
        revisions = [int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
                     for rs in owned]
        if new_rs is None:
            tpl = clone(template)
            tpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pth
            selector = clone(d["spec"]["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pth
            new_rs = self.create(rs_rt, namespace, {
                "metadata": {"name": rs_name, "labels": tpl["metadata"]["labels"],
                             "ownerReferences": [owner_ref(d)],
                             "annotations": {"deployment.kubernetes.io/revision": str(max(revisions, default=0) + 1),
                                             "deployment.kubernetes.io/desired-replicas": str(want),
                                             "deployment.kubernetes.io/max-replicas": str(want + 1)}},
                "spec": {"replicas": want, "selector": selector, "template": tpl}})
            self.event(d, "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to {want}",
                       component="deployment-controller")
        elif new_rs["spec"].get("replicas") != want:
            updated = clone(new_rs)
            updated["spec"]["replicas"] = want
            updated["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(want)
            self.event(d, "ScalingReplicaSet", f"Scaled replica set {rs_name} from "
                       f"{new_rs['spec'].get('replicas')} to {want}", component="deployment-controller")
            new_rs = self.cluster.write(rs_rt, updated, self.manager)
        # Old ReplicaSets scale down once the new one is available (a compressed rolling update).
        new_ready = (new_rs.get("status") or {}).get("availableReplicas", 0)
        for rs in owned:
            if rs["metadata"]["name"] != rs_name and rs["spec"].get("replicas", 0) and new_ready >= want:
                old = clone(rs)
                old["spec"]["replicas"] = 0
                self.cluster.write(rs_rt, old, self.manager)
        owned = [rs for rs in self.cluster.list(rs_rt, namespace) if owned_by(rs, d)]
        self._status(d, owned, rs_name, want)

    def _past_deadline(self, d: dict[str, Any], new: list[dict[str, Any]]) -> bool:
        """spec.progressDeadlineSeconds since the current ReplicaSet appeared, as the controller measures it."""
        if not new:
            return False
        deadline = d["spec"].get("progressDeadlineSeconds", 600)
        started = datetime.strptime(new[0]["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        age = (datetime.now(UTC) - started).total_seconds()
        if age >= deadline:
            return True
        self.enqueue_later((d["metadata"]["namespace"], d["metadata"]["name"]), deadline - age + 0.5)
        return False

    def _status(self, d: dict[str, Any], owned: list[dict[str, Any]], rs_name: str, want: int) -> None:
        def total(field: str, sets: list[dict[str, Any]]) -> int:
            return sum((rs.get("status") or {}).get(field, 0) for rs in sets)

        new = [rs for rs in owned if rs["metadata"]["name"] == rs_name]
        replicas, available = total("replicas", owned), total("availableReplicas", owned)
        updated = total("replicas", new)
        status = d.get("status") or {}
        conds = status.get("conditions") or []
        if available >= want:
            conds = set_condition(conds, "Available", "True", "MinimumReplicasAvailable",
                                  "Deployment has minimum availability.", update_time=True)
        else:
            conds = set_condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                                  "Deployment does not have minimum availability.", update_time=True)
        done = updated == want and available >= want and replicas == want
        if done:
            conds = set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable",
                                  f'ReplicaSet "{rs_name}" has successfully progressed.', update_time=True)
        elif self._past_deadline(d, new):
            conds = set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                                  f'ReplicaSet "{rs_name}" has timed out progressing.', update_time=True)
        else:
            conds = set_condition(conds, "Progressing", "True", "ReplicaSetUpdated",
                                  f'ReplicaSet "{rs_name}" is progressing.', update_time=True)
        failure = next((c for rs in new for c in (rs.get("status") or {}).get("conditions") or []
                        if c["type"] == "ReplicaFailure"), None)
        if failure is not None:
            conds = set_condition(conds, "ReplicaFailure", failure["status"], failure["reason"], failure["message"],
                                  update_time=True)
        else:
            conds = [c for c in conds if c["type"] != "ReplicaFailure"]
        conds.sort(key=lambda c: c["type"] != "Available")
        new_status: dict[str, Any] = {"observedGeneration": d["metadata"].get("generation", 1), "replicas": replicas,
                                      "updatedReplicas": updated, "readyReplicas": total("readyReplicas", owned),
                                      "availableReplicas": available,
                                      "unavailableReplicas": max(want - available, 0) if replicas else 0,
                                      "conditions": conds}
        new_status = {k: v for k, v in new_status.items() if v or k in ("observedGeneration", "conditions")}
        self.write_status(self.rt("apps/v1", "Deployment"), d, new_status)


class StatefulSetController(Controller):
    """Pods named <set>-0..N-1, created in order once the previous one is Ready (OrderedReady)."""

    name = "statefulset"
    primary = ("apps", "statefulsets")
    children = (("", "pods"), "StatefulSet")

    def reconcile(self, namespace: str, name: str) -> None:
        sts_rt, pod_rt = self.rt("apps/v1", "StatefulSet"), self.rt("v1", "Pod")
        sts = self.fetch(sts_rt, namespace, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        want = sts["spec"].get("replicas", 1)
        pods = {p["metadata"]["name"]: p for p in self.cluster.list(pod_rt, namespace) if owned_by(p, sts)}
        revision = f"{name}-{short_hash(json.dumps(sts['spec']['template'], sort_keys=True))}"
        for i in range(want):
            pname = f"{name}-{i}"
            if pname not in pods:
                labels = {"statefulset.kubernetes.io/pod-name": pname, "apps.kubernetes.io/pod-index": str(i),
                          "controller-revision-hash": revision}
                pod = _pod_from_template(sts, pname, labels)
                pod["spec"].setdefault("hostname", pname)
                if sts["spec"].get("serviceName"):
                    pod["spec"].setdefault("subdomain", sts["spec"]["serviceName"])
                created = self.create_or_report(sts, pod_rt, pod,
                                                f"create Pod {pname} in StatefulSet {name} failed error: ")
                if created is not None:
                    pods[pname] = created
                    self.event(sts, "SuccessfulCreate", f"create Pod {pname} in StatefulSet {name} successful",
                               component="statefulset-controller")
                break  # OrderedReady: one at a time
            if not _is_ready(pods[pname]):
                break
        for pname in list(pods):
            if int(pname.rsplit("-", 1)[1]) >= want:
                self.cluster.delete(pod_rt, namespace, pname)
                pods.pop(pname)
        ready = sum(1 for p in pods.values() if _is_ready(p))
        sts = self.fetch(sts_rt, namespace, name)
        if sts is None:
            return
        status = {"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(pods),
                  "readyReplicas": ready, "currentReplicas": len(pods), "updatedReplicas": len(pods),
                  "availableReplicas": ready, "currentRevision": revision, "updateRevision": revision,
                  "collisionCount": 0}
        self.write_status(sts_rt, sts, status)


class JobController(Controller):
    """One pod at a time until `completions` succeed, or more than `backoffLimit` fail."""

    name = "job"
    primary = ("batch", "jobs")
    children = (("", "pods"), "Job")

    def reconcile(self, namespace: str, name: str) -> None:
        job_rt, pod_rt = self.rt("batch/v1", "Job"), self.rt("v1", "Pod")
        job = self.fetch(job_rt, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        status = job.get("status") or {}
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions", [])):
            return
        spec = job["spec"]
        if spec.get("suspend"):
            status["conditions"] = set_condition(status.get("conditions") or [], "Suspended", "True", "JobSuspended",
                                                 "Job suspended")
            self.write_status(job_rt, job, status)
            return
        pods = [p for p in self.cluster.list(pod_rt, namespace) if owned_by(p, job)]
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = [p for p in pods if _alive(p)]
        conds = [c for c in status.get("conditions") or [] if c["type"] != "Suspended"]
        new_status: dict[str, Any] = {"startTime": status.get("startTime") or now(), "uncountedTerminatedPods": {},
                                      "terminating": 0}
        if succeeded >= spec.get("completions", 1):
            conds = set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods")
            conds = set_condition(conds, "Complete", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods")
            new_status.update(completionTime=now(), ready=0)
            self.event(job, "Completed", "Job completed", component="job-controller")
        elif failed > spec.get("backoffLimit", 6):
            for ctype in ("FailureTarget", "Failed"):
                conds = set_condition(conds, ctype, "True", "BackoffLimitExceeded",
                                      "Job has reached the specified backoff limit")
            new_status["ready"] = 0
            self.event(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit", "Warning",
                       "job-controller")
        elif not active:
            pod = _pod_from_template(job, "", {})
            pod["metadata"].pop("name")
            pod["metadata"]["generateName"] = f"{name}-"
            created = self.create_or_report(job, pod_rt, pod)
            if created is not None:
                active.append(created)
                self.event(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                           component="job-controller")
        if active and not any(c["type"] in ("Complete", "Failed") for c in conds):
            new_status.update(active=len(active), ready=sum(1 for p in active if _is_ready(p)))
        if succeeded:
            new_status["succeeded"] = succeeded
        if failed:
            new_status["failed"] = failed
        if conds:
            new_status["conditions"] = conds
        job = self.fetch(job_rt, namespace, name)
        if job is not None:
            self.write_status(job_rt, job, new_status)
