"""Group `playlists`: saved playlists re-made when the catalog or the vectors changed, written as M3U8 into the
playlists folder and pushed to the configured Subsonic servers; a sensor asks for a run only when one is due."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSelection,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from soniquebay_assets import queues, settings
from soniquebay_assets.catalog import playlists as repo
from soniquebay_assets.dagster_defs.deferred_sensors import CLAIM_TAG, job_name
from soniquebay_assets.dagster_defs.jobs import QUIET_CONSOLE
from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline import playlist_push
from soniquebay_assets.pipeline import playlists as pipeline

CHECK = "playlist_entries_exist"
EVERY_MINUTES = settings.every_minutes("playlists")
PREFIX = log_prefix(queues.QUEUE_BY_GROUP["playlists"])


class PlaylistsConfig(Config):
    # The sensor's runs re-make only the playlists whose catalog state moved; a run started by hand re-makes all.
    only_due: bool = False


@asset(
    group_name="playlists",
    op_tags=queues.op_tags_for("playlists"),
    deps=["catalog_entities", "enriched_tracks", "track_embeddings"],
    check_specs=[AssetCheckSpec(CHECK, asset="playlists",
                                description="Every entry of every saved playlist is a catalog track and a file on disk.")],
    description="Saved playlists (soniquebay playlist save) re-made from the catalog, written as M3U8 into the "
                "playlists folder (SONIQUEBAY_PLAYLISTS_DIR) and pushed to the Subsonic servers (SONIQUEBAY_SUBSONIC_*).",
)
def playlists(context: AssetExecutionContext, config: PlaylistsConfig, catalog: CatalogResource) -> MaterializeResult:
    servers = settings.subsonic_servers()
    # a deferred run (its claim on the run) pushes again what waited for a server; the others re-make playlists
    claim = context.run.tags.get(CLAIM_TAG)
    with catalog.connection() as conn:
        waiting = [] if claim is None else pipeline.claimed_pushes(conn, claim)
        stats = pipeline.refresh_playlists(
            conn, playlists_dir=catalog.data_dir.playlists, only_due=config.only_due,
            names=[] if claim is not None else None, path_prefix=settings.playlists_path_prefix(),
            servers=servers, retry_items=waiting, contact=settings.http_contact())
        report = pipeline.check_entries(conn)
    context.log.info(f"{PREFIX} {stats.playlists} playlists ({stats.parts} files, {stats.entries} entries, "
                     f"{stats.entries_changed} changed); pushes {stats.pushes or 'none'}; {stats.deferred} deferred")
    for message in stats.setup_errors + stats.problems:
        context.log.error(f"{PREFIX} {message}")
    return MaterializeResult(metadata=playlists_metadata(stats, servers), check_results=[check_result(report)])


def playlists_metadata(stats: pipeline.PlaylistsStats, servers) -> dict:
    lines = ["| playlist | entries | minutes | changed | file | " + " | ".join(s.label for s in servers) + " |",
             "|---|---:|---:|---:|---|" + "---|" * len(servers)]
    per_target: dict[str, dict[str, int]] = {s.label: {} for s in servers}
    for parts in stats.per_playlist.values():
        for part in parts:
            cells = []
            for server in servers:
                outcome = part.targets.get(server.label, {})
                status = outcome.get("status", "-")
                per_target[server.label][status] = per_target[server.label].get(status, 0) + 1
                unmatched = len(outcome.get("unmatched") or [])
                cells.append(status + (f" ({unmatched} unmatched)" if unmatched else ""))
            lines.append(f"| {part.title} | {part.entries} | {part.minutes} | {part.entries_changed} | "
                         f"{part.file} | " + " | ".join(cells) + (" |" if cells else "|"))
    return {
        "playlists": stats.playlists,
        "files": stats.parts,
        "entries": stats.entries,
        "minutes": MetadataValue.float(float(stats.minutes)),
        "entries_changed": stats.entries_changed,
        "files_written": stats.files_written,
        "files_removed": stats.files_removed,
        "failed": stats.failed,
        "per_playlist": MetadataValue.md("\n".join(lines)),
        "result_per_target": MetadataValue.json(per_target),
        "pushes": md_table(stats.pushes, key="status", value="files"),
        "deferred_pushes": stats.deferred,
        "problems": MetadataValue.json(stats.setup_errors + stats.problems),
        "catalog_state": stats.catalog_state,
        "seconds": stats.seconds,
    }


def check_result(report: dict) -> AssetCheckResult:
    missing = report["missing_from_catalog"] + report["missing_on_disk"]
    return AssetCheckResult(check_name=CHECK, passed=missing == 0, severity=AssetCheckSeverity.ERROR,
                            metadata={"entries_checked": report["entries_checked"],
                                      "missing_from_catalog": report["missing_from_catalog"],
                                      "missing_on_disk": report["missing_on_disk"],
                                      "examples": MetadataValue.json(report["examples"])})


playlists_job = define_asset_job("playlists_job", selection=AssetSelection.assets("playlists"),
                                 description="Re-make the saved playlists: M3U8 files and Subsonic copies.")
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED]


@sensor(job=playlists_job, minimum_interval_seconds=EVERY_MINUTES * 60, default_status=DefaultSensorStatus.RUNNING,
        description=f"Every {EVERY_MINUTES} min: a run when a saved playlist was made from an older catalog state "
                    "(tracks, analysis, vectors or matches changed) or never made; else nothing. (Pushes that "
                    "waited for a server are the deferred playlists schedule's.)")
def playlists_sensor(context: SensorEvaluationContext, catalog: CatalogResource):
    with catalog.connection() as conn:
        state = repo.catalog_state(conn)
        due = repo.due_definitions(conn, state)
    if not due:
        return SkipReason(f"{PREFIX} every saved playlist is up to date (catalog state {state})")
    for job in (playlists_job.name, job_name(playlist_push.DEFERRED_KIND)):
        if context.instance.get_runs(RunsFilter(job_name=job, statuses=_ACTIVE), limit=1):
            return SkipReason(f"{PREFIX} a playlists run is already on its way")
    return RunRequest(run_config={**QUIET_CONSOLE, "ops": {"playlists": {"config": {"only_due": True}}}},
                      tags={"soniquebay/playlists_due": str(len(due))})


JOBS = [playlists_job]
SENSORS = [playlists_sensor]
