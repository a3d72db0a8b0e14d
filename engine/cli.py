"""`engine`: runc's command line (the commands and flags conmon and containerd-shim-runc-v2 pass).

Each command lives in engine/commands/<name>.py and is imported only when chosen, so `engine state` never
pays for pydantic, pyroute2 or watchdog; start and delete, whose command is their operation called with the id, live
in their operation's module (OPERATION_COMMANDS). Plain command lines are parsed without argparse (parse_fast, from a
table generated from the parser of engine/cli_parser.py), because argparse and what it imports (re, gettext,
shutil...) cost more than `engine state` itself; anything unusual goes to argparse.
"""

import posix  # not os: its import costs every command ~1 ms (engine/paths.py)
import sys

from engine import SPEC_VERSION, __version__
from engine.errors import EngineError
from engine.log import Log

# Commands that import the set-up code and validate a config, then end (`run` in the foreground turns the collector
# back on while it waits for its container): the cyclic collector would only rescan the heap as the imports allocate
# it, ~1.5-2.5 ms of create's CPU (a full collection lands on the first validation), and the forked children inherit
# the setting for their own imports. Not the long-lived commands (events, a foreground exec's relay).
SHORT_LIVED_ALLOCATING = frozenset({"create", "run"})

# Hot commands whose run() is in their operation's module: a module of engine/commands/ would only forward to it,
# and it and its package cost each of these commands ~0.17 ms (the interpreter's own start is ~7 ms; issue #11).
OPERATION_COMMANDS = {"start": "engine.start", "delete": "engine.delete"}


