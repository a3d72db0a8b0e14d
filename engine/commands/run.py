"""engine run [--detach] [create flags] <id>: create + start, then wait and exit with the container's
status (128+n when killed by signal n), deleting it afterwards as runc does."""

from __future__ import annotations

import gc
import os

from engine import hotload

# First: run, its create and its child load ~80 of engine's modules (the launcher's finder, or their .pyc files).
hotload.install()

from engine import console  # noqa: E402
from engine.cli import Context  # noqa: E402
from engine.commands.create import options_from  # noqa: E402
from engine.create import create  # noqa: E402
from engine.delete import delete  # noqa: E402
from engine.errors import EngineError, suppress  # not contextlib's (~2 ms of import)  # noqa: E402
from engine.linux.syscalls import set_child_subreaper  # noqa: E402
from engine.signals import Forwarder  # noqa: E402
from engine.start import start  # noqa: E402
from state.lifecycle import Lifecycle  # noqa: E402
from state.store import Store  # noqa: E402

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    store = Store(ctx.root)
    config_data = console.read_bundle_config(args.bundle)  # read once: for the terminal here, then for create
    terminal = console.terminal_in(config_data)
    console.check_terminal(terminal, args.console_socket, args.detach)
    if not args.detach:
        # The init's parent (the intermediate child) exits during create; as subreaper we inherit the init
        # and can wait for it.
        set_child_subreaper()
    options = options_from(ctx, args)
    options.reaper = not args.detach
    options.config_data = config_data
    # In the foreground with a terminal we receive the console ourselves, through a socket of our own.
    receiver = console.ConsoleSocket.temporary() if terminal and not args.detach else None
    if receiver is not None:
        options.console_socket = receiver.path
    try:
        record = create(store, options, ctx.log)
    except BaseException:
        if receiver is not None:
            receiver.close()
        raise
    # As `runc run`, which works in the bundle directory: its poststart and poststop hooks run there. Every path
    # given on the command line has been used or made absolute by now (state root, bundle, --log, pid file).
    os.chdir(record.bundle)
    relay = None
    # Waiting for the container: its signals are ours to pass on from before start lets it run (engine/signals.py).
    forwarder = None if args.detach else Forwarder().install()
    try:
        try:
            if receiver is not None:
                with receiver:  # the init sent the pty master during create: it waits in the socket
                    # The relay takes SIGWINCH over: it resizes the container's terminal instead of forwarding.
                    relay = console.ConsoleRelay(receiver.receive_master(timeout=10)).start()
            start(store, record.id, ctx.log)
        except EngineError:
            if relay is not None:
                relay.close(timeout=0)
            with suppress(EngineError):
                delete(store, record.id, True, ctx.log)
            raise
        if forwarder is None:
            return 0
        # Waiting for as long as the container runs (relaying its terminal): collect again (engine.cli disabled it).
        gc.enable()
        try:
            forwarder.forward_to(record.pid)
            _, wait_status = os.waitpid(record.pid, 0)
            if relay is not None:
                relay.close()  # the container's last output, then the caller's terminal restored
        finally:
            if relay is not None:
                relay.close()
    finally:
        if forwarder is not None:
            forwarder.restore()
    code = os.waitstatus_to_exitcode(wait_status)
    exit_code = 128 - code if code < 0 else code
    with store.locked(record.id) as dir_fd:
        current = store.load(record.id, dir_fd)
        if current.status != "stopped":
            Lifecycle(current, store, warn=ctx.log.warning).fire("stop", exit_status=exit_code)
    if not args.keep:
        delete(store, record.id, False, ctx.log)
    return exit_code
