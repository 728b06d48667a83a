"""Scan benchmark: whole `soniquebay scan` commands (start-up included) on a realistic synthetic library."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from soniquebay_assets.settings import ENV_CATALOG_URL

CATALOG_STAGES = "catalog"
# Every stage that works without the network; online metadata waits for services a benchmark must not call.
ALL_LOCAL_STAGES = "catalog,enrich,vectors,covers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=20_000, help="number of audio files (default 20000)")
    parser.add_argument("--all-stages-files", type=int, default=200,
                        help="files of the all-stages figure (analysis costs ~1 s of CPU per song; default 200)")
    parser.add_argument("--clips", action="store_true",
                        help="2-second clips without pictures instead of 3-5 minute songs (the old, flattering set)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary library and data dir")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build it (default: a temp dir)")
    parser.add_argument("--library-cache", type=Path, default=None,
                        help="build the libraries in this folder once and reuse them on later runs with the same "
                             "--files, --all-stages-files and --clips (a 20,000-song library takes tens of minutes)")
    parser.add_argument("--catalog-url", default=None,
                        help="also scan the same library into this PostgreSQL database (in a scratch schema, "
                             "dropped after) and print its figures beside SQLite's")
    parser.add_argument("--beets", default=None, metavar="PATH_TO_beet",
                        help="also time beets on the same library, phase by phase beside ours: `beet import -A -q` "
                             "(cold), `beet update` (no-op, then one file touched); scripts/peer_beets.sh builds it")


class TreeSampler:
    """Peak resident memory summed over a process and all its descendants, sampled from /proc."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid, self.interval_s, self.peak_bytes = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree

    def _rss(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                return int(handle.read().split()[1]) * self._page
        except (OSError, IndexError, ValueError):
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, sum(self._rss(p) for p in self._tree()))
            self._stop.wait(self.interval_s)


