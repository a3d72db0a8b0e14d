"""runtime.md: "Scope of a Container", "State", "Lifecycle", "Errors" and "Operations" (state, create, start,
kill, delete).

"Generate an error" is observed as a non-zero exit status of the runc-compatible CLI (the spec leaves the
channel open; for a runc drop-in the exit status is the channel). "No effect on the container" is observed
through `state`: same status, same pid, same bundle before and after the failed operation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conformance.bundle import SLEEP_FOREVER, shell
from conformance.harness import (
    SETTLE,
    WAIT_TIMEOUT,
    Ctx,
    Result,
    cgroup_dirs,
    mounts_under,
    pid_alive,
    process_cgroup_dirs,
)
from conformance.registry import CheckFailed, check, expect

# -- quoted sentences used by more than one check ---------------------------------------------------------

NEEDS_ID = "This operation MUST generate an error if it is not provided the container ID."
START_NOT_CREATED = (
    "Attempting to start a container that is not created MUST have no effect on the container "
    "and MUST generate an error."
)
KILL_NOT_ALIVE = (
    "Attempting to send a signal to a container that is neither created nor running MUST have no effect "
    "on the container and MUST generate an error."
)
DELETE_NOT_STOPPED = (
    "Attempting to delete a container that is not stopped MUST have no effect on the container "
    "and MUST generate an error."
)
CREATE_ID_UNIQUE_VALID = (
    "If the ID provided is not unique across all containers within the scope of the runtime, or is not valid "
    "in any other way, the implementation MUST generate an error and a new container MUST NOT be created."
)
CREATE_CANNOT_APPLY = (
    "If the runtime cannot apply a property as specified in the configuration, it MUST generate an error "
    "and a new container MUST NOT be created."
)

# A program that proves it ran by leaving /tmp/ran, then stays alive.
MARK_AND_SLEEP = shell(f"echo ran >> /tmp/ran; {SLEEP_FOREVER}")

# Asks the host for the hostname inside a UTS namespace. Python 3.11 has no os.setns, hence ctypes;
# 0x04000000 is CLONE_NEWUTS.
_HOSTNAME_OF = """
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(f"/proc/{sys.argv[1]}/ns/uts", os.O_RDONLY)
if libc.setns(fd, 0x04000000) != 0:
    raise OSError(ctypes.get_errno(), "setns")
