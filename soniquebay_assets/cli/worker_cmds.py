"""`soniquebay worker --queues a,b,c`: dagster-celery workers on up to four queues from queues.py, one Celery
process per prefetch value so every queue keeps its own prefetch."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from soniquebay_assets import queues
from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, instance_home, print_json

MAX_QUEUES_PER_WORKER = 4  # Celery 4-era limit that dagster-celery still enforces
CELERY_APP = "soniquebay_assets.celery_app"


def register(subparsers) -> None:
    parser = subparsers.add_parser("worker", help="start a Celery worker for Dagster steps on the given queues")
    parser.add_argument("--queues", required=True,
                        help=f"comma list, at most {MAX_QUEUES_PER_WORKER}, from: {', '.join(queues.ALL_QUEUES)}")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="steps run at once (default: min(4, CPU count))")
    parser.add_argument("--autoscale", default=None, metavar="MAX,MIN",
                        help="let Celery grow and shrink each pool between MIN and MAX steps by load "
                             "(instead of a fixed --concurrency)")
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
    """One worker-wide prefetch: the smallest of its queues' (used when queues share one Celery process)."""
    return min(queues.PREFETCH_BY_QUEUE[n] for n in names)


def prefetch_groups(names: list[str]) -> list[tuple[int, list[str]]]:
    """Queues grouped by their prefetch, in the order given: one Celery process per group, so each queue
    gets its own prefetch (a Celery process has one prefetch for all the queues it consumes)."""
    groups: dict[int, list[str]] = {}
    for name in names:
        groups.setdefault(queues.PREFETCH_BY_QUEUE[name], []).append(name)
    return list(groups.items())


def parse_autoscale(raw: str) -> tuple[int, int]:
    """`MAX,MIN` as Celery takes it; ValueError says what is wrong."""
    try:
        high, low = (int(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(f"--autoscale {raw!r}: give MAX,MIN, e.g. 4,1") from None
    if low < 0 or high < 1 or low > high:
        raise ValueError(f"--autoscale {raw!r}: need 1 <= MAX and 0 <= MIN <= MAX")
    return high, low


def celery_command(names: list[str], concurrency: int, name: str, loglevel: str, *,
                   prefetch: int | None = None, autoscale: tuple[int, int] | None = None) -> list[str]:
    sizing = (["--autoscale", f"{autoscale[0]},{autoscale[1]}"] if autoscale
              else ["--concurrency", str(concurrency)])
    return [
        sys.executable, "-m", "celery", "-A", CELERY_APP, "worker",
        "-Q", ",".join(names),  # one comma list: repeated -Q flags would keep only the last queue
        "--prefetch-multiplier", str(prefetch if prefetch is not None else prefetch_for(names)),
        *sizing,
        "--pool", "prefork",  # a pool child killed mid-step is detected and its task requeued (acks_late)
        "-O", "fair",  # hand a task to a free pool child only: long steps never queue behind each other
        "-n", f"{name}@{socket.gethostname()}",
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]


def worker_commands(names: list[str], concurrency: int, name: str, loglevel: str,
                    autoscale: tuple[int, int] | None = None) -> list[list[str]]:
    """One Celery command per prefetch group; a single group keeps the plain worker name."""
    groups = prefetch_groups(names)
    return [celery_command(group, concurrency, name if len(groups) == 1 else f"{name}-p{prefetch}", loglevel,
                           prefetch=prefetch, autoscale=autoscale)
            for prefetch, group in groups]


def supervise(commands: list[list[str]]) -> int:
    """Run the Celery processes side by side; a stop signal reaches every one, and when one exits the others
    are stopped too (the service then restarts as a whole, e.g. docker's restart policy)."""
    children = [subprocess.Popen(command) for command in commands]

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, forward)
    code = 0
    while True:
        finished = [c for c in children if c.poll() is not None]
        if finished:
            code = finished[0].returncode
            break
        time.sleep(0.5)
    forward(signal.SIGTERM, None)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return code if code >= 0 else 128 - code


def run(args: argparse.Namespace) -> int:
    try:
        names = parse_queues(args.queues)
        autoscale = parse_autoscale(args.autoscale) if args.autoscale else None
    except ValueError as exc:
        return fail(str(exc))
    concurrency = args.concurrency or min(4, os.cpu_count() or 1)
    if concurrency < 1:
        return fail("--concurrency must be at least 1")
    data = data_dir_from(args)
    if args.dagster_home is not None:
        home = args.dagster_home.expanduser().resolve()
        if not (home / "dagster.yaml").is_file():
            return fail(f"--dagster-home {home} has no dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ["SONIQUEBAY_DATA_DIR"] = str(data.root)
    else:
        try:
            home = instance_home(data)  # workers must share the orchestrator's instance (and catalog)
        except ValueError as exc:
            return fail(str(exc))
    commands = worker_commands(names, concurrency, args.name or names[0], args.loglevel, autoscale)
    if args.print_command:
        print_json({"command": commands[0], "commands": commands, "queues": names,
                    "prefetch_by_queue": {n: queues.PREFETCH_BY_QUEUE[n] for n in names},
                    "prefetch_multiplier": prefetch_for(names),
                    "env": {"DAGSTER_HOME": str(home), "SONIQUEBAY_DATA_DIR": str(data.root)}})
        return 0
    sys.stdout.flush()
    if len(commands) == 1:
        os.execv(commands[0][0], commands[0])
    return supervise(commands)
