"""The one ASGI app: GraphQL, REST (covers, playlists, health, metrics) and the web page, over one catalog.

Each worker process builds its own app (`soniquebay serve --workers N` starts them through `app_from_env`):
nothing is shared between workers but the catalog, the covers store and the broker, so any number is safe."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from soniquebay_assets.api import errors
from soniquebay_assets.api.access import CatalogAccess
from soniquebay_assets.api.auth import TokenGate
from soniquebay_assets.api.config import ApiConfig, config_from_env
from soniquebay_assets.api.covers import CoverStore, cover_endpoint
from soniquebay_assets.api.graphql_http import graphql_endpoint
from soniquebay_assets.api.metrics import MetricsEndpoint

log = logging.getLogger("soniquebay.api")
HERE = Path(__file__).parent
# Reads run one at a time per worker (a second thread only added GIL hand-offs and cache misses: similar k=20
# measured 5.8 ms of CPU a request with one thread, 8.8 ms with four); what may wait seconds (the text model's
# first load, MusicBrainz for a decision) goes to a lane of its own so it never holds the reads up.
READ_THREADS = 1
SLOW_THREADS = 2


@dataclass
class ApiState:
    """What one worker process holds: its config, catalog access, covers store and thread budget."""

    config: ApiConfig
    access: CatalogAccess
    covers: CoverStore
    read_lane: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(READ_THREADS))
    slow_lane: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(SLOW_THREADS))
    ready: threading.Event = field(default_factory=threading.Event)


class SecurityHeaders:
    """Headers every answer carries: no MIME sniffing, no referrer leaks, no framing, pages run only our scripts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                            (b"x-frame-options", b"DENY"),
                            (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
                                                         b"frame-ancestors 'none'; base-uri 'none'; "
                                                         b"form-action 'self'")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(request: Request) -> Response:
    """Alive, and whether the catalog answers (no token needed: for probes)."""
    api: ApiState = request.app.state.api

    def probe() -> bool:
        try:
            with api.access.reader() as conn:
                conn.execute("SELECT 1 FROM tracks LIMIT 1").fetchall()
            return True
        except Exception:  # noqa: BLE001 - a health probe reports, it does not raise
            log.warning("healthz: the catalog did not answer", exc_info=True)
            return False

    ok = await anyio.to_thread.run_sync(probe)
    return JSONResponse({"status": "ok" if ok else "catalog unavailable", "catalog": ok,
                         "vector_index_warm": api.ready.is_set()}, status_code=200 if ok else 503)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "") or "error"
    if _wants_html(request):
        from soniquebay_assets.api import pages

        return pages.error_page(request, status, str(detail))
    return JSONResponse({"error": str(detail)}, status_code=status, headers=getattr(exc, "headers", None))


async def server_error(request: Request, exc: Exception) -> Response:
    message = errors.internal(exc, f"{request.method} {request.url.path}")
    if _wants_html(request):
        return HTMLResponse(f"<h1>Something went wrong</h1><p>{message}</p>", status_code=500)
    return JSONResponse({"error": message}, status_code=500)


def _warm(api: ApiState) -> None:
    """Load the similar-track index before the first request needs it (seconds on a large catalog)."""
    try:
        from soniquebay_assets.catalog import vector_search, vectors

        if api.access.vector_search:
            with api.access.reader() as conn:
                if vectors.read_settings(conn) is not None:
                    vector_search.get_index(conn)
    except Exception:  # noqa: BLE001 - the first similar query loads it instead
        log.warning("could not load the similar-track index ahead of time", exc_info=True)
    finally:
        api.ready.set()


def create_app(config: ApiConfig) -> Starlette:
    """The ASGI app for `config` (checked: beyond loopback it needs a token)."""
    from soniquebay_assets.api import pages, playlists

    config.check()
    access = CatalogAccess(config.catalog_url, size=config.read_connections)
    api = ApiState(config=config, access=access, covers=CoverStore(config.covers_dir, config.catalog_url))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await anyio.to_thread.run_sync(access.prepare)
        threading.Thread(target=_warm, args=(api,), name="vector-index-warmup", daemon=True).start()
        try:
            yield
        finally:
            api.covers.close()
            access.close()

    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/albums/{album_id:int}", pages.album_page, methods=["GET"]),
        Route("/tracks/{track_id:int}", pages.track_page, methods=["GET"]),
        Route("/playlists", pages.playlists_page, methods=["GET"]),
        Route("/playlists/{name:path}.m3u8", playlists.m3u8_endpoint, methods=["GET"]),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
        Route("/covers/{entity_type}/{entity_id:int}", cover_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", MetricsEndpoint(api).endpoint, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if config.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
                                     max_age=600))
    middleware.append(Middleware(TokenGate, config=config))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.api = api
    return app


def app_from_env() -> Starlette:
    """uvicorn's factory for each worker process (`soniquebay serve` sets the environment it reads)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(config_from_env())

