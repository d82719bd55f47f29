"""DRF authentication with personal API tokens: `Authorization: Bearer paas_...`."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.services import authenticate_api_token
from lib.throttles import BadTokenThrottle


class APITokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>' with exactly one token.")
        token = authenticate_api_token(parts[1])
        if token is None:
            throttle = BadTokenThrottle()
            if not throttle.allow_request(request, None):
                raise exceptions.Throttled(throttle.wait(), detail="Too many invalid API tokens from this address.")
            raise exceptions.AuthenticationFailed("This API token is not valid, expired or was revoked.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class APITokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer token in the OpenAPI schema."""

    target_class = APITokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token: `paas_...`."}
