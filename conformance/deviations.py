"""Known departures of specific runtimes from the spec: reported as DEVIATION, not FAIL, for that runtime only.

Keyed by (runtime basename, check name). Each entry says what the runtime does and why that contradicts the
quoted sentence, so a reader can judge it without rerunning anything, and the failure reason it expects: the
check becomes DEVIATION only when it fails for exactly that reason, never for another. A recorded deviation that
is not observed (the check passes) is reported as STALE, a failure: the runtime changed and the entry must go.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    summary: str  # one line for the results table
    evidence: str  # what the runtime does, observed how, and the sentence it contradicts
    # A regular expression the check's failure reason must match (re.search): the deviation excuses only the
    # failure it records, not any failure of the same check (a crash, a leak, a different wrong behaviour).
    reason: str


DEVIATIONS: dict[tuple[str, str], Deviation] = {
    # These four observed with Debian's runc 1.1.5+ds1 (spec 1.0.2-dev), /usr/sbin/runc.
    ("runc", "delete_created"): Deviation(
        reason=r"^delete of a created container: `runc delete \S+` succeeded, expected an error$",
        summary="runc deletes a created container without --force",
        evidence=(
            "`runc delete <id>` on a container whose status is 'created' exits 0: runc kills the container "
            "process and removes the container (runc's delete command treats Created like Stopped plus a kill); "
            "`runc state <id>` then says 'container does not exist'. runtime.md Delete: \"Attempting to delete "
            'a container that is not stopped MUST have no effect on the container and MUST generate an error."'
        ),
    ),
    ("runc", "hooks_start_phase"): Deviation(
        reason=r"^\['poststart'\] already ran during create",
        summary="runc runs poststart hooks during create, before the user program",
        evidence=(
            "After `runc create` the hook order file reads: prestart createRuntime createContainer poststart, "
            "and the poststart hook's stdin state has status 'created'; `runc start` then runs only "
            "startContainer and the program. runtime.md Lifecycle step 9 (after step 8, the program run by "
            'start): "The poststart hooks MUST be invoked by the runtime."; config.md: "The poststart hooks '
            "MUST be called after the user-specified process is executed but before the start operation "
            'returns."'
        ),
    ),
    ("runc", "hooks_start_container_failure"): Deviation(
        reason=r"^start whose startContainer hook exits 1: `runc start \S+` succeeded, expected an error$",
        summary="runc start exits 0 when a startContainer hook fails",
        evidence=(
            "With a startContainer hook that exits 1, `runc start <id>` exits 0: the hook runs in runc init "
            "after start has already released the exec fifo; init prints 'error running hook #0: error running "
            "hook: exit status 1' and exits without running the program, leaving the container 'stopped'. "
            'runtime.md Lifecycle: "If any startContainer hook fails, the runtime MUST generate an error, stop '
            'the container, and continue the lifecycle at step 12."'
        ),
    ),
    ("runc", "hooks_poststop_failure"): Deviation(
        reason=r"^the remaining poststop hook did not run: \[.*'poststopFails'\]$",
        summary="runc skips the remaining poststop hooks after one fails",
        evidence=(
            "With poststop hooks [exit 1, record], `runc delete <id>` exits 0 and logs the hook error, but the "
            "second poststop hook never runs (runc runs a hook list until the first error). runtime.md "
            'Lifecycle step 13: "If any poststop hook fails, the runtime MUST log a warning, but the remaining '
            'hooks and lifecycle continue as if the hook had succeeded."'
        ),
    ),
    # config.md / config-linux.md checks (config_mounts.py, config_process.py, config_linux_more.py), observed with
    # the same runc 1.1.5+ds1.
    ("runc", "rlimits_duplicate_error"): Deviation(
        reason=r"^create: `runc create --bundle \S+ \S+` succeeded, expected an error$",
        summary="runc accepts duplicated rlimits entries (the last one wins)",
        evidence=(
            "With process.rlimits [RLIMIT_NOFILE 200/200, RLIMIT_NOFILE 100/100], `runc create` exits 0 and the "
            'program sees `ulimit -n` 100. config.md POSIX process: "If rlimits contains duplicated entries with '
            'same type, the runtime MUST generate an error."'
        ),
    ),
    ("runc", "domainname_inside"): Deviation(
        reason=r"^the container sees domainname '\(none\)'$",
        summary="runc 1.1.5 ignores domainname",
        evidence=(
            'With "domainname": "inside.example" (and a uts namespace), the program reads \'(none)\' from '
            "/proc/sys/kernel/domainname: runc 1.1.5 does not set it. config.md "
            "Domainname: \"domainname (string, OPTIONAL) specifies the container's domainname as seen by processes "
            'running inside the container."'
        ),
    ),
    ("runc", "devices_existing_file_error"): Deviation(
        reason=r"^create: `runc create --bundle \S+ \S+` succeeded, expected an error$",
        summary="runc keeps an existing non-device file at a linux.devices path",
        evidence=(
            "With a regular file at /tmp/not-a-device and linux.devices [{path: /tmp/not-a-device, type: c, major 1, "
            "minor 3}], `runc create` exits 0 and the path stays a regular file (runc's mknod fails with EEXIST, "
            "which it ignores). The same for a directory, or a char device with other numbers. config-linux.md "
            'Devices: "If a file already exists at path that does not match the requested device, the runtime MUST '
            'generate an error."'
        ),
    ),
    ("runc", "time_namespace_offsets"): Deviation(
        reason=r'namespace \{\\"time\\" \\"\\"\} does not exist',
        summary="runc 1.1.5 does not know the time namespace",
        evidence=(
            'With {"type": "time"} in linux.namespaces and linux.timeOffsets, `runc create` exits 1: '
            '\'namespace {"time" ""} does not exist\'. config-linux.md '
            'lists time among the types that SHOULD be supported; Offset for Time Namespace: "timeOffsets (object, '
            'OPTIONAL) sets the offset for Time Namespace."'
        ),
    ),
    ("runc", "rootfs_propagation_slave"): Deviation(
        reason=r"^the host's mount at <rootfs>/home did not appear in the container$",
        summary="with rootfsPropagation slave, runc's rootfs receives nothing from the host",
        evidence=(
            'Rootfs on a shared host mount, rootfsPropagation "slave": a tmpfs mounted on the host at '
            "<rootfs>/home after `runc create` is missing from the container's /proc/<pid>/mountinfo, and its / "
            "line has no master:N field: runc applies MS_SLAVE to the runtime's / (not recursively), then makes the "
            "rootfs's parent mount private before binding the rootfs, so the rootfs bind is private. (Without "
            "rootfsPropagation runc's rslave default does propagate.) config-linux.md: \"slave: the rootfs mount "
            "receives propagation events from the host (e.g. if something is mounted on the host it will also "
            'appear in the container) but not the other way around."'
        ),
    ),
    ("runc", "rootfs_propagation_shared"): Deviation(
        reason=r"^the rootfs mount is in no peer group",
        summary="with rootfsPropagation shared, runc's rootfs mount is in no peer group",
        evidence=(
            'rootfsPropagation "shared": the container\'s / line in /proc/<pid>/mountinfo has no shared:N '
            "field (runc 1.1.5 applies the propagation to the runtime's / before pivot_root, never to the rootfs "
            'mount). config-linux.md: "shared: the rootfs mount belongs to a new peer group."'
        ),
    ),
    ("runc", "rootfs_propagation_unbindable"): Deviation(
        reason=r"^create: `runc create .*` exited 1: .*error mounting",
        summary="with rootfsPropagation unbindable, runc fails to bind-mount anything from the host's root mount",
        evidence=(
            'rootfsPropagation "unbindable": `runc create` exits 1 with \'error mounting <check>/shared to rootfs '
            "at /tmp ... flags: 0x5000: invalid argument': runc makes the runtime's / unbindable before the mounts, "
            "so every bind source on that mount (and a rootfs directory on it) can no longer be bound. "
            'config-linux.md: "unbindable: the rootfs mount is a private mount that cannot be bind-mounted."'
        ),
    ),
}


def known(runtime: str, check: str) -> Deviation | None:
    return DEVIATIONS.get((runtime, check))
