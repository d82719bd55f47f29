"""python -m agent: connect this cluster to the control plane and keep it connected.

Every option can also be given as an environment variable (shown in brackets).
Exit status: 0 after SIGTERM/SIGINT, 3 when the control plane revoked or refused the token,
2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from agent import __version__, health, metrics
from agent import protocol as p
from agent.bootstrap import bootstrapper_for
from agent.handlers import build_ops, build_stream_ops
from agent.k8s import PROJECT_KINDS, Kube
from agent.lastlines import LastLines
from agent.observe import Observer
from agent.tunnel import Backoff, Tunnel

log = logging.getLogger("agent")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=env("AGENT_SERVER"),
                        help="control plane WebSocket URL, e.g. wss://paas.example.com/agent/ws [AGENT_SERVER]")
    parser.add_argument("--token-file", default=env("AGENT_TOKEN_FILE"),
                        help="file holding the cluster's agent token; re-read on every reconnect [AGENT_TOKEN_FILE]")
    parser.add_argument("--kubeconfig", default=env("AGENT_KUBECONFIG"),
                        help="kubeconfig file; without it the in-cluster service account is used [AGENT_KUBECONFIG]")
    parser.add_argument("--health-port", type=int, default=int(env("AGENT_HEALTH_PORT", "8080")),
                        help="port of the /healthz, /readyz and /metrics HTTP endpoints, 0 to disable "
                             "(default 8080) [AGENT_HEALTH_PORT]")
    parser.add_argument("--heartbeat", type=float, default=float(env("AGENT_HEARTBEAT", str(p.DEFAULT_HEARTBEAT))),
                        help="seconds between heartbeats until the control plane sets its own; a peer silent "
                             f"for {p.DEAD_AFTER_HEARTBEATS} intervals is dropped (default %(default)s) "
                             "[AGENT_HEARTBEAT]")
    parser.add_argument("--backoff-cap", type=float, default=float(env("AGENT_BACKOFF_CAP", "30")),
                        help="longest wait between reconnect attempts, in seconds (default %(default)s) "
                             "[AGENT_BACKOFF_CAP]")
    parser.add_argument("--refused-grace", type=float, default=float(env("AGENT_REFUSED_GRACE", "30")),
                        help="seconds a refused token (HTTP 403 on connect) must persist before the agent exits "
                             "with status 3 (default %(default)s) [AGENT_REFUSED_GRACE]")
    parser.add_argument("--ca-file", default=env("AGENT_CA_FILE"),
                        help="CA bundle to verify a wss:// control plane with a private CA [AGENT_CA_FILE]")
    parser.add_argument("--bootstrap", action=argparse.BooleanOptionalAction,
                        default=env("AGENT_BOOTSTRAP", "").lower() in ("1", "true", "yes", "on"),
                        help="install and keep the platform's infrastructure (Traefik config, CloudNativePG, Sablier, "
                             "Garage, shared PostgreSQL) on every connect; the install manifest turns it on. Without "
                             "it the bootstrap runs only when the control plane asks [AGENT_BOOTSTRAP]")
    parser.add_argument("--log-level", default=env("AGENT_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(default %(default)s) [AGENT_LOG_LEVEL]")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("--server (or AGENT_SERVER) is required")
    if not args.server.startswith(("ws://", "wss://")):
        parser.error("--server must be a ws:// or wss:// URL")
    if not args.token_file:
        parser.error("--token-file (or AGENT_TOKEN_FILE) is required")
    if not Path(args.token_file).is_file():
        parser.error(f"token file {args.token_file} does not exist")
    return args


async def run(args: argparse.Namespace) -> int:
    kube = Kube(args.kubeconfig)
    token_path = Path(args.token_file)

    async def hello() -> dict[str, Any]:
        facts: dict[str, Any] = {"agent_version": __version__, "kubernetes_version": "",
                                 "nodes": [], "components": {}}
        try:
            facts.update(await asyncio.to_thread(lambda: {
                "kubernetes_version": kube.version(), "nodes": kube.nodes(), "components": kube.components()}))
            reachable = True
        except Exception as exc:  # report a degraded cluster rather than stay away from the control plane
            log.warning("Kubernetes API not reachable: %s", exc)
            reachable = False
        facts["capabilities"] = {"kubernetes_reachable": reachable, "observe": True,
                                 "prune_kinds": [f"{k.api_version}/{k.kind}" for k in PROJECT_KINDS]}
        return facts

    ssl_context = ssl.create_default_context(cafile=args.ca_file) if args.server.startswith("wss://") else None
    tunnel = Tunnel(args.server, lambda: token_path.read_text().strip(), hello, build_ops(kube), build_stream_ops(kube),
                    heartbeat=args.heartbeat, backoff=Backoff(cap=args.backoff_cap), ssl=ssl_context,
                    refused_grace=args.refused_grace)
    observer = Observer(kube, tunnel.send_event, on_pod=LastLines(kube).pod_changed)
    tunnel.on_connect.append(observer.resend_all)
    bootstrapper_for(kube).attach(tunnel, on_connect=args.bootstrap)  # progress goes out as events

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, tunnel.stop)
    metrics.OPEN_STREAMS.set_function(lambda: len(tunnel.streams))
    runner = await health.serve(args.health_port, tunnel.connected) if args.health_port else None
    observing = asyncio.create_task(observer.run())
    log.info("agent %s starting; control plane %s", __version__, args.server)
    try:
        code = await tunnel.run()
    finally:
        observing.cancel()
        if runner is not None:
            await runner.cleanup()
        kube.close()
    log.info("agent stopped (exit status %s)", code)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
