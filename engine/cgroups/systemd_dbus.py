"""A small synchronous client for systemd's manager over D-Bus: what the systemd cgroup driver needs.

    with systemd_dbus.connect() as bus:
        job = bus.start_transient_unit("engine-c1.scope", "replace", properties)
        bus.wait_for_job(job, "start engine-c1.scope")     # JobRemoved, with a time limit
        bus.set_unit_properties("engine-c1.scope", properties)
        bus.stop_unit("engine-c1.scope")                    # and waits; a unit already gone is fine

Where systemd is reached, as runc (go-systemd's NewWithContext) does: the system bus first
($DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket), then, as root, systemd's private socket
/run/systemd/private, which needs no dbus-daemon. A host without systemd as init (no /run/systemd/system, as
sd_booted(3) checks) is refused before any connection is tried.

jeepney (pure Python) builds and parses the messages. The socket, the SASL EXTERNAL handshake and the reply
loop are here: on the private socket there is no bus driver to say Hello to, which jeepney's blocking
connection always does. Signals (JobRemoved) that arrive while waiting for a reply are kept, so a job that
finishes before its reply is read is not missed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from itertools import count

from jeepney import (  # type: ignore[import-untyped]  # jeepney ships no type information
    DBusAddress,
    HeaderFields,
    MessageType,
    Parser,
    new_method_call,
)
from jeepney.auth import BEGIN, AuthenticationError, make_auth_external  # type: ignore[import-untyped]

from engine.cgroups.fs import CgroupError
from engine.errors import EngineError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from jeepney import Message

BOOTED = "/run/systemd/system"
PRIVATE_SOCKET = "/run/systemd/private"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = DBusAddress(MANAGER_PATH, bus_name=SYSTEMD, interface=f"{SYSTEMD}.Manager")
BUS_DRIVER = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")
JOB_REMOVED_MATCH = (
    f"type='signal',sender='{SYSTEMD}',interface='{SYSTEMD}.Manager',member='JobRemoved',path='{MANAGER_PATH}'"
)

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 30.0  # runc's bound for a unit's job as well
JOB_TIMEOUT = 30.0

NO_SUCH_UNIT = f"{SYSTEMD}.NoSuchUnit"
UNIT_EXISTS = f"{SYSTEMD}.UnitExists"
PROPERTY_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"  # also systemd's "unknown property"


class SystemdError(CgroupError):
    """A call systemd answered with an error (name: the D-Bus error name), or a failed or timed-out job."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


class NotRunning(EngineError):
    """No systemd to talk to (a fact of the host, not of config.json)."""


def unknown_property(err: SystemdError) -> str | None:
    """The property a systemd refused as unknown to it ("Cannot set property X, or unknown property."), if that is
    what err says."""
    if err.name != PROPERTY_READ_ONLY:
        return None
    _, found, rest = str(err).partition("Cannot set property ")
    name = rest.split(",", 1)[0].strip()
    return name if found and name.isidentifier() else None


def booted() -> bool:
    """sd_booted(3): systemd is this machine's init."""
    return os.path.isdir(BOOTED)


def connect(timeout: float = CONNECT_TIMEOUT, *, log: Any = None) -> Connection:
    """A connection to systemd, or NotRunning with one line saying what was tried."""
    if not booted():
        raise NotRunning(f"--systemd-cgroup: systemd is not running on this host ({BOOTED} does not exist)")
    tried: list[str] = []
    bus_address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or f"unix:path={SYSTEM_BUS_SOCKET}"
    candidates = [(bus_address, True)]
    if os.geteuid() == 0:
        candidates.append((f"unix:path={PRIVATE_SOCKET}", False))
    for address, is_bus in candidates:
        try:
            path = _unix_path(address)
            conn = Connection(_open(path, timeout), address, is_bus)
        except (OSError, ValueError, AuthenticationError) as err:
            tried.append(f"{address}: {_reason(err)}")
            continue
        try:
            conn.setup()
        except (OSError, SystemdError) as err:
            conn.close()
            tried.append(f"{address}: {_reason(err)}")
            continue
        if log is not None:
            log(f"systemd: connected through {address}")
        return conn
    raise NotRunning(f"--systemd-cgroup: cannot reach systemd over D-Bus ({'; '.join(tried)})")


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    return str(err) or type(err).__name__


def _unix_path(address: str) -> str:
    """The socket path of the first unix:path= (or unix:abstract=) entry of a D-Bus address."""
    for entry in address.split(";"):
        kind, _, params = entry.partition(":")
        if kind != "unix":
            continue
        for param in params.split(","):
            key, _, value = param.partition("=")
            if key == "path":
                return _unescape(value)
            if key == "abstract":
                return "\0" + _unescape(value)
    raise ValueError(f"no unix socket in the D-Bus address {address!r}")


def _unescape(value: str) -> str:
    """D-Bus addresses escape bytes as %XX."""
    raw, out, i = value.encode(), bytearray(), 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 3 <= len(raw):  # "%"
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


