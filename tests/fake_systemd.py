"""A fake systemd for unit tests: a Unix socket that speaks D-Bus (SASL, then messages parsed by jeepney) and
answers method calls with what a test's handlers return (replies, errors and signals, in order)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from jeepney import DBusAddress, HeaderFields, Message, Parser
from jeepney.wrappers import new_method_return, new_signal

MANAGER = DBusAddress("/org/freedesktop/systemd1", interface="org.freedesktop.systemd1.Manager")

Handler = Callable[[Message], list[Message]]


class FakeSystemd:
    """Answers method calls on a listening socket with what handlers return (replies and signals, in order)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.calls: list[tuple[str, str, tuple]] = []  # (interface, member, body)
        self.handlers: dict[str, Handler] = {}
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def on(self, member: str, handler: Handler) -> None:
        self.handlers[member] = handler

    def close(self) -> None:
        self.server.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        buf = b""
        while b"BEGIN\r\n" not in buf:  # "\0AUTH EXTERNAL <hex uid>\r\nBEGIN\r\n", pipelined as sd-bus does
            buf += conn.recv(1024)
        auth, _, rest = buf.partition(b"BEGIN\r\n")
        assert auth == b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n", buf
        assert rest == b""  # nothing before our OK
        conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
        parser = Parser()
        serial = 1000
        while True:
            msg = parser.get_next_message()
            if msg is None:
                data = conn.recv(65536)
                if not data:
                    return
                parser.add_data(data)
                continue
            fields = msg.header.fields
            member = fields[HeaderFields.member]
            self.calls.append((fields.get(HeaderFields.interface, ""), member, msg.body))
            handler = self.handlers.get(member, lambda m: [new_method_return(m)])
            for out in handler(msg):
                serial += 1
                conn.sendall(out.serialise(serial=serial))


def job_removed(job: str, unit: str, result: str) -> Message:
    return new_signal(MANAGER, "JobRemoved", "uoss", (7, job, unit, result))
