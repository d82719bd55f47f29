"""{% ssh_command project service_name %} and {% ssh_host_fingerprint %} for pages that tell users how to connect."""

from __future__ import annotations

from django import template
from django.conf import settings

from projects.access import ssh_login_prefix
from projects.models import Project
from sshgateway.hostkey import host_key_fingerprint

register = template.Library()


def command_for(login: str) -> str:
    port = "" if settings.SSH_PUBLIC_PORT == 22 else f"-p {settings.SSH_PUBLIC_PORT} "
    return f"ssh {port}{login}@{settings.SSH_PUBLIC_HOST}"


@register.simple_tag(takes_context=True)
def ssh_command(context: template.Context, project: Project, service_name: str) -> str:
    # One query per page, not one per service: the prefix depends on the user and the project only.
    key = ("ssh_login_prefix", project.pk)
    if key not in context.render_context:
        context.render_context[key] = ssh_login_prefix(context["request"].user, project)
    return command_for(context.render_context[key] + service_name)


@register.simple_tag
def ssh_example_command() -> str:
    return command_for("<project>.<service>")


@register.simple_tag
def ssh_host_fingerprint() -> str:
    return host_key_fingerprint()