def _open(path: str, timeout: float) -> socket.socket:
    """A connected, authenticated socket.

    SASL EXTERNAL (the server reads our uid from SO_PEERCRED), with BEGIN sent at once after AUTH and nothing
    else until the server's OK has arrived, as sd-bus clients (systemctl) do. Sending BEGIN only after OK and a
    message right behind it lets the two arrive in one read, and systemd 252's private socket then keeps the
    message unread until more data comes: seen as a call that never gets an answer, about one time in three.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(b"\0" + make_auth_external() + BEGIN)
        line = b""
        while not line.endswith(b"\r\n"):
            received = sock.recv(1)  # byte by byte: nothing after the OK line may be consumed here
            if not received:
                raise ConnectionResetError("the server closed the connection during authentication")
            line += received
            if len(line) > 4096:
                raise AuthenticationError(line[:80], "no end of line from the server")
        if not line.startswith(b"OK "):
            raise AuthenticationError(line.strip(), "authentication refused")
    except BaseException:
        sock.close()
        raise
    return sock


class Connection:
    def __init__(self, sock: socket.socket, address: str, is_bus: bool) -> None:
        self.sock = sock
        self.address = address
        self.is_bus = is_bus  # through dbus-daemon (Hello, matches, Subscribe) or straight to systemd
        self._parser = Parser()
        self._serials = count(1)
        self._finished_jobs: dict[str, str] = {}  # job path -> result, from JobRemoved signals

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def setup(self) -> None:
        if self.is_bus:
            self.call(BUS_DRIVER, "Hello")
            self.call(BUS_DRIVER, "AddMatch", "s", (JOB_REMOVED_MATCH,))
            # On the bus systemd sends signals only while someone is subscribed (directly connected clients
            # get them unconditionally); the subscription ends with this connection.
            self.call(MANAGER, "Subscribe")
        else:
            self.version()  # is systemd answering on this socket at all

    # ----- systemd's manager ------------------------------------------------------------------------------------

    def start_transient_unit(self, name: str, mode: str, properties: Iterable[tuple[str, str, Any]]) -> str:
        body: tuple[Any, ...] = (name, mode, [(key, (sig, value)) for key, sig, value in properties], [])
        job: str = self.call(MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))", body)[0]
        return job

    def stop_unit(self, name: str, mode: str = "replace") -> str:
        job: str = self.call(MANAGER, "StopUnit", "ss", (name, mode))[0]
        return job

    def reset_failed_unit(self, name: str) -> None:
        self.call(MANAGER, "ResetFailedUnit", "s", (name,))

    def set_unit_properties(self, name: str, properties: Iterable[tuple[str, str, Any]], runtime: bool = True) -> None:
        body = (name, runtime, [(key, (sig, value)) for key, sig, value in properties])
        self.call(MANAGER, "SetUnitProperties", "sba(sv)", body)

    def get_unit(self, name: str) -> str | None:
        """The unit's object path, or None if systemd has no such unit loaded."""
        try:
            path: str = self.call(MANAGER, "GetUnit", "s", (name,))[0]
            return path
        except SystemdError as err:
            if err.name == NO_SUCH_UNIT:
                return None
            raise

    def unit_property(self, path: str, interface: str, name: str) -> Any:
        address = DBusAddress(path, bus_name=SYSTEMD, interface="org.freedesktop.DBus.Properties")
        return self.call(address, "Get", "ss", (interface, name))[0][1]

    def version(self) -> int:
        """systemd's version number ("252.39-1~deb12u2" -> 252); 0 if unreadable."""
        text = str(self.unit_property(MANAGER_PATH, f"{SYSTEMD}.Manager", "Version"))
        digits = ""
        for ch in text.lstrip("v"):
            if not ch.isdigit():
                break
            digits += ch
        return int(digits) if digits else 0

    def wait_for_job(self, job: str, what: str, timeout: float = JOB_TIMEOUT) -> None:
        """Wait for JobRemoved of `job`; SystemdError unless its result is "done"."""
        deadline = time.monotonic() + timeout
        while job not in self._finished_jobs:
            try:
                self._dispatch(self._receive(deadline - time.monotonic()))
            except TimeoutError:
                raise SystemdError(f"systemd: {what}: the job did not finish within {timeout:g}s ({job})") from None
        result = self._finished_jobs.pop(job)
        if result != "done":
            raise SystemdError(f"systemd: {what}: the job ended {result!r}", result)

    # ----- the wire ----------------------------------------------------------------------------------------------

    def call(
        self,
        address: DBusAddress,
        method: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
        timeout: float = CALL_TIMEOUT,
    ) -> tuple[Any, ...]:
        message = new_method_call(address, method, signature, body)
        serial = next(self._serials)
        self.sock.sendall(message.serialise(serial=serial))
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._receive(deadline - time.monotonic())
            except TimeoutError:
                raise SystemdError(f"systemd: {method}: no answer from {self.address} within {timeout:g}s") from None
            if reply.header.fields.get(HeaderFields.reply_serial) != serial:
                self._dispatch(reply)
                continue
            if reply.header.message_type is MessageType.error:
                name = reply.header.fields.get(HeaderFields.error_name, "")
                text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
                raise SystemdError(f"systemd: {method}: {text}", name)
            answer: tuple[Any, ...] = reply.body
            return answer

    def _dispatch(self, message: Message) -> None:
        fields = message.header.fields
        if (
            message.header.message_type is MessageType.signal
            and fields.get(HeaderFields.member) == "JobRemoved"
            and fields.get(HeaderFields.interface) == f"{SYSTEMD}.Manager"
        ):
            _job_id, job_path, _unit, result = message.body
            self._finished_jobs[job_path] = result

    def _receive(self, timeout: float) -> Message:
        """The next message; TimeoutError after `timeout` seconds."""
        while True:
            message = self._parser.get_next_message()
            if message is not None:
                return message
            if timeout <= 0:
                raise TimeoutError
            self.sock.settimeout(timeout)
            started = time.monotonic()
            data = self.sock.recv(65536)  # socket.timeout is TimeoutError
            if not data:
                raise SystemdError(f"systemd: {self.address} closed the connection")
            self._parser.add_data(data)
            timeout -= time.monotonic() - started
