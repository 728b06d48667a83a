"""The deployment as docker/compose.yaml runs it, started natively with the same commands, keeps a library right
by itself: PostgreSQL instance storage (docker/dagster.yaml unchanged but for env vars), Redis, dagster-webserver,
dagster-daemon and the three `soniquebay worker` services, over real files from the shared corpus.

Nothing here runs a pipeline command: files are dropped, renamed or deleted in the library folder and the
sensor, schedules and workers do the rest. Faults: the daemon SIGKILLed mid-run and restarted, a worker's pool child
SIGKILLed mid-step, a worker stopped while steps wait for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soniquebay_assets_tests.deployment_support import (
    Deployment,
    postgres_available,
    wait_for,
)
from soniquebay_assets_tests.fake_artwork_server import FakeArtworkServer, json_reply
from soniquebay_assets_tests.proc_tree import alive, cmdline, descendants, parent_of

pytestmark = [pytest.mark.deployment, pytest.mark.slow, pytest.mark.corpus]

AUDIO = {".mp3", ".flac", ".m4a", ".ogg", ".opus", ".wav"}
DEFERRED_JOBS = ("deferred_enrichment_job", "deferred_vectors_job", "deferred_covers_job")
SETTLE_S = 420  # generous: 2 shared cores, one-minute schedule cadence, runs of a few seconds each


def _require_services() -> None:
    missing = [tool for tool in ("redis-server", "pg_isready", "psql", "soniquebay", "dagster-webserver",
                                 "dagster-daemon") if shutil.which(tool) is None]
    problem = f"missing {', '.join(missing)}" if missing else ""
    if not problem and not postgres_available():
        problem = "no PostgreSQL answers on 127.0.0.1:5432 (.ci/run starts one)"
    if not problem and not os.path.isdir("/proc"):
        problem = "the fault checks read the process tree from /proc"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"deployment test cannot run in CI: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def deployment(corpus_dir, tmp_path_factory):
    _require_services()
    dep = Deployment(tmp_path_factory.mktemp("deployment"))
    # the library is there before the services start, as with `MUSIC_DIR=... docker compose up`
    shutil.copytree(corpus_dir / "converted", dep.library / "converted")
    # MusicBrainz on loopback, knowing none of the albums: the online stage settles its items as unmatched
    musicbrainz = FakeArtworkServer().start()
    musicbrainz.routes["/ws/2/release"] = lambda query: json_reply({"count": 0, "offset": 0, "releases": []})
    musicbrainz.routes["/ws/2/artist"] = lambda query: json_reply({"count": 0, "offset": 0, "artists": []})
    dep.extra_env["SONIQUEBAY_MUSICBRAINZ_URL"] = musicbrainz.base_url
    try:
        dep.prepare()
        dep.started_at = time.monotonic()
        dep.start_redis()
        dep.start("webserver")
        dep.start("daemon")
        for service in dep.worker_services():
            dep.start(service)
        wait_for(lambda: _webserver_up(dep), 180, "dagster-webserver", on_timeout=dep.dump_logs)
        wait_for(lambda: _all_queues_consumed(dep), 180, "a worker on every queue", on_timeout=dep.dump_logs)
        yield dep
    except BaseException:
        print(dep.dump_logs(), file=sys.stderr)
        raise
    finally:
        dep.close()
        musicbrainz.stop()


@pytest.fixture()
def logs_on_failure(deployment, request):
    """On failure (or timeout), print every service's log and the recent runs."""
    failed_before = request.session.testsfailed
    started = time.monotonic()
    try:
        yield
    except BaseException:
        print("\n" + deployment.dump_logs() + "\n" + _runs_table(deployment), file=sys.stderr)
        raise
    if request.session.testsfailed != failed_before:
        print("\n" + deployment.dump_logs() + "\n" + _runs_table(deployment), file=sys.stderr)
    print(f"\n[{request.node.name}: {time.monotonic() - started:.0f} s]")


def _webserver_up(dep: Deployment) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{dep.web_port}/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _all_queues_consumed(dep: Deployment) -> bool:
    from soniquebay_assets import queues

    return set(queues.ALL_QUEUES) <= set(_consumers(dep))


