"""Register the local cluster bin/run starts an agent for, and write that agent's token file.

    manage.py ensure_local_cluster --simulated --token-file var/agent-token \
        --install-with var/kubesim.kubeconfig --agent-kubeconfig var/agent.kubeconfig   # kubesim
    manage.py ensure_local_cluster --token-file var/agent-token                  # local K3s

A fresh token is issued on every run (the previous one stays valid for the grace period), so
the file always holds a working token without the database ever storing it in clear.
With --install-with ADMIN_KUBECONFIG the install manifest (`agent.yaml`, without its Deployment: the
local agent process runs instead) is applied with that admin kubeconfig, and --agent-kubeconfig gets a
kubeconfig for the agent's ServiceAccount, so the local agent runs with the permissions it has on a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clusters import manifest, services
from clusters.models import Cluster

SIMULATED = ("local-simulated", "local (simulated)")
K3S = ("local-k3s", "local K3s")
LOCAL_TOKEN_SECONDS = 7 * 24 * 3600


class Command(BaseCommand):
    help = "Create the local cluster (simulated or K3s) if missing and write a fresh agent token to a file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--simulated", action="store_true", help="the cluster is kubesim, not a real K3s")
        parser.add_argument("--token-file", required=True, help="where to write the agent token (mode 0600)")
        parser.add_argument("--base-domain", default=None,
                            help="public base domain for service URLs (default: localtest.me); given, it also "
                                 "updates an existing local cluster")
        parser.add_argument("--install-with", metavar="ADMIN_KUBECONFIG",
                            help="apply the install manifest to the cluster with this (admin) kubeconfig")
        parser.add_argument("--agent-kubeconfig", metavar="FILE",
                            help="with --install-with: write a kubeconfig for the agent's ServiceAccount here")

    def handle(self, *args, **options) -> None:
        slug, name = SIMULATED if options["simulated"] else K3S
        with transaction.atomic():
            cluster = Cluster.objects.filter(slug=slug).first()
            if cluster is None:
                cluster = services.create_cluster(name, options["base_domain"] or "localtest.me", "127.0.0.1:2222",
                                                  slug=slug, simulated=options["simulated"])
                self.stdout.write(f"Registered cluster {name!r}.")
            elif options["base_domain"] and cluster.base_domain != options["base_domain"]:
                # bin/run's emulated edge serves one domain; a cluster registered before it moves there.
                cluster.base_domain = options["base_domain"]
                cluster.save(update_fields=["base_domain"])
            token = services.issue_token(cluster)
        path = Path(options["token_file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        os.chmod(path, 0o600)  # also when the file existed with looser permissions
        self.stdout.write(f"Agent token for {name!r} written to {path}.")
        if options["install_with"]:
            if not options["agent_kubeconfig"]:
                raise CommandError("--install-with needs --agent-kubeconfig")
            # A pod's projected token is renewed by the kubelet; a local agent gets one long enough for a session.
            out_path = manifest.install_for_local_agent(
                Path(options["install_with"]), Path(options["agent_kubeconfig"]), token=token,
                server_url=manifest.agent_server_url(settings.SITE_URL), expiration_seconds=LOCAL_TOKEN_SECONDS)
            self.stdout.write(f"Installed the agent's ServiceAccount and RBAC; its kubeconfig is {out_path}.")
