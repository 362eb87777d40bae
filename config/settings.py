"""Herald settings. Everything that differs between machines comes from the environment."""

import json
import os
import secrets
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HERALD_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def embedded_service_url(key: str) -> str | None:
    """URL of an embedded server started by scripts/services.py, if one is running."""
    try:
        return json.loads((VAR_DIR / "services.json").read_text())[key]
    except (OSError, ValueError, KeyError):
        return None


def dev_secret_key() -> str:
    # A stable key for development, kept with the rest of the local data and never committed.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY") or dev_secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# The public URL's host is always allowed; health checks answer any host (config.middleware).
ALLOWED_HOSTS = env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") + [urlsplit(PUBLIC_BASE_URL).hostname or ""]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o]

# --- HTTPS ----------------------------------------------------------------------------------
# Served over https (PUBLIC_BASE_URL says so): secure cookies, HSTS and a redirect from http,
# each overridable. TLS is expected to end at a proxy that sets X-Forwarded-Proto.
SERVED_OVER_HTTPS = PUBLIC_BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", SERVED_OVER_HTTPS)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", SERVED_OVER_HTTPS)
# Probes inside the cluster speak plain http to the container.
SECURE_REDIRECT_EXEMPT = [r"^health(/ready)?$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000 if SERVED_OVER_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", SERVED_OVER_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", SERVED_OVER_HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "core",
    "analytics",
    "notifications",
    "preferences",
    "templates_app",
    "delivery",
]

MIDDLEWARE = [
    "config.middleware.HealthChecksForAnyHost",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.ServiceUnavailableDuringOutages",
    "config.middleware.RefuseUnstorableUrls",
    "config.middleware.ApiBodySizeLimit",
    "config.middleware.ThrottleAdminLogin",
    "config.middleware.BoundedWorkPerRequest",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL") or embedded_service_url("database_url")
if not DATABASE_URL:
    raise RuntimeError(
        "No database: set DATABASE_URL, or start the embedded servers with `make run` "
        "or `python scripts/services.py start`."
    )
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
# With PostgreSQL away, a request learns it within this many seconds and answers 503
# (config.middleware.ServiceUnavailableDuringOutages) instead of hanging in a 500.
DATABASE_WAIT_SECONDS = env_float("DATABASE_WAIT_SECONDS", 1.0)
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = max(2, round(DATABASE_WAIT_SECONDS))  # libpq's least
# While the database is away, a web process asks it this often whether it is back (core/database_outage.py).
HERALD_DATABASE_PROBE_SECONDS = env_float("HERALD_DATABASE_PROBE_SECONDS", 0.25)
if env_bool("DATABASE_POOL", True):
    # One ASGI process serves many threads; a pool keeps their connection count bounded.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        # A worker's task threads and its senders each hold one while they work.
        "min_size": 1, "max_size": env_int("DATABASE_POOL_MAX", 32), "timeout": DATABASE_WAIT_SECONDS,
    }
    # The pool then checks a connection before handing it out: one the server dropped (a
    # restart, a failover) is replaced, not given to a request that would fail on it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env_str("REDIS_URL") or embedded_service_url("redis_url")
if not REDIS_URL:
    raise RuntimeError("No Redis: set REDIS_URL, or start the embedded servers with `make run`.")

# Every Redis call on a request path gives up after this long (core/redis_client.py).
HERALD_REDIS_TIMEOUT_SECONDS = env_float("HERALD_REDIS_TIMEOUT_SECONDS", 0.5)
# Failed admin logins and failed API keys per client address, per window (core/throttle.py).
# How long a web process trusts an API key it has checked: a revoked key stops working within this.
HERALD_API_KEY_CACHE_SECONDS = env_float("HERALD_API_KEY_CACHE_SECONDS", 10.0)
HERALD_AUTH_FAILURE_LIMIT = env_int("HERALD_AUTH_FAILURE_LIMIT", 10)
HERALD_AUTH_FAILURE_WINDOW_SECONDS = env_int("HERALD_AUTH_FAILURE_WINDOW_SECONDS", 300)
# Behind a proxy, the META key holding the client's address (e.g. HTTP_X_FORWARDED_FOR); empty: REMOTE_ADDR.
HERALD_CLIENT_IP_HEADER = env_str("HERALD_CLIENT_IP_HEADER")

