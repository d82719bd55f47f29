"""Create the operator (a superuser) on first run and print how to log in.

OPERATOR_EMAIL and OPERATOR_PASSWORD set the login; without a password a one-time random one
is generated and printed once. An existing operator is left alone.
"""

from __future__ import annotations

import os
import secrets

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import ensure_personal_organization


class Command(BaseCommand):
    help = "Create the operator account if there is none, and print its login."

    def handle(self, *args, **options) -> None:
        email = os.environ.get("OPERATOR_EMAIL", "operator@localhost")
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing:
            self.stdout.write(f"Operator: {existing.email} (password unchanged)")
            return
        password = os.environ.get("OPERATOR_PASSWORD") or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username="operator", email=email, password=password)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        ensure_personal_organization(user)
        shown = password if "OPERATOR_PASSWORD" not in os.environ else "(from OPERATOR_PASSWORD)"
        self.stdout.write(self.style.SUCCESS(f"Operator created: {email} / {shown}"))
        self.stdout.write("Store this password now; it is not shown again.")
