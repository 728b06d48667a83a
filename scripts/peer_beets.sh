#!/usr/bin/env bash
# Peer benchmark: builds (once) a venv with beets outside the repository and prints the path of its `beet`.
# usage: scripts/peer_beets.sh            -> prints e.g. /tmp/sb-peer/beets-venv/bin/beet
#        soniquebay bench scan --beets "$(scripts/peer_beets.sh)" ...
# beets is a peer to measure against, never a dependency of the project. $BEETS_VENV overrides the venv path.
set -euo pipefail
venv="${BEETS_VENV:-/tmp/sb-peer/beets-venv}"
spec="${BEETS_SPEC:-beets==2.14.1}"

# `import beets` only: running `beet` without BEETSDIR would create a library in ~/.config/beets.
if ! "$venv/bin/python" -c "import beets.ui" >/dev/null 2>&1; then
    echo "peer_beets.sh: building $venv ($spec)" >&2
    mkdir -p "$(dirname "$venv")"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "$spec" >&2
    "$venv/bin/python" -c "import beets.ui" >/dev/null 2>&1 || { echo "peer_beets.sh: beets does not import in $venv" >&2; exit 1; }
fi
echo "$venv/bin/beet"
