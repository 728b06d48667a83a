"""docker/: every queue the code routes to has a consumer in compose, and the instance config is valid Postgres.

Docker itself cannot run here; these checks read the files and the Definitions the containers would load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from soniquebay_assets import queues
from soniquebay_assets.cli.worker_cmds import parse_queues
from soniquebay_assets.stages import STAGES

DOCKER = Path(__file__).resolve().parent.parent / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


def _option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def _workers(compose: dict) -> dict[str, list[str]]:
    """service -> queues its `soniquebay worker` consumes (validated like the CLI does)."""
    found = {}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if isinstance(command, str):
            command = command.split()
        if "worker" in command and "--queues" in command:
            found[name] = parse_queues(_option(command, "--queues"))
    return found


def routed_queues() -> dict[str, set[str]]:
    """queue -> step names routed there, from every asset and every op of every job in the Definitions."""
    from soniquebay_assets.dagster_defs.definitions import defs

    routes: dict[str, set[str]] = {}
    repo = defs.get_repository_def()
    for job in repo.get_all_jobs():
        for node_def in job.all_node_defs:
            queue = (node_def.tags or {}).get(queues.QUEUE_TAG, "dagster (no queue tag!)")
            routes.setdefault(queue, set()).add(node_def.name)
    return routes


def test_every_routed_queue_has_a_consumer(compose):
    consumed = {q for names in _workers(compose).values() for q in names}
    routes = routed_queues()
    missing = {q: sorted(steps) for q, steps in routes.items() if q not in consumed}
    assert not missing, f"queues without a worker in docker/compose.yaml: {missing}"
    assert set(queues.ALL_QUEUES) <= consumed  # and the queues no asset uses yet are ready for their stages
    assert "file_inventory" in routes[queues.WORKER_SCAN]
    assert "deferred_maintenance" in routes[queues.WORKER_DEFERRED]


def test_worker_services_as_designed(compose):
    workers = _workers(compose)
    services = compose["services"]
    sync = [n for n, q in workers.items() if q == [queues.WORKER_SCAN, queues.WORKER_EXTRACT,
                                                   queues.WORKER_INSERT_BULK]]
    assert len(sync) == 1 and _option(services[sync[0]]["command"], "--concurrency") == "4"
    deferred = [n for n, q in workers.items() if queues.WORKER_DEFERRED in q]
    assert len(deferred) == 1 and _option(services[deferred[0]]["command"], "--concurrency") == "2"
    for name in workers:
        assert _option(services[name]["command"], "--dagster-home") == services[name]["environment"]["DAGSTER_HOME"]


def _target(volume: str) -> str:
    """Container path of a short-syntax volume ("${MUSIC_DIR:-./music}:/music:ro" -> "/music")."""
    parts = volume.split(":")
    return parts[-2] if parts[-1] in ("ro", "rw") else parts[-1]


def test_services_share_broker_instance_and_volumes(compose):
    services = compose["services"]
    assert {"redis", "postgres", "webserver", "daemon"} <= set(services)
    app_services = [n for n, s in services.items() if s.get("image") == "soniquebay-assets:latest"]
    assert {"webserver", "daemon", *_workers(compose)} <= set(app_services)
    for name in app_services:
        env = services[name]["environment"]
        assert env["SONIQUEBAY_EXECUTOR"] == "celery"
        # Redis with a password from the environment (compose refuses to start without it)
        assert env["SONIQUEBAY_BROKER_URL"] == "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379/0"
        assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
        volumes = services[name]["volumes"]
        music = [v for v in volumes if _target(v) == env["SONIQUEBAY_LIBRARY"]]
        # read-only everywhere but where tag write-back runs (its queue alone; it writes nothing unless asked)
        writable = _workers(compose).get(name) == [queues.WORKER_WRITEBACK]
        assert music and all(v.endswith(":rw" if writable else ":ro") for v in music), \
            f"{name}: music must be mounted {'read-write' if writable else 'read-only'}"
        for variable in (s.enabled_by for s in STAGES if s.enabled_by):
            # an optional stage (write-back): off unless the host sets it, and the same value in every service
            # that loads the Definitions (the deferred jobs' steps must be the same on both sides of Celery)
            assert env[variable] == f"${{{variable}:-}}", (name, variable)
        # the catalog is in the postgres service: no data volume shared, only covers and the music mount
        assert env["SONIQUEBAY_CATALOG_URL"].startswith("postgresql://") and "@postgres:5432/soniquebay" in \
            env["SONIQUEBAY_CATALOG_URL"]
        assert not any(_target(v) == env["SONIQUEBAY_DATA_DIR"] for v in volumes)
        assert {_target(v) for v in volumes} == {env["SONIQUEBAY_LIBRARY"], env["SONIQUEBAY_COVERS_DIR"],
                                                 env["SONIQUEBAY_PLAYLISTS_DIR"]}
    init = compose["configs"]["catalog-database"]["content"]
    assert "CREATE DATABASE soniquebay" in init
    # the UI (no login, launches runs) on this host's loopback unless the host asks for more
    assert services["webserver"]["ports"] == ["${SONIQUEBAY_UI_PUBLISH:-127.0.0.1}:${SONIQUEBAY_UI_PORT:-3000}:3000"]
    for name in ("redis", "postgres"):  # unpublished, and no default password
        assert "ports" not in services[name], name
    assert "--requirepass" in services["redis"]["command"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${DAGSTER_POSTGRES_PASSWORD:?")
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_instance_config_is_valid_postgres_with_default_launcher(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    from soniquebay_assets.dagster_defs.run_launcher import MonitoredRunLauncher

    raw = yaml.safe_load((DOCKER / "dagster.yaml").read_text(encoding="utf-8"))
    assert "postgres" in raw["storage"]
    assert raw["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"  # the pinned driver
    # Dagster's default launcher (CeleryRunLauncher breaks the celery executor) with a run-worker health check
    assert raw["run_launcher"]["class"] == "MonitoredRunLauncher"
    assert issubclass(MonitoredRunLauncher, __import__("dagster").DefaultRunLauncher)
    assert raw["run_monitoring"]["enabled"] is True
    compose_env = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))["x-soniquebay-env"]
    for key in ("DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_DB",
                "DAGSTER_LOCAL_STORAGE_DIR", "DAGSTER_COMPUTE_LOGS_DIR"):
        assert key in compose_env, f"compose does not set {key}, which docker/dagster.yaml reads"
        monkeypatch.setenv(key, "x" if "DIR" not in key else str(tmp_path / compose_env[key].strip("/")))
    (tmp_path / "dagster.yaml").write_text((DOCKER / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    config, _cls = dagster_instance_config(str(tmp_path))  # schema validation, no connection
    assert config["storage"]["postgres"]["postgres_db"]["port"] == 5432


def test_dockerfile_installs_what_compose_runs(compose):
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    env = compose["services"]["webserver"]["environment"]
    assert f"COPY docker/dagster.yaml {env['DAGSTER_HOME']}/dagster.yaml" in dockerfile
    workspace = _option(compose["services"]["daemon"]["command"], "-w")
    assert f"COPY docker/workspace.yaml {workspace}" in dockerfile
    loaded = yaml.safe_load((DOCKER / "workspace.yaml").read_text(encoding="utf-8"))
    assert loaded["load_from"][0]["python_module"]["module_name"] == "soniquebay_assets.dagster_defs.definitions"
    assert "torch==" in dockerfile  # pinned CPU torch before the package, never an unpinned CUDA download


def test_every_instance_config_comes_from_the_one_template(tmp_path, monkeypatch):
    """docker/dagster.yaml is the template's deployment text to the letter; a data dir's own instance (what the
    CLI writes) shares its run launcher and run monitoring and loads as a Dagster instance."""
    from dagster import DagsterInstance

    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.dagster_defs.instance_config import deployment_instance_yaml
    from soniquebay_assets.settings import DataDir

    assert (DOCKER / "dagster.yaml").read_text(encoding="utf-8") == deployment_instance_yaml(), \
        "docker/dagster.yaml differs from its template: python -m soniquebay_assets.dagster_defs.instance_config"
    assert not (DOCKER.parent / "dagster.yaml").exists()  # no hand-kept copy at the repo root
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # restored after the test; use_dagster_home sets it
    home = use_dagster_home(DataDir(tmp_path / "data").ensure())
    embedded = yaml.safe_load((home / "dagster.yaml").read_text(encoding="utf-8"))
    deployment = yaml.safe_load(deployment_instance_yaml())
    for section in ("telemetry", "run_launcher", "run_monitoring"):
        assert embedded[section] == deployment[section], section
    assert embedded["event_log_storage"]["config"]["base_dir"] == str(home / "history" / "runs")
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_launcher).__name__ == "MonitoredRunLauncher"
        assert type(instance.event_log_storage).__name__ == "PooledSqliteEventLogStorage"


def _settings_read_by_the_code() -> set[str]:
    import re

    source = Path(__file__).resolve().parent.parent / "soniquebay_assets"
    return {name for path in source.rglob("*.py")
            for name in re.findall(r"[\"'](SONIQUEBAY_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8"))}


def test_every_setting_the_code_reads_is_passed_by_compose_or_documented_optional(compose):
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    passed = set(compose["x-soniquebay-env"]) | set(compose["services"]["api"]["environment"])
    read = _settings_read_by_the_code()
    assert {"SONIQUEBAY_LASTFM_API_KEY", "SONIQUEBAY_ACOUSTID_API_KEY", "SONIQUEBAY_HTTP_CONTACT",
            "SONIQUEBAY_SUBSONIC_URL", "SONIQUEBAY_LIBRARY"} <= passed | read
    for name in ("SONIQUEBAY_LASTFM_API_KEY", "SONIQUEBAY_ACOUSTID_API_KEY", "SONIQUEBAY_HTTP_CONTACT",
                 "SONIQUEBAY_SUBSONIC_URL", "SONIQUEBAY_SUBSONIC_USER", "SONIQUEBAY_SUBSONIC_PASSWORD"):
        assert compose["x-soniquebay-env"][name] == f"${{{name}:-}}", name  # from the host's environment
    # a prefix (several Subsonic servers) counts as passed when a setting under it is
    missing = sorted(name for name in read if name not in passed and name not in header
                     and not any(p.startswith(name + "_") for p in passed))
    assert not missing, f"settings neither passed by docker/compose.yaml nor listed there as optional: {missing}"


# programs the code runs (shutil.which) -> the Debian package that ships them
PACKAGE_OF_TOOL = {"ffmpeg": "ffmpeg", "fpcalc": "libchromaprint-tools"}
# programs only the measurement commands run (reference loudness meters, the Celery benchmark's own Redis),
# never a stage
MEASUREMENT_ONLY = {"loudgain", "redis-server"}


def test_the_image_installs_every_program_a_stage_runs():
    import re

    source = Path(__file__).resolve().parent.parent / "soniquebay_assets"
    tools = {tool for path in source.rglob("*.py")
             for tool in re.findall(r"shutil\.which\([\"']([^\"']+)[\"']\)", path.read_text(encoding="utf-8"))}
    assert {"ffmpeg", "fpcalc"} <= tools
    unknown = sorted(tools - set(PACKAGE_OF_TOOL) - MEASUREMENT_ONLY)
    assert not unknown, f"add these programs' packages to docker/Dockerfile and PACKAGE_OF_TOOL: {unknown}"
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    [install] = re.findall(r"apt-get install -y --no-install-recommends ([^\\&]+)", dockerfile)
    assert {PACKAGE_OF_TOOL[t] for t in tools - MEASUREMENT_ONLY} <= set(install.split())
