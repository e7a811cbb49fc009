"""The operator's page as a Starlette application.

Pages: `/login`, `/` (live, health, history, feedback in one page, no build step, no CDN).
JSON: `/api/login`, `/api/logout`, `/api/me`, `/api/live`, `/api/health`, `/api/history`,
`/api/feedback`; `/api/events` streams updates (Server-Sent Events); `/media/<id>/image`
and `/media/<id>/overlay` serve a part's frame and its mask overlay.

Every route but the login page and the static files needs a session. Writes need the
operator role, the session's CSRF token in `X-CSRF-Token`, and (when the browser sends
one) an Origin equal to the page's own. The history is read on Starlette's thread pool;
the live state comes from the sink's bounded buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.hmi.auth import COOKIE, CSRF_HEADER, Session, Sessions
from edge.hmi.feedback import FeedbackError, Review
from edge.hmi.history import ID_PATTERN
from edge.hmi.live import LiveFeed
from edge.hmi.settings import HmiSettings

STATIC = Path(__file__).parent / "static"
_KEEPALIVE_S = 15.0
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class _SecurityHeaders:
    """Adds the headers above to every response (plain ASGI: the event stream passes through)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def build_app(
    settings: HmiSettings,
    feed: LiveFeed,
    review: Review,
    health: Callable[[], dict],
    about: dict,
) -> Starlette:
    """`about`: what the page shows of the station (line, station, model id, class names)."""
    sessions = Sessions(settings)
    hub, history = feed.hub, feed.history

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def writer(request: Request) -> Session | Response:
        """The session allowed to write, or the response refusing the write."""
        session = session_of(request)
        if session is None:
            return _error(401, "log in first")
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            return _error(403, "cross-site request refused")
        if not session.csrf_ok(request.headers.get(CSRF_HEADER)):
            return _error(403, "missing or wrong CSRF token: reload the page")
        if not session.may_write:
            return _error(403, f"user {session.user} may look but not judge (role {session.role})")
        return session

    async def login_page(request: Request) -> Response:
        return FileResponse(STATIC / "login.html")

    async def index(request: Request) -> Response:
        if session_of(request) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / "index.html")

    def login(request: Request, body: dict) -> Response:
        client = request.client.host if request.client else "?"
        wait = sessions.limiter.retry_after_s(client)
        if wait > 0:
            return _error(429, f"too many failed logins: try again in {wait:.0f} s", **{"Retry-After": f"{wait:.0f}"})
        user, password = str(body.get("user", "")), str(body.get("password", ""))
        made = sessions.login(user, password)
        if made is None:
            sessions.limiter.failed(client)
            return _error(401, "wrong user name or password")
        token, session = made
        response = JSONResponse({"user": session.user, "role": session.role, "csrf": session.csrf})
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(settings.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookie,
            path="/",
        )
        return response

    async def api_login(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            return _error(403, "cross-site request refused")
        body = await _json(request)
        if body is None:
            return _error(400, 'send JSON: {"user": ..., "password": ...}')
        return await asyncio.to_thread(login, request, body)  # scrypt takes ~50 ms: off the loop

    async def api_logout(request: Request) -> Response:
        session = session_of(request)
        if session is not None and session.csrf_ok(request.headers.get(CSRF_HEADER)):
            sessions.logout(request.cookies.get(COOKIE))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def api_me(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return _error(401, "log in first")
        return JSONResponse({"user": session.user, "role": session.role, "csrf": session.csrf, **about})

    async def api_live(request: Request) -> Response:
        if session_of(request) is None:
            return _error(401, "log in first")
        return JSONResponse(feed.snapshot())

    def api_health(request: Request) -> Response:  # sync: `health` may ask the station and wait
        if session_of(request) is None:
            return _error(401, "log in first")
        return JSONResponse(health())

    def api_history(request: Request) -> Response:
        if session_of(request) is None:
            return _error(401, "log in first")
        q = request.query_params
        try:
            limit = int(q.get("limit", 100))
            before = int(q["before"]) if q.get("before") else None
        except ValueError:
            return _error(400, "limit and before are whole numbers")
        rows = history.query(q.get("verdict"), q.get("class"), q.get("camera"), limit, before)
        return JSONResponse({"items": rows})

    def media(request: Request) -> Response:
        if session_of(request) is None:
            return _error(401, "log in first")
        pid, kind = request.path_params["inspection_id"], request.path_params["kind"]
        if not ID_PATTERN.match(pid) or kind not in ("image", "overlay"):
            return _error(404, "no such picture")
        row = history.get(pid)
        name = None if row is None else (row["image"] if kind == "image" else row["mask"])
        if name and kind == "overlay":
            name = name.replace(".mask.png", ".overlay.png")
        path = history.file(name)
        if path is None:
            return _error(404, "no such picture (pruned from the history, or an OK part without a mask)")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    async def api_feedback(request: Request) -> Response:
        allowed = writer(request)
        if not isinstance(allowed, Session):
            return allowed
        body = await _json(request)
        if body is None or not ID_PATTERN.match(str(body.get("inspection_id", ""))):
            return _error(400, 'send JSON: {"inspection_id": ..., "action": ..., "defect_class": ...}')
        try:
            record = await asyncio.to_thread(
                review.judge,
                str(body["inspection_id"]),
                str(body.get("action")),
                allowed.user,
                body.get("defect_class"),
            )
        except FeedbackError as error:
            return _error(409, str(error))
        hub.publish("review", {"inspection_id": record["inspection_id"], "review": record})
        return JSONResponse(record)

    async def api_events(request: Request) -> Response:
        if session_of(request) is None:
            return _error(401, "log in first")
        updates = hub.join()
        if updates is None:
            return _error(503, "too many pages open on this station: close one")

        async def stream():
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        kind, data = await asyncio.wait_for(updates.get(), _KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
            finally:
                hub.leave(updates)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.attach(asyncio.get_running_loop())
        yield

    routes = [
        Route("/", index),
        Route("/login", login_page),
        Route("/api/login", api_login, methods=["POST"]),
        Route("/api/logout", api_logout, methods=["POST"]),
        Route("/api/me", api_me),
        Route("/api/live", api_live),
        Route("/api/health", api_health),
        Route("/api/history", api_history),
        Route("/api/events", api_events),
        Route("/api/feedback", api_feedback, methods=["POST"]),
        Route("/media/{inspection_id}/{kind}", media),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)], lifespan=lifespan)


async def _json(request: Request) -> dict | None:
    if "application/json" not in request.headers.get("content-type", ""):
        return None  # a cross-site HTML form cannot send JSON without a CORS preflight
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None
