"""A real TCP proxy in front of a real Redis that can stall it or take it down.

:class:`StallingProxy` forwards every byte between the app and the server from its own thread
and event loop (the test client runs the app in another loop). :meth:`~StallingProxy.stall`
holds every byte in both directions while still accepting connections, which is what a
SIGSTOPped server looks like to its clients (the kernel completes connections and buffers
what they send); :meth:`~StallingProxy.resume` lets the held bytes through in order, so a
command whose client gave up during the stall still runs afterwards, as it does when the
server gets SIGCONT. :meth:`~StallingProxy.refuse` closes every connection (FIN, as when the
server's process ends) and refuses new ones, as a server that is down does. The shared server
itself is never stopped or touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class StallingProxy:
    """Forwards TCP from ``127.0.0.1:<port>`` (see :meth:`start`) to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> int:
        """Start forwarding; return the proxy's port."""
        self.thread.start()
        return self._call(self._start())

    async def _start(self) -> int:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def stall(self) -> None:
        """Hold every byte from now on (connections are still accepted)."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        """Let the held bytes through, in order, and forward again."""
        self._call(self._set_flowing(True))

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def refuse(self) -> None:
        """Close the listening socket and every connection: connecting is refused."""
        self._call(self._refuse())

    async def _refuse(self) -> None:
        if self.server is not None:
            self.server.close()  # no new connections
        for writer in list(self._writers):
            writer.close()  # as when the server's process ends: the kernel sends FIN
        if self.server is not None:
            await self.server.wait_closed()

    def stop(self) -> None:
        """Close everything and end the proxy's thread."""
        self._call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _shutdown(self) -> None:
        assert self._flowing is not None
        self._flowing.set()
        await self._refuse()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, holding each chunk (and the end) while stalled."""
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(65536)
                await self._flowing.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
