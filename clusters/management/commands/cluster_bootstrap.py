"""manage.py cluster_bootstrap <slug> [--wait]: re-run a cluster's infrastructure bootstrap through its agent."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import infrastructure, rpc, services
from clusters.models import Cluster, EventKind


class Command(BaseCommand):
    help = ("Re-run the infrastructure bootstrap (Traefik config, CloudNativePG, Sablier, Garage, the shared "
            "PostgreSQL) on a cluster through its connected agent, and show each component's state.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the cluster's slug")
        parser.add_argument("--wait", action="store_true", help="keep watching until every component is ready")
        parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait with --wait (900)")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between checks with --wait (5)")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(slug=options["slug"]).first()
        if cluster is None:
            raise CommandError(f"no cluster with slug {options['slug']!r}")
        try:
            snapshot = infrastructure.start_bootstrap(cluster)
        except rpc.RPCError as exc:
            raise CommandError(f"cannot reach the agent of {cluster.slug}: {exc}") from None
        services.record_event(cluster, EventKind.BOOTSTRAP, "by manage.py cluster_bootstrap")
        self.stdout.write(f"Bootstrap {'started' if snapshot.get('started') else 'already running'} on {cluster.slug}.")
        shown: dict[str, tuple[str, str]] = {}
        self._show(snapshot, shown)
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while not snapshot.get("ready"):
            if time.monotonic() > deadline:
                raise CommandError(f"not every component was ready after {options['timeout']:g}s")
            time.sleep(options["interval"])
            try:
                snapshot = infrastructure.fetch_bootstrap_status(cluster)
            except rpc.RPCError as exc:
                self.stderr.write(f"agent not answering ({exc}); still waiting")
                continue
            self._show(snapshot, shown)
        self.stdout.write(self.style.SUCCESS(f"Every component of {cluster.slug} is ready."))

    def _show(self, snapshot: dict[str, Any], shown: dict[str, tuple[str, str]]) -> None:
        for name, c in (snapshot.get("components") or {}).items():
            if shown.get(name) == (c["state"], c["reason"]):
                continue
            shown[name] = (c["state"], c["reason"])
            self.stdout.write(f"  {name:<9} {c['state']:<10} {c['reason']}")
            for line in c.get("logs") or []:
                self.stdout.write(f"      | {line}")
