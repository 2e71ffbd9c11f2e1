"""The plug-in family of alert transports: one module per channel kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from alerts.models import Alert, Channel


class TransportError(Exception):
    """Delivery failed. ``permanent``: retrying the same request cannot help.

    ``disables_channel``: the destination itself is gone or refuses us (401,
    404), so every alert for the channel would fail alike. ``retry_after``:
    the other side asked us to wait this many seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        disables_channel: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent or disables_channel
        self.disables_channel = disables_channel
        self.retry_after = retry_after
        self.status_code = status_code


@dataclass(frozen=True)
class Outcome:
    """One HTTP request made while delivering; recorded as a DeliveryAttempt."""

    status_code: int | None
    error: str
    duration_ms: float


class Transport:
    """Sends one alert (or digest) to one channel; raises TransportError on failure."""

    # The most text an alert's message may carry in one message of this service, as
    # ``text_length`` counts it (None: no limit). A digest fits its lines to it.
    text_limit: ClassVar[int | None] = None

    @staticmethod
    def text_length(text: str) -> int:
        return len(text)

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.outcomes: list[Outcome] = []

    def send(self, alert: Alert) -> None:
        raise NotImplementedError
