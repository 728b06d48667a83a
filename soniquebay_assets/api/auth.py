"""Who may ask what. On loopback anyone on this machine may read; beyond it every request but /healthz and
/metrics needs the token (`Authorization: Bearer <token>`, or the cookie the sign-in page sets). Decisions
(mutations) always need it. A wrong token is refused everywhere, so a misconfigured client notices."""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any

from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from soniquebay_assets.api.config import ApiConfig

COOKIE_NAME = "soniquebay_token"
# Probes and scrapers carry no token; the sign-in page and its style sheet must load before one exists.
OPEN_PATHS = ("/healthz", "/metrics", "/login")
OPEN_PREFIXES = ("/static/",)


def presented_token(scope: Scope) -> str | None:
    """The bearer token of the request, else the sign-in cookie's; None when neither is there."""
    cookie_header = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"cookie":
            cookie_header = value.decode("latin-1")
    if cookie_header:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # noqa: BLE001 - a malformed cookie header is no token
            return None
        if COOKIE_NAME in jar and jar[COOKIE_NAME].value:
            return jar[COOKIE_NAME].value
    return None


def token_matches(config: ApiConfig, token: str | None) -> bool:
    return bool(config.token and token and hmac.compare_digest(token.encode("utf-8"), config.token.encode("utf-8")))


class TokenGate:
    """ASGI middleware: marks each request authorized or not and turns away those that need a token."""

    def __init__(self, app: ASGIApp, config: ApiConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = presented_token(scope)
        authorized = token_matches(self.config, token)
        scope.setdefault("state", {})["authorized"] = authorized
        path = scope.get("path", "")
        open_path = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        if not open_path and not authorized and (token is not None or not self.config.loopback):
            await self._refuse(scope, token is not None)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refuse(self, scope: Scope, wrong: bool) -> Any:
        accept = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"accept"), "")
        if scope.get("method") == "GET" and "text/html" in accept:
            response = RedirectResponse("/login", status_code=303)
            if wrong:
                response.delete_cookie(COOKIE_NAME, path="/")
            return response
        message = "wrong API token" if wrong else "this server needs the API token: send `Authorization: Bearer <token>`"
        return JSONResponse({"errors": [{"message": message}]}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="soniquebay"'})
