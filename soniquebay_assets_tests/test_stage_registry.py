"""The stage registry (stages.py) and every table derived from it: queues, prefetch, log prefixes, deferred kinds,
cadence settings, asset modules, deferred jobs, the CLI's --stages, error labels, compose consumers, docs tables."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from soniquebay_assets import queues, settings, stages
from soniquebay_assets.stages import STAGES, Stage

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "soniquebay_assets"


def test_the_registry_names_each_stage_once_and_refuses_collisions():
    stages.check()
    assert [s.name for s in STAGES][:3] == ["inventory", "tags", "catalog"]  # the scan chain leads
    twin = dataclasses.replace(STAGES[0], name="twin", asset_module="twin", error_label=None)
    with pytest.raises(ValueError, match="share the group scan"):
        stages.check((*STAGES, twin))
    greedy = Stage("greedy", group="greedy", asset_module="greedy", queue=queues.WORKER_SCAN, prefetch=1)
    with pytest.raises(ValueError, match="worker_scan give different prefetch"):
        stages.check((*STAGES, greedy))
    rival = Stage("rival", group="rival", asset_module="rival", queue="worker_rival", prefetch=1,
                  deferred_kind="covers", cadence_setting="SONIQUEBAY_RIVAL_EVERY_MINUTES", cadence_default=1)
    with pytest.raises(ValueError, match="deferred kind covers needs exactly one stage with a cadence"):
        stages.check((*STAGES, rival))
    with pytest.raises(stages.UnknownStage, match="no stage with asset group 'nope'"):
        stages.by_group("nope")
    alone = Stage("alone", group="alone", asset_module="alone", queue="worker_alone", prefetch=1,
                  enabled_by="SONIQUEBAY_ALONE")
    with pytest.raises(ValueError, match="stage alone: enabled_by switches a stage that joins another's"):
        stages.check((*STAGES, alone))
    owner = dataclasses.replace(stages.kind_owner("covers"), enabled_by="SONIQUEBAY_COVERS")
    with pytest.raises(ValueError, match="stage covers: enabled_by"):
        stages.check(tuple(owner if s.name == "covers" else s for s in STAGES))


def test_queues_and_prefetch_come_from_the_registry():
    assert queues.QUEUE_BY_GROUP == {s.group: s.queue for s in STAGES}
    assert queues.PREFETCH_BY_QUEUE == {s.queue: s.prefetch for s in STAGES}
    assert queues.ALL_QUEUES == tuple(dict.fromkeys(s.queue for s in STAGES))
    assert queues.SCAN_CHAIN_GROUPS == tuple(s.group for s in STAGES if s.cli_stage == "catalog")
    for stage in STAGES:
        assert queues.op_tags_for(stage.group) == {queues.QUEUE_TAG: stage.queue}


def test_log_prefixes_and_deferred_kinds_come_from_the_registry(tmp_path):
    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.catalog.analysis import ENRICH_KIND
    from soniquebay_assets.catalog.db import open_catalog
    from soniquebay_assets.logging_prefixes import PREFIX_BY_DEFERRED_KIND, queue_prefix

    assert ENRICH_KIND == stages.by_group("metadata").deferred_kind  # what the re-measure backlog is queued as

    kinds = tuple(dict.fromkeys(s.deferred_kind for s in STAGES if s.deferred_kind))
    assert deferred.KINDS == kinds == stages.deferred_kinds()
    assert PREFIX_BY_DEFERRED_KIND == {k: f"[WORKER_DEFERRED_{k.upper()}]" for k in kinds}
    assert {queue_prefix(s.queue) for s in STAGES} == {f"[{q.upper()}]" for q in queues.ALL_QUEUES}
    conn = open_catalog(tmp_path / "catalog.db")
    table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'deferred_work'").fetchone()[0]
    assert not any(f"'{kind}'" in table for kind in kinds), "the table must not list kinds: the registry does"
    for kind in kinds:  # every kind of the registry is accepted by a real catalog
        assert deferred.enqueue(conn, kind, "track", [(1, "00")]) == 1
    assert set(deferred.metrics(conn)) == set(kinds)
    conn.close()


def test_cadence_settings_come_from_the_registry(monkeypatch):
    timed = [s for s in STAGES if s.cadence_setting]
    assert {s.name for s in timed} == {*(stages.kind_owner(k).name for k in stages.deferred_kinds()), "deferred"}
    for stage in timed:
        monkeypatch.delenv(stage.cadence_setting, raising=False)
        assert settings.every_minutes(stage.name) == stage.cadence_default
        monkeypatch.setenv(stage.cadence_setting, "7")
        assert settings.every_minutes(stage.name) == 7
        monkeypatch.setenv(stage.cadence_setting, "0")
        with pytest.raises(ValueError, match=stage.cadence_setting):
            settings.every_minutes(stage.name)
        monkeypatch.delenv(stage.cadence_setting)
    with pytest.raises(ValueError, match="stage tags has no cadence setting"):
        settings.every_minutes("tags")


def test_assets_jobs_and_schedules_come_from_the_registry():
    from soniquebay_assets.dagster_defs import deferred_sensors as ds
    from soniquebay_assets.dagster_defs.assets import MODULE_BY_GROUP, all_assets
    from soniquebay_assets.dagster_defs.definitions import defs

    assert MODULE_BY_GROUP == {s.group: s.asset_module for s in STAGES}
    for assets_def in all_assets():
        for key, group in assets_def.group_names_by_key.items():
            stage = stages.by_group(group)
            assert assets_def.op.tags[queues.QUEUE_TAG] == stage.queue, key
            assert assets_def.op.compute_fn.decorated_fn.__module__.endswith(f".assets.{stage.asset_module}"), key
    repo = defs.get_repository_def()
    groups_of = {key: repo.asset_graph.get(key).group_name for key in repo.asset_graph.get_all_asset_keys()}
    crons = {s.name: s.cron_schedule for s in repo.schedule_defs}
    for kind in stages.deferred_kinds():
        assert set(ds.KIND_GROUPS[kind]) == {s.group for s in stages.stages_of_kind(kind)}
        # the Definitions were built with the environment as it is: the switched-off stages are left out
        kind_groups = {s.group for s in stages.stages_of_kind(kind) if settings.stage_enabled(s.name)}
        job = repo.get_job(ds.job_name(kind))
        assert set(job.asset_layer.executable_asset_keys) == {k for k, g in groups_of.items() if g in kind_groups}
        minutes = stages.kind_owner(kind).cadence_default
        assert crons[f"deferred_{kind}_schedule"] == f"*/{minutes} * * * *"
    assert crons["deferred_retry_schedule"] == f"*/{stages.by_name('deferred').cadence_default} * * * *"


def test_a_stage_with_an_enabling_setting_joins_its_kinds_runs_only_while_it_is_set(monkeypatch):
    from soniquebay_assets.dagster_defs import deferred_sensors as ds
    from soniquebay_assets.dagster_defs.assets import MODULE_BY_GROUP

    switched = [s for s in STAGES if s.enabled_by]
    assert switched, "no optional stage left: this test has nothing to hold"
    every_group = list(MODULE_BY_GROUP)
    for stage in switched:
        for value, on in (("", False), (" , ", False), ("replaygain", True), ("all", True)):
            monkeypatch.setenv(stage.enabled_by, value)
            assert settings.stage_enabled(stage.name) is on
            job = ds.build_kind_jobs(every_group)[stage.deferred_kind]
            selected = set(job.selection.selected_groups)
            assert (stage.group in selected) is on, (value, selected)
            assert stages.kind_owner(stage.deferred_kind).group in selected  # the kind's owner is always in
            assert selected == {s.group for s in stages.stages_of_kind(stage.deferred_kind) if s.name != stage.name
                                and settings.stage_enabled(s.name)} | ({stage.group} if on else set())
        monkeypatch.delenv(stage.enabled_by)
        assert not settings.stage_enabled(stage.name)
    assert all(settings.stage_enabled(s.name) for s in STAGES if not s.enabled_by)


def test_the_cli_stages_come_from_the_registry(capsys):
    from soniquebay_assets.cli.main import build_parser
    from soniquebay_assets.cli.scan import SCAN_STAGES, selected_groups

    scanned = [s for s in STAGES if s.cli_stage]
    assert {name: groups for name, groups in SCAN_STAGES.items() if name != "all"} == stages.cli_stages()
    assert SCAN_STAGES["all"] == [s.group for s in scanned]
    for stage in scanned:
        assert stage.group in selected_groups(stage.cli_stage)
    with pytest.raises(SystemExit):
        build_parser("scan").parse_args(["scan", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"stages: {', '.join(stages.cli_stages())}, all" in shown
    with pytest.raises(SystemExit):
        build_parser("errors").parse_args(["errors", "--help"])
    assert ", ".join(stages.error_labels()) in " ".join(capsys.readouterr().out.split())


def test_error_labels_come_from_the_registry():
    from soniquebay_assets.catalog.analysis import ENRICH_STAGE
    from soniquebay_assets.pipeline.scan import LATER_STAGE_ERRORS

    labels = set(stages.error_labels())
    assert len(labels) == len(stages.error_labels())
    assert set(LATER_STAGE_ERRORS) == labels - {stages.by_group("scan").error_label}
    assert ENRICH_STAGE == stages.by_group("metadata").error_label
    written = set()  # every label the code writes as a literal: ErrorRecord(path, "<label>", ...)
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "ErrorRecord":
                label = node.args[1] if len(node.args) > 1 else None
                if isinstance(label, ast.Constant):
                    written.add((label.value, path.name))
    assert written and {label for label, _ in written} <= labels, sorted(written)


def test_every_queue_of_the_registry_has_a_consumer_in_compose():
    import yaml

    from soniquebay_assets.cli.worker_cmds import parse_queues

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    consumed = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        if "worker" in command and "--queues" in command:
            consumed.update(parse_queues(command[command.index("--queues") + 1]))
    missing = sorted({s.queue for s in STAGES} - consumed)
    assert not missing, f"give these queues a `soniquebay worker --queues` in docker/compose.yaml: {missing}"


# ------------------------------------------------------------------------------------------ the docs' tables


def registry_table() -> str:
    """The registry as docs/ARCHITECTURE.md shows it."""
    lines = ["| stage | asset group | asset module | queue | prefetch | `scan --stages` | error label "
             "| deferred kind | cadence setting (default minutes) | enabled by |",
             "|---|---|---|---|---:|---|---|---|---|---|"]
    for s in STAGES:
        cadence = f"`{s.cadence_setting}` ({s.cadence_default})" if s.cadence_setting else "-"
        enabled = f"`{s.enabled_by}`" if s.enabled_by else "-"
        lines.append(f"| {s.name} | {s.group} | `{s.asset_module}` | `{s.queue}` | {s.prefetch} | {s.cli_stage or '-'} "
                     f"| {s.error_label or '-'} | {s.deferred_kind or '-'} | {cadence} | {enabled} |")
    return "\n".join(lines)


def test_the_architecture_doc_shows_the_registry_as_it_is():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert registry_table() in doc, "docs/ARCHITECTURE.md's stage table differs from stages.py; it should read:\n" \
        + registry_table()


def _rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells (backquotes dropped) of the markdown table whose header starts with `first_cell`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\|\s*{re.escape(first_cell)}\s*\|", line))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")])
    return rows


def test_the_queue_tables_of_the_docs_agree_with_the_registry():
    celery = (ROOT / "docs" / "celery.md").read_text(encoding="utf-8")
    rows = {(group, queue.split()[0], int(prefetch)) for group, queue, prefetch in _rows(celery, "group")}
    assert rows == {(s.group, s.queue, s.prefetch) for s in STAGES}, "docs/celery.md: group | queue | prefetch"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = {(row[1], row[2]) for row in _rows(readme, "asset")}
    assert shown == {(s.group, s.queue) for s in STAGES}, "README's asset table: group | queue per stage"


def test_the_docs_give_every_cadence_setting_with_its_default():
    for doc in ("deployment.md", "celery.md"):
        text = " ".join((ROOT / "docs" / doc).read_text(encoding="utf-8").split())
        for stage in (s for s in STAGES if s.cadence_setting):
            assert f"`{stage.cadence_setting}` ({stage.cadence_default}" in text, (doc, stage.cadence_setting)
