"""The one shared HTTP client for external services: polite (rate limit, User-Agent), bounded and safe.

Everything that talks to the network goes through `HttpClient.get`: per-host rate limit, bounded redirects
(each hop rate-limited too), retries with exponential backoff + jitter honouring `Retry-After`, a streamed
response size cap, a per-host circuit breaker, and redaction of secrets (API keys) from every message.
Clock, sleep and randomness are injectable so tests never wait for a real backoff.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from soniquebay_assets import __version__

log = logging.getLogger(__name__)

PROJECT_URL_HINT = "self-hosted; set SONIQUEBAY_HTTP_CONTACT to an email or URL"
# Published rules: MusicBrainz 1 req/s per IP (503 beyond); Cover Art Archive is served by the same team (we
# apply the same 1 req/s, also to the archive.org image host it redirects to); Last.fm asks for about 5 req/s;
# AcoustID allows 3 req/s per application key.
DEFAULT_RATE_LIMITS: dict[str, float] = {
    "musicbrainz.org": 1.0,
    "coverartarchive.org": 1.0,
    "archive.org": 1.0,
    "audioscrobbler.com": 5.0,
    "last.fm": 5.0,
    "acoustid.org": 3.0,
}
DEFAULT_RATE_PER_S = 2.0  # any other host
DEFAULT_MAX_BODY_BYTES = 15 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SECRET_PARAM = re.compile(r"((?:api_?key|token|secret|password|sk)=)[^&\s\"']+", re.IGNORECASE)
# Subsonic's credentials travel as `p` (password, plain or enc:hex) and `t` (salted token) query parameters.
_SUBSONIC_SECRET_PARAM = re.compile(r"((?<=[?&])[pt]=)[^&\s\"']+")


def user_agent(contact: str | None = None) -> str:
    """MusicBrainz-style User-Agent: `Application/version ( contact )`."""
    return f"SoniqueBay-assets/{__version__} ( {contact or PROJECT_URL_HINT} )"


class HttpError(Exception):
    """A request that gave no usable answer; `reason` is short and stable (used for counts by reason)."""

    def __init__(self, reason: str, message: str, *, status: int | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class HttpResponse:
    """A fully read (and size-capped) response; `url` is the final URL after redirects, redacted."""

    status: int
    url: str
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError("bad_json", f"{self.url}: {type(exc).__name__}") from None


class Redactor:
    """Replaces known secret values and `api_key=...`-style query parameters with `***`."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def __call__(self, text: object) -> str:
        out = _SUBSONIC_SECRET_PARAM.sub(r"\1***", _SECRET_PARAM.sub(r"\1***", str(text)))
        for secret in sorted(self._secrets, key=len, reverse=True):
            out = out.replace(secret, "***")
        return out


