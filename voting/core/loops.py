"""The one background-loop helper: call a step every few seconds until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_every(
    step: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    every: float,
    *,
    retry: tuple[type[BaseException], ...] = (),
    logger: logging.Logger | None = None,
) -> None:
    """Await ``step()`` every ``every`` seconds until ``stop`` is set.

    An exception of a type in ``retry`` (a store being down) is logged as a warning on
    ``logger`` (when given) and the step is tried again at the next tick; any other
    exception ends the loop and propagates.
    """
    while not stop.is_set():
        try:
            await step()
        except retry as exc:
            if logger is not None:
                logger.warning("%s: %s", logger.name, exc)
        await wait(stop, every)
