#!/usr/bin/env bash
# Installs everything SoniqueBay assets needs on a fresh machine (idempotent: a second run is quick).
# Python packages go to the current Python (use a venv if you prefer); system packages come from apt when
# running as root (CI, containers), otherwise the script says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)  # the deployment test creates its database with psql
# PostgreSQL server binaries (catalog tests on PostgreSQL, the multi-host test's own server) and `ip` (its hosts)
{ command -v postgres >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || missing+=(postgresql)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v fpcalc >/dev/null 2>&1 || missing+=(libchromaprint-tools)
# loudness tests and `soniquebay eval loudness`: ReplayGain 2.0 album gain of a reference scanner (libebur128)
command -v loudgain >/dev/null 2>&1 || missing+=(loudgain)
# rendered-MIDI analysis tests and the tempo/key dev set (scripts/build_dev_set.py)
command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing+=(fluid-soundfont-gm)
# the web page tests drive a headless Chromium through its driver (Selenium, never a downloaded browser)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "optional system packages missing: ${missing[*]} (sudo apt-get install ${missing[*]});"
    say "without redis-server the Celery tests skip; without ffmpeg M4A/AAC/WMA audio is not analysed;"
    say "without postgresql the PostgreSQL catalog tests skip (a server at 127.0.0.1:5432 is used when one answers)"
    say "without libchromaprint-tools (fpcalc) tracks are not identified by AcoustID fingerprint"
    say "without chromium and chromium-driver the web page's browser tests skip"
    say "without loudgain the album-gain reference test skips"
  fi
fi

# torch first and pinned: an unpinned torch (pulled by sentence-transformers) downloads a multi-GB CUDA build.
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  say "pip install torch==2.13.0 (CPU build)"
  "$PYTHON" -m pip install -q "torch==2.13.0" || "$PYTHON" -m pip install -q "torch==2.13.0" \
    --index-url https://download.pytorch.org/whl/cpu
fi
extras=dev
# SONIQUEBAY_EVAL=1 adds music21, needed only to build the tempo/key dev set
[ "${SONIQUEBAY_EVAL:-0}" = 1 ] && extras=dev,eval
say "pip install -e .[$extras]"
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[$extras]" 2>&1 | grep -v "Running pip as the 'root' user" || true
"$PYTHON" -c "import soniquebay_assets, dagster, dagster_celery, sqlite_vec, mutagen" \
  || { say "installation incomplete: see the pip output above"; exit 1; }
say "installed: $("$PYTHON" -c 'import dagster; print("dagster", dagster.__version__)')"
