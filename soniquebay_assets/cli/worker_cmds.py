"""`soniquebay worker --queues a,b,c`: start a dagster-celery worker on up to four queues from queues.py."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from soniquebay_assets import queues
from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, print_json, use_dagster_home

MAX_QUEUES_PER_WORKER = 4  # Celery 4-era limit that dagster-celery still enforces
CELERY_APP = "soniquebay_assets.celery_app"


def register(subparsers) -> None:
    parser = subparsers.add_parser("worker", help="start a Celery worker for Dagster steps on the given queues")
    parser.add_argument("--queues", required=True,
                        help=f"comma list, at most {MAX_QUEUES_PER_WORKER}, from: {', '.join(queues.ALL_QUEUES)}")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="steps run at once (default: min(4, CPU count))")
    parser.add_argument("--name", default=None, help="worker name (default: first queue); hostname is appended")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--print-command", action="store_true",
                        help="print the celery command and environment as JSON instead of starting it")
    parser.add_argument("--dagster-home", type=Path, default=None,
                        help="Dagster instance folder shared with the webserver/daemon (default: <data dir>/dagster_home;"
                             " docker uses the Postgres-backed /opt/dagster/home)")
    add_data_dir(parser)
    parser.set_defaults(handler=run)


def parse_queues(raw: str) -> list[str]:
    """Validated, de-duplicated queue names in the order given; ValueError says what is wrong."""
    names: list[str] = []
    for name in (part.strip() for part in raw.split(",")):
        if name and name not in names:
            names.append(name)
    if not names:
        raise ValueError("--queues is empty; give a comma list such as worker_scan,worker_extract")
    unknown = [n for n in names if n not in queues.ALL_QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; known queues: {', '.join(queues.ALL_QUEUES)}")
    if len(names) > MAX_QUEUES_PER_WORKER:
        raise ValueError(f"{len(names)} queues given; a worker may consume at most {MAX_QUEUES_PER_WORKER} "
                         "(start a second worker for the rest)")
    return names


def prefetch_for(names: list[str]) -> int:
    """One worker-wide prefetch: the smallest of its queues' so a heavy queue's tasks are never hoarded."""
    return min(queues.PREFETCH_BY_QUEUE[n] for n in names)


def celery_command(names: list[str], concurrency: int, name: str, loglevel: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", CELERY_APP, "worker",
        "-Q", ",".join(names),  # one comma list: repeated -Q flags would keep only the last queue
        "--prefetch-multiplier", str(prefetch_for(names)),
        "--concurrency", str(concurrency),
        "--pool", "prefork",  # a pool child killed mid-step is detected and its task requeued (acks_late)
        "-n", f"{name}@{socket.gethostname()}",
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]


def run(args: argparse.Namespace) -> int:
    try:
        names = parse_queues(args.queues)
    except ValueError as exc:
        return fail(str(exc))
    concurrency = args.concurrency or min(4, os.cpu_count() or 1)
    if concurrency < 1:
        return fail("--concurrency must be at least 1")
    data = data_dir_from(args)
    home = use_dagster_home(data)  # workers must share the orchestrator's instance (and catalog)
    if args.dagster_home is not None:
        home = args.dagster_home.expanduser().resolve()
        if not (home / "dagster.yaml").is_file():
            return fail(f"--dagster-home {home} has no dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    command = celery_command(names, concurrency, args.name or names[0], args.loglevel)
    if args.print_command:
        print_json({"command": command, "queues": names, "prefetch_multiplier": prefetch_for(names),
                    "env": {"DAGSTER_HOME": str(home), "SONIQUEBAY_DATA_DIR": str(data.root)}})
        return 0
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached
