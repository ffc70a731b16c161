"""Failed logins, counted in Django's cache per client address and per username.

After LAB_LOGIN_FAILURES failed tries within a window of LAB_LOGIN_WINDOW_SECONDS (counted from the first
of them), every further try from that address, or for that username, is refused until the window ends:
the login page and the token view answer 429 with Retry-After, and no backend authenticates meanwhile
(which covers the admin's login too). Every way in calls `authenticate()`, whose `user_login_failed`
signal does the counting.
"""

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

log = logging.getLogger(__name__)


def client_address(request) -> str:
    """The client's address as DRF's throttles see it: REMOTE_ADDR, or X-Forwarded-For behind
    REST_FRAMEWORK["NUM_PROXIES"] proxies."""
    return BaseThrottle().get_ident(request) or ""


def _keys(request, username) -> list[str]:
    # Hashed: the address (from a header) and the username are the client's text, not cache-safe keys.
    names = [f"address:{client_address(request)}"]
    if username:
        names.append(f"username:{str(username).casefold()}")
    # surrogatepass: a JSON string may hold a lone surrogate, which UTF-8 cannot encode.
    return ["login-failures:" + hashlib.sha256(name.encode(errors="surrogatepass")).hexdigest() for name in names]


def retry_after(request, username) -> int:
    """Seconds until tries from this client or for this username are taken again; 0: now."""
    keys = _keys(request, username)
    try:
        found = cache.get_many([*keys, *(f"{key}:since" for key in keys)])
    except RedisError as e:  # logins go on without their limit rather than fail while Redis is away
        log.warning("failed logins are not limited: the cache does not answer (%s)", e)
        return 0
    waits = [found.get(f"{key}:since", 0) + settings.LAB_LOGIN_WINDOW_SECONDS - time.time()
             for key in keys if found.get(key, 0) >= settings.LAB_LOGIN_FAILURES]
    return max(1, math.ceil(max(waits))) if waits else 0


def record_failure(request, username) -> None:
    window = settings.LAB_LOGIN_WINDOW_SECONDS
    try:
        for key in _keys(request, username):
            cache.add(f"{key}:since", time.time(), window)
            cache.add(key, 0, window)
            try:
                cache.incr(key)
            except ValueError:  # the window ended between the two calls: this failure opens a new one
                cache.set(f"{key}:since", time.time(), window)
                cache.set(key, 1, window)
    except RedisError as e:
        log.warning("a failed login was not counted: the cache does not answer (%s)", e)


@receiver(user_login_failed)
def count_failed_login(sender, credentials, request=None, **kwargs):
    if request is not None:
        record_failure(request, credentials.get("username"))


class RefuseWhileThrottled:
    """First in AUTHENTICATION_BACKENDS: while a client or username is throttled, no backend authenticates
    it, whichever view asks. Not a BaseBackend: it has no get_user, so sessions never name it."""

    def authenticate(self, request, username=None, **credentials):
        if request is not None and retry_after(request, username):
            raise PermissionDenied
        return None

    async def aauthenticate(self, request, username=None, **credentials):
        return self.authenticate(request, username, **credentials)


class FailedLoginThrottle(BaseThrottle):
    """DRF's throttle for the token view: 429 with Retry-After while the client or username is throttled."""

    def allow_request(self, request, view):
        # The address first: a throttled client gets its 429 whatever its body, even one that does not parse.
        self.seconds = retry_after(request, None)
        if not self.seconds:
            data = request.data
            username = data.get("username") if hasattr(data, "get") else None
            self.seconds = retry_after(request, username) if username else 0
        return not self.seconds

    def wait(self):
        return self.seconds
