"""The thin Dagster layer: assets, partitions, resources, sensors, schedules, checks, executor."""

import warnings

try:  # backfill_policy and a few other parameters we rely on are flagged beta; the noise helps nobody
    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
except ImportError:  # pragma: no cover - older dagster
    pass

from soniquebay_assets.dagster_defs.internals import read_alembic_scripts_once  # noqa: E402

read_alembic_scripts_once()
