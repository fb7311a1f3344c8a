"""Slipway settings, read from the environment.

Every value has a safe local default except the ones that must never default in production
(SECRET_KEY when DEBUG is off). See `.env.example` for the full list.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SLIPWAY_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or read from the file that NAME_FILE names (container secrets, Key Vault mounts).

    Setting both is refused, so that nobody wonders which one is in force.
    """
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        if os.environ.get(name):
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both")
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names {path!r}, which cannot be read: {exc.strerror}") from None
    return os.environ.get(name, default)


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")  # or SECRET_KEY_FILE
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) in the environment (production), "
            "or DEBUG=1 for local development, which uses a fixed development key."
        )
    SECRET_KEY = "django-insecure-slipway-local-development-only"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # the audit trail's full-text index and search (a no-op on SQLite)
    "django_htmx",
    "django_rq",
    "axes",  # login throttling (see "Sign-in" below)
    "portal",
    # From the bottom layer up (docs/architecture.md, "Layers").
    "releases.audit",
    "releases.catalog",
    "releases.approvals",
    "strategies.operations",
    "strategies.flags",
    "strategies.experiments",
    "strategies",  # migration history only
    "releases.webhooks",
    "releases.history",
    "portal.api",
    "portal.signon",
]

MIDDLEWARE = [
    # First: the request id, one log line and the request metrics per request (docs/deployment.md).
    "portal.observability.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The key-authenticated APIs that applications call per request skip the rest (portal/shortcut.py).
    "portal.shortcut.KeyedApiShortcut",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.core.timezones.UserTimezoneMiddleware",
    "releases.audit.middleware.AuditContextMiddleware",
    # A DomainError no view caught: the 4xx page its code names, never a 500 (portal/errors_middleware.py).
    "portal.errors_middleware.DomainErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into the locked-out page
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.core.roles.roles_context",
                "portal.pages.context_processors.approvals_waiting",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# Default: a SQLite file under the git-ignored var/ directory, so a fresh clone runs with nothing else.
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'slipway.sqlite3'}")
try:
    # Health checks: a persistent connection (DB_CONN_MAX_AGE) that died with a failover is replaced before
    # a request uses it, rather than answering that request with a 500.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0), conn_health_checks=True
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Slipway understands: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the RQ worker use the same file at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and background jobs ------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_DEFAULT_TIMEOUT = env_int("RQ_DEFAULT_TIMEOUT", 600)
# One Redis, three queues: operations (cut-overs; never starved by housekeeping), notifications, default.
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": RQ_DEFAULT_TIMEOUT}
    for name in ("operations", "notifications", "default")
}
RQ = {
    "COMMIT_MODE": "on_db_commit",
    # RQ's forking worker plus job counts/durations for /metrics (portal.observability).
    "WORKER_CLASS": env_str("RQ_WORKER_CLASS", "portal.observability.MetricsWorker"),
}
RQ_SHOW_ADMIN_LINK = True

# --- Auth ---------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 8)  # seconds a session lives after its last change
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True

# --- Sign-in: single sign-on (OpenID Connect), sessions, login throttling ----------------------------------
# Read with docs/deployment-security.md. Local accounts always work (bootstrap and break-glass); single
# sign-on is on when OIDC_ISSUER is set, and then needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (or _FILE).
# Endpoints and signing keys come from the issuer's discovery document (portal.signon.oidc); ID tokens are checked
# for signature (RS256 against the JWKS), issuer, audience, expiry and nonce; groups map to roles.
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
# Lax, not Strict: the identity provider's redirect back to /oidc/callback/ must carry the session cookie.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if SESSION_COOKIE_AGE < 60:
    raise ImproperlyConfigured(f"SESSION_COOKIE_AGE must be at least 60 seconds, not {SESSION_COOKIE_AGE}")

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username + address before any check
    "django.contrib.auth.backends.ModelBackend",  # local accounts
    "portal.signon.oidc.SlipwayOIDCBackend",  # answers only on /oidc/callback/ with a code, and only when configured
]

