"""AcoustID: recordings identified from a Chromaprint fingerprint (https://acoustid.org/webservice). Needs a key."""

from __future__ import annotations

from typing import Any

from soniquebay_assets.clients.http import HttpClient, HttpError, KeyedServiceClient

SERVICE = "acoustid"
RATE_PER_S = 3.0  # the documented limit per application key
DEFAULT_BASE_URL = "https://api.acoustid.org"
# AcoustID error codes: 4 invalid API key, 5 invalid user key, 14 too many requests, 3/8/9 invalid input.
ERROR_REASONS = {4: "auth", 5: "auth", 14: "rate_limited", 3: "bad_request", 8: "bad_request", 9: "bad_request"}


class AcoustidClient(KeyedServiceClient):
    """Looks a fingerprint up; the key goes in the `client` parameter and is redacted everywhere."""

    SERVICE, RATE_PER_S = SERVICE, RATE_PER_S

    def __init__(self, http: HttpClient, api_key: str | None, base_url: str = DEFAULT_BASE_URL):
        super().__init__(http, api_key, base_url.rstrip("/"))

    def lookup(self, fingerprint: str, duration_s: float) -> list[dict[str, Any]]:
        """Results best first: each {id, score, recordings: [{id, title, artists: [{id, name}]}]}."""
        if not self.api_key:
            raise HttpError("disabled", "AcoustID has no API key (set SONIQUEBAY_ACOUSTID_API_KEY)")
        params = {"client": self.api_key, "meta": "recordings releasegroups", "duration": str(int(duration_s)),
                  "fingerprint": fingerprint, "format": "json"}
        response = self.http.get(f"{self.base_url}/v2/lookup", params=params, accept="application/json",
                                 max_bytes=2 * 1024 * 1024, service=SERVICE)
        if response.status >= 500:
            raise HttpError("server_error", f"AcoustID HTTP {response.status}", status=response.status)
        payload = response.json()
        if not isinstance(payload, dict):
            raise HttpError("bad_json", "AcoustID answered something other than a JSON object")
        if payload.get("status") != "ok":
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            code = error.get("code")
            reason = ERROR_REASONS.get(code, "api_error") if isinstance(code, int) else "api_error"
            raise HttpError(reason, f"AcoustID error {code}: {self.http.redact(error.get('message', ''))}",
                            status=response.status)
        results = payload.get("results")
        if not isinstance(results, list):
            return []
        ranked = [r for r in results if isinstance(r, dict)]
        return sorted(ranked, key=lambda r: -float(r.get("score") or 0.0))
