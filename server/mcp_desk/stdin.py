"""stdin as async lines for the stdio transport, on every platform.

Where the wire is a pipe or socket that can be made non-blocking (Linux, macOS), lines are read on the
event loop itself, so a signal can stop the server while stdin stays open: the SDK's default reader
blocks a worker thread in `readline()`, which no cancellation can interrupt. Where that is not possible
(Windows pipes before Python 3.12, loops that cannot wait on a pipe), a daemon thread reads instead,
as the SDK's reader does; it never keeps the process alive at exit.

Either way the wire moves to a private descriptor and fd 0 is pointed at the null device, so nothing
else in the process can read it.
"""

from __future__ import annotations

import math
import os
import stat
import sys
import threading
from typing import Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
import structlog

log = structlog.get_logger()

READ_SIZE = 65536


class StdinLines(Protocol):
    """What the stdio transport needs from stdin: async lines, a stop on signal, and a close."""

    def __aiter__(self) -> StdinLines: ...
    async def __anext__(self) -> str: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


def open_stdin() -> StdinLines:
    """Take stdin over: non-blocking reads on the loop where possible, else a reader thread."""
    fd = _take_stdin()
    mode = os.fstat(fd).st_mode
    pollable = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    if not pollable:  # a regular file or /dev/null: reads never block, so no waiting is needed
        return LoopStdinLines(fd, pollable=False)
    if sys.platform == "win32":  # the Windows event loops can wait on sockets only, never on a pipe
        log.info("stdin_reader_thread", reason="pipes cannot be awaited on this platform")
        return ThreadStdinLines(fd)
    try:
        os.set_blocking(fd, False)
    except OSError as exc:
        log.info("stdin_reader_thread", reason=f"non-blocking pipe unavailable: {exc.__class__.__name__}")
        return ThreadStdinLines(fd)
    return LoopStdinLines(fd, pollable=True)


def _take_stdin() -> int:
    fd = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return fd


def _decoded(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        # JSON on the wire is UTF-8 (RFC 8259). Replacing the bad bytes would store U+FFFD in place of
        # what the client sent; the line is dropped instead, like any other unparsable line.
        log.warning("stdin_line_not_utf8", length=len(line))
        return None


class LoopStdinLines:
    """Lines read on the event loop from a non-blocking descriptor (or one that never blocks)."""

    def __init__(self, fd: int, *, pollable: bool) -> None:
        self.fd = fd
        self.pollable = pollable
        self.buffer = b""
        self.eof = False
        self._waiting = anyio.CancelScope()

    def __aiter__(self) -> LoopStdinLines:
        return self

    async def __anext__(self) -> str:
        while True:
            text = _decoded(await self._next_line())
            if text is not None:
                return text

    async def _next_line(self) -> bytes:
        while b"\n" not in self.buffer and not self.eof:
            if self.pollable and not await self._readable():
                break
            try:
                chunk = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                continue
            self.eof = not chunk
            self.buffer += chunk
        if not self.buffer:
            raise StopAsyncIteration
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    async def _readable(self) -> bool:
        """Wait for input; False once `stop()` was called."""
        with anyio.CancelScope() as self._waiting:
            await anyio.wait_readable(self.fd)
        return not self.eof

    def stop(self) -> None:
        """End the iteration (a signal): complete lines already read are still served, the rest is not read."""
        self.eof = True
        self.buffer = self.buffer[: self.buffer.rfind(b"\n") + 1]
        self._waiting.cancel()

    def close(self) -> None:
        """Release the private descriptor."""
        os.close(self.fd)


class ThreadStdinLines:
    """Lines read by a daemon thread with blocking reads, handed to the loop through a stream.

    The thread starts on the first iteration (it needs the running loop). `stop()` ends the iteration
    at once; the thread may stay blocked in `read()` until input or EOF arrives, and being a daemon it
    does not delay the exit.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._send, self._receive = anyio.create_memory_object_stream[bytes](math.inf)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._waiting = anyio.CancelScope()

    def __aiter__(self) -> ThreadStdinLines:
        return self

    async def __anext__(self) -> str:
        if self._thread is None:
            token = anyio.lowlevel.current_token()
            self._thread = threading.Thread(target=self._pump, args=(token,), name="mcp-desk-stdin", daemon=True)
            self._thread.start()
        while not self._stopped:
            with anyio.CancelScope() as self._waiting:
                try:
                    line = await self._receive.receive()
                except anyio.EndOfStream:
                    break
                text = _decoded(line)
                if text is not None:
                    return text
        raise StopAsyncIteration

    def _pump(self, token: anyio.lowlevel.EventLoopToken) -> None:
        buffer = b""
        try:
            while chunk := os.read(self.fd, READ_SIZE):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    anyio.from_thread.run(self._send.send, line, token=token)
            if buffer:
                anyio.from_thread.run(self._send.send, buffer, token=token)
        except (OSError, RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            # the descriptor failed, the loop ended or the server stopped listening: nothing left to deliver
            return
        finally:
            self._close_sender(token)

    def _close_sender(self, token: anyio.lowlevel.EventLoopToken) -> None:
        async def close() -> None:
            await self._send.aclose()

        try:
            anyio.from_thread.run(close, token=token)
        except RuntimeError:  # the loop already ended
            return

    def stop(self) -> None:
        """End the iteration (a signal): lines already handed over are served, the rest is not read."""
        self._stopped = True
        self._waiting.cancel()

    def close(self) -> None:
        """Release the receiving end; the thread ends with the process or at EOF."""
        self._receive.close()
