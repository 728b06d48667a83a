"""The Celery broker seen from outside: how many messages wait in each queue (Redis LLEN), for `soniquebay status`,
the deferred-work asset and the API's Prometheus metrics (what an autoscaler reads)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from soniquebay_assets import queues

# kombu's Redis transport emulates priorities with one list per priority step: "<queue>\x06\x16<step>".
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def redact(url: str) -> str:
    """A broker URL without its password, for reports and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def queue_keys(queue: str) -> list[str]:
    return [queue] + [f"{queue}{_KOMBU_PRIORITY_SEP}{step}" for step in _KOMBU_PRIORITY_STEPS if step]


def queue_depths(broker_url: str, names=queues.ALL_QUEUES, timeout_s: float = 2.0) -> tuple[dict[str, int], str]:
    """Waiting messages per queue (LLEN over its priority lists); ({}, reason) when the broker is not reachable."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return {}, f"queue depth needs a Redis broker (got {redact(broker_url)})"
    import redis

    try:
        client = redis.Redis.from_url(broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        pipe = client.pipeline()
        for name in names:
            for key in queue_keys(name):
                pipe.llen(key)
        lengths = iter(pipe.execute())
        return {name: sum(next(lengths) for _ in queue_keys(name)) for name in names}, ""
    except redis.RedisError as exc:
        return {}, f"broker {redact(broker_url)} unreachable: {exc}"
