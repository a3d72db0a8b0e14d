"""runtime.md "Lifecycle" steps 3-13 as seen through hooks, plus config.md "POSIX-platform Hooks" (state on stdin).

Every hook is busybox/host `/bin/sh` running RECORD: it saves its stdin (the state), the command line of
the state's pid, and appends its name to a shared `order` file. The user program appends "program" to the
same file, so the file is the observed timeline of one container's lifecycle.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conformance.bundle import SHARED_IN_CONTAINER, SLEEP_FOREVER, shell
from conformance.harness import SETTLE, WAIT_TIMEOUT, Ctx
from conformance.registry import CheckFailed, check, expect
from conformance.state_schema import schema_problems

# $1 = marker dir as seen from the runtime namespace, $2 = hook name, $3 = exit status to return.
# Hooks run in the container namespace may not see the host path, hence the /tmp fallback (bind-mounted).
RECORD = (
    'd="$1"; [ -d "$d" ] || d=' + SHARED_IN_CONTAINER + "; "
    's=$(cat); printf "%s" "$s" > "$d/$2.state"; '
    "pid=$(printf '%s' \"$s\" | sed -n 's/.*\"pid\": *\\([0-9][0-9]*\\).*/\\1/p'); "
    '[ -n "$pid" ] && tr "\\0" " " < /proc/$pid/cmdline > "$d/$2.cmdline" 2>/dev/null; '
    'echo "$2" >> "$d/order"; exit "$3"'
)

PROGRAM = shell(f"echo program >> /tmp/order; {SLEEP_FOREVER}")


def hook(ctx: Ctx, name: str, status: int = 0) -> dict[str, Any]:
    return {"path": "/bin/sh", "args": ["sh", "-c", RECORD, "hook", str(ctx.shared), name, str(status)]}


def all_hooks(ctx: Ctx, **fail: int) -> dict[str, list[dict[str, Any]]]:
    """One recording hook per kind (two createRuntime ones, to see the listed order kept)."""
    kinds = {
        "prestart": ["prestart"],
        "createRuntime": ["createRuntime1", "createRuntime2"],
        "createContainer": ["createContainer"],
        "startContainer": ["startContainer"],
        "poststart": ["poststart"],
        "poststop": ["poststop"],
    }
    return {kind: [hook(ctx, n, fail.get(n, 0)) for n in names] for kind, names in kinds.items()}


def with_hooks(hooks: dict[str, list[dict[str, Any]]]) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = hooks

    return edit


def order(ctx: Ctx) -> list[str]:
    path = ctx.marker("order")
    return path.read_text().split() if path.exists() else []


CREATE_HOOKS = ["prestart", "createRuntime1", "createRuntime2", "createContainer"]


@check(
    "runtime.md",
    "Lifecycle",
    "The prestart hooks MUST be invoked by the runtime.",
    "The createRuntime hooks MUST be invoked by the runtime.",
    "The createContainer hooks MUST be invoked by the runtime.",
)
def hooks_create_phase(ctx: Ctx) -> str | None:
    ctx.created(PROGRAM, edit=with_hooks(all_hooks(ctx)))
    seen = order(ctx)
    ran = [n for n in seen if n in CREATE_HOOKS]
    # Steps 3, 4, 5 in that order, each kind's entries in the listed order, all before create returned.
    expect(ran == CREATE_HOOKS, f"create ran the create-phase hooks as {ran}, expected {CREATE_HOOKS}")
    expect("startContainer" not in seen and "program" not in seen, f"create already ran start-phase steps: {seen}")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "The startContainer hooks MUST be invoked by the runtime.",
    "The runtime MUST run the user-specified program, as specified by process.",
    "The poststart hooks MUST be invoked by the runtime.",
)
def hooks_start_phase(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(PROGRAM, edit=with_hooks(all_hooks(ctx)))
    early = [n for n in order(ctx) if n in ("startContainer", "poststart", "program")]
    expect(not early, f"{early} already ran during create (steps 7-9 belong to start)")
    ctx.must(ctx.rt("start", cid), "start")
    after_start = order(ctx)
    expect("startContainer" in after_start, "start returned without running the startContainer hook")
    expect("poststart" in after_start, "start returned without running the poststart hook")
    expect(_wait_for(ctx, "program"), "the user program never ran")
    seen = order(ctx)
    expect(seen.index("startContainer") < seen.index("program"), f"startContainer ran after the program: {seen}")
    # Step 9 comes after step 8: when poststart runs, the state's pid must already run the user program.
    poststart_cmd = ctx.marker("poststart.cmdline")
    ran = poststart_cmd.read_text().strip() if poststart_cmd.exists() else "<unknown>"
    expect(ran.startswith(("sh -c", "sleep")), f"poststart ran while the container process was {ran!r}")
    return None


def _wait_for(ctx: Ctx, name: str) -> bool:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while name not in order(ctx):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@check("runtime.md", "Lifecycle", "The poststop hooks MUST be invoked by the runtime.")
def hooks_poststop(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(PROGRAM, edit=with_hooks(all_hooks(ctx)))
    ctx.must(ctx.rt("start", cid), "start")
    ctx.must(ctx.rt("kill", cid, "KILL"), "kill")
    ctx.wait_status(cid, "stopped")
    expect("poststop" not in order(ctx), "poststop ran before delete")
    ctx.must(ctx.rt("delete", cid), "delete")
    seen = order(ctx)
    expect("poststop" in seen, "delete returned without running the poststop hook")
    expect(seen[-1] == "poststop", f"poststop was not the last step: {seen}")
    return None


@check(
    "config.md",
    "POSIX-platform Hooks",
    "The state of the container MUST be passed to hooks over stdin so that they may do work appropriate to "
    "the current state of the container.",
)
def hooks_receive_state(ctx: Ctx) -> str | None:
    cid, bundle, _ = ctx.created(PROGRAM, edit=with_hooks(all_hooks(ctx)))
    ctx.must(ctx.rt("start", cid), "start")
    ctx.must(ctx.rt("kill", cid, "KILL"), "kill")
    ctx.wait_status(cid, "stopped")
    ctx.must(ctx.rt("delete", cid), "delete")
    names = [n for n in order(ctx) if n != "program"]
    expect(len(names) == 7, f"expected 7 hook runs, saw {names}")
    for name in names:
        raw = ctx.marker(f"{name}.state").read_text()
        try:
            state = json.loads(raw)
        except ValueError:
            raise CheckFailed(f"{name} hook got stdin that is not JSON: {raw[:80]!r}") from None
        errors = schema_problems(state)
        expect(not errors, f"{name} hook got a state violating state-schema.json: {'; '.join(errors)}")
        expect(state.get("id") == cid, f"{name} hook got id {state.get('id')!r}")
        expect(
            Path(str(state.get("bundle"))).resolve() == bundle.resolve(),
            f"{name} hook got bundle {state.get('bundle')!r}",
        )
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "If any createRuntime hook fails, the runtime MUST generate an error, stop the container, and continue "
    "the lifecycle at step 12.",
    "The container MUST be destroyed by undoing the steps performed during create phase (step 2).",
)
def hooks_create_runtime_failure(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    bundle = ctx.bundle(PROGRAM, edit=with_hooks(all_hooks(ctx, createRuntime1=1)))
    ctx.must_fail(ctx.create(cid, bundle), "create whose createRuntime hook exits 1")
    expect(not ctx.exists(cid), "the container was not destroyed after the failing createRuntime hook")
    seen = order(ctx)
    expect("createRuntime2" not in seen, f"hooks after the failing one still ran: {seen}")
    expect("program" not in seen, "the user program ran")
    # Step 12 is followed by step 13: the poststop hooks.
    expect("poststop" in seen, f"poststop hooks did not run after the failed create: {seen}")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "If any startContainer hook fails, the runtime MUST generate an error, stop the container, and continue "
    "the lifecycle at step 12.",
)
def hooks_start_container_failure(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(PROGRAM, edit=with_hooks(all_hooks(ctx, startContainer=1)))
    result = ctx.rt("start", cid)
    time.sleep(SETTLE)
    expect("program" not in order(ctx), "the user program ran although startContainer failed")
    if ctx.exists(cid):
        status = ctx.state(cid).get("status")
        expect(status == "stopped", f"container is {status!r} after the failing startContainer hook")
    ctx.must_fail(result, "start whose startContainer hook exits 1")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle continue "
    "as if the hook had succeeded.",
)
def hooks_poststop_failure(ctx: Ctx) -> str | None:
    hooks = all_hooks(ctx)
    hooks["poststop"] = [hook(ctx, "poststopFails", 1), hook(ctx, "poststop")]
    cid, _, _ = ctx.created(PROGRAM, edit=with_hooks(hooks))
    ctx.must(ctx.rt("start", cid), "start")
    ctx.must(ctx.rt("kill", cid, "KILL"), "kill")
    ctx.wait_status(cid, "stopped")
    ctx.must(ctx.rt("delete", cid), "delete whose first poststop hook exits 1")
    seen = order(ctx)
    expect(seen[-2:] == ["poststopFails", "poststop"], f"the remaining poststop hook did not run: {seen}")
    expect(not ctx.exists(cid), "the container still exists after delete")
    return None