OIDC_ISSUER = env_str("OIDC_ISSUER").rstrip("/")
OIDC_ENABLED = bool(OIDC_ISSUER)
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_secret("OIDC_CLIENT_SECRET")  # or OIDC_CLIENT_SECRET_FILE
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid profile email")
OIDC_GROUP_CLAIM = env_str("OIDC_GROUP_CLAIM", "groups")
OIDC_BUTTON_LABEL = env_str("OIDC_BUTTON_LABEL", "Sign in with Microsoft")
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)  # seconds for each call to the issuer
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 60)
OIDC_DISCOVERY_CACHE_SECONDS = env_int("OIDC_DISCOVERY_CACHE_SECONDS", 3600)
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_STORE_ACCESS_TOKEN = False
OIDC_STORE_ID_TOKEN = False
OIDC_OP_LOGOUT_URL_METHOD = "portal.signon.oidc.provider_logout_url"
OIDC_ROLE_NAMES = ("viewer", "approver", "release_manager", "admin")


def _oidc_role_map(raw: str) -> dict[str, frozenset[str]]:
    """`"<group>=approver,<group>=release_manager"` → {group: {roles}}; a group may be named twice."""
    mapping: dict[str, set[str]] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        group, sep, role = item.rpartition("=")
        role = role.strip().lower().replace(" ", "_")
        if not sep or not group.strip() or role not in OIDC_ROLE_NAMES:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_MAP entries are <group id or name>=<{'|'.join(OIDC_ROLE_NAMES)}>, not {item!r}"
            )
        mapping.setdefault(group.strip(), set()).add(role)
    return {group: frozenset(roles) for group, roles in mapping.items()}


OIDC_ROLE_MAP = _oidc_role_map(env_str("OIDC_ROLE_MAP"))
if OIDC_ENABLED:
    if not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
        raise ImproperlyConfigured("OIDC_ISSUER is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (or _FILE) too")
    from urllib.parse import urlsplit as _urlsplit

    _issuer = _urlsplit(OIDC_ISSUER)
    if not (_issuer.scheme == "https" or (_issuer.scheme == "http" and _issuer.hostname in {"127.0.0.1", "localhost"})):
        raise ImproperlyConfigured(f"OIDC_ISSUER must be an https:// URL, not {OIDC_ISSUER!r}")

# Login throttling (django-axes): AXES_FAILURE_LIMIT failed passwords for one username from one address lock
# that pair out for AXES_COOLOFF_MINUTES; a successful sign-in resets the count. The locked-out page says so.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_MINUTES = env_int("AXES_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured("AXES_FAILURE_LIMIT and AXES_COOLOFF_MINUTES must be at least 1")
from datetime import timedelta as _timedelta  # noqa: E402

AXES_COOLOFF_TIME = _timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.signon.security.locked_out"  # templates/registration/locked_out.html
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Quiet: no banner on every start (it would land in the stdout of management commands); failures are still logged.
AXES_VERBOSE = env_bool("AXES_VERBOSE", False)
# Behind TLS-terminating proxies (App Service, Front Door) the client is the AXES_TRUSTED_PROXY_COUNT-th
# address from the right of X-Forwarded-For; 0 (the default) uses the connection's address.
AXES_TRUSTED_PROXY_COUNT = env_int("AXES_TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "portal.signon.security.client_ip"

# --- Security headers (production values whenever DEBUG is off) ---------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Behind Azure Front Door / App Service the TLS terminator sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# --- Email --------------------------------------------------------------------------------------
# Django 6.1 mailers, configured from the usual EMAIL_* variables: SMTP in production, the console
# (mail printed to the log) when DEBUG is on.
_email_backend = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
_email_options: dict[str, object] = {}
if _email_backend == "django.core.mail.backends.smtp.EmailBackend":
    _email_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_secret("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": env_int("EMAIL_TIMEOUT", 20),
    }
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Slipway <slipway@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- I18N / time --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")  # display zone; storage is always UTC
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise, so gunicorn alone serves the portal) ----------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Slipway ------------------------------------------------------------------------------------
SLIPWAY_DEFAULT_PROVIDER = env_str("SLIPWAY_DEFAULT_PROVIDER", "simulator")