CACHES = {
    "default": {
        "BACKEND": "core.cache.ReusingRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "herald",
        "OPTIONS": {"socket_timeout": HERALD_REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": HERALD_REDIS_TIMEOUT_SECONDS},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["config.formats"]  # admin shows times to the second (config/formats/en/formats.py)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Without `collectstatic` (development, tests) WhiteNoise serves from the apps via finders.
warnings.filterwarnings("ignore", message="No directory at")
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The API accepts JSON bodies up to 64 KiB (larger ones get 413, see config.middleware);
# provider receipt webhooks may be as large as this.
API_MAX_BODY_BYTES = 64 * 1024
# Bulk endpoints (a batch, a campaign's user ids, topic subscribers) take bodies up to this size.
API_BULK_MAX_BODY_BYTES = 8 * 1024 * 1024
API_BULK_PATHS = ("/api/v1/notifications/batch", "/api/v1/campaigns", "/api/v1/topics/")
HERALD_BATCH_MAX_ITEMS = 1000
HERALD_CAMPAIGN_MAX_USER_IDS = 100_000
HERALD_TOPIC_BULK_MAX_USER_IDS = 10_000
DATA_UPLOAD_MAX_MEMORY_SIZE = API_BULK_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["notifications.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["notifications.auth.HasScope"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.CheckedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.openapi.HeraldAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Herald API",
    "DESCRIPTION": "Send notifications and follow each one until it is delivered, read, or failed.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the channel vocabulary, wherever a field offers it.
    "ENUM_NAME_OVERRIDES": {"ChannelEnum": "core.vocabulary.Channel",
                            "ExperimentStatusEnum": "experiments.models.ExperimentStatus",
                            "StatusEnum": "core.states.Status"},
}

# --- Celery -------------------------------------------------------------------------------
from core.queues import CELERY_QUEUES, broker_queue  # noqa: E402

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message taken by a worker that died comes back after this long. Nothing waits in the
    # broker (retries wait in the database), and a redelivered message whose delivery is
    # still being worked on finds it claimed and does nothing.
    "visibility_timeout": env_int("HERALD_VISIBILITY_TIMEOUT", 300),
    # Publishing gives up fast when the broker is down (the outbox relay publishes later),
    # so an API request never waits on a dead broker.
    "socket_connect_timeout": 1,
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 1
HERALD_PUBLISH_TIMEOUT_SECONDS = env_float("HERALD_PUBLISH_TIMEOUT_SECONDS", 0.1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_QUEUES = CELERY_QUEUES
CELERY_TASK_DEFAULT_QUEUE = broker_queue("medium")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("HERALD_PREFETCH_MULTIPLIER", 1)
# Threads: provider calls are waits on the network, and one slow provider may hold at most
# HERALD_PROVIDER_MAX_IN_FLIGHT of them (delivery.sending.InFlightLimits), so the other
# channels keep flowing. Each thread keeps its own database connection (DATABASE_POOL_MAX).
CELERY_WORKER_POOL = env_str("HERALD_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = env_int("HERALD_WORKER_CONCURRENCY", 8)
# A lane's chunk is sent by a pool of this many threads per worker process and kind of lane
# (delivery/chunks.py): provider latency, not CPU, bounds a worker that waits on one call at a
# time (at 100 ms a call, 10 sends/s a thread). The threads only wait on the network; the
# chunk's database writes are made by the task's own thread (delivery/bulk_sending.py).
HERALD_SENDS_IN_FLIGHT = env_int("HERALD_SENDS_IN_FLIGHT", 64)
HERALD_DELIVERY_CHUNK = env_int("HERALD_DELIVERY_CHUNK", 200)
# At most this many calls to one provider at once per process: a hanging provider keeps a
# quarter of the sender threads free for the other channels.
HERALD_PROVIDER_MAX_IN_FLIGHT = env_int("HERALD_PROVIDER_MAX_IN_FLIGHT", max(1, HERALD_SENDS_IN_FLIGHT * 3 // 4))
# Email links go through Herald's signed redirect, which records the first click per delivery
# (delivery/tracking.py); the open pixel is off unless asked for (mail clients' privacy features
# make it unreliable, and some readers object to it).
HERALD_TRACK_LINKS = env_bool("HERALD_TRACK_LINKS", True)
HERALD_OPEN_PIXEL = env_bool("HERALD_OPEN_PIXEL", False)
# A tracked link redirects for this many days after it was sent; later it shows its destination
# as text instead, so a signed redirect cannot serve as an open redirect forever.
HERALD_TRACKED_LINK_DAYS = env_float("HERALD_TRACKED_LINK_DAYS", 30)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env_int("HERALD_TASK_TIME_LIMIT", 90)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 10, CELERY_TASK_TIME_LIMIT // 2)
# A task running when the broker connection drops finishes and records its outcome in
# PostgreSQL; its message comes back later and finds the delivery done. Cancelling it instead
# could cut a provider call that already went out, and the retry would send it twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# No remote control (inspect/ping/revoke): Herald does not use it, and its pub/sub channel is
# where kombu's Redis transport crashed the worker when the broker went away (seen in tests).
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# Routing and delivery claim their rows in chunks of these sizes, and a lane's wake-up message
# goes out at most once per HERALD_WAKE_SECONDS while one is pending (core/wake.py).
HERALD_ROUTE_CHUNK = env_int("HERALD_ROUTE_CHUNK", 100)
HERALD_FAN_OUT_CHUNK = env_int("HERALD_FAN_OUT_CHUNK", 1000)
HERALD_BATCH_CLOSE_CHUNK = env_int("HERALD_BATCH_CLOSE_CHUNK", 200)
# A batch or digest message carries at most this many bytes of its items' variables; a batch with more
# is split into several messages (parts), so each renders within the render bounds.
HERALD_BATCH_MESSAGE_MAX_BYTES = env_int("HERALD_BATCH_MESSAGE_MAX_BYTES", 1024 * 1024)
# Small enough that a read waiting on a step being fired waits for one short transaction.
HERALD_ESCALATION_CHUNK = env_int("HERALD_ESCALATION_CHUNK", 100)
HERALD_SCHEDULE_CHUNK = env_int("HERALD_SCHEDULE_CHUNK", 50)
# A schedule whose missed-occurrence policy is "skip" still sends an occurrence at most this late.
HERALD_SCHEDULE_GRACE_SECONDS = env_float("HERALD_SCHEDULE_GRACE_SECONDS", 300.0)
# What one schedule's rule may cost to evaluate in a bounded process (schedules/evaluation.py): a
# new rule that takes longer to check is refused (400); in the sweep, a rule that takes longer is
# tried again alone with HERALD_RENDER_TIME_LIMIT_SECONDS, and parked if that is not enough either.
HERALD_RRULE_TIME_LIMIT_SECONDS = env_float("HERALD_RRULE_TIME_LIMIT_SECONDS", 0.5)
# A campaign whose fan-out made no progress for this long is restarted by the resume sweep.
HERALD_FAN_OUT_STALL_SECONDS = env_float("HERALD_FAN_OUT_STALL_SECONDS", 30.0)
HERALD_WAKE_SECONDS = env_float("HERALD_WAKE_SECONDS", 1.0)
# A chunk task gives its lane back (and wakes it again) after this long, so that one lane's
# backlog shares the worker's threads with other lanes and with the periodic sweeps.
HERALD_CHUNK_BUDGET_SECONDS = env_float("HERALD_CHUNK_BUDGET_SECONDS", 5.0)
# `manage.py bootstrap` (docker-compose.yml's one-shot service): the admin user it creates, the
# file holding its password (a secret), and the name of a first API key to issue and print once.
HERALD_ADMIN_USERNAME = env_str("HERALD_ADMIN_USERNAME", "admin")
HERALD_ADMIN_EMAIL = env_str("HERALD_ADMIN_EMAIL")
HERALD_ADMIN_PASSWORD_FILE = env_str("HERALD_ADMIN_PASSWORD_FILE")
HERALD_BOOTSTRAP_API_KEY_NAME = env_str("HERALD_BOOTSTRAP_API_KEY_NAME")
# Workers touch this file every second and beat after each tick (core/liveness.py), for a
# container's healthcheck: `python -m core.liveness check FILE MAX_AGE`. Empty: none.
HERALD_LIVENESS_FILE = env_str("HERALD_LIVENESS_FILE")
CELERY_BEAT_SCHEDULER = env_str("HERALD_BEAT_SCHEDULER", "django_celery_beat.schedulers:DatabaseScheduler")
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {
        "task": "notifications.tasks.relay_outbox",
        "schedule": env_float("HERALD_RELAY_INTERVAL", 2.0),
        "options": {"queue": broker_queue("critical"), "expires": 30},
    },
    "release-held-deliveries": {
        "task": "delivery.tasks.release_held_deliveries",
        "schedule": env_float("HERALD_RELEASE_INTERVAL", 5.0),
        "options": {"queue": broker_queue("critical"), "expires": 30},
    },
    "repair-lagging-notifications": {
        "task": "notifications.tasks.repair_lagging_notifications",
        "schedule": env_float("HERALD_REPAIR_INTERVAL", 10.0),
        "options": {"queue": broker_queue("critical"), "expires": 30},
    },
    # Each running experiment's results: the chart's points, the sequential test's running
    # minimum, auto-promotion and the bandit's weights (experiments/results.py).
    "review-experiments": {
        "task": "experiments.tasks.review_experiments",
        "schedule": env_float("HERALD_EXPERIMENT_REVIEW_INTERVAL", 3600.0),
        "options": {"queue": broker_queue("low"), "expires": 600},
    },
    # Batches whose window has ended become their message (notifications/batching.py); a full
    # batch wakes the closer itself, so this bounds how late a window's end can be noticed.
    "close-batches": {
        "task": "notifications.tasks.close_batches",
        "schedule": env_float("HERALD_BATCH_CLOSE_INTERVAL", 1.0),
        "options": {"queue": broker_queue("high"), "expires": 30},
    },
    # Escalation steps whose wait has ended (notifications/escalation.py): how late one can fire.
    "escalate": {
        "task": "notifications.tasks.escalate",
        "schedule": env_float("HERALD_ESCALATION_INTERVAL", 1.0),
        "options": {"queue": broker_queue("critical"), "expires": 10},
    },
    # Recurring schedules whose next occurrence has come (schedules/firing.py).
    "fire-schedules": {
        "task": "schedules.tasks.fire_due",
        "schedule": env_float("HERALD_SCHEDULE_INTERVAL", 1.0),
        "options": {"queue": broker_queue("high"), "expires": 10},
    },
    "resume-campaign-fan-outs": {
        "task": "campaigns.tasks.resume_fan_outs",
        "schedule": env_float("HERALD_FAN_OUT_RESUME_INTERVAL", 10.0),
        "options": {"queue": broker_queue("low"), "expires": 30},
    },
    "dispatch-deliveries": {
        "task": "delivery.tasks.dispatch_deliveries",
        "schedule": env_float("HERALD_DISPATCH_INTERVAL", 1.0),
        "options": {"queue": broker_queue("critical"), "expires": 10},
    },
}

# --- Templates ----------------------------------------------------------------------------
# Every compile and render runs in a render process held to these bounds (templates_app/rendering.py);
# a template that breaks one fails its delivery at once with `render_error`, and is refused when saved.
HERALD_RENDER_TIME_LIMIT_SECONDS = env_float("HERALD_RENDER_TIME_LIMIT_SECONDS", 2.0)
HERALD_RENDER_MEMORY_MB = env_int("HERALD_RENDER_MEMORY_MB", 256)
HERALD_RENDER_MAX_CHARS = env_int("HERALD_RENDER_MAX_CHARS", 262144)
# The same processes run every other job on author or caller content (core/bounded.py): diffs,
# schema samples, recurrence rules. A job's input (its JSON) may be at most this large.
HERALD_BOUNDED_MAX_INPUT_BYTES = env_int("HERALD_BOUNDED_MAX_INPUT_BYTES", 4 * 1024 * 1024)
# Imported by each bounded process before it says it is ready, so no request pays for them.
HERALD_BOUNDED_PRELOAD = ["templates_app.content_jobs", "schedules.recurrence_jobs"]
# One web request shares this many seconds among all its bounded work (a version with many
# contents, a preview, a diff, a schedule's rule): past it, the request is refused with a 4xx.
HERALD_REQUEST_WORK_BUDGET_SECONDS = env_float("HERALD_REQUEST_WORK_BUDGET_SECONDS", 4.0)
# Web requests doing bounded work at once on this host; more are told 503 with Retry-After, so
# heavy requests never hold every web worker. Default: one less than gunicorn's workers.
HERALD_BOUNDED_WEB_SLOTS = env_int("HERALD_BOUNDED_WEB_SLOTS", max(1, env_int("WEB_CONCURRENCY", 2) - 1))
# Where the slots' lock files live (one directory per installation and host); empty: the temp directory.
HERALD_BOUNDED_SLOT_DIR = env_str("HERALD_BOUNDED_SLOT_DIR")

# --- Delivery policy ----------------------------------------------------------------------
def env_seconds_by_category(name: str, defaults: dict[str, int]) -> dict[str, int]:
    """`security=3600,marketing=259200` from the environment, over `defaults`."""
    pairs = (item.partition("=") for item in env_str(name).split(",") if item.strip())
    return {**defaults, **{key.strip(): int(value) for key, _, value in pairs}}


# A delivery gives up (`expired`) once this long has passed since its notification was due;
# outages and rate limits make it wait, never fail, within this time.
HERALD_TTL_SECONDS = env_seconds_by_category("HERALD_TTL_SECONDS", {
    "security": 3600, "transaction": 86400, "reminder": 86400, "social": 86400, "marketing": 259200,
})
HERALD_DEFAULT_TTL_SECONDS = env_int("HERALD_DEFAULT_TTL_SECONDS", 86400)
# Categories whose messages are sent again when a provider's answer was lost and the provider
# cannot be asked (SMS): a duplicate beats a miss. Critical priority always is.
HERALD_RESEND_UNKNOWN_CATEGORIES = set(env_str("HERALD_RESEND_UNKNOWN_CATEGORIES", "security").split(",")) - {""}
# How often a delivery is tried for failures of its own (not outages or rate limits) before
# it is failed and dead-lettered.
HERALD_MAX_ATTEMPTS = env_int("HERALD_MAX_ATTEMPTS", 6)
# Retry delay: base * 2**(attempt-1), capped, with jitter.
HERALD_RETRY_BASE_SECONDS = env_float("HERALD_RETRY_BASE_SECONDS", 5.0)
HERALD_RETRY_MAX_SECONDS = env_float("HERALD_RETRY_MAX_SECONDS", 600.0)
# One delivery attempt (rate-limit wait, every provider tried) ends within this budget,
# which must stay well inside the lease below: workers run the solo pool, where Celery's
# time limits do not apply.
HERALD_ATTEMPT_BUDGET_SECONDS = env_float("HERALD_ATTEMPT_BUDGET_SECONDS", 60.0)
# A delivery in `sending` longer than this belongs to a worker that died; another may take it (the
# fallback when Redis cannot tell which workers are alive, see HERALD_CLAIMER_TTL_SECONDS).
HERALD_DELIVERY_LEASE_SECONDS = env_float("HERALD_DELIVERY_LEASE_SECONDS", CELERY_TASK_TIME_LIMIT + 30)
# A process holding claims refreshes its claimer key (core/claimers.py) this often; once the key is this
# old the process is taken to be dead, and its claims are taken over at once, lease or not.
HERALD_CLAIMER_INTERVAL_SECONDS = env_float("HERALD_CLAIMER_INTERVAL_SECONDS", 1.0)
HERALD_CLAIMER_TTL_SECONDS = env_float("HERALD_CLAIMER_TTL_SECONDS", 5.0)
# A delivery or notification taken over this many times in a row from workers that died holding
# it is parked as failed (`killed_its_worker`) instead of being given to another one.
HERALD_POISON_TAKEOVERS = env_int("HERALD_POISON_TAKEOVERS", 4)
# A notification or delivery waiting this long for its queue message is republished.
HERALD_STALL_SECONDS = env_float("HERALD_STALL_SECONDS", 600.0)
# A notification relayed this many times without being routed is failed ("routing_kept_failing").
HERALD_MAX_RELAYS = env_int("HERALD_MAX_RELAYS", 10)
# An outbox row whose after-commit publish did not happen is relayed once this grace has passed.
HERALD_OUTBOX_GRACE_SECONDS = env_float("HERALD_OUTBOX_GRACE_SECONDS", 10.0)

# --- Providers (README: "Configuring providers") -----------------------------------------
# A provider is used when its credentials are set; otherwise its channel uses the sandbox.
HERALD_EMAIL_FROM = env_str("HERALD_EMAIL_FROM", "Herald <notifications@herald.localhost>")
HERALD_EMAIL_DOMAIN = env_str("HERALD_EMAIL_DOMAIN", "herald.localhost")
SENDGRID_API_KEY = env_str("SENDGRID_API_KEY")
SENDGRID_API_HOST = env_str("SENDGRID_API_HOST", "https://api.sendgrid.com")
SENDGRID_WEBHOOK_PUBLIC_KEY = env_str("SENDGRID_WEBHOOK_PUBLIC_KEY")
SMTP_URL = env_str("SMTP_URL")
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER")
TWILIO_API_HOST = env_str("TWILIO_API_HOST", "https://api.twilio.com")
FCM_CREDENTIALS_FILE = env_str("FCM_CREDENTIALS_FILE")
FCM_API_HOST = env_str("FCM_API_HOST", "https://fcm.googleapis.com")
APNS_KEY_FILE = env_str("APNS_KEY_FILE")
APNS_KEY_ID = env_str("APNS_KEY_ID")
APNS_TEAM_ID = env_str("APNS_TEAM_ID")
APNS_TOPIC = env_str("APNS_TOPIC")
APNS_USE_SANDBOX = env_bool("APNS_USE_SANDBOX", False)
APNS_HOST = env_str("APNS_HOST")  # e.g. http://127.0.0.1:8901 for a local simulator; empty for Apple
APNS_DEFAULT_TTL_SECONDS = env_int("APNS_DEFAULT_TTL_SECONDS", 86400)
HERALD_WEBHOOK_SECRET = env_str("HERALD_WEBHOOK_SECRET")  # whsec_…; outgoing webhooks are signed with it
# Outgoing webhooks to loopback/private addresses are refused unless this is set (local development).
HERALD_WEBHOOK_ALLOW_PRIVATE = env_bool("HERALD_WEBHOOK_ALLOW_PRIVATE", False)
# How long a provider call may go without an answer (reads; SendGrid's SDK has one timeout for
# both), and how long opening its connection may take: the window in which a call's outcome is
# unknown. Providers answer in well under a second; these leave room for a slow moment.
HERALD_PROVIDER_TIMEOUT = env_float("HERALD_PROVIDER_TIMEOUT", 5.0)
HERALD_PROVIDER_CONNECT_TIMEOUT = env_float("HERALD_PROVIDER_CONNECT_TIMEOUT", 3.0)
# Lets a notification's metadata.sandbox {"crash_worker": true} kill its worker (tests and chaos only).
HERALD_SANDBOX_CRASH_WORKER = env_bool("HERALD_SANDBOX_CRASH_WORKER", False)
HERALD_SMS_MAX_SEGMENTS = env_int("HERALD_SMS_MAX_SEGMENTS", 6)
# Sends per second per provider, shared by all workers: "twilio=100,sendgrid=500".
HERALD_RATE_LIMITS = {
    name.strip(): float(rate)
    for name, _, rate in (item.partition("=") for item in env_str("HERALD_RATE_LIMITS", "").split(",") if item.strip())
}
# A provider's breaker opens after this many provider-side failures in a row, and lets a
# probe through after the reset time.
HERALD_BREAKER_FAILURES = env_int("HERALD_BREAKER_FAILURES", 5)
HERALD_BREAKER_RESET_SECONDS = env_float("HERALD_BREAKER_RESET_SECONDS", 60.0)
# A call in flight longer than this many times the provider's recent average (and at least the
# minimum) holds back new calls until it ends, and opens the breaker if it then fails.
HERALD_BREAKER_STALL_FACTOR = env_float("HERALD_BREAKER_STALL_FACTOR", 3.0)
HERALD_BREAKER_STALL_MIN_SECONDS = env_float("HERALD_BREAKER_STALL_MIN_SECONDS", 0.5)
# A provider with a health check that sends nothing (SendGrid) is probed this often while its breaker is open.
HERALD_BREAKER_PROBE_SECONDS = env_float("HERALD_BREAKER_PROBE_SECONDS", 2.0)
# Connections failing before any request is sent open the breaker only after this long without a success.
HERALD_BREAKER_UNSENT_SECONDS = env_float("HERALD_BREAKER_UNSENT_SECONDS", 15.0)
# Signed provider webhooks older than this are refused as replays.
HERALD_WEBHOOK_MAX_AGE_SECONDS = env_int("HERALD_WEBHOOK_MAX_AGE_SECONDS", 300)

# --- Observability (README, "Metrics, traces and logs") ---------------------------------
# JSON lines with the event's fields and trace ids, no personal data (core/logs.py); "plain" for reading by eye.
HERALD_LOG_FORMAT = env_str("HERALD_LOG_FORMAT", "json")
from core.logs import config as logging_config  # noqa: E402

LOGGING = logging_config(env_str("LOG_LEVEL", "INFO"), json=HERALD_LOG_FORMAT == "json")
# Prometheus metrics (core/metrics.py): recorded unless HERALD_METRICS=0. The web server's /metrics
# answers only a request carrying this bearer token (404 while it is empty); workers and beat serve
# theirs on HERALD_METRICS_PORT (0: none), an internal port (config/metrics_http.py).
HERALD_METRICS = env_bool("HERALD_METRICS", True)
HERALD_METRICS_TOKEN = env_str("HERALD_METRICS_TOKEN")
HERALD_METRICS_PORT = env_int("HERALD_METRICS_PORT", 0)
HERALD_METRICS_ADDR = env_str("HERALD_METRICS_ADDR", "0.0.0.0")
# Lane depths, oldest due ages, dead letters and breaker states are measured by one collector for
# the installation this often (config/gauges.py), each query cut off after the timeout.
HERALD_GAUGES_INTERVAL_SECONDS = env_float("HERALD_GAUGES_INTERVAL_SECONDS", 15.0)
HERALD_GAUGES_STATEMENT_TIMEOUT_SECONDS = env_float("HERALD_GAUGES_STATEMENT_TIMEOUT_SECONDS", 5.0)
# Delivery analytics (analytics/): a read covers at most this many days.
HERALD_ANALYTICS_MAX_DAYS = env_int("HERALD_ANALYTICS_MAX_DAYS", 92)
CELERY_BEAT_SCHEDULE["collect-installation-gauges"] = {
    "task": "config.gauges.collect_installation_gauges",
    "schedule": HERALD_GAUGES_INTERVAL_SECONDS,
    "options": {"queue": broker_queue("low"), "expires": HERALD_GAUGES_INTERVAL_SECONDS},
}

# --- In-app inbox (inbox/) ----------------------------------------------------------------
INSTALLED_APPS += ["inbox", "campaigns", "experiments", "schedules"]
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # The layer blocks on Redis for 5 s at a time (BZPOPMIN); redis-py's default 5 s
            # socket timeout would race that and kill idle sockets, so reads may take longer.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 3, "max_connections": 200}],
            # A socket open longer than group_expiry would silently leave its group;
            # consumers re-join well before (HERALD_INBOX_GROUP_REFRESH_SECONDS).
            "group_expiry": 86400,
            "capacity": 200,
        },
    }
}
# Inbox tokens: how long one minted for a browser lives, and the longest a caller may ask for.
# Where browsers open the inbox WebSocket (`<this, as ws:// or wss://>/ws/inbox`). The proxy in
# front of Herald (`make run`'s and docker-compose.yml's Caddy) serves /ws/ on the public
# origin, so this is empty (PUBLIC_BASE_URL) unless the socket server is published elsewhere.
HERALD_INBOX_SOCKET_URL = env_str("HERALD_INBOX_SOCKET_URL")
HERALD_INBOX_TOKEN_TTL_SECONDS = env_int("HERALD_INBOX_TOKEN_TTL_SECONDS", 900)
HERALD_INBOX_TOKEN_MAX_TTL_SECONDS = env_int("HERALD_INBOX_TOKEN_MAX_TTL_SECONDS", 86400)
# Retention per recipient: the newest N items, none older than D days.
HERALD_INBOX_MAX_ITEMS = env_int("HERALD_INBOX_MAX_ITEMS", 1000)
HERALD_INBOX_RETENTION_DAYS = env_int("HERALD_INBOX_RETENTION_DAYS", 90)
# WebSocket: server heartbeat, how many items `init` carries, the largest client frame accepted.
HERALD_INBOX_HEARTBEAT_SECONDS = env_float("HERALD_INBOX_HEARTBEAT_SECONDS", 25.0)
HERALD_INBOX_GROUP_REFRESH_SECONDS = env_float("HERALD_INBOX_GROUP_REFRESH_SECONDS", 3600.0)
HERALD_INBOX_INIT_ITEMS = env_int("HERALD_INBOX_INIT_ITEMS", 20)
HERALD_INBOX_MAX_CLIENT_MESSAGE_BYTES = env_int("HERALD_INBOX_MAX_CLIENT_MESSAGE_BYTES", 4096)
# The demo page (/inbox/demo/) mints tokens for these users without an API key, so it is
# off unless DEBUG or HERALD_INBOX_DEMO=1.
HERALD_INBOX_DEMO = env_bool("HERALD_INBOX_DEMO", DEBUG)
HERALD_INBOX_DEMO_USERS = [u for u in env_str("HERALD_INBOX_DEMO_USERS", "demo-ada,demo-grace").split(",") if u]
CELERY_BEAT_SCHEDULE["purge-expired-inbox-items"] = {
    "task": "inbox.tasks.purge_expired_inbox_items",
    "schedule": env_float("HERALD_INBOX_PURGE_INTERVAL", 3600.0),
    "options": {"queue": broker_queue("low"), "expires": 600},
}
# --- end of in-app inbox ------------------------------------------------------------------
