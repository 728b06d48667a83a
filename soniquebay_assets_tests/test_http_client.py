"""The shared HTTP client against a real loopback server: retries, Retry-After, timeouts, redirects, caps,
circuit breaker, rate limit and secret redaction. Sleeps go to a fake clock, so no test waits for a backoff."""

from __future__ import annotations

import logging
import random
import socket
import traceback

import pytest

from soniquebay_assets.clients.http import HttpClient, HttpError, parse_retry_after, user_agent
from soniquebay_assets_tests.fake_artwork_server import (
    Reply,
    image_reply,
    json_reply,
    serve,
)

SECRET = "f00dfacecafe1234beef5678deadbeef"


@pytest.fixture()
def artwork_server():
    yield from serve()


class FakeClock:
    """monotonic() and sleep() for the client: sleeping only advances time and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(clock: FakeClock, **overrides) -> HttpClient:
    options = dict(clock=clock, sleep=clock.sleep, rng=random.Random(7), rate_limits={}, default_rate_per_s=0,
                   read_timeout_s=2.0, connect_timeout_s=1.0, max_retries=3, backoff_base_s=1.0)
    options.update(overrides)
    return HttpClient(**options)


def test_sends_project_user_agent_and_parses_json(artwork_server):
    artwork_server.set("/ok", json_reply({"hello": "world"}))
    clock = FakeClock()
    with make_client(clock, contact="admin@example.org") as http:
        status, payload = http.get_json(artwork_server.url("/ok"))
    assert (status, payload) == (200, {"hello": "world"})
    sent = artwork_server.requests[0].headers["User-Agent"]
    assert sent == user_agent("admin@example.org")
    assert sent.startswith("SoniqueBay-assets/") and "admin@example.org" in sent


def test_429_with_retry_after_is_honoured_then_succeeds(artwork_server):
    artwork_server.set("/busy", Reply(429, b"slow down", {"Retry-After": "7"}), json_reply({"ok": True}))
    clock = FakeClock()
    with make_client(clock) as http:
        status, payload = http.get_json(artwork_server.url("/busy"))
    assert status == 200 and payload == {"ok": True}
    assert artwork_server.hits("/busy") == 2
    assert clock.sleeps and clock.sleeps[0] >= 7.0
    assert http.stats["retries"] == 1


def test_retry_after_beyond_the_limit_gives_up_without_waiting(artwork_server):
    artwork_server.set("/closed", Reply(429, b"", {"Retry-After": "86400"}))
    clock = FakeClock()
    with make_client(clock, max_retry_after_s=60) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/closed"))
    assert info.value.reason == "rate_limited"
    assert artwork_server.hits("/closed") == 1
    assert not clock.sleeps


def test_503_retries_with_growing_jittered_backoff_then_fails(artwork_server):
    artwork_server.set("/down", Reply(503, b"unavailable"))
    clock = FakeClock()
    with make_client(clock, max_retries=3, backoff_base_s=1.0, backoff_cap_s=60) as http:
        with pytest.raises(HttpError) as info:
            http.get(artwork_server.url("/down"))
    assert info.value.reason == "server_error" and info.value.status == 503
    assert artwork_server.hits("/down") == 4
    # equal jitter: attempt n waits between base*2^n/2 and base*2^n
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps):
        ceiling = 2 ** attempt
        assert ceiling / 2 <= slept <= ceiling


def test_flaky_503_recovers(artwork_server):
    artwork_server.set("/flaky", Reply(503), Reply(502), image_reply(b"abc"))
    clock = FakeClock()
    with make_client(clock) as http:
        response = http.get(artwork_server.url("/flaky"))
    assert response.status == 200 and response.content == b"abc"
    assert artwork_server.hits("/flaky") == 3


def test_slow_response_hits_the_read_timeout(artwork_server):
    artwork_server.set("/slow", Reply(200, b"late", delay_s=1.5))
    clock = FakeClock()
    with make_client(clock, read_timeout_s=0.2, max_retries=1) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/slow"))
    assert info.value.reason == "timeout"
    assert artwork_server.hits("/slow") == 2  # a timeout is transient: retried once


def test_redirect_loop_is_bounded(artwork_server):
    artwork_server.set("/loop/a", Reply(302, b"", {"Location": "/loop/b"}))
    artwork_server.set("/loop/b", Reply(302, b"", {"Location": "/loop/a"}))
    clock = FakeClock()
    with make_client(clock, max_redirects=4) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/loop/a"))
    assert info.value.reason == "too_many_redirects"
    assert artwork_server.hits("/loop/a") + artwork_server.hits("/loop/b") == 5


def test_redirect_to_a_non_http_scheme_is_refused(artwork_server):
    artwork_server.set("/evil", Reply(302, b"", {"Location": "file:///etc/passwd"}))
    clock = FakeClock()
    with make_client(clock) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/evil"))
    assert info.value.reason == "bad_redirect"
    assert artwork_server.hits("/evil") == 1


def test_redirect_to_image_host_is_followed(artwork_server):
    artwork_server.set("/release/x/front", Reply(307, b"", {"Location": "/images/x.jpg"}))
    artwork_server.set("/images/x.jpg", image_reply(b"\xff\xd8jpeg"))
    clock = FakeClock()
    with make_client(clock) as http:
        response = http.get(artwork_server.url("/release/x/front"))
    assert response.status == 200 and response.content == b"\xff\xd8jpeg"
    assert response.url.endswith("/images/x.jpg")


def test_huge_streamed_body_stops_at_the_cap(artwork_server):
    artwork_server.set("/huge", Reply(200, stream_bytes=8 * 1024 * 1024))
    clock = FakeClock()
    with make_client(clock, max_body_bytes=256 * 1024) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/huge"))
    assert info.value.reason == "too_large"
    assert artwork_server.hits("/huge") == 1  # not retried: the answer would be the same


def test_declared_huge_body_is_refused_before_reading(artwork_server):
    artwork_server.set("/declared", Reply(200, b"x" * 10, {"Content-Length": "999999999"}))
    clock = FakeClock()
    with make_client(clock, max_body_bytes=1024) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/declared"))
    assert info.value.reason == "too_large"


def test_malformed_json_is_a_bad_json_error(artwork_server):
    artwork_server.set("/broken", Reply(200, b'{"images": [', {"Content-Type": "application/json"}))
    clock = FakeClock()
    with make_client(clock) as http, pytest.raises(HttpError) as info:
        http.get_json(artwork_server.url("/broken"))
    assert info.value.reason == "bad_json"


def test_circuit_breaker_opens_then_half_opens_after_cooldown(artwork_server):
    artwork_server.set("/down", Reply(503))
    clock = FakeClock()
    with make_client(clock, max_retries=0, breaker_threshold=3, breaker_cooldown_s=300) as http:
        for _ in range(3):
            with pytest.raises(HttpError):
                http.get(artwork_server.url("/down"))
        assert artwork_server.hits("/down") == 3
        with pytest.raises(HttpError) as info:
            http.get(artwork_server.url("/other-path-same-host"))
        assert info.value.reason == "circuit_open"
        assert len(artwork_server.requests) == 3  # the open circuit sent nothing
        clock.now += 301
        artwork_server.set("/down", json_reply({"back": True}))
        assert http.get_json(artwork_server.url("/down")) == (200, {"back": True})


def test_connection_refused_is_a_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    with make_client(clock, max_retries=1) as http, pytest.raises(HttpError) as info:
        http.get(f"http://127.0.0.1:{port}/nothing")
    assert info.value.reason == "connect_error"
    assert len(clock.sleeps) == 1


def test_per_host_rate_limit_spaces_requests(artwork_server):
    artwork_server.set("/r", json_reply({}))
    clock = FakeClock()
    with make_client(clock, rate_limits={"127.0.0.1": 1.0}) as http:
        for _ in range(4):
            http.get(artwork_server.url("/r"))
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.0])


def test_default_rate_limits_follow_published_rules():
    with HttpClient() as http:
        assert http.rate_for("musicbrainz.org") == 1.0
        assert http.rate_for("coverartarchive.org") == 1.0
        assert http.rate_for("ia800204.us.archive.org") == 1.0
        assert http.rate_for("ws.audioscrobbler.com") == 5.0
        assert http.rate_for("example.com") == http.default_rate_per_s


def test_api_key_never_in_errors_or_logs(artwork_server, caplog):
    artwork_server.set("/2.0/", Reply(503, b"down"))
    clock = FakeClock()
    caplog.set_level(logging.DEBUG)
    with make_client(clock, max_retries=2, secrets=[SECRET]) as http, pytest.raises(HttpError) as info:
        http.get(artwork_server.url("/2.0/"), params={"method": "album.getinfo", "api_key": SECRET})
    assert artwork_server.requests[0].query["api_key"] == SECRET  # it was really sent
    assert SECRET not in str(info.value)
    assert SECRET not in "".join(traceback.format_exception(info.value))  # chained causes included
    assert caplog.records, "httpx and the client should have logged the requests"
    assert SECRET not in caplog.text
    assert "api_key=***" in caplog.text


def test_redactor_hides_unregistered_key_params_too():
    with HttpClient() as http:
        assert http.redact("https://x/2.0/?api_key=abc123&method=m") == "https://x/2.0/?api_key=***&method=m"
        http.add_secret("s3cr3tvalue")
        assert "s3cr3tvalue" not in http.redact("oops s3cr3tvalue leaked")


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("12", 0.0) == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


def test_named_services_keep_their_own_pace_on_one_host(artwork_server):
    artwork_server.set("/a", json_reply({}))
    artwork_server.set("/b", json_reply({}))
    clock = FakeClock()
    with make_client(clock) as http:
        http.set_service_rate("slow", 1.0)
        http.set_service_rate("fast", 4.0)
        for _ in range(3):
            http.get(artwork_server.url("/a"), service="slow")
            http.get(artwork_server.url("/b"), service="fast")
    # Three calls each, interleaved: "slow" needs 2 s of spacing, "fast" fits inside it; same host, no sharing.
    assert clock.now - 1000.0 == pytest.approx(2.0)
    assert len(artwork_server.requests) == 6


def test_connect_errors_can_fail_at_once_for_batch_work():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    clock = FakeClock()
    with make_client(clock, retry_connect_errors=False) as http:
        with pytest.raises(HttpError) as caught:
            http.get(f"http://127.0.0.1:{port}/x")
        assert caught.value.reason == "connect_error"
        assert http.stats["requests"] == 1 and http.stats["retries"] == 0 and clock.sleeps == []
    with make_client(clock) as http:
        with pytest.raises(HttpError):
            http.get(f"http://127.0.0.1:{port}/x")
        assert http.stats["requests"] == 4  # the default still retries
