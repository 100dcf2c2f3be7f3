"""A deadline on reading a request's body: slow clients cannot hold a connection with it.

The ASGI server bounds the header phase (``VOTING_HEADER_TIMEOUT``, see ``voting.cli``); no
ASGI server bounds the body, so :func:`body_deadline` wraps the whole application (outside
Litestar, so that it sees every request, routed or not) and gives each request with a body
``seconds`` from the moment its headers were read to deliver the whole body:

* the application reads the body in time: nothing changes;
* the deadline passes while the application waits for body bytes: the client gets
  ``408 request_timeout`` with ``Connection: close`` (the server then closes the connection)
  and the application is unwound with :class:`BodyDeadline`, a ``BaseException`` so that no
  ``except Exception`` of the framework turns it into a 500 or logs it;
* the application answers without having read the whole body (404, 405, 413, a refusal): the
  answer carries ``Connection: close``, so the server closes the connection after it instead
  of reading the rest of a body nobody waits for, however slowly it comes.

What comes after the body (waiting for ``http.disconnect``) is not bounded here.

The deadline is kept by one :class:`Watchdog` per event loop rather than a timer per read
(``asyncio.timeout`` schedules and cancels a timer handle each time, a measurable share of a
ballot's cost): a read registers its task and deadline in a dict, and the watchdog, waking
every :data:`WATCH_EVERY` seconds, cancels the reads whose deadline has passed, which then
raise :class:`BodyDeadline`. A late body is thus cut at most that much after its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

from voting.http.bodies import has_body

_BODY_408 = b'{"error":{"code":"request_timeout","message":"the request body came too slowly"}}'


class BodyDeadline(BaseException):
    """Raised from ``receive`` into the application when its request's body is late."""


WATCH_EVERY = 0.25  # seconds between the watchdog's looks at the reads it watches


class Watchdog:
    """Cancels the body reads whose deadline (event loop time) has passed (see the module).

    :meth:`watch` / :meth:`unwatch` around a read; the checking task starts with the first
    watch in a loop and ends when nothing is left to watch."""

    def __init__(self, every: float = WATCH_EVERY) -> None:
        self.every = every
        self.reads: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        """Watch ``task``'s read until :meth:`unwatch`; cancel it at ``deadline``."""
        self.reads[task] = deadline
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, task: asyncio.Task[Any]) -> bool:
        """Stop watching ``task``; True when the watchdog cancelled its read (then the caller
        raises :class:`BodyDeadline`; the cancellation is taken back)."""
        self.reads.pop(task, None)
        if task in self.expired:
            self.expired.discard(task)
            task.uncancel()
            return True
        return False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.reads:
            await asyncio.sleep(self.every)
            now = loop.time()
            for task, deadline in list(self.reads.items()):
                if deadline <= now and task not in self.expired:
                    self.expired.add(task)
                    task.cancel()


def _closing(message: Any) -> Any:
    """``message`` (an ``http.response.start``) with ``Connection: close``."""
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
    return {**message, "headers": [*headers, (b"connection", b"close")]}


def body_deadline(
    app: ASGIApp,
    seconds: float,
    before_send: Callable[[Any, Scope], Awaitable[None]] | None = None,
) -> ASGIApp:
    """``app`` with a deadline of ``seconds`` (from the call, i.e. from the end of the request
    headers) on receiving the request body (see the module). ``before_send`` (the app's own
    hook, e.g. :class:`voting.http.headers.SecurityHeaders`) decorates the 408 answer too."""

    watchdog = Watchdog()

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope["headers"]):
            await app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        body_read = started = False

        async def timed_receive() -> Any:
            nonlocal body_read
            if body_read:
                return await receive()
            task = asyncio.current_task()
            assert task is not None
            watchdog.watch(task, deadline)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if watchdog.unwatch(task):
                    raise BodyDeadline from None
                raise
            if watchdog.unwatch(task):  # cancelled just as the body came: late all the same
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)  # take the cancellation still due (Python 3.11)
                raise BodyDeadline
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_read:
                    message = _closing(message)
            await send(message)

        try:
            await app(scope, timed_receive, guarded_send)
        except BodyDeadline:
            if started:  # the answer is under way (with Connection: close): let it end there
                return
            start: Any = {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_BODY_408)).encode()),
                ],
            }
            if before_send is not None:
                await before_send(start, scope)
            await send(_closing(start))
            end: Any = {"type": "http.response.body", "body": _BODY_408}
            await send(end)

    return wrapped