def _consumers(dep: Deployment) -> dict[str, list[str]]:
    from soniquebay_assets.dagster_defs.celery_config import make_celery_app
    from soniquebay_assets.dagster_defs.executor import NoQueueConsumerError, live_consumers

    env = dep.env()
    try:
        return live_consumers(make_celery_app(env["SONIQUEBAY_BROKER_URL"], env["SONIQUEBAY_RESULT_BACKEND"]),
                              timeout_s=1.0)
    except NoQueueConsumerError:
        return {}


# --------------------------------------------------------------------------- reading the state


def _audio_files(dep: Deployment) -> set[str]:
    return {str(p) for p in dep.library.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO}


def _catalog_state(dep: Deployment) -> dict:
    conn = dep.catalog()
    try:
        tracks = {row[0]: row[1] for row in conn.execute("SELECT path, track_id FROM tracks")}
        errored = {row[0] for row in conn.execute("SELECT path FROM scan_errors WHERE severity = 'error'")}
        states: dict[str, dict[str, int]] = {}
        for kind, state, count in conn.execute("SELECT kind, state, COUNT(*) FROM deferred_work GROUP BY 1, 2"):
            states.setdefault(kind, {})[state] = count
        vectors = {row[0]: row[1] for row in conn.execute("SELECT track_id, text_only FROM track_vectors")}
        analysed = {row[0] for row in conn.execute(
            "SELECT track_id FROM track_analysis WHERE status IN ('ok', 'partial')")}
    finally:
        conn.close()
    return {"tracks": tracks, "errored": errored, "deferred": states, "vectors": vectors, "analysed": analysed}


def _active_runs(dep: Deployment) -> list:
    from dagster import DagsterRunStatus, RunsFilter

    active = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    return dep.instance().get_runs(RunsFilter(statuses=active))


def _fully_processed(dep: Deployment) -> dict | None:
    """The state once the library is cataloged exactly and every deferred item is done, with no run active."""
    state = _catalog_state(dep)
    on_disk = _audio_files(dep)
    if set(state["tracks"]) | (state["errored"] & on_disk) != on_disk or not set(state["tracks"]) <= on_disk:
        return None
    unfinished = {kind: {s: n for s, n in by_state.items() if s != "done"} for kind, by_state in
                  state["deferred"].items()}
    if any(unfinished.values()) or set(state["deferred"]) != {"enrichment", "vectors", "covers"}:
        return None
    if set(state["vectors"]) != set(state["tracks"].values()) or _active_runs(dep):
        return None
    return state


def _runs_table(dep: Deployment, limit: int = 60) -> str:
    lines = ["recent runs:"]
    try:
        for run in dep.instance().get_runs(limit=limit):
            tags = run.tags
            lines.append(f"  {run.run_id[:8]} {run.job_name:<28} {run.status.value:<10} "
                         f"{tags.get('dagster/asset_partition_range_start', '')}.."
                         f"{tags.get('dagster/asset_partition_range_end', '')} "
                         f"{tags.get('soniquebay/deferred_claim', '')}")
    except Exception as exc:  # the report must never hide the real failure
        lines.append(f"  (cannot read runs: {exc})")
    try:
        lines.append(f"catalog: {json.dumps({k: (len(v) if isinstance(v, dict | set) else v) for k, v in _catalog_state(dep).items() if k != 'deferred'})}"
                     f" deferred {_catalog_state(dep)['deferred']}")
    except Exception as exc:
        lines.append(f"  (cannot read catalog: {exc})")
    return "\n".join(lines)


def _wait_processed(dep: Deployment, timeout_s: float = SETTLE_S) -> dict:
    return wait_for(lambda: _fully_processed(dep), timeout_s, "the library fully processed",
                    interval_s=3.0, on_timeout=lambda: _runs_table(dep))


def _run_text(dep: Deployment, run_id: str) -> str:
    records = dep.instance().all_logs(run_id)
    return "\n".join((r.message or "") + " " + (str(r.dagster_event.event_specific_data)
                                                 if r.dagster_event else "") for r in records)


def _runs_of(dep: Deployment, job_name: str, since: float) -> list:
    from datetime import UTC, datetime

    from dagster import RunsFilter

    after = datetime.fromtimestamp(since, tz=UTC)
    return [record.dagster_run for record in dep.instance().get_run_records(
        RunsFilter(job_name=job_name, created_after=after))]


