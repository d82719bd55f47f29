"""Signals billing sends.

organization_suspended / organization_resumed are sent exactly once per transition, inside the
transaction that records it (a SuspensionRecord), with kwargs `organization` and `record`.
Receivers (the projects app: scale every service to zero and refuse wake-ups / restore the replicas
it saved) write their own state in that transaction and queue side effects with
transaction.on_commit. A receiver that raises is logged and its writes are rolled back, but the
transition stands: reconcile from billing.suspension.is_suspended().
"""

from __future__ import annotations

from django.dispatch import Signal

organization_suspended = Signal()
organization_resumed = Signal()
