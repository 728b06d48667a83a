"""`soniquebay serve`: the catalog as an HTTP API (GraphQL, covers, playlists, metrics) and a web page."""

from __future__ import annotations

import argparse
import errno
import os
import secrets
import socket
import sys

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve the catalog over HTTP: GraphQL API, covers, metrics, web page")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other needs SONIQUEBAY_API_TOKEN)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1; one per core suits a busy server)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    add_data_dir(parser)
    parser.set_defaults(handler=run)


def _port_free(host: str, port: int) -> str | None:
    """None when host:port can be listened on, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: pick another with --port"
            return f"cannot listen on {host}:{port} ({exc.strerror}): check --host"
    return None


def run(args: argparse.Namespace) -> int:
    from soniquebay_assets import settings
    from soniquebay_assets.api.config import InsecureBind, config_from_env, is_loopback
    from soniquebay_assets.catalog.db import connection, display_target

    if not 0 < args.port < 65536:
        return fail(f"--port {args.port}: give a port from 1 to 65535")
    if args.workers < 1:
        return fail("--workers must be at least 1")
    data = data_dir_from(args)
    os.environ[settings.ENV_DATA_DIR] = str(data.root)
    os.environ[settings.ENV_API_BIND_HOST] = args.host
    generated = None
    if settings.api_token() is None and is_loopback(args.host):
        # reading is open on loopback; decisions still need a token, so this run makes one and says how to use it
        generated = secrets.token_urlsafe(24)
        os.environ[settings.ENV_API_TOKEN] = generated
    try:
        config = config_from_env()
    except InsecureBind as exc:
        return fail(str(exc))
    problem = _port_free(args.host, args.port)
    if problem:
        return fail(problem)
    with connection(config.catalog_url):  # migrate once here, before the workers start; errors exit with 2
        pass
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{shown_host}:{args.port}"
    sys.stderr.write(f"soniquebay: serving {display_target(config.catalog_url)} at {base} "
                     f"({args.workers} worker{'s' if args.workers > 1 else ''}; GraphQL at {base}/graphql, "
                     f"metrics at {base}/metrics)\n")
    if generated:
        sys.stderr.write(f"soniquebay: reading needs no token on loopback; to make decisions, sign in with this "
                         f"run's token: {base}/login#token={generated}\n")
    import uvicorn

    uvicorn.run("soniquebay_assets.api.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=args.access_log, log_level="info", server_header=False,
                proxy_headers=False, timeout_graceful_shutdown=5)
    return 0