# Approvals: how often the periodic jobs of releases/cron.py look for lapsed requests and for
# requests to remind approvers of, and how notifications are retried (seconds between attempts).
APPROVAL_EXPIRY_SWEEP_SECONDS = env_int("APPROVAL_EXPIRY_SWEEP_SECONDS", 60)
APPROVAL_REMINDER_SWEEP_SECONDS = env_int("APPROVAL_REMINDER_SWEEP_SECONDS", 300)
try:
    NOTIFICATION_RETRY_INTERVALS = [int(s) for s in env_list("NOTIFICATION_RETRY_INTERVALS", ["30", "120", "600"])]
except ValueError:
    raise ImproperlyConfigured(
        "NOTIFICATION_RETRY_INTERVALS must be comma-separated whole seconds, e.g. 30,120,600"
    ) from None
if any(seconds < 0 for seconds in NOTIFICATION_RETRY_INTERVALS):
    raise ImproperlyConfigured("NOTIFICATION_RETRY_INTERVALS must not be negative")
NOTIFICATION_WEBHOOK_TIMEOUT = env_int("NOTIFICATION_WEBHOOK_TIMEOUT", 10)

# Outgoing webhooks (releases.webhooks): seconds between delivery attempts (exponential backoff; one
# retry per entry) and the HTTP timeout of one attempt.
try:
    WEBHOOK_RETRY_INTERVALS = [int(s) for s in env_list("WEBHOOK_RETRY_INTERVALS", ["10", "60", "300", "1800", "7200"])]
except ValueError:
    raise ImproperlyConfigured(
        "WEBHOOK_RETRY_INTERVALS must be comma-separated whole seconds, e.g. 10,60,300,1800,7200"
    ) from None
if any(seconds < 0 for seconds in WEBHOOK_RETRY_INTERVALS):
    raise ImproperlyConfigured("WEBHOOK_RETRY_INTERVALS must not be negative")
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 10)

# Operations (strategies.operations.engine). A runner beats for its claim every OPERATION_HEARTBEAT_SECONDS
# from a thread of its own; one silent for OPERATION_HEARTBEAT_STALE_SECONDS is dead, and the recovery pass
# (every OPERATION_RECOVERY_SWEEP_SECONDS from rqcron, at each worker's start, and `manage.py
# recover_operations`) hands its operation to a new job: with the defaults within 15 + 5 s of the death.
# The same pass runs a wake-up still scheduled OPERATION_WAKE_UP_GRACE_SECONDS past its time (no RQ scheduler
# is moving jobs: the one holding the lock died, and another takes over only after two minutes).
# Waits shorter than OPERATION_INLINE_WAIT_SECONDS are slept in the worker (RQ schedules to the second); longer
# ones are re-enqueued for later so no worker is held. A step interrupted by a crash this many times is not
# tried again and the operation rolls back; an undo step is run up to OPERATION_UNDO_ATTEMPTS times.
# One run of the job hands back between steps after OPERATION_RUN_BUDGET_SECONDS, and a provider call retries
# transient errors for at most OPERATION_CALL_BUDGET_SECONDS, so that RQ's timeout for the job
# (OPERATION_JOB_TIMEOUT_SECONDS) is never what ends a step.
OPERATION_HEARTBEAT_SECONDS = env_float("OPERATION_HEARTBEAT_SECONDS", 5.0)
OPERATION_HEARTBEAT_STALE_SECONDS = env_int("OPERATION_HEARTBEAT_STALE_SECONDS", 15)
OPERATION_RECOVERY_SWEEP_SECONDS = env_int("OPERATION_RECOVERY_SWEEP_SECONDS", 5)
OPERATION_WAKE_UP_GRACE_SECONDS = env_float("OPERATION_WAKE_UP_GRACE_SECONDS", 3.0)
OPERATION_INLINE_WAIT_SECONDS = env_float("OPERATION_INLINE_WAIT_SECONDS", 2.0)
OPERATION_MAX_STEP_RUNS = env_int("OPERATION_MAX_STEP_RUNS", 3)
OPERATION_UNDO_ATTEMPTS = env_int("OPERATION_UNDO_ATTEMPTS", 4)
OPERATION_RUN_BUDGET_SECONDS = env_float("OPERATION_RUN_BUDGET_SECONDS", 120.0)
OPERATION_CALL_BUDGET_SECONDS = env_float("OPERATION_CALL_BUDGET_SECONDS", 120.0)
# A swap still in flight is polled in the worker this long, then the operation comes back for it later.
OPERATION_SWAP_POLL_SECONDS = env_float("OPERATION_SWAP_POLL_SECONDS", 10.0)
OPERATION_SWAP_RECHECK_SECONDS = env_float("OPERATION_SWAP_RECHECK_SECONDS", 5.0)
OPERATION_JOB_TIMEOUT_SECONDS = env_int("OPERATION_JOB_TIMEOUT_SECONDS", 1200)
if OPERATION_HEARTBEAT_STALE_SECONDS < 2 * OPERATION_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("OPERATION_HEARTBEAT_STALE_SECONDS must be at least twice OPERATION_HEARTBEAT_SECONDS")
if OPERATION_JOB_TIMEOUT_SECONDS < OPERATION_RUN_BUDGET_SECONDS + 4 * OPERATION_CALL_BUDGET_SECONDS + 60:
    raise ImproperlyConfigured(
        "OPERATION_JOB_TIMEOUT_SECONDS must exceed OPERATION_RUN_BUDGET_SECONDS plus one step's calls "
        "(4 times OPERATION_CALL_BUDGET_SECONDS) and a minute"
    )
