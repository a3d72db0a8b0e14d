"""config.md "Process" (POSIX and Linux), "User", "Hostname" and "Domainname", observed from inside the container:
/proc/self/status, /proc/self/limits, oom_score_adj, id, uname, the environment."""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path
from typing import Any

from conformance.bundle import SLEEP_FOREVER, shell
from conformance.config_mounts import Edit, run_inside, section
from conformance.harness import Ctx, Result, Runtime
from conformance.registry import check, expect

# capabilities(7) numbers of the capabilities the checks use.
CAP_BITS = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13}


def process(**fields: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["process"].update(fields)

    return edit


def status_fields(text: str) -> dict[str, str]:
    """`Key:\tvalue` lines of /proc/<pid>/status."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def cap_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAP_BITS[name]
    return mask


# == POSIX process: rlimits ===================================================================================


@check(
    "config.md",
    "POSIX process",
    "For each entry in rlimits, a getrlimit(3) on type MUST succeed.",
    "rlim.rlim_cur MUST match the configured value.",
    "rlim.rlim_max MUST match the configured value.",
)
def rlimits_applied(ctx: Ctx) -> str | None:
    # Only lowering: raising a hard limit needs CAP_SYS_RESOURCE, which the runtime may lack.
    rlimits = []
    for name, soft, hard in (("NOFILE", 512, 1000), ("CORE", 0, 4096), ("MSGQUEUE", 8192, 16384)):
        ceiling = resource.getrlimit(getattr(resource, f"RLIMIT_{name}"))[1]
        if ceiling != resource.RLIM_INFINITY:
            hard = min(hard, ceiling)
        rlimits.append({"type": f"RLIMIT_{name}", "soft": min(soft, hard), "hard": hard})
    out = run_inside(ctx, "cat /proc/self/limits", process(rlimits=rlimits))
    rows = {
        "RLIMIT_NOFILE": "Max open files",
        "RLIMIT_CORE": "Max core file size",
        "RLIMIT_MSGQUEUE": "Max msgqueue size",
    }
    for limit in rlimits:
        row = next((line for line in out.splitlines() if line.startswith(rows[limit["type"]])), "")
        values = row[len(rows[limit["type"]]) :].split()[:2]
        expect(
            values == [str(limit["soft"]), str(limit["hard"])],
            f"{limit['type']}: soft/hard {values}, expected {limit['soft']}/{limit['hard']}",
        )
    return None


@check(
    "config.md",
    "POSIX process",
    "The runtime MUST generate an error for any values which cannot be mapped to a relevant kernel interface.",
)
def rlimits_unknown_type_error(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    bundle = ctx.bundle(shell(SLEEP_FOREVER), edit=process(rlimits=[{"type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1}]))
    ctx.must_fail(ctx.create(cid, bundle), "create with rlimit type RLIMIT_NO_SUCH")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    return None


@check(
    "config.md",
    "POSIX process",
    "If rlimits contains duplicated entries with same type, the runtime MUST generate an error.",
)
def rlimits_duplicate_error(ctx: Ctx) -> str | None:
    twice = [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}, {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}]
    cid = ctx.new_id()
    ctx.must_fail(ctx.create(cid, ctx.bundle(shell(SLEEP_FOREVER), edit=process(rlimits=twice))), "create")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    return None


# == Linux process ==========================================================================================


@check(
    "config.md",
    "Linux Process",
    "effective (array of strings, OPTIONAL) the effective field is an array of effective capabilities that are "
    "kept for the process.",
    "bounding (array of strings, OPTIONAL) the bounding field is an array of bounding capabilities that are kept "
    "for the process.",
    "inheritable (array of strings, OPTIONAL) the inheritable field is an array of inheritable capabilities that "
    "are kept for the process.",
    "permitted (array of strings, OPTIONAL) the permitted field is an array of permitted capabilities that are "
    "kept for the process.",
    "ambient (array of strings, OPTIONAL) the ambient field is an array of ambient capabilities that are kept for "
    "the process.",
)
def capabilities_all_sets(ctx: Ctx) -> str | None:
    # A non-root user, so that execve(2) does not grant the bounding set; effective = permitted = ambient, which is
    # what execve leaves a non-root process with (capabilities(7)), so every set is observable exactly.
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
        "permitted": ["CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL", "CAP_NET_RAW"],
    }
    edit = process(capabilities=caps, user={"uid": 1000, "gid": 1000}, noNewPrivileges=False)
    status = status_fields(run_inside(ctx, "cat /proc/self/status", edit))
    fields = {"bounding": "CapBnd", "inheritable": "CapInh", "permitted": "CapPrm", "effective": "CapEff"}
    fields["ambient"] = "CapAmb"
    wrong = {}
    for key, field in fields.items():
        seen = int(status.get(field, "-1"), 16)
        if seen != cap_mask(caps[key]):
            wrong[key] = f"{seen:#x} != {cap_mask(caps[key]):#x}"
    expect(not wrong, f"capability sets differ from the config: {wrong}")
    return None


@check(
    "config.md",
    "Linux Process",
    "noNewPrivileges (bool, OPTIONAL) setting noNewPrivileges to true prevents the process from gaining "
    "additional privileges.",
)
def no_new_privileges(ctx: Ctx) -> str | None:
    on = status_fields(run_inside(ctx, "cat /proc/self/status", process(noNewPrivileges=True), name="on"))
    ctx.marker("out").unlink()
    off = status_fields(run_inside(ctx, "cat /proc/self/status", process(noNewPrivileges=False), name="off"))
    expect(on.get("NoNewPrivs") == "1", f"NoNewPrivs is {on.get('NoNewPrivs')!r} with noNewPrivileges true")
    expect(off.get("NoNewPrivs") == "0", f"NoNewPrivs is {off.get('NoNewPrivs')!r} with noNewPrivileges false")
    return None


@check(
    "config.md",
    "Linux Process",
    "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value.",
    "If oomScoreAdj is not set, the runtime MUST NOT change the value of oom_score_adj.",
)
def oom_score_adj(ctx: Ctx) -> str | None:
    # The runtime runs with oom_score_adj 7 (a wrapper sets it, then execs the runtime): unset, the container
    # keeps 7; set, it has the configured value.
    wrapper = ctx.dir / "runtime-oom7"
    wrapper.write_text(f'#!/bin/sh\necho 7 > /proc/self/oom_score_adj\nexec "{ctx.runtime.path}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    wrapped = Runtime(str(wrapper))
    seen = {}
    for name, edit in (("set", process(oomScoreAdj=123)), ("unset", None)):
        cid = ctx.new_id()
        ctx.ids.append(cid)
        bundle = ctx.bundle(shell("cat /proc/self/oom_score_adj > /tmp/oom-$0", name), name=name, edit=edit)
        ctx.must(_logged(ctx, wrapped.run(ctx.root, "create", "--bundle", str(bundle), cid)), "create")
        ctx.must(ctx.rt("start", cid), "start")
        ctx.wait_status(cid, "stopped")
        expect(ctx.wait_file(ctx.marker(f"oom-{name}")), f"the {name} container did not report oom_score_adj")
        seen[name] = ctx.marker(f"oom-{name}").read_text().strip()
    expect(seen["set"] == "123", f"oomScoreAdj 123: the process has {seen['set']}")
    expect(seen["unset"] == "7", f"oomScoreAdj unset: the process has {seen['unset']}, the runtime had 7")
    return None


def _logged(ctx: Ctx, result: Result) -> Result:
    ctx.log.append(result)
    return result


# == User ===================================================================================================


@check(
    "config.md",
    "POSIX-platform User",
    "uid (int, REQUIRED) specifies the user ID in the container namespace.",
    "gid (int, REQUIRED) specifies the group ID in the container namespace.",
    "umask (int, OPTIONAL) specifies the umask of the user.",
    "additionalGids (array of ints, OPTIONAL) specifies additional group IDs in the container namespace to be "
    "added to the process.",
)
def user_ids_groups_umask(ctx: Ctx) -> str | None:
    user = {"uid": 1234, "gid": 2345, "additionalGids": [5, 3456], "umask": 0o027}
    status = status_fields(run_inside(ctx, "cat /proc/self/status; echo Umask-shell: $(umask)", process(user=user)))
    expect(status.get("Uid", "").split() == ["1234"] * 4, f"Uid line {status.get('Uid')!r}")
    expect(status.get("Gid", "").split() == ["2345"] * 4, f"Gid line {status.get('Gid')!r}")
    expect(sorted(status.get("Groups", "").split()) == ["3456", "5"], f"Groups line {status.get('Groups')!r}")
    expect(status.get("Umask-shell") == "0027", f"umask {status.get('Umask-shell')!r}, expected 0027")
    expect(status.get("Umask", "0027") == "0027", f"Umask line {status.get('Umask')!r}")
    return None


# == Process ==================================================================================================


@check(
    "config.md",
    "Process",
    "cwd (string, REQUIRED) is the working directory that will be set for the executable.",
    "env (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ.",
)
def process_cwd_and_env(ctx: Ctx) -> str | None:
    env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home", "SPACED=a b  c", "EMPTY=", "EQUALS=x=y"]
    out = run_inside(ctx, "echo == cwd; pwd; echo == env; env", process(cwd="/usr/bin", env=env))
    expect(section(out, "cwd").strip() == "/usr/bin", f"working directory {section(out, 'cwd')!r}")
    seen = set(section(out, "env").splitlines())
    missing = [entry for entry in env if entry not in seen]
    expect(not missing, f"environment entries missing or changed: {missing}")
    return None


# == Hostname, Domainname =====================================================================================


@check(
    "config.md",
    "Hostname",
    "hostname (string, OPTIONAL) specifies the container's hostname as seen by processes running inside the container.",
)
def hostname_inside(ctx: Ctx) -> str | None:
    def name(config: dict[str, Any]) -> None:
        config["hostname"] = "inside-host"

    out = run_inside(ctx, "hostname; cat /proc/sys/kernel/hostname", name)
    expect(out.split() == ["inside-host"] * 2, f"the container sees hostname {out.split()}")
    expect(os.uname().nodename != "inside-host", "the runtime's own hostname changed")
    return None


@check(
    "config.md",
    "Domainname",
    "domainname (string, OPTIONAL) specifies the container's domainname as seen by processes running inside the "
    "container.",
)
def domainname_inside(ctx: Ctx) -> str | None:
    def name(config: dict[str, Any]) -> None:
        config["domainname"] = "inside.example"

    before = Path("/proc/sys/kernel/domainname").read_text().strip()
    out = run_inside(ctx, "cat /proc/sys/kernel/domainname", name)
    expect(out.strip() == "inside.example", f"the container sees domainname {out.strip()!r}")
    after = Path("/proc/sys/kernel/domainname").read_text().strip()
    expect(after == before, f"the runtime's own domainname changed to {after!r}")
    return None


@check(
    "config.md",
    "Linux Process",
    "Any value which cannot be mapped to a relevant kernel interface, or cannot be granted otherwise MUST be logged "
    "as a warning by the runtime.",
    "Runtimes SHOULD NOT fail if the container configuration requests capabilities that cannot be granted, for "
    "example, if the runtime operates in a restricted environment with a limited set of capabilities.",
)
def capabilities_unknown_warned(ctx: Ctx) -> str | None:
    # CAP_NO_SUCH_THING maps to no kernel capability: a warning naming it, and the container runs with the rest.
    caps = {key: ["CAP_KILL", "CAP_NO_SUCH_THING"] for key in ("bounding", "effective", "permitted")}
    cid, _, _ = ctx.created(shell("grep CapBnd /proc/self/status > /tmp/caps"), edit=process(capabilities=caps))
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "stopped")
    expect(ctx.wait_file(ctx.marker("caps")), "the program did not run")
    bounding = int(ctx.marker("caps").read_text().split()[1], 16)
    expect(bounding == cap_mask(["CAP_KILL"]), f"bounding set {bounding:#x}, expected CAP_KILL alone")
    said = " ".join(result.stdout + result.stderr for result in ctx.log)
    expect("CAP_NO_SUCH_THING" in said, "no warning names CAP_NO_SUCH_THING (create's and start's output)")
    return None
