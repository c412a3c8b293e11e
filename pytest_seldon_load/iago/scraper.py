"""Reading an Ostrich admin port over HTTP: ``/stats.json``, ``/ping.json``, ``/shutdown.json``.

The same client reads Iago's admin port and seldon-load's own (``seldon-load run
--admin-port``): both answer the same paths in the same shape.
"""

from __future__ import annotations

import requests

from ..redact import redact_url
from .stats import OstrichStats, StatsError

REQUEST_TIMEOUT_S = 5.0


class StatsUnavailable(RuntimeError):
    """The admin port did not answer, or answered something that is not Ostrich stats."""


class StatsScraper:
    """An Ostrich admin port at `base_url` (``http://127.0.0.1:9994``, say)."""

    def __init__(self, base_url: str, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _get(self, path: str) -> requests.Response:
        url = self.base_url + path
        try:
            response = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise StatsUnavailable(f"{redact_url(url)}: no answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise StatsUnavailable(f"{redact_url(url)}: HTTP {response.status_code}")
        return response

    def stats(self, period: int | None = None) -> OstrichStats:
        """The cumulative stats (or the last `period` seconds', where the port supports it)."""
        path = "/stats.json" + (f"?period={int(period)}" if period else "")
        response = self._get(path)
        try:
            document = response.json()
        except ValueError:
            raise StatsUnavailable(f"{redact_url(self.base_url + path)}: not JSON") from None
        try:
            return OstrichStats.parse(document, redact_url(self.base_url + path))
        except StatsError as exc:
            raise StatsUnavailable(str(exc)) from None

    def ping(self) -> bool:
        try:
            self._get("/ping.json")
        except StatsUnavailable:
            return False
        return True

    def shutdown(self) -> bool:
        """Ask the load generator to stop (Ostrich's /shutdown.json); True if it agreed."""
        try:
            self._get("/shutdown.json")
        except StatsUnavailable:
            return False
        return True

    def close(self) -> None:
        self._session.close()
