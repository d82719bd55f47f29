"""Compose -> Kubernetes: a pure converter for untrusted docker-compose files, and the tenant
namespace policy rendered with every release. No I/O: callers pass file contents in.

Public API (other apps use only these names):
    render_project(compose_text, ctx) -> RenderResult   # raises ComposeRefusal
    validate_compose(compose_text, ctx) -> RenderResult # same checks, for the editor
    RenderContext, RenderResult, PlanLimits, ComposeRefusal, Problem, namespace_for
See docs/compose.md for the mapping and the decisions behind it.
"""

from .context import PlanLimits, RenderContext, RenderResult, ServiceSummary, SleepSettings, namespace_for
from .problems import ComposeRefusal, Problem
from .render import render_project, validate_compose

__all__ = [
    "ComposeRefusal",
    "PlanLimits",
    "Problem",
    "RenderContext",
    "SleepSettings",
    "RenderResult",
    "ServiceSummary",
    "namespace_for",
    "render_project",
    "validate_compose",
]
