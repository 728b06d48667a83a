"""`soniquebay status --json`: queues, assets and deferred work at a glance (placeholder until filled)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="queue depths, per-asset success rates, deferred work")
    parser.set_defaults(handler=lambda args: 0)