def _assert_vectors_carry_audio(state: dict) -> None:
    analysed_text_only = sorted(t for t in state["analysed"] if state["vectors"].get(t) == 1)
    assert state["analysed"], "no track was analysed"
    assert not analysed_text_only, f"analysed tracks with text-only vectors: {analysed_text_only}"


def _materialized_partitions_in_the_ui(dep: Deployment) -> dict[str, set[str]]:
    """partitioned asset -> its materialized partitions, as the webserver's GraphQL (the UI) reports them."""
    import httpx

    query = ("{ assetNodes { assetKey { path } isPartitioned assetPartitionStatuses {"
             " ... on DefaultPartitionStatuses { materializedPartitions } } } }")
    reply = httpx.post(f"http://127.0.0.1:{dep.web_port}/graphql", json={"query": query}, timeout=60)
    reply.raise_for_status()
    return {"/".join(node["assetKey"]["path"]): set(node["assetPartitionStatuses"]["materializedPartitions"])
            for node in reply.json()["data"]["assetNodes"] if node["isPartitioned"]}


def _add_folder(dep: Deployment, source: Path, name: str) -> Path:
    target = dep.library / name
    shutil.copytree(source, target)
    return target


# --------------------------------------------------------------------------- the tests


@pytest.mark.timeout(300)
def test_instance_config_loads_with_the_pinned_postgres_driver(deployment, logs_on_failure):
    done = subprocess.run(["dagster", "instance", "info"], env=deployment.env(), capture_output=True, text=True,
                          timeout=120, cwd=deployment.root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PostgresRunStorage" in done.stdout and "MonitoredRunLauncher" in done.stdout, done.stdout


@pytest.mark.timeout(SETTLE_S + 120)
def test_library_is_picked_up_and_every_stage_completes_with_no_manual_step(deployment, logs_on_failure):
    state = _wait_processed(deployment)
    print(f"\nlibrary of {len(state['tracks'])} tracks from the services' start to fully processed: "
          f"{time.monotonic() - deployment.started_at:.0f} s")
    assert len(state["tracks"]) == len(_audio_files(deployment)) >= 10
    for kind in ("enrichment", "vectors", "covers"):
        assert state["deferred"][kind].get("done", 0) > 0 and set(state["deferred"][kind]) == {"done"}
    _assert_vectors_carry_audio(state)
    scans = _runs_of(deployment, "scan_job", 0)
    assert scans and all(r.tags.get("soniquebay/changed_shards") for r in scans)  # started by the sensor
    # every run's range holds only shards with tracks (scan runs: with files): no stage is marked materialized
    # for an empty shard, and the UI shows the same partitions materialized for every asset that ran
    conn = deployment.catalog()
    try:
        occupied = {row[0] for row in conn.execute("SELECT DISTINCT shard FROM tracks")}
        with_files = {row[0] for row in conn.execute("SELECT DISTINCT shard FROM files")}
    finally:
        conn.close()
    materialized = _materialized_partitions_in_the_ui(deployment)
    scan_chain = ("file_inventory", "raw_metadata", "catalog_entities")
    for asset in scan_chain:
        assert materialized[asset] == with_files, (asset, sorted(materialized[asset] ^ with_files))
    later = {asset: shards for asset, shards in materialized.items() if asset not in scan_chain and shards}
    assert {"enriched_tracks", "track_embeddings", "album_covers"} <= set(later), sorted(later)
    for asset, shards in later.items():
        assert shards == occupied, (asset, sorted(shards ^ occupied))
    from soniquebay_assets.domain.layout import SHARD_KEYS

    for run in [r for job in DEFERRED_JOBS for r in _runs_of(deployment, job, 0)]:
        start = run.tags["dagster/asset_partition_range_start"]
        end = run.tags["dagster/asset_partition_range_end"]
        assert {s for s in SHARD_KEYS if start <= s <= end} <= occupied, (run.job_name, start, end)


@pytest.mark.timeout(300)
def test_status_reads_the_instance_in_use(deployment, logs_on_failure):
    done = deployment.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dagster_home"] == str(deployment.home)
    assert report["queues"]["worker_scan"]["succeeded"] > 0 and report["queues"]["worker_metadata"]["succeeded"] > 0
    assert report["queues"]["worker_scan"]["consumers"]
    assert all(m["in_progress"] == 0 and m["pending"] == 0 for m in report["deferred"].values())


@pytest.mark.timeout(300)
def test_schedules_with_nothing_due_launch_no_run(deployment, logs_on_failure):
    from dagster._core.scheduler.instigation import InstigatorType, TickStatus

    _wait_processed(deployment)
    instance = deployment.instance()
    since = time.time()
    before = {r.run_id for r in instance.get_runs()}
    names = {"deferred_enrichment_schedule", "deferred_vectors_schedule", "deferred_covers_schedule",
             "deferred_retry_schedule"}

    def skipped_ticks() -> dict[str, str] | None:
        found = {}
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE):
            if state.instigator_name in names:
                ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since)
                if ticks:
                    found[state.instigator_name] = ticks[0].status
        return found if set(found) == names else None

    ticks = wait_for(skipped_ticks, 200, "a tick of every deferred schedule", interval_s=5)
    assert all(status == TickStatus.SKIPPED for status in ticks.values()), ticks
    new_runs = [r for r in instance.get_runs() if r.run_id not in before]
    assert not new_runs, [(r.job_name, r.tags) for r in new_runs]


