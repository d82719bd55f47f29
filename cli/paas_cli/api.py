"""A thin client of the public REST API (/api/v1/) and its WebSockets, with errors a person can read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import click
import httpx
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from paas_cli import __version__
from paas_cli.config import Login

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class APIError(click.ClickException):
    """An HTTP error answered by the API, shown with the API's own message; exit status 1."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _message(response: httpx.Response) -> str:
    """The API's words: DRF's {"detail": ...}, our refusals' {"detail", "problems"}, or field errors."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text and "<html" not in text.lower() else response.reason_phrase
    if isinstance(body, dict):
        parts = []
        if "detail" in body:
            parts.append(str(body["detail"]))
        for problem in body.get("problems") or []:
            where = ".".join(str(problem[k]) for k in ("service", "key") if problem.get(k))
            parts.append(f"  - {where + ': ' if where else ''}{problem.get('message')}")
        for field, errors in body.items():
            if field not in ("detail", "code", "problems"):
                errors = errors if isinstance(errors, list) else [errors]
                parts.append(f"{field}: {' '.join(str(e) for e in errors)}")
        if parts:
            return "\n".join(parts)
    if isinstance(body, list):
        return " ".join(str(e) for e in body)
    return str(body)


def path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts) + "/"


class Client:
    def __init__(self, login: Login) -> None:
        self.login = login
        self.http = httpx.Client(base_url=login.url + "/api/v1/", timeout=TIMEOUT, headers={
            "Authorization": f"Bearer {login.token}", "Accept": "application/json",
            "User-Agent": f"paas-cli/{__version__}"})

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise APIError(f"cannot reach {self.login.url}: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            message = _message(response)
            if response.status_code == 401:
                message += " Run `paas login` with a valid token."
            raise APIError(f"{message} (HTTP {response.status_code})", response.status_code)
        return response

    def get(self, url: str, **params: Any) -> Any:
        return self.request("GET", url, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, url: str, body: dict[str, Any] | None = None) -> Any:
        response = self.request("POST", url, json=body or {})
        return response.json() if response.content else None

    def delete(self, url: str, **params: Any) -> None:
        self.request("DELETE", url, params=params)

    def list(self, url: str, **params: Any) -> list[Any]:
        return list(self.iterate(url, **params))

    def iterate(self, url: str, **params: Any) -> Iterator[Any]:
        """Every item of a list endpoint: a plain list, {"results": [...]}, or pages linked by `next`."""
        page: Any = self.get(url, **params)
        while True:
            if isinstance(page, list):
                yield from page
                return
            yield from page.get("results", [])
            following = page.get("next")
            if not following:
                return
            page = self.request("GET", following).json()  # an absolute URL: httpx ignores base_url for it

    # --- WebSockets ------------------------------------------------------------------------------

    def socket(self, ws_path: str, query: list[tuple[str, str]] | None = None) -> ClientConnection:
        """A socket authenticated with the API token (no session, no Origin: see accounts/ws_auth.py)."""
        base = self.login.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        url = f"{base}/{ws_path}" + (f"?{urlencode(query)}" if query else "")
        try:
            return connect(url, additional_headers={"Authorization": f"Bearer {self.login.token}"},
                           open_timeout=20, max_size=None, user_agent_header=f"paas-cli/{__version__}")
        except InvalidStatus as exc:
            raise APIError(f"the server refused the connection (HTTP {exc.response.status_code}): the token is not "
                           "valid, or you may not use this", exc.response.status_code) from None
        except (OSError, InvalidURI, TimeoutError) as exc:
            raise APIError(f"cannot open {url}: {exc}") from None
