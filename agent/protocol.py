"""The agent <-> control plane wire contract: every name both sides must agree on, in one place.

Imported by the control plane (clusters, projects and projects.compose, sshgateway) and by every layer
of the agent, so it depends on the standard library only (import-linter checks this; pyproject.toml).
It holds the tunnel's messages and codes below, and the names on Kubernetes objects that one side
writes and the other reads: labels, the tenant namespace prefix, the data services' Secrets, the kinds
a project may contain and the RBAC rules the install manifest grants the agent.

Control messages are JSON text frames with a "type":

    agent -> cp   hello        {protocol, agent_version, kubernetes_version, nodes, capabilities, components}
    cp -> agent   welcome      {cluster, heartbeat, max_message_bytes}
    both          ping / pong  {t}                      heartbeats, both directions
    cp -> agent   rpc          {id, op, payload}
    agent -> cp   rpc.reply    {id, result}
    agent -> cp   rpc.error    {id, code, message}      code is one of ERROR_CODES
    cp -> agent   stream.open  {id, op, payload, window}
    both          stream.credit{id, bytes}              the sender may send that many more bytes
    both          stream.close {id, reason}
    agent -> cp   event        {kind, data}             e.g. kind "observed": a namespace's state

Stream operations (opened with stream.open): "echo" (sends back what it gets), "exec" (a command or a
shell in a project's container; its frames carry one channel byte first, see EXEC_* below), "db_dump" /
"db_restore" (pg_dump out of / pg_restore into the project's own database, framed as exec is: the dump is
EXEC_STDOUT, the upload EXEC_STDIN then EXEC_STDIN_EOF, pg_*'s messages EXEC_STDERR, then EXEC_STATUS), and
"kube_api" (one Kubernetes API request of a member's kubectl, relayed as a project ServiceAccount; KUBE_* frames
below).

Stream data travels in binary frames: a 4-byte big-endian stream id, then the bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

PROTOCOL_VERSION = 1

# HTTP header carrying the agent's token on the WebSocket upgrade request.
TOKEN_HEADER = "Authorization"  # noqa: S105 (a header name, not a secret)
TOKEN_SCHEME = "Bearer"  # noqa: S105

# Close codes (4000-4999 are free for applications).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_TOKEN_REVOKED = 4003  # the agent exits non-zero: retrying cannot help
CLOSE_REPLACED = 4008  # a newer connection for the same cluster took over
CLOSE_PROTOCOL_ERROR = 4009  # unparseable frame, unsupported protocol version, missing hello
CLOSE_HEARTBEAT_TIMEOUT = 4010  # nothing heard from the peer for too long

CLOSE_REASONS = {
    CLOSE_TOKEN_REVOKED: "token revoked",
    CLOSE_REPLACED: "replaced by a newer connection",
    CLOSE_PROTOCOL_ERROR: "protocol error",
    CLOSE_HEARTBEAT_TIMEOUT: "heartbeat timeout",
    CLOSE_TOO_BIG: "message too big",
}

# rpc.error codes
ERR_UNSUPPORTED = "unsupported"  # the agent does not know this operation
ERR_BAD_REQUEST = "bad_request"  # the payload is malformed
ERR_STALE_REVISION = "stale_revision"  # apply_project with a revision older than the applied one
ERR_FAILED = "failed"  # the operation raised; message says why
ERR_NOT_OWNED = "not_owned"  # the namespace exists and does not belong to the project; nothing was changed
ERROR_CODES = (ERR_UNSUPPORTED, ERR_BAD_REQUEST, ERR_STALE_REVISION, ERR_FAILED, ERR_NOT_OWNED)

# Stream op "exec": every data frame, both ways, starts with one channel byte (Kubernetes' channel numbers).
#   cp -> agent: EXEC_STDIN bytes, EXEC_RESIZE {"Width": cols, "Height": rows}, EXEC_STDIN_EOF (no data)
#   agent -> cp: EXEC_STDOUT, EXEC_STDERR, then last EXEC_STATUS {"exit_code": int, "message": str}
EXEC_STDIN, EXEC_STDOUT, EXEC_STDERR, EXEC_STATUS, EXEC_RESIZE, EXEC_STDIN_EOF = 0, 1, 2, 3, 4, 255

# Stream op "kube_api": the data is a sequence of frames, each a kind byte and a 4-byte big-endian length, then
# that many bytes (the tunnel may split and join chunks, so frames carry their own boundaries).
#   agent -> cp: KUBE_HEAD {"status": int, "headers": [[name, value], ...], "subprotocol": str}, then KUBE_BODY
#                chunks (HTTP; the stream closes after the last) or KUBE_TEXT / KUBE_BINARY messages (WebSocket)
#   cp -> agent: KUBE_TEXT / KUBE_BINARY messages (WebSocket only); closing the stream ends the request
KUBE_HEAD, KUBE_BODY, KUBE_TEXT, KUBE_BINARY = 0, 1, 2, 3
KUBE_MAX_FRAME = 16 * 1024 * 1024
KUBE_MAX_REQUEST_BODY = 1024 * 1024  # bytes of a relayed request's body (it travels in the open payload)
_KUBE_FRAME = struct.Struct(">BI")
# The request headers a relayed request keeps (everything else, Authorization and Impersonate-* above all, is
# dropped), and the response headers it brings back.
KUBE_REQUEST_HEADERS = ("accept", "content-type", "user-agent", "kubectl-command", "kubectl-session")
KUBE_RESPONSE_HEADERS = ("content-type", "warning", "audit-id", "cache-control", "x-kubernetes-pf-flowschema-uid",
                         "x-kubernetes-pf-prioritylevel-uid")
# Requests about the caller alone, which kubectl makes (`auth can-i`, `auth whoami`): allowed outside the namespace.
_KUBE_SELF_REVIEWS = (
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
)


def pack_kube_frame(kind: int, data: bytes = b"") -> bytes:
    return _KUBE_FRAME.pack(kind, len(data)) + data


class KubeFrameReader:
    """Reassembles KUBE_* frames from stream chunks, however the tunnel cut them."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _KUBE_FRAME.size:
            kind, size = _KUBE_FRAME.unpack_from(self._buffer)
            if size > KUBE_MAX_FRAME:
                raise ValueError(f"a kube_api frame of {size} bytes is over the limit")
            end = _KUBE_FRAME.size + size
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[_KUBE_FRAME.size:end])))
            del self._buffer[:end]
        return frames


