"""The one HTTP call both trackers make: JSON in and out, rate limits waited out, errors as
one line.

aiohttp is already a core dependency (notify's webhook); the trackers need a handful of calls,
so a small client here serves both rather than two SDKs with their own retry rules. A rate-limit
answer (429, or GitHub's 403 with ``x-ratelimit-remaining: 0``) is waited out until the reset
its headers give (``retry-after`` seconds, ``x-ratelimit-reset`` epoch seconds, Linear's
``x-ratelimit-requests-reset`` epoch milliseconds), up to ``max_wait`` seconds in all; the
clock and the sleep are injectable so tests check the waits without waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ralph_tui.trackers.base import Clock, IssueGone, Sleep, TrackerError

__all__ = ["Clock", "JsonClient", "Response", "Sleep"]
REQUEST_TIMEOUT_S = 30.0
MAX_RATE_LIMIT_TRIES = 5


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: Any


class JsonClient:
    """A session for one API: base URL, auth header, rate-limit waits."""

    def __init__(
        self,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_wait: float = 300.0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name  # "GitHub", "Linear": the start of every error line
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self.waited: list[float] = []  # every rate-limit wait, in seconds (for the run's notes)
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        gone_ok: bool = False,
    ) -> Response:
        """The answer to one call; ``IssueGone`` for 404/410 when ``gone_ok``, else a
        ``TrackerError`` for any status of 400 and above."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)
        url = self.url(path)
        waited = 0.0
        for _ in range(MAX_RATE_LIMIT_TRIES):
            try:
                async with self._session.request(
                    method, url, json=json_body, params=params
                ) as resp:
                    raw = await resp.read()
                    status, headers = resp.status, resp.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                what = str(exc) or type(exc).__name__
                raise TrackerError(f"{self.name}: {method} {url}: {what}") from None
            wait = self._rate_limit_wait(status, headers, raw)
            if wait is None:
                return self._answer(method, url, status, headers, raw, gone_ok)
            if waited + wait > self.max_wait:
                raise TrackerError(
                    f"{self.name}: rate limited; the limit resets in {wait:.0f}s, more than "
                    f"the {self.max_wait:.0f}s rate_limit_wait_s allows"
                )
            waited += wait
            self.waited.append(wait)
            await self.sleep(wait)
        raise TrackerError(f"{self.name}: still rate limited after {MAX_RATE_LIMIT_TRIES} tries")

    def _rate_limit_wait(self, status: int, headers: Mapping[str, str], raw: bytes) -> float | None:
        """Seconds to wait before trying again, or None when this is not a rate limit."""
        limited = (
            status == 429
            or (status == 403 and headers.get("x-ratelimit-remaining", "").strip() == "0")
            or (status == 400 and b"RATELIMITED" in raw)  # Linear's GraphQL error code
        )
        if not limited:
            return None
        retry_after = _number(headers.get("retry-after"))
        if retry_after is not None:
            return max(0.0, retry_after)
        reset = _number(headers.get("x-ratelimit-reset"))
        if reset is None:
            ms = _number(headers.get("x-ratelimit-requests-reset"))
            reset = ms / 1000 if ms is not None else None
        if reset is not None:
            return max(0.0, reset - self.clock())
        return 60.0  # a limit without a reset: GitHub's advice for secondary limits

    def _answer(
        self,
        method: str,
        url: str,
        status: int,
        headers: Mapping[str, str],
        raw: bytes,
        gone_ok: bool,
    ) -> Response:
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            data = None
            if status < 400:
                raise TrackerError(f"{self.name}: {method} {url}: the answer is not JSON") from None
        if status in (404, 410) and gone_ok:
            raise IssueGone(f"{self.name}: {method} {url}: {status} {_message(data)}".rstrip())
        if status == 401:
            raise TrackerError(
                f"{self.name}: 401 Unauthorized at {url}: the token was refused "
                f"({_message(data) or 'bad credentials'}); check token_env in [tracker]"
            )
        if status >= 400:
            raise TrackerError(f"{self.name}: {method} {url}: HTTP {status} {_message(data)}")
        return Response(status, headers, data)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _message(data: Any) -> str:
    """The API's own words about an error, on one line."""
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, str):
            return " ".join(message.split())[:200]
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return " ".join(str(errors[0].get("message", "")).split())[:200]
    return ""
