"""Known departures of specific runtimes from the spec: reported as DEVIATION, not FAIL, for that runtime only.

Keyed by (runtime basename, check name). Each entry says what the runtime does and why that contradicts the
quoted sentence, so a reader can judge it without rerunning anything. A recorded deviation that is not
observed (the check passes) is simply PASS: the runtime was fixed, and the entry can go.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    summary: str  # one line for the results table
    evidence: str  # what the runtime does, observed how, and the sentence it contradicts


DEVIATIONS: dict[tuple[str, str], Deviation] = {
    # All four observed with Debian's runc 1.1.5+ds1 (spec 1.0.2-dev), /usr/sbin/runc.
    ("runc", "delete_created"): Deviation(
        summary="runc deletes a created container without --force",
        evidence=(
            "`runc delete <id>` on a container whose status is 'created' exits 0: runc kills the container "
            "process and removes the container (runc's delete command treats Created like Stopped plus a kill); "
            "`runc state <id>` then says 'container does not exist'. runtime.md Delete: \"Attempting to delete "
            'a container that is not stopped MUST have no effect on the container and MUST generate an error."'
        ),
    ),
    ("runc", "hooks_start_phase"): Deviation(
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
        summary="runc skips the remaining poststop hooks after one fails",
        evidence=(
            "With poststop hooks [exit 1, record], `runc delete <id>` exits 0 and logs the hook error, but the "
            "second poststop hook never runs (runc runs a hook list until the first error). runtime.md "
            'Lifecycle step 13: "If any poststop hook fails, the runtime MUST log a warning, but the remaining '
            'hooks and lifecycle continue as if the hook had succeeded."'
        ),
    ),
}


def known(runtime: str, check: str) -> Deviation | None:
    return DEVIATIONS.get((runtime, check))