# A swap asked for by a runner that died before saving its token is given this long to land before a new one.
OPERATION_SWAP_SETTLE_SECONDS = env_float("OPERATION_SWAP_SETTLE_SECONDS", 900.0)
# Drift detection (strategies.operations.reconcile): every application's production is compared with what
# Slipway believes this often (and after every operation ends).
DRIFT_CHECK_SECONDS = env_int("DRIFT_CHECK_SECONDS", 60)
AUTO_PROMOTE_SWEEP_SECONDS = env_int("AUTO_PROMOTE_SWEEP_SECONDS", 60)
# Feature flags: how often the periodic job applies due scheduled flag changes (turn on/off at, ramps).
FLAG_SCHEDULE_SWEEP_SECONDS = env_int("FLAG_SCHEDULE_SWEEP_SECONDS", 60)

# Audit hash chain (releases.audit.chain): events are written unsealed and sealed into the chain by a
# periodic job every AUDIT_SEAL_SWEEP_SECONDS; the chain's tail is verified every AUDIT_VERIFY_SWEEP_SECONDS
# (the whole chain by `manage.py audit_verify`).
AUDIT_SEAL_SWEEP_SECONDS = env_int("AUDIT_SEAL_SWEEP_SECONDS", 5)
AUDIT_VERIFY_SWEEP_SECONDS = env_int("AUDIT_VERIFY_SWEEP_SECONDS", 600)
# Each periodic check also re-verifies this many older links, resuming where the last one stopped, so the
# whole chain is covered again and again (not only the tail since the last checkpoint).
AUDIT_VERIFY_SWEEP_BATCH = env_int("AUDIT_VERIFY_SWEEP_BATCH", 50_000)


