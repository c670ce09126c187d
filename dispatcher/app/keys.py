"""Each lane's settings and key: the key read from the environment once, handed to the observer
as a secret (so it is masked wherever it could be shown), and a warning when it would travel over
plain http; and the products a job names that the config does not.

May import: errors, config, job (Problem, Validation), app.events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispatcher.config import Settings, api_key_from_env, plain_http_warning
from dispatcher.errors import ConfigError
from dispatcher.job.model import Problem, Validation

if TYPE_CHECKING:
    from dispatcher.app.events import Events

__all__ = ["LaneKeys", "default_keys", "lane_keys", "product_problems"]


@dataclass(frozen=True, slots=True)
class LaneKeys:
    """What each lane of a run needs: by product ("" for the commands that name none), its
    settings and its key (the api-key, or the access key of the newer platform)."""

    lanes: Mapping[str, tuple[Settings, str]]


def lane_keys(settings: Settings, products: Iterable[str], events: Events) -> LaneKeys:
    """Each lane's settings and key, for these products ("": the top-level sections');
    ConfigError (nothing sent) when a product is not in the config or a key is not set."""
    lanes: dict[str, tuple[Settings, str]] = {}
    for name in sorted(products):
        lane = settings.for_product(name)
        try:
            key = api_key_from_env(lane)
        except ConfigError as exc:
            if not name:
                raise
            raise ConfigError(f"product {name}: {exc}") from exc
        events.secret(key)
        warning = plain_http_warning(lane.onenet.base_url, lane.onenet.platform)
        if warning:
            events.warn(f"product {name}: {warning}" if name else warning)
        lanes[name] = (lane, key)
    return LaneKeys(lanes)


def default_keys(settings: Settings, events: Events) -> LaneKeys:
    """The one lane of a config without products (its key read now); a config with products
    gets a keyless one: each product's key is read once it is known which the work needs."""
    if settings.products:
        return LaneKeys({"": (settings, "")})
    return lane_keys(settings, [""], events)


def product_problems(checked: Validation, settings: Settings, config: str | None) -> list[Problem]:
    """The products a job names that the config does not: an error at the first command of each."""
    found = []
    for name, (source, line) in checked.product_at.items():
        if not name or name in settings.products:
            continue
        where = f"in {config}" if config else "without --config"
        known = ", ".join(sorted(settings.products)) or "none"
        message = f"no product {name!r} {where} (products: {known})"
        found.append(Problem(source, line, "product", message))
    return found
