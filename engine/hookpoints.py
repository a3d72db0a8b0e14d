"""Where the engine runs OCI hooks, and which ones: config.json's, then matching hooks.d drop-ins.

The merged set is fixed at create (config.md: later edits of config.json must not affect the container) and
kept in the state directory as hooks.json, for start (poststart) and delete (poststop).

    prestart, createRuntime   engine create, runtime namespace, after the mounts (state: creating)
    createContainer           the container init, container namespaces, before pivot_root
    startContainer            the container init, after `start` released it, before exec
    poststart                 engine start, after the exec, before start returns (failure: a warning)
    poststop                  engine delete, after the container is destroyed (failure: a warning)

Working directories, as runc's (whose `create` and `run` work in the bundle directory, and whose init enters
the rootfs before createContainer): prestart, createRuntime and poststart run in the bundle, createContainer in
the rootfs, startContainer in process.cwd (the init is there by then), poststop in the caller's directory for
`engine delete` and in the bundle for `engine run` and a failed create.
"""

from __future__ import annotations

import os

from engine.errors import ConfigError, EngineError
from engine.log import Log
from state import jsonio
from state.store import HOOKS_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from engine.spec.typed import Hook, Spec

    Hooks = dict[str, list[Hook]]  # stage -> list of hooks (config.md's shape)
    Stage = Literal["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
else:
    Hooks = dict  # a plain alias: typing is not imported at run time

# The hook stages in the order config.md runs them, spelled as Literals for the type checker (TypedDict keys).
# engine.spec.constants.HOOK_NAMES is the same list, but importing it costs typing at run time;
# tests/unit/test_spec_models.py holds the two equal.
STAGES: tuple[Stage, ...] = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def collect(config: Spec, hooks_dirs: list[str]) -> Hooks:
    given = config.get("hooks", {})
    hooks: Hooks = {stage: list(given[stage]) for stage in STAGES if given.get(stage)}
    if not hooks_dirs:
        return hooks
    from hooks.dropins import DropInError, load_dropins, matching_hooks, merge

    try:
        dropins = load_dropins(hooks_dirs)
    except DropInError as err:
        raise ConfigError(f"--hooks-dir: {err}") from None
    return merge(hooks, matching_hooks(dropins, config, annotations=config.get("annotations", {})))


def save(state_dir: str, hooks: Hooks) -> None:
    """Keep the hooks for start and delete. No hooks, no file: most containers have none, and start and delete
    then skip loading this module (they look for the file first)."""
    if not hooks:
        return
    with open(os.path.join(state_dir, HOOKS_FILE), "w") as f:
        f.write(jsonio.dumps(hooks))


def load(state_dir: str) -> Hooks:
    """The hooks create saved; a corrupt file is a one-line EngineError (never a traceback in start or delete)."""
    path = os.path.join(state_dir, HOOKS_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    try:
        hooks = jsonio.loads(data)
    except ValueError as err:
        raise EngineError(f"{path}: corrupt: {err}") from None
    if not isinstance(hooks, dict) or not all(isinstance(stage, list) for stage in hooks.values()):
        raise EngineError(f"{path}: corrupt: not an object of hook lists")
    return hooks


def run(
    stage: str, hooks: Hooks, state: dict[str, Any], log: Log, *, warn_only: bool = False, cwd: str | None = None
) -> None:
    """Run one stage's hooks with the state on stdin, in `cwd` (None: ours); a failure is an EngineError
    unless warn_only."""
    entries = hooks.get(stage)
    if not entries:
        return
    from hooks.runner import HookError, run_hooks

    try:
        run_hooks(stage, entries, jsonio.dumps(state).encode(), warn_only=warn_only, warn=log.warning, cwd=cwd)
    except HookError as err:
        raise EngineError(str(err)) from None
    log.debug(f"{stage}: ran {len(entries)} hook(s)")
