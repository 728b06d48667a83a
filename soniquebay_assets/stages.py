"""The stage registry: one record per stage of the pipeline, holding every name the stage goes by.

Queue routing and prefetch (`queues.py`), log prefixes (`logging_prefixes.py`), the deferred kinds
(`catalog/deferred.py`), the schedules' cadence settings (`settings.py`), the asset modules Dagster loads
(`dagster_defs/assets/`), the deferred jobs (`dagster_defs/deferred_sensors.py`), the CLI's `scan --stages`,
the error labels a scan clears and the settings that switch an optional stage on are read from here;
`test_stage_registry.py` holds each of them, the compose file's consumers and the docs' tables against it.
How to add a stage: docs/ARCHITECTURE.md, "Adding a stage".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage and every name it goes by."""

    name: str  # what logs and docs call it
    group: str  # the Dagster asset group of its assets
    asset_module: str  # the module of dagster_defs/assets/ that defines the group's assets
    queue: str  # the Celery queue its steps are routed to (stages may share one)
    prefetch: int  # that queue's Celery prefetch (I/O-bound queues prefetch more; a shared queue has one)
    cli_stage: str | None = None  # its name in `soniquebay scan --stages` (stages may share one); None: not scanned
    error_label: str | None = None  # `scan_errors.stage` of the per-file problems it records
    deferred_kind: str | None = None  # `deferred_work.kind` of the work it leaves for later: runs of that kind do it
    cadence_setting: str | None = None  # environment variable: minutes between its schedule's ticks
    cadence_default: int | None = None  # ... when the variable is not set
    partitioned: bool = True  # its assets take the 128 shards; else its deferred runs do every due item at once
    # environment variable that switches the stage on: unset or empty, its assets stay out of its kind's deferred
    # runs (no step goes to its queue); None: always on. Read through settings.stage_enabled.
    enabled_by: str | None = None


STAGES: tuple[Stage, ...] = (
    Stage("inventory", group="scan", asset_module="scan", queue="worker_scan", prefetch=4,
          cli_stage="catalog", error_label="inventory"),
    Stage("tags", group="extract", asset_module="extract", queue="worker_extract", prefetch=2,
          cli_stage="catalog", error_label="extract"),
    Stage("catalog", group="insert", asset_module="catalog", queue="worker_insert_bulk", prefetch=2,
          cli_stage="catalog", error_label="catalog"),
    Stage("enrichment", group="metadata", asset_module="enrich", queue="worker_metadata", prefetch=2,
          cli_stage="enrich", error_label="enrich", deferred_kind="enrichment",
          cadence_setting="SONIQUEBAY_ENRICHMENT_EVERY_MINUTES", cadence_default=2),
    Stage("vectors", group="vector", asset_module="vectors", queue="worker_vector", prefetch=1,
          cli_stage="vectors", error_label="vector", deferred_kind="vectors",
          cadence_setting="SONIQUEBAY_VECTORS_EVERY_MINUTES", cadence_default=3),
    Stage("covers", group="cover", asset_module="covers", queue="worker_cover", prefetch=1,
          cli_stage="covers", error_label="cover", deferred_kind="covers",
          cadence_setting="SONIQUEBAY_COVERS_EVERY_MINUTES", cadence_default=5),
    # MusicBrainz / Last.fm / AcoustID lookups share the metadata workers; work they could not do waits as
    # enrichment items, so the deferred enrichment runs do it beside the audio analysis.
    Stage("online", group="online", asset_module="online", queue="worker_metadata", prefetch=2,
          cli_stage="online", deferred_kind="enrichment"),
    # upkeep of the deferred queue: failed-work retry (its cadence) and the daily maintenance
    Stage("deferred", group="deferred", asset_module="deferred", queue="worker_deferred", prefetch=2,
          cadence_setting="SONIQUEBAY_RETRY_EVERY_MINUTES", cadence_default=15),
    # saved playlists as M3U8 files and on Subsonic servers, re-made by its own sensor when the catalog changed;
    # pushes a server did not take wait as playlists items (its cadence is also the sensor's)
    Stage("playlists", group="playlists", asset_module="playlists", queue="worker_playlists", prefetch=1,
          error_label="playlists", deferred_kind="playlists", cadence_setting="SONIQUEBAY_PLAYLISTS_EVERY_MINUTES",
          cadence_default=10, partitioned=False),
    # opt-in tag write-back: follows enrichment in its deferred runs only when SONIQUEBAY_WRITE_TAGS names fields;
    # its queue's workers are the only ones with the music folder mounted read-write
    Stage("write_back", group="writeback", asset_module="write_back", queue="worker_writeback", prefetch=1,
          error_label="write_back", deferred_kind="enrichment", enabled_by="SONIQUEBAY_WRITE_TAGS"),
)


class UnknownStage(KeyError):
    """A name no stage of the registry goes by."""


def by_name(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise UnknownStage(f"no stage named {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def by_group(group: str) -> Stage:
    for stage in STAGES:
        if stage.group == group:
            return stage
    raise UnknownStage(f"no stage with asset group {group!r}; groups: {', '.join(s.group for s in STAGES)}")


def deferred_kinds() -> tuple[str, ...]:
    """Every deferred work kind, in stage order."""
    return tuple(dict.fromkeys(s.deferred_kind for s in STAGES if s.deferred_kind))


def stages_of_kind(kind: str) -> tuple[Stage, ...]:
    """The stages whose work waits as `kind` items: a deferred run of that kind materializes those switched on
    (see `enabled_by`)."""
    return tuple(s for s in STAGES if s.deferred_kind == kind)


def kind_owner(kind: str) -> Stage:
    """The stage that holds a deferred kind's cadence setting."""
    (owner,) = (s for s in stages_of_kind(kind) if s.cadence_setting)
    return owner


def cli_stages() -> dict[str, list[str]]:
    """`scan --stages` name -> the asset groups it materializes, in stage order."""
    found: dict[str, list[str]] = {}
    for stage in STAGES:
        if stage.cli_stage:
            found.setdefault(stage.cli_stage, []).append(stage.group)
    return found


def error_labels() -> tuple[str, ...]:
    return tuple(s.error_label for s in STAGES if s.error_label)


def check(stages: tuple[Stage, ...] = STAGES) -> None:
    """Refuse a registry whose names collide or whose shared settings disagree (the message says which)."""
    problems = []
    for field in ("name", "group", "asset_module", "error_label"):
        values = [getattr(s, field) for s in stages if getattr(s, field) is not None]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            problems.append(f"two stages share the {field} {', '.join(repeated)}")
    for queue in dict.fromkeys(s.queue for s in stages):
        prefetch = {s.prefetch for s in stages if s.queue == queue}
        if len(prefetch) > 1:
            problems.append(f"the stages on queue {queue} give different prefetch values {sorted(prefetch)}")
    for kind in dict.fromkeys(s.deferred_kind for s in stages if s.deferred_kind):
        owners = [s.name for s in stages if s.deferred_kind == kind and s.cadence_setting]
        if len(owners) != 1:
            problems.append(f"deferred kind {kind} needs exactly one stage with a cadence setting, has {owners}")
    for stage in stages:
        if (stage.cadence_setting is None) != (stage.cadence_default is None):
            problems.append(f"stage {stage.name}: give cadence_setting and cadence_default together")
        if stage.enabled_by and (stage.deferred_kind is None or stage.cadence_setting):
            problems.append(f"stage {stage.name}: enabled_by switches a stage that joins another's deferred runs "
                            "(give deferred_kind; the kind's owner, with the cadence, is always on)")
    if problems:
        raise ValueError("stage registry: " + "; ".join(problems))


check()
