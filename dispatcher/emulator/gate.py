"""Who a call to the emulator is, and whether it is let in: its product (by api-key on
``/nbiot``, by its signed token's ``res`` on ``/nb-iot``), the key or token checks, and the
platform's and the product's throttles (errno 7, or HTTP 429 with Retry-After).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from dispatcher.emulator.products import Product, Tenant, parse_token
from dispatcher.emulator.replies import error
from dispatcher.emulator.state import BUSY, Faults, Store, Throttle

__all__ = ["Gate"]


class Gate:
    """The checks before a call reaches the store: identity, keys, throttles."""

    def __init__(
        self,
        store: Store,
        monotonic: Callable[[], float],
        products: Mapping[str, Product] | None,
        max_arrivals: int,
    ) -> None:
        self._store = store
        self._monotonic = monotonic  # the throttle windows
        self._throttle = Throttle()  # the platform's (Faults.throttle_rps), over every product
        # None without products: then every call is checked as before products existed
        self.tenants: dict[str, Tenant] | None = None
        self._by_key: dict[str, Tenant] = {}
        self._by_res: dict[str, Tenant] = {}
        if products is not None:
            self._serve(products, max_arrivals)

    def _serve(self, products: Mapping[str, Product], max_arrivals: int) -> None:
        if not products:
            raise ValueError("products must name at least one product")
        tenants: dict[str, Tenant] = {}
        for name, product in products.items():
            if not isinstance(name, str) or not name:
                raise ValueError("a product's name must be a non-empty string")
            if not isinstance(product, Product):
                raise ValueError(f"product {name!r} must be a Product")
            tenant = tenants[name] = Tenant(name, product, max_arrivals)
            key, res = product.api_key, product.res
            if key is not None:
                if key in self._by_key:
                    raise ValueError(
                        f"products {self._by_key[key].name!r} and {name!r} share a key"
                    )
                self._by_key[key] = tenant
            if res is not None:
                if res in self._by_res:
                    raise ValueError(
                        f"products {self._by_res[res].name!r} and {name!r} share {res}"
                    )
                self._by_res[res] = tenant
        self.tenants = tenants

    def key_ok(self, request: web.Request, faults: Faults) -> bool:
        """Without products: a non-empty api-key (``Faults.api_key``, when set)."""
        key = request.headers.get("api-key")
        return bool(key) and (faults.api_key is None or key == faults.api_key)

    def identify(self, request: web.Request, iot: bool, now: float) -> tuple[Tenant | None, bool]:
        """(the product a call names, whether it is let in): by its api-key on ``/nbiot``, by
        its token on ``/nb-iot`` (the ``res`` names the product, whose access key must have
        signed it, and its ``et`` must still be ahead of the server's ``now``)."""
        if not iot:
            key = request.headers.get("api-key")
            tenant = self._by_key.get(key) if key else None
            return tenant, tenant is not None
        token = parse_token(request.headers.get("authorization"))
        if token is None:
            return None, False
        fresh = token.et > now
        if self.tenants is None:
            return None, fresh  # no access key to check the sign with: any fresh token
        tenant = self._by_res.get(token.res)
        if tenant is None or tenant.key is None:
            return None, False
        return tenant, fresh and token.signed_with(tenant.key)

    def throttle_full(self, faults: Faults, tenant: Tenant | None) -> web.Response | None:
        """The throttled answer when the platform's or the product's window is full; else
        None, and the call is counted in both windows."""
        rps = faults.throttle_rps
        own = tenant.product.throttle_rps if tenant is not None else None
        now = self._monotonic()
        if rps is not None and self._throttle.full(rps, now):
            return self._throttle_answer(faults, faults.throttle_mode, tenant)
        if tenant is not None and own is not None:
            if tenant.throttle.full(own, now):
                return self._throttle_answer(faults, tenant.product.throttle_mode, tenant)
            tenant.throttle.admit(now)
        if rps is not None:
            self._throttle.admit(now)
        return None

    def _throttle_answer(
        self, faults: Faults, mode: str, tenant: Tenant | None = None
    ) -> web.Response:
        self._store.throttled += 1
        if tenant is not None:
            tenant.throttled += 1
        if mode == "errno7":
            return error(BUSY, "errno" if tenant is None else tenant.shape)
        return web.Response(
            status=429,
            text="429 Too Many Requests",
            headers={"Retry-After": f"{faults.throttle_retry_after:g}"},
        )
