"""REST API rate limits (DRF throttles) whose rates are read from settings at request time, so tests and
deployments can change them (DRF's own classes copy the rates once, at import)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


class AnonThrottle(AnonRateThrottle):
    """Requests without credentials, per client IP (API_THROTTLE_ANON)."""

    def get_rate(self) -> str:
        return settings.API_THROTTLE_ANON


class UserThrottle(UserRateThrottle):
    """Requests of one signed-in user or API token owner (API_THROTTLE_USER)."""

    def get_rate(self) -> str:
        return settings.API_THROTTLE_USER


class BadTokenThrottle(SimpleRateThrottle):
    """Refused API tokens, per client IP (API_THROTTLE_BAD_TOKEN): guessing tokens ends in 429, not endless 401s.

    Authentication fails before DRF looks at throttles, so the authentication class asks this one itself.
    """

    scope = "bad_token"

    def get_rate(self) -> str:
        return settings.API_THROTTLE_BAD_TOKEN

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
