from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return settings.ACCOUNT_SIGNUP_OPEN

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth counts failed logins per IP and per this key, and refuses even the right password once the
        # key's limit is reached: keyed by address alone, a stranger could lock anyone out. Keyed by address
        # *and* client IP, guessing from one place is still limited (ACCOUNT_RATE_LIMITS["login_failed"]),
        # while the owner, from anywhere else, logs in as usual. (allauth 65's hook for this key; pinned.)
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}:{self.get_client_ip(request)}"