@pytest.mark.timeout(SETTLE_S + 300)
def test_worker_stopped_fails_fast_then_retry_finishes_and_library_edits_stay_exact(deployment, corpus_dir,
                                                                                   logs_on_failure):
    dep = deployment
    _wait_processed(dep)
    before = _catalog_state(dep)["tracks"]
    renamed_from = next(p for p in sorted(before) if p.endswith(".mp3"))
    renamed_to = str(Path(renamed_from).with_name("renamed - " + Path(renamed_from).name))
    deleted = next(p for p in sorted(before) if p.endswith(".flac"))

    dep.stop("worker-heavy")  # analysis, vectors and covers have no worker now
    wait_for(lambda: "worker_metadata" not in _consumers(dep), 60, "worker_metadata without consumer")
    since = time.time()
    os.rename(renamed_from, renamed_to)
    os.remove(deleted)
    _add_folder(dep, corpus_dir / "music" / "warzone2100" / "albums" / "original_soundtrack", "original_soundtrack")

    # the scan chain runs on the sync worker; the enrichment run fails fast naming the queue it lacks
    def failed_enrichment():
        from dagster import DagsterRunStatus

        return [r for r in _runs_of(dep, "deferred_enrichment_job", since) if r.status == DagsterRunStatus.FAILURE]

    [failed, *_] = wait_for(failed_enrichment, 240, "a failed enrichment run", interval_s=3,
                            on_timeout=lambda: _runs_table(dep))
    text = _run_text(dep, failed.run_id)
    assert "worker_metadata" in text and "no live Celery worker" in text, text[-3000:]
    claim = failed.tags["soniquebay/deferred_claim"]

    def claim_backed_off() -> dict | None:
        conn = dep.catalog()
        try:
            states = dict(conn.execute("SELECT state, COUNT(*) FROM deferred_work WHERE kind = 'enrichment'"
                                       " AND last_error LIKE ? GROUP BY state", (f"%{failed.run_id[:8]}%",)).fetchall())
            held = conn.execute("SELECT COUNT(*) FROM deferred_work WHERE claimed_by = ? AND state = 'in_progress'",
                                (claim,)).fetchone()[0]
        finally:
            conn.close()
        return states if states and not held else None

    states = wait_for(claim_backed_off, 120, "the failed run's items to back off", interval_s=2)
    assert set(states) <= {"failed", "pending"}, states  # released with a backoff, not lost, not dead

    dep.start("worker-heavy")  # back: the retry schedule requeues the work and everything finishes
    state = _wait_processed(dep)
    assert state["tracks"].get(renamed_to) == before[renamed_from]  # the renamed file kept its track_id
    assert renamed_from not in state["tracks"] and deleted not in state["tracks"]
    assert set(state["tracks"]) == _audio_files(dep)
    _assert_vectors_carry_audio(state)


