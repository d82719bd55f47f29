"""`python -m kubesim --port N`: serve the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from kubesim.app import Emulator, load_crds, write_kubeconfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kubesim", description="Kubernetes API emulator")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--kubeconfig-out", metavar="FILE", help="write a kubeconfig pointing at the emulator")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    p.add_argument("--no-controllers", action="store_true", help="serve the API only, no simulated controllers")
    p.add_argument("--controller-delay", type=float, default=0.5, metavar="S",
                   help="seconds each controller waits before acting (default 0.5)")
    p.add_argument("--preload-crds", metavar="DIR", nargs="?", const="", default=None,
                   help="install the CRDs found in DIR (default: kubesim/crds) at start")
    p.add_argument("--k3s-addons", action="store_true",
                   help="also deploy what K3s ships: CoreDNS, the traefik IngressClass and HelmCharts")
    p.add_argument("--admin-token", metavar="TOKEN", default=os.environ.get("KUBESIM_ADMIN_TOKEN"),
                   help="bearer token of system:admin (default: $KUBESIM_ADMIN_TOKEN or a random one)")
    p.add_argument("--insecure-open", action="store_true",
                   help="plain HTTP, no authentication or authorization: every request acts as system:admin "
                        "(the old open mode); otherwise HTTPS with a throw-away CA, as kubectl sends tokens only "
                        "over TLS")
    p.add_argument("--pod-start-delay", type=float, default=0.0, metavar="S",
                   help="seconds a scheduled pod stays Pending before it runs and answers HTTP (default 0)")
    p.add_argument("--edge-port", type=int, default=None, metavar="N",
                   help="also serve the HTTP edge (Traefik's Ingress routing) on this port, with the Sablier stand-in")
    p.add_argument("--sablier-port", type=int, default=None, metavar="N",
                   help="port of the Sablier stand-in (default: a free one when the edge runs)")
    p.add_argument("--sablier-expiry-interval", type=float, default=20.0, metavar="S",
                   help="how often the Sablier stand-in stops instances whose session expired (default 20)")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    crds = load_crds(args.preload_crds or None) if args.preload_crds is not None else []
    emu = Emulator(controllers=not args.no_controllers, controller_delay=args.controller_delay, crds=crds,
                   latency_ms=args.latency_ms, k3s_addons=args.k3s_addons, auth=not args.insecure_open,
                   admin_token=args.admin_token, tls=not args.insecure_open, pod_start_delay=args.pod_start_delay,
                   edge_port=args.edge_port,
                   sablier_port=args.sablier_port if args.sablier_port is not None or args.edge_port is None else 0,
                   sablier_expiry_interval=args.sablier_expiry_interval)
    url = await emu.start(args.host, args.port)
    if args.kubeconfig_out:
        write_kubeconfig(url, args.kubeconfig_out, emu.admin_token, emu.ca_pem)
    print(f"kubesim serving on {url}", flush=True)
    if args.insecure_open:
        print("kubesim: --insecure-open: no authentication, every request acts as system:admin", flush=True)
    elif args.kubeconfig_out:
        print(f"kubesim: admin token in {args.kubeconfig_out}", flush=True)
    elif not args.admin_token:
        print(f"kubesim: admin token {emu.admin_token}", flush=True)  # the only way to learn the random one
    if emu.sablier:
        print(f"Sablier stand-in serving on {emu.sablier.url}", flush=True)
    if emu.edge:
        print(f"edge (Traefik stand-in) serving on {emu.edge.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emu.stop()
    print("kubesim stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
