"""The early-run circuit breakers: a wrong key, address or server costs little.

Until OneNET has accepted anything in a run, a run of one kind of failure says that the set-up is
wrong, not the devices: resending the whole fleet would only repeat it. Each breaker trips after
``threshold`` such answers (counted while nothing is accepted) and names the cause:

- errno 1 (auth failed): the api-key is wrong or not this product's (after a success, errno 1 is
  one device's: an IMEI outside the product);
- no connection at all, in a row: the host, port or network is wrong;
- pages that are not OneNET answers (HTML 404 for a wrong base path, a proxy's 403/407): the URL is
  wrong, or a proxy stands in the way;
- request timeouts in a row: the server takes connections but never answers (a hung server).

After the first success the breakers disarm: from then on each failure is one command's.
"""

from __future__ import annotations

from dispatcher.errors import (
    MisroutedError,
    RunAborted,
    ServerHungError,
    UnreachableError,
    WrongKeyError,
)
from dispatcher.onenet.client import Outcome

__all__ = ["Breakers"]


class Breakers:
    """Counts the early failures of a run; ``observe`` returns the reason to stop, once."""

    def __init__(self, threshold: int, *, url: str, timeout_s: float) -> None:
        self.threshold = threshold
        self.url = url
        self.timeout_s = timeout_s
        self.armed = True
        self.key_proven = False  # OneNET took the key (the probe's answer): errno 1 is a device's
        self.tripped: RunAborted | None = None
        self.auth_rejects: list[str] = []  # keys answered errno 1 while armed: not the devices'
        self._unreached = 0  # in a row
        self._timeouts = 0  # in a row
        self._misrouted = 0

    def disarm(self) -> None:
        """Something was accepted: failures are the commands' own from now on."""
        self.armed = False

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Count one answer; the breaker that trips because of it (only the first trip counts)."""
        if not self.armed:
            return None
        wrong_key = outcome.errno == 1 and not self.key_proven
        if wrong_key and key is not None:
            self.auth_rejects.append(key)  # even after a trip: answers still coming in
        if self.tripped is not None:
            return None
        n = self.threshold
        self._unreached = 0 if outcome.reached else self._unreached + 1
        self._timeouts = self._timeouts + 1 if outcome.timed_out else 0
        why: RunAborted | None = None
        if outcome.misrouted:
            self._misrouted += 1
            if self._misrouted >= n:
                why = MisroutedError(
                    f"{self.url} did not answer as OneNET does ({outcome.error}) on {n} requests"
                    " with nothing accepted: check onenet.base_url (a wrong path, or a proxy in"
                    " between)"
                )
        elif self._unreached >= n:
            why = UnreachableError(
                f"no connection to OneNET on {n} attempts in a row with nothing accepted"
                f" ({outcome.error}): check onenet.base_url ({self.url}) and the network"
            )
        elif self._timeouts >= n:
            why = ServerHungError(
                f"{self.url} took {n} requests in a row and answered none within"
                f" {self.timeout_s:g}s (retry.request_timeout_s), with nothing accepted: the server"
                " hangs; those commands are in doubt and are looked up by the next run"
            )
        elif wrong_key and len(self.auth_rejects) >= n:
            why = WrongKeyError(
                f"OneNET answered errno 1 (auth failed) to the first {n} commands with none"
                " accepted: the api-key is wrong or not this product's master key"
            )
        if why is not None:
            self.tripped = why
        return why
