"""`engine events --follow [id]`: a stream of status changes, read from the state directory as it changes.

The state store keeps <root>/<id>/state.json, replaced atomically (write .state.json.<pid>.tmp, rename), and
removes the directory on delete. follow() watches <root> recursively with watchdog (inotify) and turns what
happens there into events:

    {"type": "state", "id": ..., "status": ..., "time": <RFC 3339>, "state": <state.json, parsed>}
        when a container's state.json appears or its content changes (a rewrite with the same content is
        not an event);
    {"type": "deleted", "id": ..., "time": <RFC 3339>}
        when the container's directory disappears (or is replaced by a new one of the same id).

Why it is robust: an inotify event only says "look at container X again"; what is emitted comes from reading
the files, compared with what was last seen. So the temp-file + rename dance, events arriving twice or
coalesced, and our own reads do not produce duplicates. A directory created after the watch began is watched
by watchdog (it also reports files created in it before its watch existed), and a full rescan every
rescan_interval seconds catches anything inotify dropped (queue overflow). The watch is in place before the
first look at the directory, so nothing falls between the two. Files are read in watchdog's thread as soon as
inotify reports them; still, a status that is replaced within microseconds (before the read) is not seen:
what is reported is every status that was on disk when looked at, in order, never a stale or repeated one.

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

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Iterator

STATE_FILE = "state.json"


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

    def look(cids: Iterable[str], *, emit: bool = True) -> None:
        with lock:
            for cid in sorted(cids):
                for event in watcher.look(cid):
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
        look(_container_ids(root, container_id), emit=emit_existing)
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


class _Watcher:
    """What was last seen of each container, and the events that differences from it make."""

    def __init__(self, root: str) -> None:
        self.root = root
        # id -> (directory inode, state.json stat key, parsed state or None)
        self.seen: dict[str, tuple[int, tuple[int, int, int] | None, dict | None]] = {}

    def known_ids(self) -> list[str]:
        return list(self.seen)

    def look(self, cid: str) -> Iterator[dict]:
        directory = os.path.join(self.root, cid)
        previous = self.seen.get(cid)
        try:
            dir_st = os.stat(directory)
            dir_ino = dir_st.st_ino if stat.S_ISDIR(dir_st.st_mode) else None
        except (FileNotFoundError, NotADirectoryError):
            dir_ino = None
        except OSError:
            return  # cannot tell (EACCES, say): not a reason to call it deleted; the next look decides
        if previous is not None and previous[0] != dir_ino:
            # Gone, or deleted and created again under the same id between two looks.
            del self.seen[cid]
            previous = None
            yield {"type": "deleted", "id": cid, "time": now_rfc3339()}
        if dir_ino is None:
            return
        try:
            st = os.stat(os.path.join(directory, STATE_FILE))
        except (FileNotFoundError, NotADirectoryError):
            if previous is None:
                self.seen[cid] = (dir_ino, None, None)
            return  # being created, or being deleted (state.json goes first): the directory decides
        except OSError:
            return
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if previous is not None and previous[1] == key:
            return  # the same file as last time: do not even read it
        old_state = previous[2] if previous is not None else None
        try:
            with open(os.path.join(directory, STATE_FILE), "rb") as f:
                state = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError):
            return  # replaced or removed while reading, or written in place half-way: look again later
        if not isinstance(state, dict):
            return
        self.seen[cid] = (dir_ino, key, state)
        if state != old_state:
            yield {"type": "state", "id": cid, "status": state.get("status"), "time": now_rfc3339(), "state": state}


def _container_ids(root: str, only: str | None) -> list[str]:
    if only is not None:
        return [only]
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("."))