def scan_command(library: Path, data_dir: Path, stages: str, env: dict[str, str]) -> dict:
    """Run one whole `soniquebay scan --json` process; its summary plus wall time and process-tree peak RSS."""
    command = [sys.executable, "-m", "soniquebay_assets.cli.main", "scan", str(library), "--stages", stages,
               "--data-dir", str(data_dir), "--json", "--no-progress"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    with TreeSampler(process.pid) as sampler:
        out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` exited {process.returncode}: {err.strip()[-2000:]}")
    summary = json.loads(out)
    summary["wall_seconds"] = round(wall, 3)
    summary["peak_tree_rss_mb"] = round(sampler.peak_bytes / 2**20, 1)
    return summary


def run(args: argparse.Namespace) -> dict:

    _byte_compile_package()
    work = Path(tempfile.mkdtemp(prefix="soniquebay-bench-", dir=args.workdir))
    try:
        started = time.perf_counter()
        library, small, reused = _libraries(args, work)
        build_seconds = time.perf_counter() - started
        library_bytes = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
        _warm_page_cache(library)
        env = {k: v for k, v in os.environ.items() if k != ENV_CATALOG_URL}
        result = {
            "benchmark": "scan",
            "files": args.files,
            "library": ("2-second clips, no pictures" if args.clips else
                        "3-5 minute songs (MP3, FLAC, Ogg, Opus, M4A), a third of the albums with a 500 KB embedded picture"),
            "library_gb": round(library_bytes / 1e9, 2),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": round(os.getloadavg()[0], 2),
            "build_seconds": round(build_seconds, 2),
            "library_reused": reused,
            "startup_seconds": _startup_seconds(env),
            "catalog": "sqlite",
            **_measure(library, small, work / "data", args.files, env,
                       beets=Beets(args.beets, work / "beets") if args.beets else None),
        }
        if args.beets:
            result["vs_beets"] = _versus_beets(result, args.files)
        if args.catalog_url:
            result["postgresql"] = _measure_postgresql(library, small, work, args, env)
            result["postgresql_cold_vs_sqlite"] = round(
                result["postgresql"]["cold_scan_files_per_s"] / result["cold_scan_files_per_s"], 3)
        result["targets"] = {"cold_scan_files_per_s": ">= 1000", "noop_rescan_files_per_s": ">= 20000",
                             "peak_tree_rss_mb": "< 500"}
        if args.catalog_url:
            result["targets"].update({"postgresql_cold_vs_sqlite": ">= 0.70",
                                      "postgresql_noop_rescan_files_per_s": ">= 20000"})
        result["load_average_at_end"] = round(os.getloadavg()[0], 2)
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _libraries(args: argparse.Namespace, work: Path) -> tuple[Path, Path, bool]:
    """The measured library and the small all-stages one: built in `work`, or once in --library-cache."""
    from soniquebay_assets.library.synthetic import build_library

    kind = "clips" if args.clips else "songs"
    base = work if args.library_cache is None else args.library_cache / f"{kind}-{args.files}-{args.all_stages_files}"
    library, small, complete = base / "library", base / "small-library", base / ".complete"
    if complete.exists():
        return library, small, True
    shutil.rmtree(library, ignore_errors=True)
    shutil.rmtree(small, ignore_errors=True)
    build_library(library, args.files, realistic=not args.clips)
    build_library(small, min(args.all_stages_files, args.files), realistic=not args.clips, seed=11)
    complete.touch()
    return library, small, False


def _byte_compile_package() -> None:
    """Write the package's .pyc files, as installing a wheel does: with PYTHONDONTWRITEBYTECODE set (or a
    read-only checkout) every command would otherwise compile its modules from source, ~0.3 s each time."""
    import compileall

    import soniquebay_assets

    compileall.compile_dir(Path(soniquebay_assets.__file__).parent, quiet=1)


def _startup_seconds(env: dict[str, str]) -> float:
    """A `soniquebay` process that imports the scan command and exits: the floor under every command."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import soniquebay_assets.cli.main, soniquebay_assets.cli.scan"],
                   check=True, env=env)
    return round(time.perf_counter() - started, 3)


def _measure(library: Path, small: Path, data: Path, files: int, env: dict[str, str],
             small_env: dict[str, str] | None = None, beets: Beets | None = None) -> dict:
    """Cold, no-op, one-file and 1 % rescans (catalog stages), then all local stages on the small library.

    With `beets`, each of the first three phases is followed by beets' own on the same files, so both see the same
    machine load and the same page cache."""
    peer: dict[str, dict] = {}
    cold = scan_command(library, data, CATALOG_STAGES, env)
    if beets:
        peer["cold_import"] = beets.run("import", "-A", "-q", str(library))
    noop = scan_command(library, data, CATALOG_STAGES, env)
    if beets:
        peer["noop_update"] = beets.run("update", "-M")
    _touch_some(library, 1)
    one = scan_command(library, data, CATALOG_STAGES, env)
    if beets:
        peer["one_touched_update"] = beets.run("update", "-M")
    touched = _touch_some(library, max(1, files // 100))
    incremental = scan_command(library, data, CATALOG_STAGES, env)
    everything = scan_command(small, data.with_name(data.name + "-all"), ALL_LOCAL_STAGES, small_env or env)
    small_files = everything["files_seen"]
    return {
        "cold_scan_seconds": cold["wall_seconds"],
        "cold_scan_files_per_s": round(files / cold["wall_seconds"], 1),
        "cold_scan_tracks": cold["tracks"], "cold_scan_albums": cold["albums"], "cold_scan_errors": cold["errors"],
        "cold_scan_breakdown_seconds": _breakdown(cold),
        "cold_scan_peak_tree_rss_mb": cold["peak_tree_rss_mb"],
        "cold_scan_recorded_without_run": bool(cold.get("recorded_without_run")),
        "noop_rescan_seconds": noop["wall_seconds"],
        "noop_rescan_files_per_s": round(files / max(noop["wall_seconds"], 1e-6), 1),
        "noop_rescan_tag_reads": noop["new"] + noop["changed"],
        "one_file_touched_seconds": one["wall_seconds"],
        "one_file_touched_breakdown_seconds": _breakdown(one),
        # catalog stages: no Dagster run, runless per-shard materializations (the breakdown's "dagster" part
        # is then imports, instance and recording)
        "one_file_touched_recorded_without_run": bool(one.get("recorded_without_run")),
        "incremental_touched_files": touched,
        "incremental_rescan_seconds": incremental["wall_seconds"],
        "incremental_changed_detected": incremental["changed"],
        "incremental_recorded_without_run": bool(incremental.get("recorded_without_run")),
        "all_stages": {"stages": ALL_LOCAL_STAGES, "files": small_files, "seconds": everything["wall_seconds"],
                       "files_per_s": round(small_files / everything["wall_seconds"], 2),
                       "breakdown_seconds": _breakdown(everything),
                       "peak_tree_rss_mb": everything["peak_tree_rss_mb"]},
        # the catalog stages' peak (the target); all_stages has its own, with the embedding model loaded
        "peak_tree_rss_mb": max(s["peak_tree_rss_mb"] for s in (cold, noop, one, incremental)),
        **({"beets": {"version": beets.version(), "config": beets.config_text(), **peer}} if beets else {}),
    }


class Beets:
    """Whole `beet` commands on a library of their own (database and config in `home`): no autotag, no copy, no
    move, no tag writes, no plugins, so beets does what `soniquebay scan --stages catalog` does: walk, read tags,
    store."""

    def __init__(self, beet: str, home: Path) -> None:
        self.beet, self.home = beet, home
        home.mkdir(parents=True, exist_ok=True)
        (home / "music").mkdir(exist_ok=True)  # `beet update` refuses to run when the library folder is missing
        (home / "config.yaml").write_text(self.config_text())
        self.env = {**os.environ, "BEETSDIR": str(home)}

    def config_text(self) -> str:
        return (f"directory: {self.home / 'music'}\nlibrary: {self.home / 'library.db'}\nplugins: []\n"
                "import:\n  copy: no\n  move: no\n  write: no\n  autotag: no\n  quiet: yes\n  resume: no\n"
                "  incremental: no\n")

    def version(self) -> str:
        out = subprocess.run([self.beet, "version"], env=self.env, capture_output=True, text=True, check=True)
        return next((line.strip() for line in out.stdout.splitlines() if line.startswith("beets version")), "?")

    def run(self, *arguments: str) -> dict:
        command = [self.beet, *arguments]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env,
                                   text=True)
        with TreeSampler(process.pid) as sampler:
            _, err = process.communicate()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` exited {process.returncode}: {err.strip()[-2000:]}")
        items = subprocess.run([self.beet, "stats"], env=self.env, capture_output=True, text=True, check=True)
        tracks = next((line.split(":", 1)[1].strip() for line in items.stdout.splitlines()
                       if line.startswith("Tracks:")), "?")
        return {"command": "beet " + " ".join(arguments[:-1] if arguments[0] == "import" else arguments),
                "wall_seconds": round(wall, 3), "peak_tree_rss_mb": round(sampler.peak_bytes / 2**20, 1),
                "tracks_in_library": int(tracks) if tracks.isdigit() else tracks}


# Goals, whole commands side by side on the same files: (ratio name, at 2,000 files, at 20,000 files).
# cold and no-op: beets' seconds / ours (speed-up); one touched at 2,000: ours / beets' whole update (at most);
# one touched at 20,000: beets' whole update / ours (speed-up).
BEETS_GOALS = {2_000: {"cold_speedup": (">=", 3.0), "noop_speedup": (">=", 3.0),
                       "one_touched_vs_beets_update": ("<=", 2.5)},
               20_000: {"cold_speedup": (">=", 20.0), "noop_speedup": (">=", 8.0),
                        "one_touched_speedup": (">=", 1.5)}}


def _versus_beets(result: dict, files: int) -> dict:
    """Ratios against beets from the same run, held against the goals for the nearer of 2,000 or 20,000 files."""
    peer = result["beets"]
    ratios = {
        "cold_speedup": round(peer["cold_import"]["wall_seconds"] / result["cold_scan_seconds"], 2),
        "noop_speedup": round(peer["noop_update"]["wall_seconds"] / result["noop_rescan_seconds"], 2),
        "one_touched_speedup": round(peer["one_touched_update"]["wall_seconds"]
                                     / result["one_file_touched_seconds"], 2),
        "one_touched_vs_beets_update": round(result["one_file_touched_seconds"]
                                             / peer["one_touched_update"]["wall_seconds"], 2),
    }
    goal_files = 20_000 if files >= 6_325 else 2_000  # geometric middle of the two stated sizes
    goals = BEETS_GOALS[goal_files]
    met = {name: (ratios[name] >= bound if op == ">=" else ratios[name] <= bound)
           for name, (op, bound) in goals.items()}
    return {**ratios, "goals_for_files": goal_files,
            "goals": {name: f"{op} {bound}" for name, (op, bound) in goals.items()},
            "goals_met": met, "all_goals_met": all(met.values())}


def _measure_postgresql(library: Path, small: Path, work: Path, args: argparse.Namespace, env: dict) -> dict:
    """The same library scanned into a scratch schema of the PostgreSQL database (dropped afterwards)."""
    from soniquebay_assets.catalog import db, pg

    backend, url = db.backend_of(args.catalog_url)
    if backend != db.POSTGRESQL:
        raise db.CatalogUnavailable(f"--catalog-url {db.display_target(url)} is not a postgresql:// URL")
    # beets and the SQLite scans have since read the library their own way: warm it again, as before SQLite's
    # cold scan, so that both catalogs start from the same page cache
    _warm_page_cache(library)
    with pg.scratch_schema(url, prefix="soniquebay_bench") as scratch, \
            pg.scratch_schema(url, prefix="soniquebay_bench_all") as scratch_all:
        return {"catalog": pg.redact(url),
                **_measure(library, small, work / "data_pg", args.files, {**env, ENV_CATALOG_URL: scratch},
                           {**env, ENV_CATALOG_URL: scratch_all})}


def _breakdown(summary: dict) -> dict:
    """Where a command's time went: start-up, the walk, each asset's own work, and the Dagster run around them."""
    stages = summary.get("stage_metadata") or {}
    if isinstance(stages, list):
        merged: dict[str, float] = {}
        for per_run in stages:
            for asset, meta in per_run.items():
                merged[asset] = merged.get(asset, 0.0) + float((meta or {}).get("seconds", 0) or 0)
        stages = {asset: {"seconds": seconds} for asset, seconds in merged.items()}
    parts = {"startup": round(summary["wall_seconds"] - summary["seconds"], 3), "walk": summary["walk_seconds"]}
    for asset, meta in stages.items():
        parts[asset] = round(float((meta or {}).get("seconds", 0.0) or 0.0), 3)
    parts["dagster_run_overhead"] = round(summary["seconds"] - sum(v for k, v in parts.items() if k != "startup"), 3)
    return parts


def _warm_page_cache(library: Path) -> None:
    for dirpath, _, names in os.walk(library):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as handle:
                while handle.read(1 << 20):
                    pass


def _touch_some(library: Path, count: int) -> int:
    touched = 0
    for dirpath, _, names in os.walk(library):
        for name in sorted(names):
            if touched >= count:
                return touched
            path = os.path.join(dirpath, name)
            stat = os.stat(path)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
            touched += 1
    return touched
