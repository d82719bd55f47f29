"""Events that come from signals: authentication (Django's and allauth's) and the accounts app's security events
(accounts.signals.security_event: accounts sits below audit and does not call it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allauth.account.signals import password_changed, password_reset
from allauth.mfa.signals import (
    authentication_failed,
    authenticator_added,
    authenticator_removed,
    authenticator_reset,
)
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import models
from django.dispatch import receiver

from accounts.models import Organization, User
from accounts.signals import security_event
from audit.services import Action, record


@receiver(user_logged_in)
def record_login(sender, request, user: User, **kwargs: Any) -> None:
    record(Action.LOGIN, actor=user, request=request)


@receiver(user_login_failed)
def record_login_failed(sender, credentials: dict[str, Any], request=None, **kwargs: Any) -> None:
    # The actor is whoever typed the login; the account it names (if any) is the target. Never the password.
    login = str(credentials.get("email") or credentials.get("username") or credentials.get("login") or "")
    account = User.objects.filter(email__iexact=login).first() if login else None
    record(Action.LOGIN_FAILED, actor=None, actor_label=login, request=request, target=account)


@receiver(authentication_failed)
def record_second_factor_failed(sender, request, user: User, authenticator, reauthentication: bool = False,
                                **kwargs: Any) -> None:
    # The password was right but the code was not: the account is the target, the actor is still unproven.
    record(Action.LOGIN_FAILED, actor=None, actor_label=user.email, request=request, target=user,
           details={"factor": authenticator.type, "reauthentication": reauthentication})


def _mfa_changed(change: str, request, user: User, authenticator) -> None:
    record(Action.MFA_CHANGED, actor=user, request=request, target=user,
           details={"change": change, "type": authenticator.type})


@receiver(authenticator_added)
def record_mfa_added(sender, request, user: User, authenticator, **kwargs: Any) -> None:
    _mfa_changed("added", request, user, authenticator)


@receiver(authenticator_removed)
def record_mfa_removed(sender, request, user: User, authenticator, **kwargs: Any) -> None:
    _mfa_changed("removed", request, user, authenticator)


@receiver(authenticator_reset)
def record_mfa_reset(sender, request, user: User, authenticator, **kwargs: Any) -> None:
    _mfa_changed("reset", request, user, authenticator)


@receiver(password_changed)
def record_password_changed(sender, request, user: User, **kwargs: Any) -> None:
    record(Action.PASSWORD_CHANGED, actor=user, request=request, target=user, details={"how": "changed"})


@receiver(password_reset)
def record_password_reset(sender, request, user: User, **kwargs: Any) -> None:
    record(Action.PASSWORD_CHANGED, actor=user, request=request, target=user, details={"how": "reset by e-mail"})


@receiver(security_event, dispatch_uid="audit.accounts_security_event")
def record_accounts_event(sender, action: str, actor: User | None, organization: Organization | None = None,
                          target: models.Model | None = None, details: Mapping[str, Any] | None = None,
                          **kwargs: Any) -> None:
    record(action, actor=actor, organization=organization, target=target, details=details)
