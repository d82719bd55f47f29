"""The agent <-> control plane wire protocol, shared by both sides.

Imported by Django (clusters.consumers, clusters.rpc) and by the agent, so it depends on the
standard library only.

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

Stream operations (opened with stream.open): "echo" (sends back what it gets) and "exec" (a command or a
shell in a project's container; its frames carry one channel byte first, see EXEC_* below).

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

# Label keys both sides agree on. apply_project/delete_project payloads carry the project's labels;
# PROJECT_UID is its stable identity, and on a namespace it is the ownership mark: the agent only
# applies into, prunes or deletes a namespace whose mark is that project's uid.
ORGANIZATION_LABEL = "paas.dev/organization"
PROJECT_LABEL = "paas.dev/project"
PROJECT_UID_LABEL = "paas.dev/project-uid"
# Every object of a release carries its revision; observed Deployments report it, so the control plane can
# tell a state of this release's rollout from one of the previous release's.
REVISION_LABEL = "paas.dev/revision"

# Stream op "exec": every data frame, both ways, starts with one channel byte (Kubernetes' channel numbers).
#   cp -> agent: EXEC_STDIN bytes, EXEC_RESIZE {"Width": cols, "Height": rows}, EXEC_STDIN_EOF (no data)
#   agent -> cp: EXEC_STDOUT, EXEC_STDERR, then last EXEC_STATUS {"exit_code": int, "message": str}
EXEC_STDIN, EXEC_STDOUT, EXEC_STDERR, EXEC_STATUS, EXEC_RESIZE, EXEC_STDIN_EOF = 0, 1, 2, 3, 4, 255

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
