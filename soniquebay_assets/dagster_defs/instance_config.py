"""The one template of the Dagster instance's dagster.yaml. Every instance of the project turns telemetry off and
monitors its runs; a data dir's own instance (the CLI, `soniquebay dev`) keeps its events in pooled SQLite files,
the deployment's (docker/dagster.yaml, written from here: `python -m soniquebay_assets.dagster_defs.instance_config`)
keeps everything in PostgreSQL and queues its runs. Nothing here imports Dagster.
"""

from __future__ import annotations

import sys

_MONITORED_RUNS = """\
# Dagster's default launcher plus a health check of each run's process, so run monitoring (below) can end a run
# whose process died with a killed or restarted daemon (the CeleryRunLauncher combined with the celery executor
# fails: "Never call result.get() within a task!").
run_launcher:
  module: soniquebay_assets.dagster_defs.run_launcher
  class: MonitoredRunLauncher
# A run whose process is gone is marked failed (its deferred items are then released and retried) instead of
# staying STARTED forever; a run stuck starting or canceling is ended after the timeouts. Nothing is resumed.
run_monitoring:
  enabled: true
  start_timeout_seconds: 120
  cancel_timeout_seconds: 120
  max_resume_run_attempts: 0
  poll_interval_seconds: 20
"""

_EMBEDDED = """\
# The Dagster instance of this data dir, shared by `soniquebay scan` and `soniquebay dev`.
telemetry:
  enabled: false
# Same files as Dagster's default SQLite event log, but with pooled connections: Dagster's default opens a new
# engine per event (see soniquebay_assets/dagster_defs/instance_storage.py).
event_log_storage:
  module: soniquebay_assets.dagster_defs.instance_storage
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {events_dir}
"""

_DEPLOYMENT = """\
# Dagster instance for the docker deployment: runs, events and schedules live in Postgres, so the webserver,
# the daemon and Celery workers on any host share one instance.
# Written by `python -m soniquebay_assets.dagster_defs.instance_config > docker/dagster.yaml`: edit the template.
telemetry:
  enabled: false

storage:
  postgres:
    postgres_db:
      username: {env: DAGSTER_POSTGRES_USER}
      password: {env: DAGSTER_POSTGRES_PASSWORD}
      hostname: {env: DAGSTER_POSTGRES_HOST}
      db_name: {env: DAGSTER_POSTGRES_DB}
      port: 5432
      # psycopg2 by name: with psycopg 3 installed (the catalog's driver) SQLAlchemy would pick it for a bare
      # postgresql:// URL, and dagster-postgres's NOTIFY statement fails there
      scheme: postgresql+psycopg2

# Runs are queued and launched by the daemon as local processes.
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator

{monitored_runs}
# Step outputs (none today: assets write the catalog themselves) and compute logs on the shared data volume
# (compose sets DAGSTER_LOCAL_STORAGE_DIR=/data/dagster and DAGSTER_COMPUTE_LOGS_DIR=/data/dagster/compute_logs).
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {env: DAGSTER_LOCAL_STORAGE_DIR}

compute_logs:
  module: dagster._core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {env: DAGSTER_COMPUTE_LOGS_DIR}

concurrency:
  runs:
    max_concurrent_runs: 4
  # An asset that declares a pool runs one step at a time per pool: the online stage's `musicbrainz` pool keeps
  # two runs from asking MusicBrainz side by side.
  pools:
    default_limit: 1

run_retries:
  enabled: true
  max_retries: 1
"""


def embedded_instance_yaml(events_dir: str) -> str:
    """dagster.yaml of a data dir's own instance, its event log files under `events_dir`."""
    return _EMBEDDED.format(events_dir=events_dir) + _MONITORED_RUNS


def deployment_instance_yaml() -> str:
    """dagster.yaml of the deployment (docker/dagster.yaml): PostgreSQL storage, queued runs, pools, retries."""
    return _DEPLOYMENT.replace("{monitored_runs}", _MONITORED_RUNS)


if __name__ == "__main__":
    sys.stdout.write(deployment_instance_yaml())