@pytest.mark.timeout(SETTLE_S + 200)
def test_pool_child_sigkill_is_redelivered_and_leaves_no_process(deployment, corpus_dir, logs_on_failure):
    dep = deployment
    _wait_processed(dep)
    heavy = dep.procs["worker-heavy"]
    dropped = time.time()
    _add_folder(dep, corpus_dir / "music" / "wesnoth", "wesnoth")  # 8 tracks: analysed in a process pool

    def pool_child_with_analysis_pool():
        """The Celery pool child running the analysis step: the parent of the analysis pool's processes
        (prefork children share their main's command line, so the tree tells them apart)."""
        under_heavy = set(descendants(heavy.pid))
        for pid in under_heavy:
            if "multiprocessing" in cmdline(pid):
                parent = parent_of(pid)
                if parent in under_heavy and "celery" in cmdline(parent) and parent_of(parent) in under_heavy:
                    return parent
        return None

    victim = wait_for(pool_child_with_analysis_pool, 240, "an analysis pool under a Celery pool child",
                      interval_s=0.2, on_timeout=lambda: _runs_table(dep))
    left_behind = descendants(victim)
    mains = [p for p in descendants(heavy.pid) if parent_of(p) == heavy.pid]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in left_behind), 30,
             f"the killed pool child's processes {left_behind} to end")
    assert heavy.poll() is None and all(alive(p) for p in mains)  # the worker service itself lives on

    state = _wait_processed(dep)
    _assert_vectors_carry_audio(state)
    from dagster import DagsterRunStatus

    runs = _runs_of(dep, "deferred_enrichment_job", dropped)
    assert runs and all(r.status == DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
    print(f"\nnew album (8 tracks) from file drop to fully processed, with a pool child killed on the way: "
          f"{time.time() - dropped:.0f} s")


@pytest.mark.timeout(SETTLE_S + 400)
def test_daemon_sigkill_mid_run_then_restart_reaches_a_final_state(deployment, corpus_dir, logs_on_failure):
    from dagster import DagsterRunStatus

    dep = deployment
    _wait_processed(dep)
    dropped = time.time()
    _add_folder(dep, corpus_dir / "music" / "xmoto" / "usr" / "share" / "games" / "xmoto" / "Textures" / "Musics",
                "xmoto")

    def running_deferred_run():
        started = [r for job in DEFERRED_JOBS for r in _runs_of(dep, job, dropped)
                   if r.status == DagsterRunStatus.STARTED]
        return started[0] if started else None

    run = wait_for(running_deferred_run, 240, "a deferred run in progress", interval_s=0.5,
                   on_timeout=lambda: _runs_table(dep))
    claim = run.tags["soniquebay/deferred_claim"]
    conn = dep.catalog()
    try:
        claimed = [row[0] for row in conn.execute("SELECT work_id FROM deferred_work WHERE claimed_by = ?", (claim,))]
    finally:
        conn.close()
    assert claimed, f"run {run.run_id[:8]} holds no deferred item"
    killed_at = time.monotonic()
    dep.stop("daemon", sig=signal.SIGKILL)  # the whole daemon, as `docker kill`: code server and run workers too
    # back under another host name, as a recreated container: it still ends the runs its predecessor left
    dep.start("daemon", env_extra={"SONIQUEBAY_HOST_LABEL": "daemon-recreated"})

    final = wait_for(lambda: (r := dep.instance().get_run_by_id(run.run_id)) and r.is_finished and r, 300,
                     "the interrupted run to reach a final state", interval_s=3, on_timeout=lambda: _runs_table(dep))
    assert run.tags.get("soniquebay/launch_host") not in (None, "daemon-recreated")  # launched by the one killed

    def claim_settled() -> bool:
        """The run's items are pending or done again (or already taken by a newer run), not held by it."""
        conn = dep.catalog()
        try:
            marks = ",".join("?" * len(claimed))
            rows = conn.execute(f"SELECT state, claimed_by FROM deferred_work WHERE work_id IN ({marks})",
                                claimed).fetchall()
        finally:
            conn.close()
        return all(state in ("pending", "done") or (state == "in_progress" and by != claim) for state, by in rows)

    wait_for(claim_settled, max(5.0, 300 - (time.monotonic() - killed_at)), "its deferred items pending or done",
             interval_s=3, on_timeout=lambda: _runs_table(dep))
    assert time.monotonic() - killed_at <= 300
    print(f"\ninterrupted run {run.run_id[:8]} ended {final.status.value} "
          f"{time.monotonic() - killed_at:.0f} s after the daemon was killed")

    state = _wait_processed(dep)
    _assert_vectors_carry_audio(state)
    print(f"new album (7 tracks) from file drop to fully processed, with the daemon killed on the way: "
          f"{time.time() - dropped:.0f} s")
