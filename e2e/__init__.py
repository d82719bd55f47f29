"""bin/e2e-k3s: the whole product against a disposable K3s, step by step, with timings (docs/e2e-k3s.md).

`e2e.run` holds the steps; they reach the control plane only through its REST API and the cluster only
through a kubeconfig. `e2e.dryrun` stands in for what a K3s runs by itself (the agent's pod, the
CloudNativePG operator, Garage) so the same steps run against kubesim in the test suite.
"""
