"""Settings come from the environment and malformed values stop the start-up with a clear error."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from paas.env import env_bool, env_header, env_int, env_list, env_rate, env_secret, env_url


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


def test_it_refuses_to_start_with_a_backup_schedule_cloudnativepg_would_refuse():
    result = _start({"PAAS_BACKUP_SCHEDULE": "0 3 * * *"})  # five fields: CNPG's cron starts with seconds
    assert result.returncode != 0
    assert "PAAS_BACKUP_SCHEDULE='0 3 * * *' must be a six-field cron expression, seconds first" in result.stderr
    result = _start({"PAAS_BACKUP_RETENTION": "30 days"})
    assert result.returncode != 0 and "PAAS_BACKUP_RETENTION='30 days' must be a number of days" in result.stderr
    assert _start({"PAAS_BACKUP_SCHEDULE": "0 0 4 * * 1", "PAAS_BACKUP_RETENTION": "4w"}).stdout.strip() == "started"


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "k7#vQ9!xR2@mL5$wP8^nT3&jH6*bF1(zD4)cY0-sG" + "u" * 10,
              "PAAS_ENCRYPTION_KEY": Fernet.generate_key().decode(), "ALLOWED_HOSTS": "paas.example.com",
              "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https"}


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "paas.settings"}
    return subprocess.run([sys.executable, str(settings.BASE_DIR / "manage.py"), *args], env={**base, **env},
                          capture_output=True, text=True, check=False)


def test_the_deployment_check_is_clean_with_production_settings():
    result = _manage(PRODUCTION, "check", "--deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    # Clean: Django's deployment checks and drf-spectacular's schema warnings (which it reports here too).
    assert re.findall(r"\(([a-z_]+\.[A-Z]\d+)\)", result.stdout + result.stderr) == []
    assert "System check identified no issues" in result.stdout
    assert "security." not in result.stdout + result.stderr
    # And it does find something when production is misconfigured (the check is real).
    result = _manage({**PRODUCTION, "SECURE_SSL_REDIRECT": "false"}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0 and "security.W008" in result.stderr + result.stdout


def test_production_settings_come_from_the_environment():
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
            "s.REST_FRAMEWORK['NUM_PROXIES'], s.ALLAUTH_TRUSTED_PROXY_COUNT)")
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "paas.settings"}
    result = subprocess.run([sys.executable, "-c", code], env={**base, **PRODUCTION, "TRUSTED_PROXY_COUNT": "1"},
                            capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["('HTTP_X_FORWARDED_PROTO',", "'https')", "True", "31536000", "True", "1", "1"]


def test_a_developer_machine_serves_plain_http(settings):
    # bin/run and the test suite run with DEBUG's default (true): no redirect, no HSTS, no proxy header.
    assert not settings.SECURE_SSL_REDIRECT and settings.SECURE_HSTS_SECONDS == 0
    assert settings.SECURE_PROXY_SSL_HEADER is None


@pytest.mark.parametrize(
    ("name", "value", "call", "message"),
    [
        ("X_HEADER", "X-Forwarded-Proto", lambda: env_header("X_HEADER"), "must look like 'X-Forwarded-Proto: https'"),
        ("X_HEADER", "X Proto: https", lambda: env_header("X_HEADER"), "must look like"),
        ("X_RATE", "60 per minute", lambda: env_rate("X_RATE", "1/s"), "must look like 60/minute"),
    ],
)
def test_it_rejects_malformed_proxy_headers_and_rates(monkeypatch, name, value, call, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        call()
