"""Settings for Suanli, read from the environment (see README, "Configuration").

Development is the default: with no variables set, the portal runs in debug mode against
a local PostgreSQL and Redis. Production is `DJANGO_DEBUG=0`, and then a missing secret
key or host list stops the start instead of running with a guessable key.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

from portal.env import env_bool, env_int, env_list, env_required, env_str
from portal.ratelimit import Rate

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", True)

if DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY") or "dev-only-insecure-key-never-use-in-production"
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
else:
    SECRET_KEY = env_required(
        "DJANGO_SECRET_KEY",
        why="Production mode (DJANGO_DEBUG=0) needs a long random secret key; "
        "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
    )
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        env_required(
            "DJANGO_ALLOWED_HOSTS",
            why="Production mode (DJANGO_DEBUG=0) needs the comma-separated host names "
            "the portal answers to, e.g. DJANGO_ALLOWED_HOSTS=suanli.example.gov.cn",
        )

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "portal",
    "vouchers",
    "compute",
]

MIDDLEWARE = [
    # First: bodies over MAX_REQUEST_BYTES and NUL characters never reach anything else.
    "portal.inputs.InputGuardMiddleware",
    # The request id (X-Request-ID, logs, tasks) and the latency by view: around
    # everything else, so what they measure and log is the whole request.
    "portal.logging.RequestIdMiddleware",
    "portal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.UserLanguageMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.TenancyMiddleware",
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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
            ],
        },
    },
]

# PostgreSQL is the only database (row locks, triggers and constraints rely on it).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/suanli",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgresql://...).")
# libpq waits for ever for a server that does not answer; a request (and /healthz) should not.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5)
)
# DATABASE_POOL=1: a psycopg connection pool per process (Django's "pool" option) instead
# of a connection per thread kept for DATABASE_CONN_MAX_AGE; Django wants CONN_MAX_AGE 0
# with it. Behind PgBouncer in transaction mode leave it off and set DATABASE_PGBOUNCER=1
# (docs/deploy.md, Connection pooling).
if env_bool("DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2),
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10),
    }
# PgBouncer in transaction mode hands each transaction any server connection: a cursor
# declared WITH HOLD outside a transaction would be lost (Django's .iterator()).
# Prepared statements are off already (Django's default prepare_threshold for psycopg 3).
if env_bool("DATABASE_PGBOUNCER", False):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
# DATABASE_REPLICA_URL: reads of reports and exports in a `portal.dbrouter.use_replica()`
# block go to this copy; everything else to the primary. Tests mirror the default.
if env_str("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        env_str("DATABASE_REPLICA_URL"),  # type: ignore[arg-type]
        conn_max_age=DATABASES["default"]["CONN_MAX_AGE"],
        conn_health_checks=True,
    )
    DATABASES["replica"].setdefault("OPTIONS", {}).update(
        {
            k: v
            for k, v in DATABASES["default"]["OPTIONS"].items()
            if k in ("connect_timeout", "pool")
        }
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["portal.dbrouter.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "portal.User"

REDIS_URL = env_str("REDIS_URL") or "redis://127.0.0.1:6379/0"
CACHES = {
    "default": {
        # Fails open: Redis down is a cache miss, not a 500 (portal/cache.py).
        "BACKEND": "portal.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX") or "suanli",
        "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
    }
}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# django-allauth: email is the login; sign-up needs a verified address.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_SIGNUP_FORM_CLASS = "portal.forms.SignupForm"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Suanli] "
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portal:landing"
# Sign-up from a page returns to it after e-mail verification (portal/account_adapter.py).
ACCOUNT_ADAPTER = "portal.account_adapter.AccountAdapter"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True
LANGUAGE_COOKIE_NAME = "suanli_language"

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "var" / "media")
# Documents are private: never served from a public URL, only through permission-checked views.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Absolute links in e-mails (invitations) point here.
SITE_URL = env_str("SITE_URL") or "http://127.0.0.1:8000"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "Suanli <noreply@suanli.localhost>"

# Security: strict in production, relaxed only where local HTTP needs it.
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "compute.api.base.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"datacenter": env_str("API_RATE_LIMIT") or "1200/min"},
}
# Failed authentications per client address before it gets 429 (docs/rate-limits.md);
# empty turns it off.
API_AUTH_FAILURE_LIMIT = env_str("API_AUTH_FAILURE_LIMIT", "20/min")
# A malformed rate would otherwise answer 500 on every API request: refuse to start.
Rate.parse(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["datacenter"])  # type: ignore[call-overload,index]
Rate.parse(API_AUTH_FAILURE_LIMIT)
# api.md: bodies up to 10 MB (taken as 10 MiB); the API checks it itself as well.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest request body taken at all, refused by its Content-Length before it is
# read: a 20 MB document with its form, or a 10 MB usage batch. Set the reverse proxy's
# limit (nginx client_max_body_size) to the same.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 21 * 1024 * 1024)
SPECTACULAR_SETTINGS = {
    "TITLE": "Suanli data-center API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "DESCRIPTION": "The contract data centers write clients against (docs: api.md).",
    "COMPONENT_SPLIT_REQUEST": True,
    # The default hook first; then links between operations (followed by schemathesis).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "compute.api.schema_links.add_links",
    ],
    "ENUM_NAME_OVERRIDES": {
        "VoucherStatusEnum": ["active", "suspended", "expired", "exhausted", "revoked"],
        "RedemptionStatusEnum": ["requested", "active", "rejected", "cancelled", "closed"],
        "BatchStatusEnum": ["queued", "processing", "done", "failed"],
        "RecordResultStatusEnum": ["accepted", "duplicate", "rejected"],
        "UsageRecordStatusEnum": ["accepted", "void"],
        "SettlementStatusEnum": ["draft", "issued", "confirmed", "paid"],
        "LineKindEnum": ["usage", "adjustment"],
    },
}

# Celery: Redis broker, JSON only, a task is acknowledged after it ran so that a worker
# that dies mid-task hands it to another worker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
# Queues by kind of work, so that one kind cannot hold up another (a month's settlements
# behind a usage batch) and each can have its own workers (docs/deploy.md). Tasks not
# named here go to the default queue, `celery`. portal.celery.route_task reads this.
TASK_QUEUES = {
    "ingest": ["compute.tasks.usage_batch_apply_task", "compute.tasks.usage_batches_sweep"],
    "sync": ["compute.tasks.feed_sync_all", "compute.tasks.feed_sync_task"],
    "notifications": [
        "vouchers.tasks.application_notify",
        "vouchers.tasks.review_assigned_notify",
        "vouchers.tasks.invitation_send",
        "portal.tasks.staff_invitation_send",
        "vouchers.tasks.reminders_send_task",
        "vouchers.tasks.outcome_report_notify",
        "vouchers.tasks.outcome_reminders_send_task",
        "compute.webhooks.tasks.webhook_deliver_task",
        "compute.webhooks.tasks.webhook_deliveries_sweep",
    ],
    "reports": [
        "compute.tasks.settlements_monthly",
        "compute.tasks.ledger_reconcile_task",
        "compute.tasks.integrity_nightly_task",
        "compute.tasks.usage_partitions_task",
        "vouchers.tasks.vouchers_expire_due_task",
        "vouchers.tasks.awards_lapse_due_task",
        "portal.tasks.audit_chain_verify",
    ],
}
# CELERY_QUEUE puts every task on that one queue instead (tests and benchmarks run their
# worker on a queue of their own, so a demo worker never takes their tasks).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE") or "celery"
CELERY_TASK_ROUTES = ("portal.celery.route_task",)
# What a worker consumes when it serves everything (`make demo`), what /healthz expects
# a heartbeat for, and what /metrics reports the length of.
WORKER_QUEUES = (
    [CELERY_TASK_DEFAULT_QUEUE]
    if CELERY_TASK_DEFAULT_QUEUE != "celery"
    else ["celery", *TASK_QUEUES]
)
HEALTH_QUEUES = env_list("HEALTH_QUEUES", WORKER_QUEUES)
# Heartbeats of workers and beat (portal.heartbeat): written every HEARTBEAT_INTERVAL
# seconds, older than HEARTBEAT_MAX_AGE they fail /healthz.
HEARTBEAT_INTERVAL = env_int("HEARTBEAT_INTERVAL", 10)
HEARTBEAT_MAX_AGE = env_int("HEARTBEAT_MAX_AGE", 60)
HEARTBEAT_KEY_PREFIX = f"{CACHES['default']['KEY_PREFIX']}:heartbeat"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540)
# Publishing must give up when Redis hangs (paused, failing over, a half-open
# connection): without a socket timeout a publish waits for ever, and the API answers a
# usage batch only once its task is published or given up (compute.batches; the sweeper
# enqueues it later). With these a publish to a hung Redis fails in about 2 x 2 s, to a
# dead one at once (tests/compute/test_faults.py). A worker's BRPOP waits 1 s at most
# (kombu's brpop_timeout), well within the socket timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TIMEZONE = TIME_ZONE
# django-celery-beat's scheduler with a heartbeat for /healthz.
CELERY_BEAT_SCHEDULER = "portal.beat:HeartbeatScheduler"
# Default schedule; django-celery-beat copies it into the database, where staff edit it.
CELERY_BEAT_SCHEDULE = {
    "verify-audit-chain-nightly": {
        "task": "portal.tasks.audit_chain_verify",
        "schedule": crontab(hour=2, minute=30),
    },
    "sweep-stale-usage-batches": {
        "task": "compute.tasks.usage_batches_sweep",
        "schedule": crontab(minute="*"),
    },
    "sync-data-center-feeds": {
        "task": "compute.tasks.feed_sync_all",
        "schedule": crontab(minute="*"),
    },
    "expire-vouchers": {
        "task": "vouchers.tasks.vouchers_expire_due_task",
        "schedule": crontab(hour=0, minute=5),
    },
    "reconcile-ledger-nightly": {
        "task": "compute.tasks.ledger_reconcile_task",
        "schedule": crontab(hour=1, minute=30),
    },
    "integrity-checks-nightly": {
        "task": "compute.tasks.integrity_nightly_task",
        "schedule": crontab(hour=2, minute=0),
    },
    # The usage records' monthly partitions, made months ahead (compute.partitions).
    "create-usage-partitions": {
        "task": "compute.tasks.usage_partitions_task",
        "schedule": crontab(hour=0, minute=20),
    },
    "draft-monthly-settlements": {
        "task": "compute.tasks.settlements_monthly",
        "schedule": crontab(day_of_month=1, hour=3, minute=0),
    },
    "send-reminders": {
        "task": "vouchers.tasks.reminders_send_task",
        "schedule": crontab(hour=9, minute=0),
    },
    "remind-outcome-reports": {
        "task": "vouchers.tasks.outcome_reminders_send_task",
        "schedule": crontab(hour=9, minute=10),
    },
    "lapse-unaccepted-awards": {
        "task": "vouchers.tasks.awards_lapse_due_task",
        "schedule": crontab(minute=7),
    },
}

# Metrics (/metrics, portal.metrics) for these addresses or networks only.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
# The worker's main process serves its pool's metrics on this port (0: not at all).
CELERY_METRICS_PORT = env_int("CELERY_METRICS_PORT", 0)
if not DEBUG:
    # Load balancers and Prometheus ask over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# Logs: one JSON object per line in production (portal/logging.py), with the request
# id on every line; plain text in development. LOG_FORMAT chooses either.
LOG_FORMAT = env_str("LOG_FORMAT") or ("plain" if DEBUG else "json")
if LOG_FORMAT not in ("plain", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json; got {LOG_FORMAT!r}")
# A line per request (portal.request), the access log; runserver prints its own.
LOG_REQUESTS = env_bool("LOG_REQUESTS", LOG_FORMAT == "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "portal.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
}

# --- Sign-in, sessions and headers (issue #15; portal/signin.py) ----------------------
# Failed sign-ins, counted by allauth (also for /admin/, whose login page sends people
# to allauth's). Per address: 10 a minute and 30 an hour, so a guesser from one address
# gets 30 tries an hour, not 14,400 a day; per account: 5 in 15 minutes, whichever
# address they come from (a lockout of that account for the rest of the window; a
# success does not reset the count). LOGIN_FAILURE_LIMIT overrides it, in allauth's
# syntax.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("LOGIN_FAILURE_LIMIT") or "10/m/ip,30/h/ip,5/15m/key",
    # The pages that take the password of someone already signed in (a stolen session
    # cookie could guess it there): confirming before a sensitive action (every visit
    # counts) and changing the password. allauth's defaults have no hourly bound.
    "reauthenticate": "10/m/user,30/h/user",
    "change_password": "5/m/user,20/h/user",
}
# Sessions end after this long idle and this long after signing in (seconds), enforced
# by portal.signin.SessionTimeoutMiddleware. Strict: superusers, platform staff, staff of
# any city and data-center operators, who move or release public money (GB/T 22239 level
# 3 asks for time-outs). Default: company users, who apply and spend their own company's
# vouchers but can release no money; two days idle lets one pick up tomorrow where they
# left off without the session outliving a forgotten shared computer by more than a
# weekend, and two weeks is Django's (and this site's former) session age.
SESSION_STRICT = (30 * 60, 12 * 3600)
SESSION_DEFAULT = (2 * 86400, 14 * 86400)
SESSION_COOKIE_AGE = SESSION_DEFAULT[1]
# After the messages middleware, so that the reason reaches the sign-in page; the
# session store is the database (SESSION_ENGINE's default), which the sessions page reads.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
    "portal.signin.SessionTimeoutMiddleware",
)
# Headers on every response (portal/headers.py; Referrer-Policy is SECURE_REFERRER_POLICY
# above). No inline script or style anywhere: templates load static files only. The
# API's Swagger UI adds the origin it loads its bundle from (compute/api/urls.py).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), "
    "bluetooth=(), hid=(), midi=(), magnetometer=(), gyroscope=(), accelerometer=(), "
    "display-capture=()"
)
MIDDLEWARE.insert(0, "portal.headers.SecurityHeadersMiddleware")
# API keys that expire: their data center's operators are e-mailed this many days before
# (compute.services.api_keys_expiry_remind, daily).
API_KEY_EXPIRY_REMINDER_DAYS = env_int("API_KEY_EXPIRY_REMINDER_DAYS", 14)
CELERY_BEAT_SCHEDULE["remind-expiring-api-keys"] = {
    "task": "compute.tasks.api_keys_expiry_remind_task",
    "schedule": crontab(hour=9, minute=15),
}
TASK_QUEUES["notifications"].append("compute.tasks.api_keys_expiry_remind_task")
# Two-factor sign-in (portal/twofactor.py): allauth's MFA with an authenticator app
# (TOTP, with recovery codes) and passkeys or security keys (WebAuthn) as the second
# factor after the password. Required of whom portal.signin.is_privileged names,
# optional for company users. Codes of the step before and after count too (clocks
# drift); a used code is refused within its window. Passkeys are not offered as a
# password-free sign-in: a key without user verification would be one factor.
INSTALLED_APPS.insert(INSTALLED_APPS.index("allauth.account") + 1, "allauth.mfa")
MFA_ADAPTER = "portal.twofactor.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_TOLERANCE = 1
# Browsers allow WebAuthn on http://localhost and 127.0.0.1 (the demo); allauth checks
# the origin itself and wants this to accept http.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
# Sensitive actions (portal/reauth.py) and allauth's own (adding or removing an
# authenticator) need an authentication this recent, in seconds; signing in counts.
ACCOUNT_REAUTHENTICATION_TIMEOUT = 15 * 60
MIDDLEWARE += [
    "portal.twofactor.TwoFactorMiddleware",
    "portal.reauth.ReauthenticationMiddleware",
]
# Rotating DJANGO_SECRET_KEY (SECURITY.md): the former keys, comma-separated, still
# verify what they signed (sessions, password-reset links) until those run out.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")
# The audit chain's key (portal/audit.py, SECURITY.md): every audit event is chained with
# HMAC-SHA-256 under it, so someone who can write the database but does not hold the key
# cannot re-hash a rewritten history. Never stored in the database; a development key
# only with DJANGO_DEBUG=1. Rotating: the new key here, the former ones (comma-separated)
# in AUDIT_CHAIN_KEY_FALLBACKS, which only verify; the chain records the change.
if DEBUG:
    AUDIT_CHAIN_KEY = env_str("AUDIT_CHAIN_KEY") or "dev-only-audit-chain-key-never-in-production"
else:
    AUDIT_CHAIN_KEY = env_required(
        "AUDIT_CHAIN_KEY",
        why="Production mode (DJANGO_DEBUG=0) needs a long random key for the audit chain, "
        "kept outside the database; generate one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'",
    )
AUDIT_CHAIN_KEY_FALLBACKS = env_list("AUDIT_CHAIN_KEY_FALLBACKS")
# The heads of the chains are appended here, signed, at least daily (portal/anchors.py),
# and e-mailed to each city's auditors; `verify_audit --anchors DIR` checks against them.
# Put it where the database's administrators cannot write (another host's mount, a
# WORM bucket's sync, chattr +a).
AUDIT_ANCHOR_DIR = Path(env_str("AUDIT_ANCHOR_DIR") or BASE_DIR / "var" / "audit-anchors")
CELERY_BEAT_SCHEDULE["anchor-audit-chains"] = {
    "task": "portal.tasks.audit_anchor_task",
    "schedule": crontab(hour=2, minute=45),
}
TASK_QUEUES["notifications"].append("portal.tasks.audit_anchor_task")
# Least privilege (portal/dbroles.py, docs/deploy.md): the portal connects as
# DATABASE_URL's role, which owns nothing; `migrate` connects as this one, the tables'
# owner, and then grants the former what it needs. Unset: migrations run as DATABASE_URL.
MIGRATE_DATABASE_URL = env_str("MIGRATE_DATABASE_URL")
# Swagger UI's files from drf-spectacular-sidecar, served under /static/ like the site's
# own, rather than from a CDN: /api/docs/ needs no exception in the policy above.
INSTALLED_APPS.insert(INSTALLED_APPS.index("drf_spectacular") + 1, "drf_spectacular_sidecar")
SPECTACULAR_SETTINGS.update(
    SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR", REDOC_DIST="SIDECAR"
)
# Webhook endpoints may point at local or private addresses (the demo's simulators on
# 127.0.0.1) only in development; in production they must be public https addresses.
WEBHOOK_PRIVATE_ADDRESSES = env_bool("WEBHOOK_PRIVATE_ADDRESSES", DEBUG)
# Webhook retries are the sweeper's: every minute it sends the deliveries that are due
# (compute.webhooks.tasks).
CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"] = {
    "task": "compute.webhooks.tasks.webhook_deliveries_sweep",
    "schedule": 60.0,
}