class _RedactingFilter(logging.Filter):
    """httpx logs every request URL at INFO; this rewrites those records before any handler sees them."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redactor(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


@dataclass
class _HostState:
    next_allowed: float = 0.0
    consecutive_failures: int = 0
    open_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class HttpClient:
    """One session for every external service (like beets): share it between sources, close it once."""

    def __init__(
        self,
        *,
        contact: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        max_redirects: int = 5,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        max_retry_after_s: float = 120.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        rate_limits: Mapping[str, float] | None = None,
        default_rate_per_s: float = DEFAULT_RATE_PER_S,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 300.0,
        retry_connect_errors: bool = True,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.user_agent = user_agent(contact)
        self.max_redirects = max_redirects
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_retry_after_s = max_retry_after_s
        self.max_body_bytes = max_body_bytes
        self.rate_limits = dict(DEFAULT_RATE_LIMITS if rate_limits is None else rate_limits)
        self.default_rate_per_s = default_rate_per_s
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown_s = breaker_cooldown_s
        # Off for batch work that treats "offline" (refused, DNS failure) as a reason to defer, not to wait.
        self.retry_connect_errors = retry_connect_errors
        self.service_rates: dict[str, float] = {}
        self.redact = Redactor(secrets)
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self._hosts: dict[str, _HostState] = {}
        self._hosts_lock = threading.Lock()
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "redirects": 0, "slept_ms": 0}
        self._filter = _RedactingFilter(self.redact)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).addFilter(self._filter)
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            follow_redirects=False,  # we follow ourselves: bounded, and each hop is rate-limited
            headers={"User-Agent": self.user_agent},
            transport=transport,
        )

    def set_service_rate(self, service: str, rate_per_s: float) -> None:
        """Rate limit a service by name whatever host serves it (a mirror, a test server on loopback)."""
        self.service_rates[service] = rate_per_s

    def add_secret(self, secret: str | None) -> None:
        """Register an API key so it is redacted everywhere this client reports."""
        self.redact.add(secret)

    def close(self) -> None:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).removeFilter(self._filter)
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public -----------------------------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        accept: str | None = None,
        service: str | None = None,
    ) -> HttpResponse:
        """GET with redirects, retries, rate limit, breaker and size cap; returns any final non-retried status."""
        cap = self.max_body_bytes if max_bytes is None else max_bytes
        current = httpx.URL(url, params=params) if params else httpx.URL(url)
        headers = {"Accept": accept} if accept else {}
        seen: list[str] = []
        for _hop in range(self.max_redirects + 1):
            response = self._request_with_retries(current, headers, cap, service)
            if response.status not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("location")
            if not location:
                raise HttpError("bad_redirect", f"{self.redact(current)}: redirect without Location",
                                status=response.status)
            seen.append(str(current))
            current = current.join(location)
            if current.scheme not in ("http", "https"):
                raise HttpError("bad_redirect", f"{self.redact(seen[-1])}: redirect to a {current.scheme!r} URL",
                                status=response.status)
            self.stats["redirects"] += 1
        raise HttpError("too_many_redirects",
                        f"more than {self.max_redirects} redirects from {self.redact(seen[0])}")

    def post_form(self, url: str, data: Sequence[tuple[str, str]], *, max_bytes: int | None = None,
                  accept: str | None = None, service: str | None = None, retry: bool = True) -> HttpResponse:
        """POST an urlencoded form (no redirect followed); `retry=False` for a request that must not run twice
        (creating something): a timeout or 5xx is raised at once for the caller to check what happened."""
        cap = self.max_body_bytes if max_bytes is None else max_bytes
        headers = {"Accept": accept} if accept else {}
        return self._request_with_retries(httpx.URL(url), headers, cap, service, form=list(data),
                                      retries=self.max_retries if retry else 0)

    def get_json(self, url: str, *, params: Mapping[str, str] | None = None,
                 service: str | None = None) -> tuple[int, Any]:
        """(status, parsed JSON or None when the status is not 2xx)."""
        response = self.get(url, params=params, accept="application/json", max_bytes=2 * 1024 * 1024,
                            service=service)
        if not 200 <= response.status < 300:
            return response.status, None
        return response.status, response.json()

    # -- internals --------------------------------------------------------------------------------------------

    def _host_state(self, host: str) -> _HostState:
        with self._hosts_lock:
            return self._hosts.setdefault(host, _HostState())

    def rate_for(self, host: str) -> float:
        """Requests per second allowed for a host: the longest matching domain suffix, else the default."""
        host = host.lower()
        best, best_len = self.default_rate_per_s, -1
        for domain, rate in self.rate_limits.items():
            if (host == domain or host.endswith("." + domain)) and len(domain) > best_len:
                best, best_len = rate, len(domain)
        return best

    def _wait_turn(self, host: str, state: _HostState, service: str | None = None) -> None:
        rate = self.service_rates[service] if service in self.service_rates else self.rate_for(host)
        interval = 1.0 / rate if rate > 0 else 0.0
        with state.lock:
            now = self._clock()
            start = max(now, state.next_allowed)
            state.next_allowed = start + interval
        if start > now:
            self._pause(start - now)

    def _pause(self, seconds: float) -> None:
        self.stats["slept_ms"] += int(seconds * 1000)
        self._sleep(seconds)

    def _check_breaker(self, host: str, state: _HostState) -> None:
        if state.consecutive_failures >= self.breaker_threshold and self._clock() < state.open_until:
            raise HttpError("circuit_open", f"{host}: {state.consecutive_failures} consecutive failures, "
                            f"paused until the cool-down ends")

    def _record(self, host: str, state: _HostState, ok: bool) -> None:
        if ok:
            state.consecutive_failures = 0
            return
        state.consecutive_failures += 1
        if state.consecutive_failures >= self.breaker_threshold:
            state.open_until = self._clock() + self.breaker_cooldown_s
            log.warning("circuit opened for %s after %d consecutive failures", host, state.consecutive_failures)

    def backoff_delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter; a server's Retry-After is a floor."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** attempt))
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        return max(delay, retry_after or 0.0)

    def _request_with_retries(self, url: httpx.URL, headers: dict[str, str], cap: int, service: str | None = None, *,
                          form: list[tuple[str, str]] | None = None, retries: int | None = None) -> HttpResponse:
        host = url.host
        retries = self.max_retries if retries is None else retries
        # A named service keeps its own pace and breaker, so two services behind one host never share them.
        state = self._host_state(f"service:{service}" if service in self.service_rates else host)
        last_error: HttpError | None = None
        for attempt in range(retries + 1):
            self._check_breaker(host, state)
            self._wait_turn(host, state, service)
            retry_after: float | None = None
            try:
                response = self._fetch_once(url, headers, cap, form)
            except HttpError as exc:
                if exc.reason not in ("timeout", "connect_error", "transport_error"):
                    self._record(host, state, ok=exc.reason == "too_large")
                    raise
                self._record(host, state, ok=False)
                last_error = exc
                if exc.reason == "connect_error" and not self.retry_connect_errors:
                    raise
            else:
                if response.status not in RETRY_STATUSES:
                    self._record(host, state, ok=True)
                    return response
                self._record(host, state, ok=False)
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._now_wall())
                reason = "rate_limited" if response.status == 429 else "server_error"
                last_error = HttpError(reason, f"HTTP {response.status} from {self.redact(url)}",
                                       status=response.status)
                if retry_after is not None and retry_after > self.max_retry_after_s:
                    raise HttpError(reason, f"{self.redact(url)} asks to wait {retry_after:.0f}s "
                                    f"(more than {self.max_retry_after_s:.0f}s); giving up", status=response.status)
            if attempt == retries:
                break
            self.stats["retries"] += 1
            delay = self.backoff_delay(attempt, retry_after)
            log.info("retrying %s in %.1fs (%s)", self.redact(url), delay, last_error.reason)
            self._pause(delay)
        assert last_error is not None
        raise last_error

    def _now_wall(self) -> float:
        return time.time()

    def _fetch_once(self, url: httpx.URL, headers: dict[str, str], cap: int,
                    form: list[tuple[str, str]] | None = None) -> HttpResponse:
        self.stats["requests"] += 1
        safe_url = self.redact(url)
        try:
            request = (self._client.stream("GET", url, headers=headers) if form is None else
                       self._client.stream("POST", url, headers=headers, data=_form(form)))
            with request as response:
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise HttpError("too_large", f"{safe_url}: declared {declared} bytes > cap {cap}")
                chunks, total = [], 0
                if response.status_code not in REDIRECT_STATUSES:
                    for chunk in response.iter_bytes():
                        total += len(chunk)
                        if total > cap:
                            raise HttpError("too_large", f"{safe_url}: body exceeds cap {cap} bytes")
                        chunks.append(chunk)
                return HttpResponse(
                    status=response.status_code,
                    url=safe_url,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    content=b"".join(chunks),
                )
        except httpx.TimeoutException as exc:
            raise HttpError("timeout", f"{safe_url}: {type(exc).__name__}") from None
        except httpx.ConnectError as exc:
            raise HttpError("connect_error", f"{safe_url}: {self.redact(exc)}") from None
        except httpx.TransportError as exc:
            raise HttpError("transport_error", f"{safe_url}: {type(exc).__name__}: {self.redact(exc)}") from None


def _form(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx sends a dict as a form: a repeated key (Subsonic's songId=...&songId=...) becomes a list, in order."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - now_wall)


class KeyedServiceClient:
    """Base of the clients of services that take an API key: the shared HttpClient paced for the service, the key
    redacted everywhere; `enabled` only with a key. Subclasses set SERVICE and RATE_PER_S."""

    SERVICE = ""
    RATE_PER_S = 1.0

    def __init__(self, http: HttpClient, api_key: str | None, base_url: str):
        self.http = http
        self.api_key = (api_key or "").strip() or None
        self.base_url = base_url
        http.set_service_rate(self.SERVICE, self.RATE_PER_S)
        if self.api_key:
            http.add_secret(self.api_key)

    @property
    def enabled(self) -> bool:
        return self.api_key is not None
