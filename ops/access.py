"""Who may read the operators' endpoints: /metrics, and the details behind /readyz.

Not public by default: a scraper presents METRICS_TOKEN as a bearer token, or comes from one of
METRICS_ALLOWED_NETWORKS (the client address as the rate limits see it, so TRUSTED_PROXY_COUNT applies).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest

from audit.services import client_ip


def may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header.removeprefix("Bearer ").strip(), token):
        return True
    address = client_ip(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)
