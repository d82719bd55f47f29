"""apiserver-shaped failures: every error the emulator answers is a `kind: Status` body."""

from __future__ import annotations

from typing import Any

from kubesim.resources import ResourceType

_CODES = {
    "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "MethodNotAllowed": 405,
    "NotAcceptable": 406, "AlreadyExists": 409, "Conflict": 409, "Gone": 410, "Expired": 410,
    "RequestEntityTooLarge": 413, "UnsupportedMediaType": 415, "Invalid": 422, "InternalError": 500,
}


class ApiError(Exception):
    def __init__(self, reason: str, message: str, *, code: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code or _CODES[reason]
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    d.update(extra)
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError("NotFound", f'{rt.group_resource} "{name}" not found', details=_details(rt, name))


def namespace_not_found(name: str) -> ApiError:
    return ApiError("NotFound", f'namespaces "{name}" not found', details={"name": name, "kind": "namespaces"})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError("AlreadyExists", f'{rt.group_resource} "{name}" already exists', details=_details(rt, name))


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError("Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    details=_details(rt, name))


def invalid(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> ApiError:
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    return ApiError("Invalid", f'{qualified} "{name}" is invalid: {summary}',
                    details={**_details(rt, name, kind=rt.kind), "causes": causes})


def bad_request(message: str) -> ApiError:
    return ApiError("BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError("MethodNotAllowed", message, details={})


def resource_not_found() -> ApiError:
    return ApiError("NotFound", "the server could not find the requested resource", details={})