def command_module(command: str) -> str:
    """The module whose run(ctx, args) carries out `command`."""
    return OPERATION_COMMANDS.get(command) or f"engine.commands.{command}"


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class Args:
    """What argparse.Namespace would hold (a plain class: `types` and `argparse` cost milliseconds)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


class Context:
    """What every command gets from the global flags. (Not a dataclass: that import costs ~15 ms.)"""

    def __init__(self, root: str | None, log: Log, systemd_cgroup: bool, hooks_dirs: list[str]) -> None:
        self._root = root
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.hooks_dirs = hooks_dirs

    @property
    def root(self) -> str:
        """--root, or the default for whoever runs us (engine/rootless/state_root.py): resolved on first use, so
        that `spec` and `features` work without a state directory."""
        if self._root is None:
            from engine.rootless.state_root import default_root

            self._root = default_root()
        return self._root


# ---- the fast path: argparse's parser, compiled ------------------------------------------------------------
#
# engine/cli_parser.py's build_parser() is the definition of the command line. engine/cli_table.py is what
# parse_fast() needs of it (each option's attribute, kind, choices and default; each command's positionals),
# generated from it by engine/cli_codegen.py (`python -m engine.generate`); tests/unit/test_cli_parse.py fails
# while it is stale and compares parse_fast with argparse on generated command lines. A command with anything the
# table cannot express (a custom type, nargs="+") is simply left to argparse.


def parse_fast(argv: list[str]) -> Args | None:
    """The Namespace argparse would give for `[global options] <command> ...`, or None to let argparse do it:
    anything unusual (--help, an unknown or abbreviated option, `--`, a value or positional that starts with
    "-", an option glued to its value, positionals not all in one run, a missing or extra argument)."""
    from engine import cli_table

    values = dict(cli_table.GLOBAL_DEFAULTS)
    i = _options(argv, 0, cli_table.GLOBAL_FLAGS, values)
    if i is None or i >= len(argv) or argv[i] not in cli_table.COMMANDS or values.get("version"):
        return None
    flags, defaults, positionals = cli_table.COMMANDS[argv[i]]
    values.update(defaults, command=argv[i])
    # A REMAINDER (exec's command) takes everything after the positional before it, options included.
    rest = len(positionals) - 1 if positionals and positionals[-1][1] == "rest" else None
    given: list[str] = []
    run_over = False  # the positionals so far were followed by an option
    j: int | None = i + 1
    while j is not None and j < len(argv):
        if rest is not None and len(given) == rest:
            if "--" in argv:
                return None  # argparse gives "--" to whichever positional its patterns let take it
            values[positionals[rest][0]] = argv[j:]
            break
        if argv[j].startswith("-"):
            j = _options(argv, j, flags, values)
            run_over = bool(given)
        elif run_over:
            return None  # a second run of positionals: argparse's rules get subtle there
        else:
            given.append(argv[j])
            j += 1
    if j is None:
        return None
    if len(given) > len(positionals):
        return None
    for k, (name, nargs, default) in enumerate(positionals):
        if k < len(given):
            values[name] = given[k]
        elif nargs == "one":
            return None
        elif nargs == "rest":
            values.setdefault(name, [])
        else:
            values[name] = default
    for name, value in values.items():
        if type(value) is list:
            values[name] = list(value)  # argparse copies an append option's default list
    return Args(**values)


def _options(
    argv: list[str], i: int, flags: dict[str, tuple[str, str, object]], values: dict[str, object]
) -> int | None:
    """Apply the options from argv[i] on, up to the next positional; the index reached, or None."""
    while i < len(argv) and argv[i].startswith("-"):
        flag, eq, value = argv[i].partition("=")
        entry = flags.get(flag)
        if entry is None or (eq and not flag.startswith("--")):
            return None
        name, kind, choices = entry
        i += 1
        if kind == "true":
            if eq:
                return None
            values[name] = True
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        if choices is not None and value not in choices:
            return None
        if kind == "int":
            if not value.isascii() or not value.strip().lstrip("+").isdigit():
                return None
            values[name] = int(value)
        elif kind == "append":
            values[name] = [*values[name], value]  # type: ignore[misc]
        else:
            values[name] = value
    return i


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = parse_fast(argv)
    if args is None:
        from engine.cli_parser import build_parser

        args = build_parser().parse_args(argv)
    if args.version:
        print(f"engine version {__version__}\nspec: {SPEC_VERSION}")
        return 0
    log = Log(args.log, args.log_format, args.debug)
    if args.command is None:
        log.error("no command given (try --help)")
        return 2
    ctx = Context(root=args.root, log=log, systemd_cgroup=args.systemd_cgroup, hooks_dirs=args.hooks_dir)
    paused = None  # the gc module, imported only here: the other commands' import budgets do not include it
    if args.command in SHORT_LIVED_ALLOCATING:
        import gc

        if gc.isenabled():
            gc.disable()
            paused = gc
    try:
        name = command_module(args.command)
        _preload(name)
        __import__(name)  # importlib would import warnings too
        return sys.modules[name].run(ctx, args)
    except EngineError as err:
        log.error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout's reader went away (`engine list | head`): not an error of ours.
        sys.stdout = None  # type: ignore[assignment]  # no flush of the broken pipe at exit
        return 0
    finally:
        if paused is not None:  # main() called by a process that goes on (a test)
            paused.enable()


def _preload(name: str) -> None:
    """Have engine/hotload.py's finder, when the `engine` launcher installed one, import the command's module and what
    it imports without importlib's round per module (a few hundredths of a ms each, on every command)."""
    preload = getattr(sys.meta_path[0], "preload", None) if sys.meta_path else None
    if preload is not None:
        preload(name)


def exit_quickly(code: int) -> "NoReturn":
    """End the `engine` command with `code`, skipping the interpreter's teardown when nothing needs it.

    Tearing down the ~150 modules create imports (clearing each, collecting their cycles) takes ~12 ms on this
    2-core machine, ~2 ms for `state`: work whose result nobody sees. So once stdout and stderr are flushed the
    process ends at once (posix._exit), unless something still relies on the ordinary exit: an atexit callback
    (the console relay restores the caller's terminal with one), a thread that is not a daemon, or a profiler
    or tracer that writes its report at exit. A flush that fails (a closed pipe) also takes the ordinary path,
    which reports it as Python always has."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    # Whoever registers an atexit callback imported atexit first (it is not loaded at start-up, nor imported here:
    # ~0.02 ms of every command).
    atexit = sys.modules.get("atexit")
    threading = sys.modules.get("threading")
    main_thread = threading.main_thread() if threading is not None else None
    busy = threading is not None and any(not t.daemon for t in threading.enumerate() if t is not main_thread)
    watched = sys.getprofile() is not None or sys.gettrace() is not None  # cProfile, coverage: report at exit
    callbacks = atexit is not None and atexit._ncallbacks()  # the count of callbacks is CPython's only way to ask
    if callbacks or busy or watched:
        sys.exit(code)
    posix._exit(code)


if __name__ == "__main__":
    exit_quickly(main())