print(socket.gethostname())
"""


def hostname_of(pid: int) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _HOSTNAME_OF, str(pid)], capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout.strip()


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
    except OSError:
        return []


def expect_pid(state: dict[str, Any], when: str) -> int:
    pid = state.get("pid")
    # bool is an int in Python but not in JSON.
    expect(type(pid) is int and pid > 0, f"pid is {pid!r} when {when}, expected a positive integer")
    assert isinstance(pid, int)
    return pid


def expect_unchanged(ctx: Ctx, cid: str, before: dict[str, Any], what: str) -> None:
    """The "MUST have no effect on the container" half of a failed operation."""
    try:
        after = ctx.state(cid)
    except CheckFailed as err:
        raise CheckFailed(f"{what}: the container no longer exists afterwards ({err})") from None
    for key in ("status", "pid", "bundle"):
        expect(
            after.get(key) == before.get(key),
            f"{what}: state {key} changed from {before.get(key)!r} to {after.get(key)!r}",
        )


def sleep_settle() -> None:
    """Give a program that must not run the time to (wrongly) run and leave its marker."""
    time.sleep(SETTLE)


# == Scope of a Container ==================================================================================


@check(
    "runtime.md",
    "Scope of a Container",
    "The entity using a runtime to create a container MUST be able to use the operations defined in this "
    "specification against that same container.",
)
def scope_all_operations_on_own_container(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    bundle = ctx.bundle(MARK_AND_SLEEP)
    ctx.must(ctx.create(cid, bundle), "create")
    expect(ctx.state(cid).get("status") == "created", "status after create is not 'created'")
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "running")
    ctx.must(ctx.rt("kill", cid, "KILL"), "kill")
    ctx.wait_status(cid, "stopped")
    ctx.must(ctx.rt("delete", cid), "delete")
    expect(not ctx.exists(cid), "state still succeeds after delete")
    return "create, state, start, kill, delete all succeeded in order"


# == State =================================================================================================


@check(
    "runtime.md",
    "State",
    "ociVersion (string, REQUIRED) is version of the Open Container Initiative Runtime Specification with "
    "which the state complies.",
)
def state_oci_version(ctx: Ctx) -> str | None:
    _, _, state = ctx.created(shell(SLEEP_FOREVER))
    version = state.get("ociVersion")
    expect(isinstance(version, str) and version, f"ociVersion is {version!r}, expected a non-empty string")
    return f"ociVersion {version}"


@check("runtime.md", "State", "id (string, REQUIRED) is the container's ID.")
def state_id(ctx: Ctx) -> str | None:
    cid, _, state = ctx.created(shell(SLEEP_FOREVER))
    expect(state.get("id") == cid, f"id is {state.get('id')!r}, expected {cid!r}")
    return None


@check(
    "runtime.md",
    "State",
    "created: the runtime has finished the create operation (after step 2 in the lifecycle), and the container "
    "process has neither exited nor executed the user-specified program",
)
def state_status_created(ctx: Ctx) -> str | None:
    _, _, state = ctx.created(MARK_AND_SLEEP)
    expect(state.get("status") == "created", f"status after create is {state.get('status')!r}")
    pid = expect_pid(state, "created")
    sleep_settle()
    expect(pid_alive(pid), f"container process {pid} has exited while status is 'created'")
    expect(not ctx.marker("ran").exists(), "the user program ran while status is 'created'")
    return None


@check(
    "runtime.md",
    "State",
    "running: the container process has executed the user-specified program but has not exited "
    "(after step 8 in the lifecycle)",
)
def state_status_running(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(MARK_AND_SLEEP)
    ctx.must(ctx.rt("start", cid), "start")
    state = ctx.wait_status(cid, "running")
    expect(ctx.wait_file(ctx.marker("ran")), "status is 'running' but the user program never ran")
    pid = expect_pid(state, "running")
    expect(pid_alive(pid), f"status is 'running' but pid {pid} is not alive")
    return None


@check("runtime.md", "State", "stopped: the container process has exited (step 10 in the lifecycle)")
def state_status_stopped(ctx: Ctx) -> str | None:
    # Exiting with an error status is still exiting (lifecycle step 10: "erroring out, exiting, ...").
    cid, _, state = ctx.created(shell("exit 7"))
    pid = expect_pid(state, "created")
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "stopped")
    expect(not pid_alive(pid), f"status is 'stopped' but container process {pid} is still alive")
    return None


@check(
    "runtime.md",
    "State",
    "pid (int, REQUIRED when status is created or running on Linux, OPTIONAL on other platforms) is the ID "
    "of the container process.",
)
def state_pid(ctx: Ctx) -> str | None:
    cid, _, state = ctx.created(shell(SLEEP_FOREVER))
    pid = expect_pid(state, "created")
    expect(pid_alive(pid), f"pid {pid} reported when created is not a live process")
    # The container process is in the container's PID namespace, not the runtime's.
    expect(
        os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"),
        f"pid {pid} is not in a new PID namespace, so it is not the container process",
    )
    ctx.must(ctx.rt("start", cid), "start")
    running = ctx.wait_status(cid, "running")
    expect(expect_pid(running, "running") == pid, f"pid changed from {pid} to {running.get('pid')} on start")
    deadline = time.monotonic() + WAIT_TIMEOUT
    while cmdline(pid)[:1] != ["sleep"] and time.monotonic() < deadline:
        time.sleep(0.02)
    # The user program (exec'd in place of sh) must be what that pid now runs.
    expect(cmdline(pid)[:1] == ["sleep"], f"pid {pid} runs {cmdline(pid)!r}, not the user program")
    return None


@check(
    "runtime.md",
    "State",
    "bundle (string, REQUIRED) is the absolute path to the container's bundle directory.",
)
def state_bundle_absolute(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    bundle = ctx.bundle(shell(SLEEP_FOREVER))
    # Passed as a relative path: the runtime must report it absolute.
    ctx.must(ctx.create(cid, bundle.name, cwd=bundle.parent), "create with a relative --bundle")
    reported = ctx.state(cid).get("bundle")
    expect(isinstance(reported, str) and os.path.isabs(reported), f"bundle is {reported!r}, not absolute")
    assert isinstance(reported, str)
    expect(
        os.path.realpath(reported) == os.path.realpath(bundle),
        f"bundle is {reported!r}, expected {str(bundle)!r}",
    )
    return None


@check(
    "runtime.md",
    "State",
    "annotations (map, OPTIONAL) contains the list of annotations associated with the container.",
)
def state_annotations(ctx: Ctx) -> str | None:
    given = {"org.opencontainers.conformance": "yes", "com.example.spaces": "a value with spaces"}
    _, _, state = ctx.created(shell(SLEEP_FOREVER), annotations=given)
    # OPTIONAL as a property, but annotations were provided, so the state must carry them.
    expect(state.get("annotations") == given, f"annotations are {state.get('annotations')!r}, expected {given!r}")
    return None


@check(
    "runtime.md",
    "State",
    "If no annotations were provided then this property MAY either be absent or an empty map.",
)
def state_annotations_absent_or_empty(ctx: Ctx) -> str | None:
    _, _, state = ctx.created(shell(SLEEP_FOREVER))
    expect(
        state.get("annotations", {}) == {},
        f"annotations are {state.get('annotations')!r} though none were provided",
    )
    return "absent" if "annotations" not in state else "empty map"


# == Lifecycle =============================================================================================


@check(
    "runtime.md",
    "Lifecycle",
    "While the resources requested in the config.json MUST be created, the user-specified program "
    "(from process) MUST NOT be run at this time.",
)
def lifecycle_create_does_not_run_program(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(MARK_AND_SLEEP)
    sleep_settle()
    expect(not ctx.marker("ran").exists(), "the user program ran during create")
    ctx.must(ctx.rt("start", cid), "start")
    expect(ctx.wait_file(ctx.marker("ran")), "the user program did not run after start")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "The container's runtime environment MUST be created according to the configuration in config.json.",
)
def lifecycle_create_builds_environment(ctx: Ctx) -> str | None:
    _, _, state = ctx.created(shell(SLEEP_FOREVER))
    pid = expect_pid(state, "created")
    # Observed from the host while the container is only created: namespaces, hostname, mounts, read-only root.
    for ns in ("pid", "mnt", "ipc", "uts", "net"):
        expect(
            os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"),
            f"created container shares the runtime's {ns} namespace",
        )
    name = hostname_of(pid)
    expect(name == "conformance", f"hostname is {name!r} after create, expected 'conformance'")
    points: dict[str, list[str]] = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        points[fields[4]] = fields[5].split(",")
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp"):
        expect(dest in points, f"mount {dest} is not in place after create")
    expect("/" in points and "ro" in points["/"], "root.readonly is not applied after create")
    expect("ro" in points["/sys"], "the sysfs mount lacks its 'ro' option after create")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "If the runtime is unable to create the environment specified in the config.json, it MUST generate an error.",
)
def lifecycle_unsatisfiable_config_errors(ctx: Ctx) -> str | None:
    cid = ctx.new_id()

    def missing_root(config: dict[str, Any]) -> None:
        config["root"]["path"] = str(ctx.dir / "no-such-rootfs")

    bundle = ctx.bundle(MARK_AND_SLEEP, edit=missing_root)
    ctx.must_fail(ctx.create(cid, bundle), "create with a root.path that does not exist")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "Any updates to config.json after this step MUST NOT affect the container.",
)
def lifecycle_config_updates_ignored(ctx: Ctx) -> str | None:
    cid, bundle, _ = ctx.created(shell(f"echo original > /tmp/which; {SLEEP_FOREVER}"))
    changed = ctx.bundle(shell(f"echo updated > /tmp/which; {SLEEP_FOREVER}"), name=bundle.name)
    expect(changed == bundle, "suite error: rewrote a different bundle")
    ctx.must(ctx.rt("start", cid), "start")
    expect(ctx.wait_file(ctx.marker("which")), "the user program did not run after start")
    time.sleep(0.05)
    got = ctx.marker("which").read_text().strip()
    expect(got == "original", f"start ran the args written to config.json after create ({got!r})")
    return None


@check(
    "runtime.md",
    "Lifecycle",
    "This MAY happen due to erroring out, exiting, crashing or the runtime's kill operation being invoked.",
)
def lifecycle_stopped_after_kill(ctx: Ctx) -> str | None:
    cid, _, state = ctx.running(shell(SLEEP_FOREVER))
    pid = expect_pid(state, "running")
    ctx.must(ctx.rt("kill", cid, "KILL"), "kill KILL")
    ctx.wait_status(cid, "stopped")
    expect(ctx.wait_gone(pid), f"status is 'stopped' but pid {pid} is alive")
    return None


# == Errors ================================================================================================


@check(
    "runtime.md",
    "Errors",
    "Unless otherwise stated, generating an error MUST leave the state of the environment as if the operation "
    "were never attempted - modulo any possible trivial ancillary changes such as logging.",
)
def errors_failed_create_leaves_no_trace(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    cgroups_path = f"/{cid}"

    def broken(config: dict[str, Any]) -> None:
        # Fails late (while mounting), after namespaces and cgroups were already made.
        config["linux"]["cgroupsPath"] = cgroups_path
        config["mounts"].append({"destination": "/home", "type": "conformancenosuchfs", "source": "none"})

    bundle = ctx.bundle(MARK_AND_SLEEP, edit=broken)
    ctx.must_fail(ctx.create(cid, bundle), "create with an unmountable filesystem type")
    expect(not ctx.exists(cid), "the failed create left a container")
    left = cgroup_dirs(cgroups_path)
    expect(not left, f"the failed create left cgroups: {', '.join(map(str, left))}")
    leaked = mounts_under(ctx.dir)
    expect(not leaked, f"the failed create left host mounts: {', '.join(leaked)}")
    # As if never attempted: the same id must now be free for a good config.
    good = ctx.bundle(MARK_AND_SLEEP, name="good")
    ctx.must(ctx.create(cid, good), "create reusing the id of the failed create")
    return None


# == Operations: Query State ===============================================================================


@check(
    "runtime.md",
    "Query State",
    "This operation MUST generate an error if it is not provided the ID of a container.",
)
def state_requires_id(ctx: Ctx) -> str | None:
    ctx.created(shell(SLEEP_FOREVER))  # so that "the only container" is not a possible guess
    ctx.must_fail(ctx.rt("state"), "state without an id")
    return None


@check("runtime.md", "Query State", "Attempting to query a container that does not exist MUST generate an error.")
def state_nonexistent(ctx: Ctx) -> str | None:
    ctx.must_fail(ctx.rt("state", ctx.new_id()), "state of a container that does not exist")
    return None


# == Operations: Create ====================================================================================


@check(
    "runtime.md",
    "Create",
    "This operation MUST generate an error if it is not provided a path to the bundle and the container ID to "
    "associate with the container.",
)
def create_requires_id(ctx: Ctx) -> str | None:
    bundle = ctx.bundle(MARK_AND_SLEEP)
    ctx.must_fail(ctx.rt("create", "--bundle", str(bundle)), "create without a container id")
    sleep_settle()
    expect(not ctx.marker("ran").exists(), "create without an id ran the user program")
    return None


@check(
    "runtime.md",
    "Create",
    "This operation MUST generate an error if it is not provided a path to the bundle and the container ID to "
    "associate with the container.",
)
def create_requires_bundle(ctx: Ctx) -> str | None:
    # With a runc-style CLI the bundle defaults to the working directory; one without config.json means
    # no bundle was provided. An explicit path to nothing must fail too.
    empty = ctx.dir / "empty"
    empty.mkdir()
    cid = ctx.new_id()
    ctx.ids.append(cid)  # in case the runtime wrongly creates it anyway
    ctx.must_fail(ctx.rt("create", cid, cwd=empty), "create without --bundle from a directory with no bundle")
    expect(not ctx.exists(cid), "a container exists after create without a bundle")
    cid2 = ctx.new_id()
    ctx.must_fail(ctx.create(cid2, ctx.dir / "no-such-bundle"), "create --bundle <missing directory>")
    expect(not ctx.exists(cid2), "a container exists after create with a missing bundle")
    return None


@check("runtime.md", "Create", CREATE_ID_UNIQUE_VALID)
def create_duplicate_id(ctx: Ctx) -> str | None:
    cid, _, before = ctx.created(shell(SLEEP_FOREVER), name="first")
    second = ctx.bundle(MARK_AND_SLEEP, name="second")
    ctx.must_fail(ctx.create(cid, second), "create with the id of an existing container")
    expect_unchanged(ctx, cid, before, "duplicate create")
    expect(before.get("status") == "created", "suite error: first container not created")
    ctx.must(ctx.rt("start", cid), "start of the original container")
    sleep_settle()
    expect(not ctx.marker("ran").exists(), "the duplicate's program ran: the second bundle replaced the first")
    return None


@check("runtime.md", "Create", CREATE_ID_UNIQUE_VALID)
def create_invalid_id(ctx: Ctx) -> str | None:
    bundle = ctx.bundle(MARK_AND_SLEEP)
    escape = f"escaped-{os.getpid()}-{time.monotonic_ns()}"
    for bad in (f"../{escape}", f"../../{escape}", "a/b", ""):
        ctx.must_fail(ctx.create(bad, bundle), f"create with the invalid id {bad!r}")
    # An id used as a path under --root must not have escaped it.
    for where in (ctx.dir, ctx.dir.parent):
        expect(not (where / escape).exists(), f"create with '../{escape}' wrote {where / escape}")
    sleep_settle()
    expect(not ctx.marker("ran").exists(), "a create with an invalid id ran the user program")
    return None


@check("runtime.md", "Create", "This operation MUST create a new container.")
def create_creates_container(ctx: Ctx) -> str | None:
    bundle = ctx.bundle(shell(SLEEP_FOREVER))
    ids = [ctx.new_id(), ctx.new_id()]
    for cid in ids:
        ctx.must(ctx.create(cid, bundle), "create")
    states = [ctx.state(cid) for cid in ids]
    for cid, state in zip(ids, states, strict=True):
        expect(state.get("id") == cid and state.get("status") == "created", f"{cid} is not a created container")
    pids = {expect_pid(state, "created") for state in states}
    expect(len(pids) == 2, "two creates from one bundle share one container process")
    return None


@check(
    "runtime.md",
    "Create",
    "process.args MUST NOT be applied until triggered by the start operation.",
)
def create_process_args_deferred(ctx: Ctx) -> str | None:
    cid, _, state = ctx.created(shell(SLEEP_FOREVER))
    pid = expect_pid(state, "created")
    sleep_settle()
    # The container process exists but has not exec'd process.args yet.
    expect(cmdline(pid)[:1] not in (["sh"], ["sleep"]), f"after create pid {pid} already runs {cmdline(pid)!r}")
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "running")
    deadline = time.monotonic() + WAIT_TIMEOUT
    while cmdline(pid)[:1] != ["sleep"] and time.monotonic() < deadline:
        time.sleep(0.02)
    expect(cmdline(pid)[:1] == ["sleep"], f"after start pid {pid} runs {cmdline(pid)!r}, not process.args")
    return None


@check("runtime.md", "Create", CREATE_CANNOT_APPLY)
def create_unappliable_property(ctx: Ctx) -> str | None:
    cid = ctx.new_id()

    def bad_mount(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/home", "type": "conformancenosuchfs", "source": "none"})

    ctx.must_fail(ctx.create(cid, ctx.bundle(MARK_AND_SLEEP, edit=bad_mount)), "create with an unknown fs type")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    sleep_settle()
    expect(not ctx.marker("ran").exists(), "the failed create ran the user program")
    return None


# == Operations: Start =====================================================================================


@check("runtime.md", "Start", NEEDS_ID)
def start_requires_id(ctx: Ctx) -> str | None:
    cid, _, before = ctx.created(MARK_AND_SLEEP)
    ctx.must_fail(ctx.rt("start"), "start without an id")
    sleep_settle()
    expect(not ctx.marker("ran").exists(), "start without an id started the only container")
    expect_unchanged(ctx, cid, before, "start without an id")
    return None


@check("runtime.md", "Start", START_NOT_CREATED)
def start_nonexistent(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    ctx.must_fail(ctx.rt("start", cid), "start of a container that does not exist")
    expect(not ctx.exists(cid), "start of a missing container created it")
    return None


@check("runtime.md", "Start", START_NOT_CREATED)
def start_running(ctx: Ctx) -> str | None:
    cid, _, before = ctx.running(MARK_AND_SLEEP)
    expect(ctx.wait_file(ctx.marker("ran")), "the user program did not run after start")
    ctx.must_fail(ctx.rt("start", cid), "second start of a running container")
    sleep_settle()
    expect_unchanged(ctx, cid, before, "start of a running container")
    runs = ctx.marker("ran").read_text().count("ran")
    expect(runs == 1, f"the user program ran {runs} times")
    return None


@check("runtime.md", "Start", START_NOT_CREATED)
def start_stopped(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(shell("echo ran >> /tmp/ran"))
    ctx.must(ctx.rt("start", cid), "start")
    before = ctx.wait_status(cid, "stopped")
    ctx.must_fail(ctx.rt("start", cid), "start of a stopped container")
    sleep_settle()
    expect_unchanged(ctx, cid, before, "start of a stopped container")
    runs = ctx.marker("ran").read_text().count("ran")
    expect(runs == 1, f"the user program ran {runs} times")
    return None


@check(
    "runtime.md",
    "Start",
    "This operation MUST run the user-specified program as specified by process.",
)
def start_runs_process(ctx: Ctx) -> str | None:
    script = 'printf "%s|%s|%s|%s|%s" "$0" "$1" "$CONFORMANCE_VAR" "$(pwd)" "$(id -u)" > /tmp/out'

    def process(config: dict[str, Any]) -> None:
        config["process"]["env"].append("CONFORMANCE_VAR=hello world")
        config["process"]["cwd"] = "/home"

    cid, _, _ = ctx.created(shell(script, "zero", "one two"), edit=process)
    ctx.must(ctx.rt("start", cid), "start")
    expect(ctx.wait_file(ctx.marker("out")), "the user program did not run")
    ctx.wait_status(cid, "stopped")
    got = ctx.marker("out").read_text()
    want = "zero|one two|hello world|/home|0"
    expect(got == want, f"program saw $0|$1|env|cwd|uid = {got!r}, expected {want!r}")
    return None


@check("runtime.md", "Start", "This operation MUST generate an error if process was not set.")
def start_without_process(ctx: Ctx) -> str | None:
    # The control: the very same config with a process creates fine, so a refusal below is for the process.
    ctx.must(ctx.create(ctx.new_id(), ctx.bundle(shell(SLEEP_FOREVER), name="with-process")), "create with a process")
    cid = ctx.new_id()
    created = ctx.create(cid, ctx.bundle(None))
    # runtime.md lets create validate config.json, so refusing already at create is conformant too; either way
    # the error must be about the missing process, not something else that went wrong.
    if not created.ok:
        expect(names_process(created), f"create refused the config, but not for its process: {created.describe()}")
        return "create already refused it"
    started = ctx.must_fail(ctx.rt("start", cid), "start of a container whose config has no process")
    expect(names_process(started), f"start failed, but not for the missing process: {started.describe()}")
    return "create accepted it, start refused"


def names_process(result: Result) -> bool:
    return re.search(r"\bprocess\b", result.stderr + result.stdout, re.IGNORECASE) is not None


# == Operations: Kill ======================================================================================


@check("runtime.md", "Kill", NEEDS_ID)
def kill_requires_id(ctx: Ctx) -> str | None:
    cid, _, before = ctx.running(shell(SLEEP_FOREVER))
    ctx.must_fail(ctx.rt("kill"), "kill without an id")
    expect_unchanged(ctx, cid, before, "kill without an id")
    return None


@check("runtime.md", "Kill", KILL_NOT_ALIVE)
def kill_nonexistent(ctx: Ctx) -> str | None:
    ctx.must_fail(ctx.rt("kill", ctx.new_id(), "KILL"), "kill of a container that does not exist")
    return None


@check("runtime.md", "Kill", KILL_NOT_ALIVE)
def kill_stopped(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(shell("exit 0"))
    ctx.must(ctx.rt("start", cid), "start")
    before = ctx.wait_status(cid, "stopped")
    ctx.must_fail(ctx.rt("kill", cid, "KILL"), "kill of a stopped container")
    expect_unchanged(ctx, cid, before, "kill of a stopped container")
    return None


@check("runtime.md", "Kill", "This operation MUST send the specified signal to the container process.")
def kill_delivers_signal(ctx: Ctx) -> str | None:
    # PID 1 of a PID namespace only receives signals it handles, so the program traps USR1 and records it.
    script = "trap 'echo USR1 >> /tmp/signals' USR1; echo ready > /tmp/ready; while :; do sleep 0.05; done"
    cid, _, before = ctx.running(shell(script))
    expect(ctx.wait_file(ctx.marker("ready")), "the user program never became ready")
    ctx.must(ctx.rt("kill", cid, "USR1"), "kill USR1")
    expect(ctx.wait_file(ctx.marker("signals")), "the container process never received USR1")
    expect(ctx.marker("signals").read_text().split() == ["USR1"], "the trap ran more than once")
    expect_unchanged(ctx, cid, before, "kill USR1 of a process that handles it")
    return None


@check("runtime.md", "Kill", "This operation MUST send the specified signal to the container process.")
def kill_created(ctx: Ctx) -> str | None:
    cid, _, state = ctx.created(MARK_AND_SLEEP)
    pid = expect_pid(state, "created")
    ctx.must(ctx.rt("kill", cid, "KILL"), "kill KILL of a created container")
    ctx.wait_status(cid, "stopped")
    expect(ctx.wait_gone(pid), f"pid {pid} survived SIGKILL")
    expect(not ctx.marker("ran").exists(), "killing a created container ran the user program")
    return None


# == Operations: Delete ====================================================================================


@check("runtime.md", "Delete", NEEDS_ID)
def delete_requires_id(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(shell("exit 0"))
    ctx.must(ctx.rt("start", cid), "start")
    before = ctx.wait_status(cid, "stopped")
    ctx.must_fail(ctx.rt("delete"), "delete without an id")
    expect_unchanged(ctx, cid, before, "delete without an id")
    return None


@check("runtime.md", "Delete", DELETE_NOT_STOPPED)
def delete_nonexistent(ctx: Ctx) -> str | None:
    ctx.must_fail(ctx.rt("delete", ctx.new_id()), "delete of a container that does not exist")
    return None


@check("runtime.md", "Delete", DELETE_NOT_STOPPED)
def delete_running(ctx: Ctx) -> str | None:
    cid, _, before = ctx.running(shell(SLEEP_FOREVER))
    ctx.must_fail(ctx.rt("delete", cid), "delete of a running container")
    expect_unchanged(ctx, cid, before, "delete of a running container")
    pid = expect_pid(before, "running")
    expect(pid_alive(pid), f"delete of a running container killed pid {pid}")
    return None


@check("runtime.md", "Delete", DELETE_NOT_STOPPED)
def delete_created(ctx: Ctx) -> str | None:
    cid, _, before = ctx.created(shell(SLEEP_FOREVER))
    ctx.must_fail(ctx.rt("delete", cid), "delete of a created container")
    expect_unchanged(ctx, cid, before, "delete of a created container")
    return None


@check(
    "runtime.md",
    "Delete",
    "Deleting a container MUST delete the resources that were created during the create step.",
)
def delete_removes_resources(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    cgroups_path = f"/{cid}"

    def with_cgroup(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = cgroups_path

    ctx.must(ctx.create(cid, ctx.bundle(shell("exit 0"), edit=with_cgroup)), "create")
    pid = expect_pid(ctx.state(cid), "created")
    # Where the container process actually is, which need not be where cgroupsPath suggests.
    cgroups = process_cgroup_dirs(pid)
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "stopped")
    ctx.must(ctx.rt("delete", cid), "delete of a stopped container")
    expect(not ctx.exists(cid), "state still succeeds after delete")
    expect(ctx.wait_gone(pid), f"container process {pid} is still alive after delete")
    left = [str(d) for d in cgroups if d.exists()]
    expect(not left, f"delete left the container's cgroups: {', '.join(left)}")
    leaked = mounts_under(ctx.dir)
    expect(not leaked, f"delete left host mounts: {', '.join(leaked)}")
    if not cgroups:
        return "the container had no cgroup of its own: cgroup removal not judged"
    return f"{len(cgroups)} cgroup directories of the container removed"


@check(
    "runtime.md",
    "Delete",
    "Note that resources associated with the container, but not created by this container, MUST NOT be deleted.",
)
def delete_keeps_foreign_resources(ctx: Ctx) -> str | None:
    keep = ctx.marker("keep-me")
    keep.write_text("made by the suite before create\n")
    cid, bundle, _ = ctx.created(shell("echo container > /tmp/made-by-container"))
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "stopped")
    ctx.must(ctx.rt("delete", cid), "delete")
    expect(keep.is_file(), "delete removed a file in a bind-mounted host directory")
    expect(ctx.marker("made-by-container").is_file(), "delete removed data the container wrote to a bind mount")
    expect((bundle / "config.json").is_file(), "delete removed the bundle's config.json")
    expect((ctx.rootfs / "bin" / "busybox").is_file(), "delete removed files from root.path")
    return None
