"""Signals the clusters app sends.

observed_changed: the agent reported a namespace's observed state (kwargs cluster_id, namespace,
state; state is None when the namespace is gone). Sent in the saving transaction; the projects
app folds it into its services' status.
"""

from __future__ import annotations

from django.dispatch import Signal

observed_changed = Signal()
