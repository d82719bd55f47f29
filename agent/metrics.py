"""The agent's Prometheus metrics, served on /metrics beside /healthz and /readyz (agent/health.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TUNNEL_CONNECTED = Gauge("paas_agent_tunnel_connected", "1 while the tunnel to the control plane is up.")
RECONNECTS = Counter("paas_agent_reconnects", "Times the agent set out to reconnect after losing the tunnel.")
APPLY_SECONDS = Histogram("paas_agent_apply_seconds", "Applying a project's desired state (server-side apply and "
                          "prune), by outcome.", ["outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
OPEN_STREAMS = Gauge("paas_agent_streams_open", "Streams (logs, exec) open on this agent.")
