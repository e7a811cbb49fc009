"""Logins, sessions, CSRF tokens and the login rate limit of the operator's page.

Sessions live in this process only (a restart logs everyone out, which a station restart
may): an unguessable token in an HttpOnly, SameSite=Strict cookie maps to the user, the
role and a CSRF token that every write must echo in the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from edge.access.passwords import verify_password
from edge.hmi.settings import HmiSettings

COOKIE = "eiad_hmi_session"
CSRF_HEADER = "x-csrf-token"
_MAX_SESSIONS = 256  # the oldest login is dropped beyond this: memory stays bounded


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str
    expires: float

    @property
    def may_write(self) -> bool:
        return self.role == "operator"

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token, self.csrf)


class LoginLimiter:
    """At most `attempts` failed logins per client (address) per `window_s`."""

    def __init__(self, attempts: int, window_s: float = 60.0, max_clients: int = 4096) -> None:
        self._attempts, self._window, self._max = attempts, window_s, max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, client: str, now: float | None = None) -> float:
        """0 when `client` may try now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return 0.0
            while failures and now - failures[0] >= self._window:
                failures.popleft()
            if len(failures) < self._attempts:
                return 0.0
            return self._window - (now - failures[0])

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._failures.setdefault(client, deque()).append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)


class Sessions:
    def __init__(self, settings: HmiSettings) -> None:
        self._hashes = {name: user.stored_hash() for name, user in settings.users.items()}
        self._roles = {name: user.role for name, user in settings.users.items()}
        self._ttl = settings.session_hours * 3600.0
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self.limiter = LoginLimiter(settings.login_attempts)
        # A password check for unknown users too, so timing does not tell which names exist.
        self._decoy = next(iter(self._hashes.values()), None)

    def login(self, user: str, password: str) -> tuple[str, Session] | None:
        """(token, session) for a right password, else None."""
        stored = self._hashes.get(user)
        ok = verify_password(password, stored or self._decoy or "") if (stored or self._decoy) else False
        if stored is None or not ok:
            return None
        token = secrets.token_urlsafe(32)
        session = Session(user, self._roles[user], secrets.token_urlsafe(32), time.time() + self._ttl)
        with self._lock:
            self._sessions[token] = session
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires < time.time():
                del self._sessions[token]
                return None
            return session

    def logout(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)