def kube_api_path_allowed(method: str, path: str, namespace: str) -> bool:
    """May a member's kubectl reach this API path of the project's namespace? Discovery (read-only), the caller's
    own reviews, and anything under /api/v1/namespaces/<namespace>/ or /apis/<g>/<v>/namespaces/<namespace>/.
    Both sides check it; RBAC on the impersonated ServiceAccount then decides the verb."""
    parts = path.split("/")
    if parts[0] != "" or any(part in ("", ".", "..") or any(c in part for c in "%?#\\") for part in parts[1:]):
        return False  # no empty, dot or escaped segments, nothing a URL would read as query or fragment
    parts = parts[1:]
    if method == "POST" and path in _KUBE_SELF_REVIEWS:
        return True
    if method in ("GET", "HEAD") and (
        parts in (["api"], ["apis"], ["version"], ["api", "v1"], ["openapi", "v2"])
        or (parts[0] == "apis" and len(parts) <= 3)
        or (parts[:2] == ["openapi", "v3"] and len(parts) <= 5)
    ):
        return True
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        rest = parts[3:]
    else:
        return False
    return len(rest) >= 3 and rest[0] == "namespaces" and rest[1] == namespace


# --- Names on Kubernetes objects ------------------------------------------------------------------------

# Label keys both sides agree on. apply_project/delete_project payloads carry the project's labels;
# PROJECT_UID is its stable identity, and on a namespace it is the ownership mark: the agent only
# applies into, prunes or deletes a namespace whose mark is that project's uid.
ORGANIZATION_LABEL = "paas.dev/organization"
PROJECT_LABEL = "paas.dev/project"
PROJECT_UID_LABEL = "paas.dev/project-uid"
# Every object of a release carries its revision; observed Deployments report it, so the control plane can
# tell a state of this release's rollout from one of the previous release's.
REVISION_LABEL = "paas.dev/revision"
# On everything the platform makes for a project: the agent reads, execs into and logs only pods carrying it.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "paas"
# The compose service an object or pod belongs to (logs, terminal and pod_logs select on it).
SERVICE_LABEL = "paas.dev/service"
# Scale to zero: a Deployment Sablier may put to sleep, and the group it wakes with (compose renders them,
# the agent's wake and observed state read them; the names are Sablier's own).
SLEEP_ENABLE_LABEL = "sablier.enable"
SLEEP_GROUP_LABEL = "sablier.group"

