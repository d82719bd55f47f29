"""Pages for organizations, members, invitations, SSH keys and API tokens. Thin: parse the
form, reach objects through accounts.access, call accounts.services, render."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import services
from accounts.access import (
    get_api_token_for_user,
    get_invitation_for_user,
    get_member_for_user,
    get_organization_for_user,
    get_ssh_key_for_user,
)
from accounts.forms import APITokenForm, InviteForm, OrganizationForm, RoleForm, SSHKeyForm
from accounts.models import Role
from lib.pagination import page_of, search


def _error(request: HttpRequest, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("account_login")
    org = services.ensure_personal_organization(request.user)
    first = request.user.memberships.select_related("organization").order_by("-organization__personal").first()
    return redirect("org_home", org_slug=(first.organization if first else org).slug)


@login_required
def organization_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        org = services.create_organization(request.user, form.cleaned_data["name"])
        messages.success(request, f"Organization {org.name} created.")
        return redirect("org_home", org_slug=org.slug)
    return render(request, "accounts/organization_form.html", {"form": form})


@login_required
def org_home(request: HttpRequest, org_slug: str) -> HttpResponse:
    org, membership = get_organization_for_user(request.user, org_slug)
    return render(request, "accounts/org_home.html", {"org": org, "membership": membership})


@login_required
def org_settings(request: HttpRequest, org_slug: str) -> HttpResponse:
    org, membership = get_organization_for_user(request.user, org_slug, "manage_organization")
    form = OrganizationForm(request.POST or None, initial={"name": org.name})
    if request.method == "POST" and form.is_valid():
        services.rename_organization(membership, form.cleaned_data["name"])
        messages.success(request, "Organization renamed.")
        return redirect("org_settings", org_slug=org.slug)
    return render(request, "accounts/org_settings.html", {"org": org, "membership": membership, "form": form})


@login_required
def members(request: HttpRequest, org_slug: str) -> HttpResponse:
    org, membership = get_organization_for_user(request.user, org_slug)
    form = InviteForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                issued = services.invite(membership, form.cleaned_data["email"], form.cleaned_data["role"],
                                         base_url=request.build_absolute_uri("/"))
            except ValidationError as exc:
                _error(request, exc)
            else:
                messages.success(request, f"Invitation sent to {issued.invitation.email}.")
                return redirect("members", org_slug=org.slug)
    memberships, q = search(request, org.memberships.select_related("user").order_by("user__email"), "user__email")
    context = {
        "org": org,
        "membership": membership,
        "memberships": page_of(request, memberships),
        "q": q,
        "invitations": org.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True),
        "form": form,
        "roles": Role.choices,
    }
    return render(request, "accounts/members.html", context)


@login_required
@require_POST
def member_role(request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
    target, mine = get_member_for_user(request.user, org_slug, membership_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.change_role(mine, target, form.cleaned_data["role"])
            messages.success(request, f"{target.user} is now {target.get_role_display()}.")
        except ValidationError as exc:
            _error(request, exc)
    return redirect("members", org_slug=org_slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
    target, mine = get_member_for_user(request.user, org_slug, membership_id)
    try:
        services.remove_member(mine, target)
    except ValidationError as exc:
        _error(request, exc)
        return redirect("members", org_slug=org_slug)
    if target.pk == mine.pk:
        messages.success(request, f"You left {mine.organization.name}.")
        return redirect("home")
    messages.success(request, f"{target.user} was removed.")
    return redirect("members", org_slug=org_slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, org_slug: str, invitation_id: int) -> HttpResponse:
    invitation, mine = get_invitation_for_user(request.user, org_slug, invitation_id)
    services.revoke_invitation(mine, invitation)
    messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("members", org_slug=org_slug)


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the invitation e-mail. Anonymous visitors are sent to log in or sign up."""
    found = services.find_invitation(token)
    if not request.user.is_authenticated:
        return render(request, "accounts/invitation.html", {"invitation": found, "next": request.path})
    if request.method == "POST":
        try:
            membership = services.accept_invitation(request.user, token)
        except ValidationError as exc:
            _error(request, exc)
            return render(request, "accounts/invitation.html", {"invitation": found}, status=400)
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("org_home", org_slug=membership.organization.slug)
    return render(request, "accounts/invitation.html", {"invitation": found})


@login_required
def ssh_keys(request: HttpRequest) -> HttpResponse:
    form = SSHKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key = services.add_ssh_key(request.user, form.cleaned_data["name"], form.cleaned_data["public_key"])
        except ValidationError as exc:
            form.add_error("public_key", exc)
        else:
            messages.success(request, f"SSH key {key.name} added ({key.fingerprint}).")
            return redirect("ssh_keys")
    keys = request.user.ssh_keys.all()
    return render(request, "accounts/ssh_keys.html", {"form": form, "keys": keys})


@login_required
@require_POST
def ssh_key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_ssh_key_for_user(request.user, key_id)
    services.remove_ssh_key(request.user, key)
    messages.success(request, f"SSH key {key.name} deleted.")
    return redirect("ssh_keys")


@login_required
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = APITokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data.get("expires_in_days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        token, new_token = services.create_api_token(request.user, form.cleaned_data["name"], expires_at)
        form = APITokenForm()
    tokens = request.user.api_tokens.all()
    return render(request, "accounts/api_tokens.html", {"form": form, "tokens": tokens, "new_token": new_token})


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_api_token_for_user(request.user, token_id)
    services.revoke_api_token(token)
    messages.success(request, f"Token {token.name} revoked; requests using it now fail.")
    return redirect(reverse("api_tokens"))
