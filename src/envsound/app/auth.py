"""Tokens at the door: who may call what, how often, and how many streams each token holds.

With tokens required (``serve --auth``, and always on an address beyond loopback) every route but the page, its
static files, ``/healthz`` and the API's schema takes ``Authorization: Bearer <token>``; the WebSocket takes the
token in its first message instead (a browser cannot set headers there, and a URL ends up in logs). A token is
looked up in the store at each request, so a revoked one stops working at its next request on a running server.
A sensor token reports and streams only as the sensor it names; a viewer reads; a reviewer reads and labels windows
(``review``); an admin does all of it (:data:`envsound.deploy.tokens.MAY`).

Answers: **401** no token, or an unknown or revoked one; **403** a role that may not do this; **429** over the
token's rate (``Retry-After`` says when to come back) or over its streams, and for a client address that sent more
than ``failures`` unknown or revoked tokens within ``failure_window`` seconds (a 401 flood): every request from that
address, with any token or none, until its oldest failure leaves the window. Other addresses are unaffected.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from envsound.app.answers import read
from envsound.deploy.tokens import MAY

PUBLIC = ("/", "/healthz", "/static", "/docs", "/redoc", "/openapi.json")  # what anyone may fetch
VERBS = {"report": "report events", "stream": "stream audio", "read": "read results", "review": "label windows"}
bearer = HTTPBearer(auto_error=False, description="a token from `envsound token create NAME --role ROLE`")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a token's name and role (``name`` None and role ``admin`` when tokens are not required)."""

    name: str | None
    role: str
    token_id: int | None = None


OPEN = Caller(None, "admin")


@dataclass
class _Bucket:
    tokens: float
    stamp: float = field(default_factory=time.monotonic)


class Guard:
    """Checks tokens against ``store`` when ``required``; ``rate`` requests a second (bursts of ``2 * rate``, at
    least one) and ``streams`` live streams at once per token; ``failures`` unknown or revoked tokens (>= 1) per
    client address within ``failure_window`` seconds (> 0)."""

    def __init__(self, store=None, *, required: bool = False, rate: float = 20.0, streams: int = 4,
                 failures: int = 10, failure_window: float = 60.0) -> None:
        if required and store is None:
            raise ValueError("tokens need a store")
        if failures < 1 or failure_window <= 0:
            raise ValueError(f"failures={failures} must be >= 1 and failure_window={failure_window} > 0")
        self.store, self.required, self.rate, self.streams = store, required, rate, streams
        self.failures, self.failure_window = failures, failure_window
        self.buckets: dict[int, _Bucket] = {}
        self.open_streams: dict[int, int] = {}
        self.failed: dict[str, deque[float]] = {}  # client address -> when its recent failed tokens came

    def needs(self, action: str):
        """A FastAPI dependency admitting callers who may do ``action`` (``report``, ``stream``, ``read``,
        ``review``). Without tokens required it takes no credentials, so the API's schema says truly that none are
        needed."""
        if not self.required:
            async def anyone() -> Caller:
                return OPEN

            return anyone

        async def admitted(request: Request,
                           credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
            return await self.admit(credentials.credentials if credentials else None, action,
                                    client=request.client.host if request.client else None)

        return admitted

    async def admit(self, secret: str | None, action: str, *, client: str | None = None) -> Caller:
        """The caller holding ``secret``, if it may do ``action`` now; raises HTTPException 401, 403 or 429.
        ``client``: the caller's address, whose failed tokens are counted (None: not counted)."""
        if not self.required:
            return OPEN
        self._check_failures(client)
        if not secret:
            raise HTTPException(401, "this server needs a token: send 'Authorization: Bearer <token>' (make one with "
                                     "envsound token create NAME --role ROLE)", headers={"WWW-Authenticate": "Bearer"})
        token = await read(self.store.token_for, secret)
        if token is None:
            self._note_failure(client)
            raise HTTPException(401, "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
        if token.role not in MAY[action]:
            raise HTTPException(403, f"a {token.role} token may not {VERBS[action]}")
        self._spend(token.id)
        return Caller(token.name, token.role, token.id)

    def _spend(self, token_id: int) -> None:
        burst = max(2 * self.rate, 1.0)  # a rate under one a second still lets one request through
        bucket = self.buckets.setdefault(token_id, _Bucket(burst))
        now = time.monotonic()
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            wait = max(1, round((1 - bucket.tokens) / self.rate + 0.5))
            raise HTTPException(429, f"over this token's {self.rate:g} requests a second; retry in {wait} s",
                                headers={"Retry-After": str(wait)})
        bucket.tokens -= 1

    def _recent_failures(self, client: str, now: float) -> deque[float] | None:
        times = self.failed.get(client)
        while times and times[0] <= now - self.failure_window:
            times.popleft()
        if times is not None and not times:
            del self.failed[client]
            return None
        return times

    def _check_failures(self, client: str | None) -> None:
        """429 while ``client`` has had ``failures`` failed tokens within the window (before any lookup, so a
        flood costs the store nothing)."""
        if client is None:
            return
        now = time.monotonic()
        times = self._recent_failures(client, now)
        if times is not None and len(times) >= self.failures:
            wait = max(1, round(times[0] + self.failure_window - now + 0.5))
            raise HTTPException(429, f"{len(times)} unknown or revoked tokens from {client} within "
                                     f"{self.failure_window:g} s (serve --auth-failures); retry in {wait} s",
                                headers={"Retry-After": str(wait)})

    def _note_failure(self, client: str | None) -> None:
        if client is None:
            return
        now = time.monotonic()
        if len(self.failed) > 10_000:  # many addresses: forget those whose failures have all left the window
            for address in list(self.failed):
                self._recent_failures(address, now)
        self.failed.setdefault(client, deque(maxlen=self.failures)).append(now)

    def open_stream(self, caller: Caller) -> None:
        """Count a live stream of ``caller``; raises HTTPException 429 over the cap (release with close_stream)."""
        if caller.token_id is None:
            return
        held = self.open_streams.get(caller.token_id, 0)
        if held >= self.streams:
            raise HTTPException(429, f"this token holds {self.streams} live streams already (serve "
                                     "--streams-per-token)")
        self.open_streams[caller.token_id] = held + 1

    def close_stream(self, caller: Caller) -> None:
        if caller.token_id is not None:
            self.open_streams[caller.token_id] -= 1


def check_sensor(caller: Caller, sensor: str) -> None:
    """A sensor token speaks only for the sensor it names: 403 otherwise."""
    if caller.role == "sensor" and caller.name != sensor:
        raise HTTPException(403, f"this token belongs to sensor {caller.name!r}: it may not speak as {sensor!r}")
