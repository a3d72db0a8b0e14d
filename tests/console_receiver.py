"""A --console-socket receiver for tests, after runc's contrib/cmd/recvtty.

In a test:

    with ConsoleReceiver(tmp_path / "console.sock") as receiver:
        engine("create", "--console-socket", str(receiver.path), ...)
        engine("start", ...)
        output = receiver.wait_hangup(timeout=10)     # everything the container wrote, until its pty hung up

From a shell (a terminal for a container started by hand):

    python tests/console_receiver.py [--mode single|null] [--no-stdin] [--pid-file F] SOCKET

  single  accept one pty master and connect it to this terminal (raw mode when stdin is a terminal),
          until the container's pty hangs up;
  null    accept any number of masters and throw their output away (runc's bats tests use this).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from engine.console import ConsoleRelay, receive_fd


class ConsoleReceiver:
    """Listens at `path`; a background thread accepts one connection, takes the master and reads it until
    the pty hangs up (EIO), keeping every byte. Input can be written to the master with write()."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.output = bytearray()
        self.name: str | None = None  # the payload sent with the fd
        self.master: int | None = None
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._hung_up = False
        self._received = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._listener.bind(str(self.path))
        self._listener.listen(1)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="console-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            ready, _, _ = select.select([self._listener, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            conn, _ = self._listener.accept()
            with conn:
                self.master, self.name = receive_fd(conn)
            self._received.set()
            while True:
                ready, _, _ = select.select([self.master, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                try:
                    data = os.read(self.master, 65536)
                except OSError as err:
                    if err.errno != errno.EIO:
                        raise
                    data = b""  # EIO: the last slave fd was closed
                with self._changed:
                    if not data:
                        self._hung_up = True
                        return
                    self.output += data
                    self._changed.notify_all()
        except BaseException as err:
            self.error = err
        finally:
            self._received.set()
            with self._changed:
                self._hung_up = True
                self._changed.notify_all()

    def wait_master(self, timeout: float = 10) -> int:
        if not self._received.wait(timeout) or self.master is None:
            raise AssertionError(f"no pty master arrived on {self.path} within {timeout}s (error: {self.error!r})")
        return self.master

    def write(self, data: bytes) -> None:
        os.write(self.wait_master(), data)

    def wait_for(self, text: bytes, timeout: float = 10) -> bytes:
        """Wait until `text` has appeared in the output; returns the output so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in self.output:
                left = deadline - time.monotonic()
                if left <= 0 or self._hung_up:
                    raise AssertionError(f"{text!r} never arrived; got {bytes(self.output)!r} (error: {self.error!r})")
                self._changed.wait(left)
            return bytes(self.output)

    def wait_hangup(self, timeout: float = 10) -> bytes:
        """Wait until the pty hangs up (the container's processes are gone); returns all the output."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._hung_up:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the pty did not hang up within {timeout}s; got {bytes(self.output)!r}")
                self._changed.wait(left)
        if self.error is not None:
            raise AssertionError(f"the receiver failed: {self.error!r}")
        return bytes(self.output)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self.master, self._stop_r, self._stop_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> ConsoleReceiver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _single(path: str, no_stdin: bool) -> int:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    listener.bind(path)
    listener.listen(1)
    try:
        conn, _ = listener.accept()
    finally:
        listener.close()  # one terminal only, as recvtty: let another instance take the path over
        os.unlink(path)
    with conn:
        master, _ = receive_fd(conn)
    stdin = os.open(os.devnull, os.O_RDONLY) if no_stdin else 0
    with ConsoleRelay(master, stdin=stdin, stdout=1) as relay:
        relay.wait()
    return 0


def _null(path: str) -> int:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    listener.bind(path)
    listener.listen(16)

    def drain(conn: socket.socket) -> None:
        with conn:
            master, _ = receive_fd(conn)
        with contextlib.suppress(OSError):  # EIO ends it
            while os.read(master, 65536):
                pass
        os.close(master)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Receive a container's pty master on a --console-socket.")
    parser.add_argument("--mode", "-m", choices=("single", "null"), default="single")
    parser.add_argument("--no-stdin", action="store_true", help="do not copy stdin to the container (single)")
    parser.add_argument("--pid-file", help="write our pid here once listening is about to start")
    parser.add_argument("socket")
    args = parser.parse_args(argv)
    if args.pid_file:
        Path(args.pid_file).write_text(f"{os.getpid()}\n")
    try:
        return _single(args.socket, args.no_stdin) if args.mode == "single" else _null(args.socket)
    except Exception as err:
        print(f"[console_receiver] fatal error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