def _audit_chain_keys(raw: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for entry in raw.replace("\n", ",").split(","):
        if not entry.strip():
            continue
        key_id, sep, secret = entry.strip().partition(":")
        if not sep or not key_id or len(secret) < 32 or len(key_id) > 32:
            raise ImproperlyConfigured(
                "AUDIT_CHAIN_KEYS is a comma- or newline-separated list of id:secret (an id of at most 32 "
                "characters, a secret of at least 32)"
            )
        keys[key_id] = secret.encode()
    return keys


# The audit chain is keyed (HMAC-SHA256, releases.audit.chain) with a key held outside the database, so that
# whoever can write the table cannot re-seal it. AUDIT_CHAIN_KEYS (or AUDIT_CHAIN_KEYS_FILE) lists id:secret
# pairs; new links use AUDIT_CHAIN_KEY_ID (by default the first listed); keep retired keys listed to verify
# the links they sealed. Without it, one key is derived from SECRET_KEY (id "sk1"): rotate SECRET_KEY only
# after setting AUDIT_CHAIN_KEYS with that derived key kept (see docs/architecture.md, Audit).
AUDIT_CHAIN_KEYS = _audit_chain_keys(env_secret("AUDIT_CHAIN_KEYS"))
if not AUDIT_CHAIN_KEYS:
    AUDIT_CHAIN_KEYS = {"sk1": hmac.new(SECRET_KEY.encode(), b"slipway audit chain", hashlib.sha256).digest()}
AUDIT_CHAIN_KEY_ID = env_str("AUDIT_CHAIN_KEY_ID") or next(iter(AUDIT_CHAIN_KEYS))
if AUDIT_CHAIN_KEY_ID not in AUDIT_CHAIN_KEYS:
    raise ImproperlyConfigured(f"AUDIT_CHAIN_KEY_ID {AUDIT_CHAIN_KEY_ID!r} is not one of AUDIT_CHAIN_KEYS")

# Azure App Service provider. Credentials come from the environment only (never the database):
# AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET for a service principal, AZURE_CLIENT_ID
# alone for a user-assigned managed identity.
AZURE_RESOURCE_MANAGER_URL = env_str("AZURE_RESOURCE_MANAGER_URL", "https://management.azure.com").rstrip("/")
AZURE_AUTHORITY_HOST = env_str("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com")
AZURE_TENANT_ID = env_str("AZURE_TENANT_ID")
AZURE_CLIENT_ID = env_str("AZURE_CLIENT_ID")
AZURE_CLIENT_SECRET = env_secret("AZURE_CLIENT_SECRET")
AZURE_POLLING_INTERVAL = env_int("AZURE_POLLING_INTERVAL", 15)  # seconds between long-running-operation polls
AZURE_HTTP_TIMEOUT = env_int("AZURE_HTTP_TIMEOUT", 30)
AZURE_VERSION_SETTING = env_str("AZURE_VERSION_SETTING", "SLIPWAY_VERSION")  # app setting holding the version

# The built-in simulator (releases.catalog.providers.simulator). A swap takes `swap_seconds` in all: a warm-up,
# the swap itself, then the routing switch; the phase is computed from the time since it started.
SIMULATOR_TIMINGS: dict[str, float] = {
    "swap_seconds": env_float("SIMULATOR_SWAP_SECONDS", 6.0),
    "warmup_seconds": env_float("SIMULATOR_SWAP_WARMUP_SECONDS", 3.0),
    "routing_seconds": env_float("SIMULATOR_SWAP_ROUTING_SECONDS", 1.0),
    # A swap hung by fault injection is abandoned (failed) after this long, so the site is not blocked forever.
    "hang_timeout_seconds": env_float("SIMULATOR_SWAP_HANG_TIMEOUT_SECONDS", 900.0),
    # After a restart the slot's health check answers 503 for this long.
    "restart_seconds": env_float("SIMULATOR_RESTART_SECONDS", 2.0),
    # Served pages sleep for their sampled latency, capped at this (0: only record the sampled value).
    "serve_sleep_max_ms": env_float("SIMULATOR_SERVE_SLEEP_MAX_MS", 0.0),
    # Synthetic load is generated lazily; after a pause, at most this many minutes are filled in.
    "synthetic_backfill_minutes": env_float("SIMULATOR_SYNTHETIC_BACKFILL_MINUTES", 15.0),
    "metrics_retention_hours": env_float("SIMULATOR_METRICS_RETENTION_HOURS", 24.0),
}
for _name, _value in SIMULATOR_TIMINGS.items():
    if _value < 0:
        raise ImproperlyConfigured(f"The simulator's {_name} must not be negative, not {_value}")
if SIMULATOR_TIMINGS["warmup_seconds"] + SIMULATOR_TIMINGS["routing_seconds"] > SIMULATOR_TIMINGS["swap_seconds"]:
    raise ImproperlyConfigured(
        "SIMULATOR_SWAP_WARMUP_SECONDS + SIMULATOR_SWAP_ROUTING_SECONDS must not exceed SIMULATOR_SWAP_SECONDS"
    )

# REST API v1 (portal.api): calls a token (or a signed-in person) may make per minute, how long
# an Idempotency-Key is remembered, and the largest request body the API reads.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600)
API_IDEMPOTENCY_KEY_HOURS = env_int("API_IDEMPOTENCY_KEY_HOURS", 24)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024)
for _name in ("API_RATE_LIMIT_PER_MINUTE", "API_IDEMPOTENCY_KEY_HOURS", "API_MAX_BODY_BYTES"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {globals()[_name]}")

# Paths of the APIs authenticated by a flag API key, which take the short middleware path (portal/shortcut.py)
# and whose answered calls get no request log line unless LOG_KEYED_API_REQUESTS (failures always do).
KEYED_API_PREFIXES = ("/ofrep/", "/flags/sync/", "/flags/api/", "/experiments/api/")
LOG_KEYED_API_REQUESTS = env_bool("LOG_KEYED_API_REQUESTS", False)
# Feature flags (strategies.flags): OFREP / flagd-sync / events calls one flag API key may make per minute.
FLAGS_RATE_LIMIT_PER_MINUTE = env_int("FLAGS_RATE_LIMIT_PER_MINUTE", 6000)
if FLAGS_RATE_LIMIT_PER_MINUTE < 1:
    raise ImproperlyConfigured(f"FLAGS_RATE_LIMIT_PER_MINUTE must be at least 1, not {FLAGS_RATE_LIMIT_PER_MINUTE}")

# --- Logging and metrics (docs/deployment.md) --------------------------------------------------
# LOG_FORMAT=json: one JSON object per line on stdout (time, level, logger, message, and request_id, user,
# path, status, duration_ms on requests, job_id in jobs); text: plain lines. Default: text with DEBUG, else json.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
# Where log lines go: stdout (the container convention) or stderr (keeps a command's own output clean).
LOG_STREAM = env_str("LOG_STREAM", "stdout").strip().lower()
if LOG_STREAM not in {"stdout", "stderr"}:
    raise ImproperlyConfigured(f"LOG_STREAM must be stdout or stderr, not {LOG_STREAM!r}")
# /metrics: with METRICS_TOKEN set, scrapers send `Authorization: Bearer <token>`; unset, only loopback may scrape.
METRICS_TOKEN = env_secret("METRICS_TOKEN")  # or METRICS_TOKEN_FILE
# Probes and scrapers reach the processes directly over plain HTTP (the TLS proxy is in front of users only):
# /healthz, /readyz and /metrics are answered rather than redirected to https when SECURE_SSL_REDIRECT is on.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
# Prometheus multiprocess mode (gunicorn with several workers, RQ workers on the same host): every process writes
# its metrics under PROMETHEUS_MULTIPROC_DIR, which must exist before prometheus-client creates a metric.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
# Filters applied, in this order, to every line the console handler writes. The redaction filter (no secrets in
# logs) is added here by name, e.g. LOG_FILTERS["redact"] = {"()": "portal.<module>.<Filter>"}.
LOG_FILTERS: dict[str, dict[str, str]] = {"context": {"()": "portal.observability.LogContextFilter"}}
# Last: masks tokens, keys, passwords and Authorization values in the message and every added field.
LOG_FILTERS["redact"] = {"()": "portal.core.redaction.RedactingFilter"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": LOG_FILTERS,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": f"ext://sys.{LOG_STREAM}",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": list(LOG_FILTERS),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # azure-core logs every ARM request at INFO (Authorization redacted); warnings are enough.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "azure": {"level": "WARNING"},
        # urllib3 logs request paths at DEBUG, and an incoming webhook's path is its credential.
        "urllib3": {"level": "WARNING"},
        # One line per request from portal.observability (LOG_REQUESTS=0 silences it, e.g. behind an access log).
        "slipway.request": {"level": "INFO" if env_bool("LOG_REQUESTS", True) else "WARNING"},
        # RQ's cron scheduler logs each job it enqueues (the audit sealer every 5 s); RQ_CRON_LOG_LEVEL=INFO shows it.
        "rq.cron": {"level": env_str("RQ_CRON_LOG_LEVEL", "WARNING")},
    },
}
