"""LLM Lab settings: one file, typed environment readers, dev defaults that need no environment."""

import importlib.util
import os
from pathlib import Path

import dj_database_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("LAB_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("LAB_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "lab.accounts",
    "lab.datasets",
    "lab.runs",
    "lab.hub",
    "lab.fleet",
    "lab.evaluations",
    "lab.notebooks",
    "lab.feedback",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "lab.urls"
ASGI_APPLICATION = "lab.asgi.application"

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
            ],
        },
    },
]

VAR_DIR = BASE_DIR / "var"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'lab.sqlite3'}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and training relay write at once: wait for the lock instead of failing,
    # and let readers go on while one process writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run a real worker process against the test database, so it must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-lab.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A new PostgreSQL connection per request costs ~8 ms and a server process; a pool per web process
    # keeps them open (Django 5.1+). Celery workers drop it: a forked pool would break (workers/app.py).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": env_int("LAB_DB_POOL_SIZE", 10), "timeout": 20}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "notebook-list"
LOGOUT_REDIRECT_URL = "login"
# After this many failed logins from one client address, or for one username, within the window (counted
# from the first), the login page and POST /api/token/ answer 429 until the window ends; no backend
# authenticates meanwhile (lab/accounts/throttling.py).
LAB_LOGIN_FAILURES = env_int("LAB_LOGIN_FAILURES", 10)
LAB_LOGIN_WINDOW_SECONDS = env_int("LAB_LOGIN_WINDOW_SECONDS", 60)
AUTHENTICATION_BACKENDS = [
    "lab.accounts.throttling.RefuseWhileThrottled",
    "django.contrib.auth.backends.ModelBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
# plotly.js is served from the installed plotly package, never from a pasted copy.
PLOTLY_JS_DIR = Path(importlib.util.find_spec("plotly").submodule_search_locations[0]) / "package_data"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", PLOTLY_JS_DIR)]

# Where corpora, tokenizers, checkpoints and run folders live; shared by web and workers.
LAB_DATA_DIR = Path(env_str("LAB_DATA_DIR", str(VAR_DIR / "data"))).resolve()
LAB_UPLOAD_MAX_BYTES = env_int("LAB_UPLOAD_MAX_BYTES", 2 * 1024**3)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Run lifecycle (see docs/contracts.md and ../shared/notes/jobs.md).
LAB_LEASE_SECONDS = env_float("LAB_LEASE_SECONDS", 30.0)
LAB_HEARTBEAT_SECONDS = env_float("LAB_HEARTBEAT_SECONDS", 10.0)
# A worker heartbeats (with its GPUs' readings) this often; it is offline after three missed beats.
LAB_WORKER_HEARTBEAT_SECONDS = env_float("LAB_WORKER_HEARTBEAT_SECONDS", 5.0)
LAB_WORKER_OFFLINE_SECONDS = env_float("LAB_WORKER_OFFLINE_SECONDS", 3 * LAB_WORKER_HEARTBEAT_SECONDS)
LAB_FLEET_REFRESH_SECONDS = env_float("LAB_FLEET_REFRESH_SECONDS", 2.0)
LAB_REAP_SECONDS = env_float("LAB_REAP_SECONDS", 10.0)
LAB_MAX_RESTARTS = env_int("LAB_MAX_RESTARTS", 3)
LAB_CANCEL_GRACE_SECONDS = env_float("LAB_CANCEL_GRACE_SECONDS", 60.0)
LAB_EVENT_FLUSH_SECONDS = env_float("LAB_EVENT_FLUSH_SECONDS", 0.1)
LAB_TRAINING_PYTHON = env_str("LAB_TRAINING_PYTHON", "")

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
LAB_REDIS_PREFIX = env_str("LAB_REDIS_PREFIX", "lab")
# Answers a team may have queued or streaming at once (the playground and /v1/); one more is a 429.
LAB_INFERENCE_REQUESTS_PER_TEAM = env_int("LAB_INFERENCE_REQUESTS_PER_TEAM", 16)

# Django's cache (failed logins) in Redis, shared by every web process. Never call cache.clear(): it
# empties the whole Redis database, the broker's queues included.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{LAB_REDIS_PREFIX}:cache",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

CHANNEL_LAYERS = {
    "default": {
        # channels_redis's layer, made to keep websockets open through a Redis outage (lab/channel_layer.py).
        "BACKEND": "lab.channel_layer.ResilientRedisChannelLayer",
        "CONFIG": {"hosts": [{
            "address": REDIS_URL,
            # redis-py 8 times a read out after 5 s, the same 5 s that channels_redis blocks waiting for a
            # message: an idle websocket would crash and reconnect every few seconds. Reads wait longer.
            "socket_timeout": 30,
            # ...but not a connect: a Redis that does not answer must not stall a training relay's publish.
            "socket_connect_timeout": 2,
            # A pooled connection from before a Redis restart fails its first command; take a new one
            # and try again (by default redis-py does not, and a websocket connect answered 500).
            "retry": Retry(NoBackoff(), 1),
        }], "prefix": f"{LAB_REDIS_PREFIX}:channels"},
    }
}

# A queued run with no message in its queue (never sent: Redis was down; or lost: Redis restarted
# empty, a worker died holding it) is sent again once its last event is this old, by the reaper's
# sweep every LAB_REAP_SECONDS: a lost message is replaced within the sum (40 s).
LAB_SEND_AGAIN_SECONDS = env_float("LAB_SEND_AGAIN_SECONDS", 30.0)

# Celery: one task at a time per worker, acked on receipt; recovery is the app's (leases + reaper),
# never the broker's redelivery, which would start a second copy of a long run.
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("LAB_VISIBILITY_TIMEOUT", 12 * 3600),
    "global_keyprefix": f"{LAB_REDIS_PREFIX}:celery:",
}
# Runs report through events, never results. Only inference tasks (a model answering a request while
# the browser waits) keep a result, in Redis, for a few minutes.
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{LAB_REDIS_PREFIX}:results:"}
CELERY_RESULT_EXPIRES = 300
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A busy worker reserves no message (Celery 5.6+, Redis): the next run waits in the queue for a free
# worker instead of behind a long run, and no message dies with a worker that was only holding it.
CELERY_WORKER_DISABLE_PREFETCH = True
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1
CELERY_WORKER_POOL = "workers.pool:TaskPool"  # prefork, replacing a pool process at once (workers/pool.py)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The reaper runs on its own `control` queue: a worker busy with a long run cannot reap, and a
# message it cannot take in time is dropped (expires) rather than piling up behind the run.
CELERY_BEAT_SCHEDULE = {
    "reap-lost-runs": {
        "task": "workers.reap_lost_runs",
        "schedule": LAB_REAP_SECONDS,
        "options": {"queue": "control", "expires": LAB_REAP_SECONDS},
    },
    "remove-stale-uploads": {
        "task": "workers.remove_stale_uploads",
        "schedule": 3600,
        "options": {"queue": "control", "expires": 3600},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

REST_FRAMEWORK = {
    # The client address throttles see: REMOTE_ADDR, or the X-Forwarded-For entry set by the outermost
    # of this many proxies in front of the web. Never left unset: DRF would then trust any X-Forwarded-For.
    "NUM_PROXIES": env_int("LAB_NUM_PROXIES", 0),
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies are parsed with a depth limit (lab/parsers.py); then DRF's form parsers.
    "DEFAULT_PARSER_CLASSES": [
        "lab.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "lab.api.pagination.LimitOffset",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "lab.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLM Lab API",
    "DESCRIPTION": "Corpora, notebooks, cells, runs and artifacts of your team.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LAB_LOG_LEVEL", "INFO")},
}

# Serve static files (plotly.js included) straight from the finders; no collectstatic needed to run.
WHITENOISE_USE_FINDERS = True