# TLS (docs/domains.md): the bootstrap's cert-manager ACME ClusterIssuer, which every project's Certificates name;
# the agent reports the Certificates' Ready conditions in the observed state under "certificates".
ACME_CLUSTER_ISSUER = "paas-acme"
CERTIFICATE_API = "cert-manager.io/v1"

# Where the install manifest puts the agent; never a project's namespace.
AGENT_NAMESPACE = "paas-system"
# Every project namespace starts with this, and no Kubernetes or platform namespace does (they are
# `default`, `kube-*`, `paas-*` and the `*-system` namespaces of the components), so no organization or
# project name can make a tenant namespace one of theirs.
TENANT_NAMESPACE_PREFIX = "tenant-"

# The data services' credentials: Secrets the agent writes into a project's namespace (labelled
# DATA_SERVICE_LABEL=<service>, never pruned by a release) and releases read through env references.
DATABASE_SECRET = "paas-database"  # noqa: S105 (Secret names, not secrets)
BUCKET_SECRET = "paas-bucket"  # noqa: S105
DATA_SECRETS = {"database": DATABASE_SECRET, "bucket": BUCKET_SECRET}
DATA_SERVICE_LABEL = "paas.dev/data-service"
# On the short-lived Job (and its pod) that runs pg_dump / pg_restore for db_dump / db_restore: "dump" or
# "restore". Without the project's labels, so a deploy's prune never deletes a dump under way.
DATA_JOB_LABEL = "paas.dev/data-job"
DATABASE_PASSWORD_KEY = "PGPASSWORD"  # noqa: S105 (a key's name; kept across ensure_database calls)
DATABASE_SECRET_KEYS = ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", DATABASE_PASSWORD_KEY)
BUCKET_SECRET_KEYS = ("S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
# A deleted project's data Secrets are kept here (paas-data, <namespace>-<service>) while its namespace is gone,
# so that restoring the project within its grace period gives back the same credentials.
RETAINED_SECRET_LABEL = "paas.dev/retained-for"  # noqa: S105 (a label name)

# Backups of the shared PostgreSQL: the settings both sides check (CloudNativePG's own rules). The schedule is
# a six-field cron expression (seconds first), the retention a number of days, weeks or months.
BACKUP_SCHEDULE_PATTERN = r"[0-9*/,?LW#A-Za-z-]+( [0-9*/,?LW#A-Za-z-]+){5}"
BACKUP_RETENTION_PATTERN = r"[1-9][0-9]*[dwm]"

# Every kind a project may contain, as (apiVersion, kind, plural). The agent applies, and prunes, these and
# nothing else (an explicit list, so a kind it was never told about is never deleted by accident); the
# install manifest grants it exactly these.
PROJECT_KINDS: tuple[tuple[str, str, str], ...] = (
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "Service", "services"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "ResourceQuota", "resourcequotas"),
    ("v1", "LimitRange", "limitranges"),
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("batch/v1", "Job", "jobs"),
    ("batch/v1", "CronJob", "cronjobs"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("traefik.io/v1alpha1", "Middleware", "middlewares"),
    (CERTIFICATE_API, "Certificate", "certificates"),
)

# Members' own Kubernetes access (kubectl through the control plane, docs/kubectl.md): the agent relays their
# requests impersonating one of these ServiceAccounts of the project's namespace, and nobody else. Every release
# renders both (projects.compose.namespace): the viewer reads the namespace (never Secrets), the deployer may also
# exec, attach and port-forward; neither writes an object the platform owns.
KUBE_VIEWER_ACCOUNT = "project-viewer"
KUBE_DEPLOYER_ACCOUNT = "project-deployer"
KUBE_ACCOUNTS = {"viewer": KUBE_VIEWER_ACCOUNT, "deployer": KUBE_DEPLOYER_ACCOUNT}

# --- The agent's permissions ----------------------------------------------------------------------------
# The install manifest (clusters.manifest) grants the agent's ClusterRole these rules, each with its reason
# as a comment, and nothing else: what the agent does today. A feature that makes the agent call Kubernetes
# in a new way adds its rule here.

RECONCILE_VERBS = ("get", "list", "watch", "create", "patch", "delete")
READ_VERBS = ("get", "list", "watch")

# Read permissions the agent holds only to grant them in the project-viewer Role (projects.compose.namespace).
_VIEWER_ONLY_RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Service endpoints", {"apiGroups": [""], "resources": ["endpoints"], "verbs": [*READ_VERBS]}),
    ("Deployments' ReplicaSets", {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": [*READ_VERBS]}),
    ("events.k8s.io Events", {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": [*READ_VERBS]}),
)

# What the project-deployer Role adds to the viewer's: streams into the project's pods. The agent holds pods/exec
# already (the terminal); it holds attach and port-forward only to grant them.
DEPLOYER_STREAM_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward"], "verbs": ["create", "get"]},
)

# What bootstrap and the data services need beyond the project kinds. Secrets, ConfigMaps, Namespaces, Jobs,
# Deployments and StatefulSets are already covered by the project kinds' rules.
_INFRASTRUCTURE_RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Bootstrap: HelmCharts for CloudNativePG, Sablier, Garage and cert-manager and the HelmChartConfig customising "
     "K3s's Traefik, applied (get/create/patch) in kube-system.",
     {"apiGroups": ["helm.cattle.io"], "resources": ["helmcharts", "helmchartconfigs"],
      "verbs": ["get", "list", "watch", "create", "patch"]}),
    ("Bootstrap: the shared CloudNativePG Cluster in paas-data.",
     {"apiGroups": ["postgresql.cnpg.io"], "resources": ["clusters"], "verbs": ["get", "list", "create", "patch"]}),
    ("Bootstrap: the shared PostgreSQL's daily ScheduledBackup in paas-data.",
     {"apiGroups": ["postgresql.cnpg.io"], "resources": ["scheduledbackups"],
      "verbs": ["get", "list", "create", "patch"]}),
    ("Bootstrap: the Backups the ScheduledBackup makes, read for the backups component's state.",
     {"apiGroups": ["postgresql.cnpg.io"], "resources": ["backups"], "verbs": ["get", "list"]}),
    ("Bootstrap: cert-manager's ACME ClusterIssuer (TLS for service hosts), applied and read for its Ready "
     "condition.",
     {"apiGroups": ["cert-manager.io"], "resources": ["clusterissuers"], "verbs": ["get", "list", "create", "patch"]}),
    ("Bootstrap: readiness of the DaemonSets a chart installs.",
     {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list"]}),
    ("Bootstrap: the last log lines of a failed helm-install Job's pod; pod_logs: a crash-looping project "
     "pod's last lines for its failed release; the logs stream: a project's live logs (members also get this "
     "through the project-viewer Role).",
     {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}),
)


def _rbac_rules() -> tuple[tuple[str, dict[str, Any]], ...]:
    by_group: dict[str, list[str]] = {}
    for api_version, _, plural in PROJECT_KINDS:
        by_group.setdefault(api_version.split("/", 1)[0] if "/" in api_version else "", []).append(plural)
    return (
        ("Project namespaces: created on first apply (server-side apply = patch, create when missing), "
         "deleted by delete_project, watched for observed state.",
         {"apiGroups": [""], "resources": ["namespaces"], "verbs": [*RECONCILE_VERBS]}),
        ("Node names, roles, ingress-ready labels and capacity for the handshake.",
         {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}),
        ("Pods and Events are read for observed state (waiting reasons, restarts, warnings).",
         {"apiGroups": [""], "resources": ["pods", "events"], "verbs": [*READ_VERBS]}),
        ("Terminal and SSH sessions: exec into a project's pod (the agent checks the pod carries the project's "
         "labels). The WebSocket upgrade is a GET, authorized as create since Kubernetes 1.30.",
         {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}),
        *((f"{why}: only so that the project-viewer Role can grant it to members. Kubernetes lets the agent "
           "create a Role and bind it only with permissions it holds itself.", rule)
          for why, rule in _VIEWER_ONLY_RULES),
        ("Attach and port-forward: only so that the project-deployer Role can grant them to members who may "
         "deploy (kubectl through the control plane). Kubernetes lets the agent create a Role and bind it only "
         "with permissions it holds itself.",
         {"apiGroups": [""], "resources": ["pods/attach", "pods/portforward"], "verbs": ["create", "get"]}),
        (f"Members' kubectl requests, relayed as the project's {KUBE_VIEWER_ACCOUNT} or {KUBE_DEPLOYER_ACCOUNT} "
         "ServiceAccount (Impersonate-User), and as nobody else: resourceNames limits it to those two names.",
         {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"],
          "resourceNames": [KUBE_DEPLOYER_ACCOUNT, KUBE_VIEWER_ACCOUNT]}),
        *((f"Project objects in API group {group or 'core'!r}: server-side apply (get/create/patch), "
           "pruning (list/delete) and, for Deployments, observed rollout state (watch).",
           {"apiGroups": [group], "resources": sorted(plurals), "verbs": [*RECONCILE_VERBS]})
          for group, plurals in by_group.items()),
        *_INFRASTRUCTURE_RULES,
    )


# (why, rule) pairs, in the order the manifest lists them (docs/agent.md, "Permissions", lists them too).
RBAC_RULES = _rbac_rules()

# Operation names: what the control plane calls (clusters.rpc.call / acall) and the agent serves (agent.handlers,
# agent.infra), and the stream operations (clusters.rpc.open_stream; agent.handlers.stream_ops).
OP_PING = "ping"
OP_VERSION = "version"
OP_CLUSTER_INFO = "cluster_info"
OP_APPLY_PROJECT = "apply_project"
OP_DELETE_PROJECT = "delete_project"
OP_POD_LOGS = "pod_logs"
OP_SERVICE_PODS = "service_pods"
OP_WAKE = "wake"
OP_BOOTSTRAP = "bootstrap"
OP_BOOTSTRAP_STATUS = "bootstrap_status"
OP_ENSURE_DATABASE = "ensure_database"
OP_DROP_DATABASE = "drop_database"
OP_ENSURE_BUCKET = "ensure_bucket"
OP_DELETE_BUCKET = "delete_bucket"
OP_DATA_CREDENTIALS = "data_credentials"
OP_DATA_USAGE = "data_usage"  # database and bucket sizes in bytes, for metering
STREAM_ECHO = "echo"
STREAM_EXEC = "exec"
STREAM_LOGS = "logs"
STREAM_DB_DUMP = "db_dump"
STREAM_DB_RESTORE = "db_restore"
STREAM_KUBE_API = "kube_api"

DEFAULT_HEARTBEAT = 15.0  # seconds between pings, each way
DEAD_AFTER_HEARTBEATS = 3  # a peer silent for this many intervals is considered gone
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_STREAM_WINDOW = 256 * 1024

_SID = struct.Struct(">I")


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def decode(text: str | bytes) -> dict[str, Any]:
    message = json.loads(text)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError("a control frame must be a JSON object with a string 'type'")
    return message


def pack_data(stream_id: int, data: bytes) -> bytes:
    return _SID.pack(stream_id) + data


def unpack_data(frame: bytes) -> tuple[int, bytes]:
    if len(frame) < _SID.size:
        raise ValueError("binary frame shorter than its stream id")
    return _SID.unpack_from(frame)[0], frame[_SID.size :]


def dead_after(heartbeat: float) -> float:
    return heartbeat * DEAD_AFTER_HEARTBEATS
