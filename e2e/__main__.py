"""bin/e2e-k3s: register a disposable K3s with a control plane, install the agent, deploy a compose file with a
database, check its URL, logs and exec, delete it, and print each step's time (docs/e2e-k3s.md).

Options can also come from the environment (shown in brackets); pass tokens that way, not on the command line.
Exit status: 0 when every step passed (or was skipped), 1 when a step failed, 2 for bad options.
"""

from __future__ import annotations

import argparse
import os
import sys

from e2e.run import Config, EndToEnd, table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="bin/e2e-k3s", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=env("PAAS_URL"), help="the control plane's base URL, reachable from the cluster "
                   "as its SITE_URL [PAAS_URL]")
    p.add_argument("--operator-token", default=env("PAAS_OPERATOR_TOKEN"),
                   help="API token of a staff user: registers the cluster [PAAS_OPERATOR_TOKEN]")
    p.add_argument("--user-token", default=env("PAAS_USER_TOKEN"),
                   help="API token of a user who may deploy in --org [PAAS_USER_TOKEN]")
    p.add_argument("--org", default=env("PAAS_ORG"), help="organization slug the project is created in [PAAS_ORG]")
    p.add_argument("--kubeconfig",
                   help="admin kubeconfig of the disposable cluster [KUBECONFIG, except with --dry-run: there only "
                        "this flag counts, so a dry run never touches the cluster your shell points at; without it "
                        "the dry run starts kubesim]")
    p.add_argument("--base-domain", default=env("E2E_BASE_DOMAIN"),
                   help="the cluster's base domain: services get <service>-<project>-<org>.<base domain>, which must "
                        "resolve to the cluster's ingress (or use --resolve-ip) [E2E_BASE_DOMAIN]")
    p.add_argument("--cluster-name", default=env("E2E_CLUSTER_NAME", ""),
                   help="name of the cluster to register (default 'e2e <timestamp>') [E2E_CLUSTER_NAME]")
    p.add_argument("--resolve-ip", default=env("E2E_RESOLVE_IP", ""),
                   help="send the public URL's request to this node IP with the service's Host header "
                        "[E2E_RESOLVE_IP]")
    p.add_argument("--bootstrap-timeout", type=float, default=900, help="seconds (default %(default)s)")
    p.add_argument("--deploy-timeout", type=float, default=600, help="seconds (default %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="run against kubesim, with the agent's pod, the CloudNativePG operator and Garage stood in "
                        "on this machine (the URL fetch is skipped: kubesim pods serve no HTTP)")
    p.add_argument("--postgres-host", default=env("E2E_POSTGRES_HOST", "127.0.0.1"),
                   help="--dry-run: the PostgreSQL server standing in for the shared one (default %(default)s)")
    args = p.parse_args(argv)
    if not args.dry_run and not args.kubeconfig:
        args.kubeconfig = env("KUBECONFIG")
    if args.dry_run and not args.base_domain:
        args.base_domain = "apps.e2e.test"
    missing = [flag for flag, value in (("--url", args.url), ("--operator-token", args.operator_token),
                                        ("--user-token", args.user_token), ("--org", args.org),
                                        ("--base-domain", args.base_domain)) if not value]
    if not args.kubeconfig and not args.dry_run:
        missing.append("--kubeconfig")
    if missing:
        p.error(f"missing {', '.join(missing)} (or their environment variables)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config(url=args.url, operator_token=args.operator_token, user_token=args.user_token, org=args.org,
                 kubeconfig=args.kubeconfig or "", base_domain=args.base_domain, cluster_name=args.cluster_name,
                 resolve_ip=args.resolve_ip, dry_run=args.dry_run, bootstrap_timeout=args.bootstrap_timeout,
                 deploy_timeout=args.deploy_timeout)
    if not args.dry_run:
        outcome = EndToEnd(cfg, sys.stdout).run()
    else:
        from e2e.dryrun import SimulatedCluster

        cluster = SimulatedCluster(args.kubeconfig or "", args.postgres_host)
        outcome = None
        try:
            cfg.kubeconfig = cluster.start()
            outcome = EndToEnd(cfg, sys.stdout, after_install=cluster.run_agent_pod).run()
            print(f"(dry run: the agent ran as {cluster.agent_identity})")
        finally:
            keep = outcome is None or outcome.failed is not None
            cluster.stop(keep_log=keep)
            if keep:
                print(f"(dry run: the agent's log is kept in {cluster.agent_log})")
    print()
    print(table(outcome))
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
