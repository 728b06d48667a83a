"""A real HTTP server on 127.0.0.1 that answers like Cover Art Archive and Last.fm, misbehaviours included.

Routes map a path to a list of `Reply` (served in turn, the last one repeating) or to a callable taking the
query dict. Every request is recorded (path, query, headers) so tests can assert what the client sent.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stream_bytes: int = 0  # send this many bytes without Content-Length (connection close ends the body)


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() on arrival, for asserting the spacing a rate limit keeps


class FakeArtworkServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Callable[[dict[str, str]], Reply]] = {}
        self.requests: list[Seen] = []
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                reply = server._reply_for(parts.path, query, dict(self.headers.items()))
                try:
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    if reply.stream_bytes:
                        self.send_header("Content-Type", "image/jpeg")
                        self.end_headers()
                        chunk = b"\xff" * 65536
                        sent = 0
                        while sent < reply.stream_bytes:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                        return
                    if "Content-Length" not in reply.headers:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, size cap): expected in these tests

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def set(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)
        self._served[path] = 0

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def _reply_for(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(Seen(path, query, headers, time.monotonic()))
            route = self.routes.get(path)
            if route is None:
                return Reply(404, b'{"error": "not found"}', {"Content-Type": "application/json"})
            if callable(route):
                return route(query)
            index = min(self._served.get(path, 0), len(route) - 1)
            self._served[path] = self._served.get(path, 0) + 1
            return route[index]

    def start(self) -> FakeArtworkServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve():
    """Body of the `artwork_server` fixture each test module declares: a started server, stopped after."""
    server = FakeArtworkServer().start()
    try:
        yield server
    finally:
        server.stop()


# -- bodies --------------------------------------------------------------------------------------------------


def image_bytes(width: int = 640, height: int = 640, fmt: str = "JPEG", color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A ~100-byte PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * (width + 1) * 4, 9)  # a few rows; the header is what matters
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def json_reply(payload: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def image_reply(data: bytes, mime: str = "image/jpeg") -> Reply:
    return Reply(200, data, {"Content-Type": mime})


def caa_index(server: FakeArtworkServer, scope: str, mbid: str, images: list[tuple[str, bool]]) -> None:
    """Route /<scope>/<mbid> to a Cover Art Archive-style listing of (image path, is_front)."""
    payload = {"release": f"https://musicbrainz.org/{scope}/{mbid}", "images": [
        {"front": front, "types": ["Front"] if front else ["Back"], "image": server.url(path),
         "thumbnails": {"250": server.url(path), "500": server.url(path), "1200": server.url(path)}}
        for path, front in images]}
    server.set(f"/{scope}/{mbid}", json_reply(payload))


def lastfm_images(server: FakeArtworkServer, path: str) -> list[dict[str, str]]:
    return [{"#text": server.url(path) if size == "extralarge" else "", "size": size}
            for size in ("small", "medium", "large", "extralarge")]


PLACEHOLDER_PATH = "/i/u/300x300/2a96cbd8b46e442fc41c2b86b821562f.png"


def fake_clock_http(seed: int = 1, **overrides):
    """An HttpClient on a fake clock (sleeps only advance it), no rate limits, one retry, 2 s read timeout."""
    import random

    from soniquebay_assets.clients.http import HttpClient

    clock = {"t": 0.0}

    def sleep(seconds: float) -> None:
        clock["t"] += seconds

    options = dict(clock=lambda: clock["t"], sleep=sleep, rng=random.Random(seed), rate_limits={},
                   default_rate_per_s=0, read_timeout_s=2.0, max_retries=1)
    options.update(overrides)
    return HttpClient(**options)
