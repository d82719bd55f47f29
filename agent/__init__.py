"""The in-cluster agent: dials out to the control plane and applies what it is told.

Layers (each imports only the ones below it):
    agent.__main__   command line, wiring, signals
    agent.handlers   small functions, one per operation
    agent.reconcile  apply_project / delete_project       agent.observe  watches -> observed state
    agent.k8s        the only module that talks to Kubernetes (official client)
    agent.tunnel     transport, framing, heartbeats, reconnect, streams (knows nothing of Kubernetes)
    agent.protocol   message shapes and constants shared with the control plane (no dependencies)
"""

__version__ = "0.1.0"
