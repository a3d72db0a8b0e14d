"""`engine events --follow [id]`: a stream of status changes, read from the state directory as it changes.

The state store keeps <root>/<id>/state.json (replaced atomically: temp file + rename), appends the same record
as one line to <root>/<id>/events.jsonl just before each replacement, and removes the directory on delete.
follow() watches <root> recursively with watchdog (inotify) and turns what happens there into events:

    {"type": "state", "id": ..., "status": ..., "time": <RFC 3339>, "state": <the record, parsed>}
        for every record the container's state has held, in order (a rewrite with the same content is not
        an event);
    {"type": "deleted", "id": ..., "time": <RFC 3339>}
        when the container's directory disappears (or is replaced by a new one of the same id).

Why nothing is lost: state.json only holds the latest record, so reading it after inotify spoke could miss a
status that lived for a millisecond (running, between `start` and a program that exits at once: seen in CI).
The log keeps every record. The follower opens it when it first sees the container and keeps the descriptor,
so it reads every line in order, even those written just before `delete` unlinked the file. Because the store
appends before it renames, a status visible in state.json is always already in the log. An inotify event only
says "look at container X again"; what is emitted comes from reading, compared with what was last emitted, so
events arriving twice or coalesced, and our own reads, make no duplicates. A directory created after the watch
began is watched by watchdog (it also reports files created in it before its watch existed), and a full look
every rescan_interval seconds catches anything inotify dropped (queue overflow). The watch is in place before
the first look at the directory, so nothing falls between the two. A container directory without a log
(written by an older engine) is followed through state.json as before: every status on disk when looked at.

watchdog (and its observer thread) is imported and started only inside follow(): `engine events` is the one
command that pays for it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time

import orjson

from state.record import now_rfc3339
from state.store import EVENTS_FILE, STATE_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Iterator


def follow(
    root: str,
    container_id: str | None = None,
    *,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
    emit_existing: bool = False,
    rescan_interval: float = 2.0,
    tick: float = 0.1,
) -> Iterator[dict]:
    """Yield events for every container under root (or only container_id) until stop is set or the
    generator is closed. root is created (mode 0700) if it does not exist yet.

    ready: set once the watch is in place: every change after that is reported.
    emit_existing: first yield a "state" event for each container already there.
    tick: how often, at most, stop is looked at while nothing happens.
    """
    import queue
    import threading

    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        FileSystemEventHandler,
    )
    from watchdog.observers import Observer

    root = os.path.abspath(root)
    os.makedirs(root, mode=0o700, exist_ok=True)
    prefix = root + os.sep
    watcher = _Watcher(root)
    lock = threading.Lock()  # the watchdog thread and the generator (rescans) both look
    out: queue.SimpleQueue[dict] = queue.SimpleQueue()

    def look(cids: Iterable[str], *, emit: bool = True, first: bool = False) -> None:
        with lock:
            for cid in sorted(cids):
                for event in watcher.look(cid, latest_only=first):
                    if emit:
                        out.put(event)

    def container_of(path: str | bytes) -> str | None:
        path = os.fsdecode(path)
        if not path.startswith(prefix):
            return None
        cid = path[len(prefix) :].split(os.sep, 1)[0]
        if not cid or cid.startswith(".") or (container_id is not None and cid != container_id):
            return None
        return cid

    class Handler(FileSystemEventHandler):
        # Runs in watchdog's dispatch thread, right after inotify spoke: reading state.json at once (not
        # when the consumer gets round to it) keeps short-lived statuses from being overwritten unseen.
        def on_any_event(self, event: object) -> None:
            paths = (getattr(event, "src_path", ""), getattr(event, "dest_path", ""))
            cids = {cid for cid in map(container_of, filter(None, paths)) if cid is not None}
            if cids:
                # An exception here would end watchdog's dispatch thread, and with it every later event;
                # whatever went wrong, the next event or the periodic rescan looks again.
                with contextlib.suppress(Exception):
                    look(cids)

    observer = Observer()
    # Only what a state change can look like: atomic renames (moved), creation, deletion, and close after
    # writing (a writer that rewrites in place). Not opens and reads: our own reads would wake us up.
    observer.schedule(
        Handler(),
        root,
        recursive=True,
        event_filter=[
            FileCreatedEvent,
            FileMovedEvent,
            FileDeletedEvent,
            FileClosedEvent,
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
        ],
    )
    observer.start()
    try:
        # The watch exists now, so whatever changes after this first look is reported by it.
        look(_container_ids(root, container_id), emit=emit_existing, first=True)
        if ready is not None:
            ready.set()
        next_rescan = time.monotonic() + rescan_interval
        while stop is None or not stop.is_set():
            try:
                yield out.get(timeout=max(0.0, min(tick, next_rescan - time.monotonic())))
                continue
            except queue.Empty:
                pass
            if time.monotonic() >= next_rescan:
                look(set(watcher.known_ids()) | set(_container_ids(root, container_id)))
                next_rescan = time.monotonic() + rescan_interval
    finally:
        observer.stop()
        observer.join(timeout=5)
        with lock:
            watcher.close()


class _Seen:
    """What is known of one container directory: its inode, the log being read (descriptor and the bytes of
    an unfinished last line), and the record last emitted; state_key is for directories without a log."""

    __slots__ = ("dir_ino", "log_fd", "pending", "state", "state_key")

    def __init__(self, dir_ino: int) -> None:
        self.dir_ino = dir_ino
        self.log_fd: int | None = None
        self.pending = b""
        self.state: dict | None = None
        self.state_key: tuple[int, int, int] | None = None

    def close(self) -> None:
        if self.log_fd is not None:
            os.close(self.log_fd)
            self.log_fd = None


class _Watcher:
    """What was last seen of each container, and the events that differences from it make."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.seen: dict[str, _Seen] = {}

    def known_ids(self) -> list[str]:
        return list(self.seen)

    def close(self) -> None:
        for seen in self.seen.values():
            seen.close()
        self.seen.clear()

    def look(self, cid: str, *, latest_only: bool = False) -> Iterator[dict]:
        """The events since the last look at `cid`; latest_only: just the current record (a first look)."""
        directory = os.path.join(self.root, cid)
        seen = self.seen.get(cid)
        try:
            dir_st = os.stat(directory)
            dir_ino = dir_st.st_ino if stat.S_ISDIR(dir_st.st_mode) else None
        except (FileNotFoundError, NotADirectoryError):
            dir_ino = None
        except OSError:
            return  # cannot tell (EACCES, say): not a reason to call it deleted; the next look decides
        if seen is not None and seen.dir_ino != dir_ino:
            # Gone, or deleted and created again under the same id between two looks: first what the old log
            # still holds (the descriptor outlives the unlink), then the deletion.
            yield from self._emit(cid, seen, self._read_log(seen))
            seen.close()
            del self.seen[cid]
            seen = None
            yield {"type": "deleted", "id": cid, "time": now_rfc3339()}
        if dir_ino is None:
            return
        if seen is None:
            seen = self.seen[cid] = _Seen(dir_ino)
        if seen.log_fd is None:
            with contextlib.suppress(OSError):
                seen.log_fd = os.open(os.path.join(directory, EVENTS_FILE), os.O_RDONLY | os.O_CLOEXEC)
        # The log when there is one; a directory written by an older engine only has state.json.
        records = self._read_log(seen) if seen.log_fd is not None else self._read_state(directory, seen)
        if latest_only:
            records = records[-1:]
        yield from self._emit(cid, seen, records)

    @staticmethod
    def _emit(cid: str, seen: _Seen, records: list[dict]) -> Iterator[dict]:
        for state in records:
            if state != seen.state:
                seen.state = state
                yield {"type": "state", "id": cid, "status": state.get("status"), "time": now_rfc3339(), "state": state}

    @staticmethod
    def _read_log(seen: _Seen) -> list[dict]:
        """The complete lines appended since the last read, parsed (a line being written waits for the next)."""
        if seen.log_fd is None:
            return []
        data = seen.pending
        while chunk := os.read(seen.log_fd, 65536):
            data += chunk
        *lines, seen.pending = data.split(b"\n")
        records = []
        for line in lines:
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    @staticmethod
    def _read_state(directory: str, seen: _Seen) -> list[dict]:
        """A directory without a log: state.json as it is now, if it changed since the last look."""
        try:
            st = os.stat(os.path.join(directory, STATE_FILE))
        except OSError:
            return []  # being created, or being deleted (state.json goes first): the directory decides
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen.state_key == key:
            return []  # the same file as last time: do not even read it
        try:
            with open(os.path.join(directory, STATE_FILE), "rb") as f:
                state = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError):
            return []  # replaced or removed while reading, or written in place half-way: look again later
        seen.state_key = key
        return [state] if isinstance(state, dict) else []


def _container_ids(root: str, only: str | None) -> list[str]:
    if only is not None:
        return [only]
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("."))
