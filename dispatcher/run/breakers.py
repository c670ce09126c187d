"""The early-run circuit breakers: a wrong key, address or server costs little.

Until OneNET has accepted anything in a run, a run of one kind of failure says that the set-up is
wrong, not the devices: resending the whole fleet would only repeat it. Each breaker is a small
object that counts its own kind of answer while nothing is accepted and, at ``threshold``, names
the cause:

- ``AuthBreaker``: errno 1 (auth failed): the api-key is wrong or not this product's, or on the
  newer platform the access key or the token (``auth_blame`` says which the lane has; once the
  key is proven, errno 1 is one device's: an IMEI outside the product);
- ``ConnectionBreaker``: no connection at all, in a row: the host, port or network is wrong;
- ``AddressBreaker``: pages that are not OneNET answers (HTML 404 for a wrong base path, a proxy's
  403/407): the URL is wrong, or a proxy stands in the way;
- ``HangBreaker``: request timeouts in a row: the server takes connections but never answers.

``Breakers`` holds one of each for a lane. After the first success they disarm: from then on each
failure is one command's.
"""

from __future__ import annotations

from typing import Final, Protocol

from dispatcher.config import Settings
from dispatcher.errors import (
    MisroutedError,
    RunAborted,
    ServerHungError,
    UnreachableError,
    WrongKeyError,
)
from dispatcher.onenet.answers import Outcome

__all__ = [
    "API_KEY_BLAME",
    "AddressBreaker",
    "AuthBreaker",
    "Breaker",
    "Breakers",
    "ConnectionBreaker",
    "HangBreaker",
    "auth_blame",
]

API_KEY_BLAME: Final = "the api-key is wrong or not this product's master key"


def auth_blame(settings: Settings) -> str:
    """What errno 1 (auth failed) on every early answer says is wrong on a lane: its api-key, or
    on the newer platform (no api-key there) its access key or its token."""
    token = settings.onenet.token
    if settings.onenet.platform != "iot-api" or token is None:
        return API_KEY_BLAME
    return (
        f"the access key or token is wrong: {token.access_key_env} must hold the access key of"
        f" {token.res} (onenet.token.res), and the token's method and version be ones OneNET takes"
    )


class Breaker(Protocol):
    """One kind of early failure, counted; ``observe`` says when it trips."""

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None: ...


class AuthBreaker:
    """errno 1 on ``threshold`` commands with nothing accepted: the key is wrong (``blame``
    says which: ``auth_blame``)."""

    def __init__(self, threshold: int, blame: str = API_KEY_BLAME) -> None:
        self.threshold, self.blame = threshold, blame
        self.key_proven = False  # OneNET took the key (the probe's answer): errno 1 is a device's
        self.rejected: list[str] = []  # keys answered errno 1 while counted: not the devices'

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Count an errno 1 (even after a trip: answers still coming in are the key's too)."""
        if outcome.errno != 1 or self.key_proven:
            return None
        if key is not None:
            self.rejected.append(key)
        if len(self.rejected) < self.threshold:
            return None
        return WrongKeyError(
            f"OneNET answered errno 1 (auth failed) to the first {self.threshold} commands with"
            f" none accepted: {self.blame}"
        )


class ConnectionBreaker:
    """``threshold`` attempts in a row that could not connect: the address or network is wrong."""

    def __init__(self, threshold: int, url: str) -> None:
        self.threshold, self.url = threshold, url
        self.in_a_row = 0

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Count a failed connection; anything that reached a server starts the count again."""
        self.in_a_row = 0 if outcome.reached else self.in_a_row + 1
        if self.in_a_row < self.threshold:
            return None
        return UnreachableError(
            f"no connection to OneNET on {self.threshold} attempts in a row with nothing accepted"
            f" ({outcome.error}): check onenet.base_url ({self.url}) and the network"
        )


class AddressBreaker:
    """``threshold`` answers that are not OneNET's: a wrong base URL, or a proxy in between."""

    def __init__(self, threshold: int, url: str) -> None:
        self.threshold, self.url = threshold, url
        self.count = 0

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Count a misrouted answer."""
        if not outcome.misrouted:
            return None
        self.count += 1
        if self.count < self.threshold:
            return None
        return MisroutedError(
            f"{self.url} did not answer as OneNET does ({outcome.error}) on {self.threshold}"
            " requests with nothing accepted: check onenet.base_url (a wrong path, or a proxy in"
            " between)"
        )


class HangBreaker:
    """``threshold`` request timeouts in a row: the server takes requests and never answers."""

    def __init__(self, threshold: int, url: str, timeout_s: float) -> None:
        self.threshold, self.url, self.timeout_s = threshold, url, timeout_s
        self.in_a_row = 0

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Count a timeout; any other answer starts the count again."""
        self.in_a_row = self.in_a_row + 1 if outcome.timed_out else 0
        if self.in_a_row < self.threshold:
            return None
        return ServerHungError(
            f"{self.url} took {self.threshold} requests in a row and answered none within"
            f" {self.timeout_s:g}s (retry.request_timeout_s), with nothing accepted: the server"
            " hangs; those commands are in doubt and are looked up by the next run"
        )


class Breakers:
    """A lane's breakers: ``observe`` returns the reason to stop, once."""

    def __init__(
        self, threshold: int, *, url: str, timeout_s: float, blame: str = API_KEY_BLAME
    ) -> None:
        self.auth = AuthBreaker(threshold, blame)
        self.each: tuple[Breaker, ...] = (
            AddressBreaker(threshold, url),
            ConnectionBreaker(threshold, url),
            HangBreaker(threshold, url, timeout_s),
            self.auth,
        )
        self.armed = True
        self.tripped: RunAborted | None = None

    @property
    def auth_rejects(self) -> list[str]:
        """The keys answered errno 1 while the key was in question (pending again after a trip)."""
        return self.auth.rejected

    def disarm(self) -> None:
        """Something was accepted: failures are the commands' own from now on."""
        self.armed = False

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Count one answer; the reason to stop when a breaker trips because of it (the first)."""
        if not self.armed:
            return None
        found = [why for breaker in self.each if (why := breaker.observe(outcome, key))]
        if self.tripped is not None or not found:
            return None
        self.tripped = found[0]
        return self.tripped
