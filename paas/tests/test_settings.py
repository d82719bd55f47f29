"""Settings come from the environment and malformed values stop the start-up with a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from paas.env import env_bool, env_int, env_list, env_secret, env_url


def test_it_reads_typed_values(monkeypatch, tmp_path):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example,")
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_bool("X_BOOL", False) is True
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env_secret("X_SECRET") == "s3cret"


@pytest.mark.parametrize(
    ("name", "value", "call", "message"),
    [
        ("X_BOOL", "maybe", lambda: env_bool("X_BOOL", False), "is not a boolean"),
        ("X_INT", "12abc", lambda: env_int("X_INT", 1), "is not a whole number"),
        ("X_INT", "-1", lambda: env_int("X_INT", 1, minimum=0), "must be at least 0"),
        ("X_URL", "localhost:6379", lambda: env_url("X_URL", "", schemes=("redis",)), "must be a URL"),
        ("X_SECRET_FILE", "/nonexistent/secret", lambda: env_secret("X_SECRET"), "cannot be read"),
    ],
)
def test_it_rejects_malformed_values_naming_the_setting(monkeypatch, name, value, call, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message) as exc:
        call()
    assert name in str(exc.value)


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); print('started')"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "paas.settings"}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                          check=False)


def test_it_requires_a_secret_key_when_debug_is_off():
    result = _start({"DEBUG": "false"})
    assert result.returncode != 0 and "SECRET_KEY is required when DEBUG is off" in result.stderr
    production = {"DEBUG": "false", "SECRET_KEY": "x" * 50, "PAAS_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    assert _start(production).stdout.strip() == "started"
    result = _start({**production, "PAAS_ENCRYPTION_KEY": ""})
    assert result.returncode != 0 and "PAAS_ENCRYPTION_KEY is required when DEBUG is off" in result.stderr


def test_it_refuses_to_start_with_a_malformed_setting():
    result = _start({"EMAIL_PORT": "twenty-five"})
    assert result.returncode != 0 and "EMAIL_PORT='twenty-five' is not a whole number" in result.stderr
