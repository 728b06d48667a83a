"""Chromaprint fingerprints through `fpcalc -json` (Debian package libchromaprint-tools)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

FPCALC_SECONDS = 120  # what AcoustID indexes: the first two minutes


class FingerprintError(Exception):
    """fpcalc is missing or could not read the file; `reason` is short and stable."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Fingerprint:
    fingerprint: str
    duration_s: float


def fpcalc_path() -> str | None:
    return shutil.which("fpcalc")


def fingerprint_file(path: str, *, timeout_s: float = 60.0) -> Fingerprint:
    """The compressed Chromaprint fingerprint and duration of one audio file."""
    binary = fpcalc_path()
    if binary is None:
        raise FingerprintError("fpcalc_missing", "fpcalc not found: install libchromaprint-tools")
    try:
        done = subprocess.run([binary, "-json", "-length", str(FPCALC_SECONDS), path], capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise FingerprintError("fpcalc_timeout", f"fpcalc took over {timeout_s:.0f}s") from None
    # fpcalc exits non-zero on a decoding hiccup near the end yet still prints a usable fingerprint.
    try:
        payload = json.loads(done.stdout.decode("utf-8"))
        found = Fingerprint(fingerprint=str(payload["fingerprint"]), duration_s=float(payload["duration"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            raise FingerprintError("fpcalc_failed", f"exit {done.returncode}: {message[0][:200]}") from None
        raise FingerprintError("fpcalc_bad_output", type(exc).__name__) from None
    if not found.fingerprint:
        raise FingerprintError("fpcalc_failed", "empty fingerprint")
    return found
