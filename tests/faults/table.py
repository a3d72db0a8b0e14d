"""The planted faults: each breaks one thing a test claims to guard, by an exact text replacement (or a few) in
one file, and names the tests that must fail with it.

Keep each replacement small and its text distinctive (a line or two that a refactor is unlikely to reword): the
fast unit test tests/unit/test_faults_table.py fails when a text no longer occurs exactly once, so a refactor that
removes it must move the fault with it (or retire it), never silently drop the proof. `point` is the issue and
point the fault proves (12.1 ... 12.6, or "7" for the security defences of issue 7, "lifecycle", "harness").
`evidence`, when given, must appear in the failing run's output: the tests failed for the reason the fault is
about (the leak check, not some other assertion).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    old: str
    new: str


@dataclass(frozen=True)
class Fault:
    name: str
    point: str
    what: str
    file: str
    edits: tuple[Edit, ...]
    tests: list[str]
    evidence: str = ""
    slow: bool = False  # a qemu guest lane: minutes, run with --slow only
    env: dict[str, str] = field(default_factory=dict, compare=False)  # for the tests (a lane switched on)
    notes: str = field(default="", compare=False)


def fault(name: str, point: str, what: str, file: str, edits: list[tuple[str, str]], tests: list[str], **kw) -> Fault:
    return Fault(name, point, what, file, tuple(Edit(old, new) for old, new in edits), tests, **kw)


IT = "tests/integration/"
SEC = "tests/security/"

# Used by more than one fault.
DELETE_LEAVES_RUNNING = [  # delete --force kills only a created container, and leaves a running one's cgroups
    ("        if status != STOPPED or (record.cgroups and not cgroups_gone):", '        if status == "created":'),
    (
        "        if record.cgroups and not cgroups_gone:\n            _remove_cgroups",
        '        if record.cgroups and not cgroups_gone and status != "running":\n            _remove_cgroups',
    ),
]
NO_EXEC_RUN = [  # engine.commands.exec without its run(): the CLI cannot dispatch `exec`
    (
        "def run(ctx: Context, args: argparse.Namespace) -> int:",
        "def not_run(ctx: Context, args: argparse.Namespace) -> int:",
    )
]
RUNC_FALLBACK = [  # every engine command handed to runc, the arguments unchanged
    (
        "    if argv is None:\n        argv = sys.argv[1:]\n",
        "    if argv is None:\n        argv = sys.argv[1:]\n"
        '    __import__("os").execv("/usr/sbin/runc", ["runc", *argv])\n',
    )
]

FAULTS: list[Fault] = [
    # --- the harness itself ------------------------------------------------------------------------------------
    fault(
        "copy-is-what-runs",
        "harness",
        "`engine state` prints no status: caught only if the tests run the planted copy's engine binary",
        "engine/commands/state.py",
        [("print(jsonio.dumps(record.public_state(), indent=2))", 'print(jsonio.dumps({"planted": True}))')],
        [IT + "test_lifecycle.py::test_state_reports_stopped_once_the_program_exits"],
    ),
    # --- 12.1: leftovers found by what engine made ---------------------------------------------------------------
    fault(
        "delete-force-skips-kill",
        "12.1",
        "delete --force does not kill a started container (the issue's example)",
        "engine/delete.py",
        [("        if status != STOPPED or (record.cgroups and not cgroups_gone):", '        if status == "created":')],
        [IT + "test_lifecycle.py::test_delete_refuses_a_running_container_unless_forced"],
    ),
    fault(
        "delete-force-leaves-started-quietly",
        "12.1",
        "delete --force neither kills a running container nor removes its cgroups, and succeeds: only the fixture's "
        "leak check (the cgroups engine made, their processes) sees the `sleep 60` that survived",
        "engine/delete.py",
        DELETE_LEAVES_RUNNING,
        [IT + "test_exec.py::test_exit_status_is_the_process_s"],
        evidence="left behind",
    ),
    fault(
        "delete-force-leaves-started-conformance",
        "12.1",
        "the same quiet leak, seen by the conformance suite's own leftover check (a check with leftovers fails)",
        "engine/delete.py",
        DELETE_LEAVES_RUNNING,
        [IT + "test_conformance.py::test_conformance[engine]"],
        evidence="left",
    ),
    # --- 12.2: no self-disabling skips -------------------------------------------------------------------------
    fault(
        "exec-dispatch-removed",
        "12.2",
        "the CLI no longer dispatches `exec` (engine.commands.exec has no run): the exec module and its "
        "CVE-2019-5736 tests used to skip themselves",
        "engine/commands/exec.py",
        NO_EXEC_RUN,
        [IT + "test_exec.py::test_exit_status_is_the_process_s"],
    ),
    fault(
        "exec-dispatch-removed-cve",
        "12.2",
        "the same, judged by the CVE-2019-5736 exec test alone",
        "engine/commands/exec.py",
        NO_EXEC_RUN,
        [SEC + "test_host_binary.py::test_cve_2019_5736_exec_never_runs_the_host_interpreter"],
    ),
    fault(
        "exec-parser-dest-collides",
        "12.2",
        "the exec parser's positional command takes dest 'command', overwriting the subcommand's name: `engine exec` "
        "is never dispatched (the bug test_exec's module-wide skip was written for, which switched the module off). "
        "Planted in the parser's generated table (engine/cli_table.py, what `python -m engine.generate` makes of such "
        "a parser), since the fast path reads that and never builds the argparse parser",
        "engine/cli_table.py",
        [
            (
                "('container_id', 'one', None), ('exec_args', 'rest', None)",
                "('container_id', 'one', None), ('command', 'rest', None)",
            )
        ],
        [IT + "test_exec.py::test_exit_status_is_the_process_s"],
    ),
    fault(
        "terminal-check-gone",
        "12.2",
        "check_terminal accepts everything (a terminal without a console socket): the console tests used to skip "
        "when a grep for check_terminal failed",
        "engine/console.py",
        [
            (
                "def check_terminal(terminal: bool, console_socket: str | None, detach: bool) -> None:\n",
                "def check_terminal(terminal: bool, console_socket: str | None, detach: bool) -> None:\n    return\n",
            )
        ],
        [IT + "test_console_terminal.py::test_create_with_terminal_needs_a_console_socket"],
    ),
    # --- 12.3: skips that depend on the host ------------------------------------------------------------------
    fault(
        "rlimit-error-unnamed",
        "12.3",
        "raising a hard rlimit without CAP_SYS_RESOURCE no longer names the capability: the tests used to skip on "
        "any root that holds it; they now drop it themselves",
        "engine/linux/process_attrs.py",
        [('hint = "needs CAP_SYS_RESOURCE, which this runtime does not have"', 'hint = "is not permitted"')],
        [
            "tests/unit/test_process_attrs.py::test_raising_a_hard_limit_without_cap_sys_resource_names_the_rlimit",
            IT + "test_container_setup.py::test_rlimit_above_the_hard_ceiling_fails_clearly",
        ],
    ),
    fault(
        "summary-drops-skips",
        "12.3",
        "the end-of-run summary of lanes that did not run leaves out the skipped tests and their host facts (a "
        "fault in the tests' own reporting: a green run would again not say what it did not cover)",
        "tests/conftest.py",
        [('    lines = [f"{count:4d} skipped: {reason}"', '    lines = [] and [f"{count:4d} skipped: {reason}"')],
        ["tests/unit/test_lane_summary.py::test_every_skip_reason_is_listed_with_its_count"],
    ),
    # --- 12.4: a guest lane that passes when everything inside skipped ------------------------------------------
    fault(
        "guest-lane-all-v2-tests-skip",
        "12.4",
        "in the pure cgroup v2 guest every v2-only test skips (a wrong layout check), the others still pass: the "
        "lane used to accept any output with ' passed' and no 'failed'. A fault in the tests, not in engine: it is "
        "the lane's own judgement that is proved",
        "tests/integration/test_cgroups.py",
        [
            (
                '    HOST.mode != "v2", reason=f"needs a pure cgroup v2 host',
                '    HOST.mode != "v3", reason=f"needs a pure cgroup v2 host',
            )
        ],
        [IT + "test_cgroups.py::test_in_the_cgroup2_guest"],
        evidence="expected to pass but did not",
        slow=True,
        env={"ENGINE_CGROUP2_GUEST": "1"},
    ),
    # --- 12.5: oracles from outside engine ---------------------------------------------------------------------
    fault(
        "ebpf-device-types-swapped",
        "12.5",
        "the eBPF program tests char devices as block ones (BPF_DEVCG_DEV_* swapped): engine's interpreter, which "
        "shares the constants, agrees; the kernel does not",
        "engine/cgroups/ebpf.py",
        [("DEV_BLOCK, DEV_CHAR = 1, 2", "DEV_BLOCK, DEV_CHAR = 2, 1")],
        [IT + "test_device_rules_kernel.py::test_a_known_list"],
        evidence="AssertionError",
    ),
    fault(
        "ebpf-access-bits-swapped",
        "12.5",
        "the eBPF program reads a write request as a read (BPF_DEVCG_ACC_READ/WRITE swapped): one rule broken",
        "engine/cgroups/ebpf.py",
        [("ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4", "ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 4, 2")],
        [IT + "test_device_rules_kernel.py::test_generated_rule_lists"],
    ),
    fault(
        "features-namespace-dropped",
        "12.5",
        "features.json stops listing the cgroup namespace (which engine implements): the old test compared the "
        "document with the constant it is built from",
        "engine/spec/features.py",
        [('"user", "cgroup", "time")', '"user", "time")')],
        [IT + "test_features.py::test_compared_with_runc"],
    ),
    fault(
        "features-operator-dropped",
        "12.5",
        "SCMP_CMP_MASKED_EQ is gone from the seccomp operators engine recognizes, so from features.json too: the old "
        "test compared the document's operators with that very constant",
        "engine/spec/constants.py",
        [('    "SCMP_CMP_MASKED_EQ",\n]\nSECCOMP_OPERATORS', "]\nSECCOMP_OPERATORS")],
        [IT + "test_features.py::test_compared_with_runc"],
    ),
    # --- 12.6: weak assertions ---------------------------------------------------------------------------------
    fault(
        "pause-is-a-no-op",
        "12.6",
        "pause records `paused` but never freezes the cgroup (the issue's example)",
        "engine/pause.py",
        [("cgroups.freeze() if frozen else cgroups.thaw()", "None if frozen else cgroups.thaw()")],
        [IT + "test_container_cgroups.py::test_pause_and_resume"],
    ),
    fault(
        "resume-is-a-no-op",
        "12.6",
        "resume records `running` but never thaws the cgroup",
        "engine/pause.py",
        [("cgroups.freeze() if frozen else cgroups.thaw()", "cgroups.freeze() if frozen else None")],
        [IT + "test_container_cgroups.py::test_pause_and_resume"],
    ),
    fault(
        "poststart-after-start-returns",
        "12.6",
        "poststart hooks run in a child after `start` has returned",
        "engine/start.py",
        [
            (
                '            hookpoints.run("poststart", hooks,',
                "            if os.fork() != 0:\n                return\n"
                "            __import__('time').sleep(0.2)\n"
                '            hookpoints.run("poststart", hooks,',
            )
        ],
        [IT + "test_hooks_lifecycle.py::test_all_six_stages_in_order_and_in_the_right_namespaces"],
    ),
    fault(
        "masked-file-not-masked",
        "12.6",
        "a masked file is left as it is (no null device bound over it)",
        "engine/setup/masking.py",
        [("bind_fd(dev_null, fd)", "bind_fd  # planted: never called")],
        [IT + "test_container_setup.py::test_masked_and_readonly_paths"],
    ),
    fault(
        "proc-acpi-not-masked",
        "12.6",
        "/proc/acpi alone is left unmasked: the old test judged a masked directory by listing it, and /proc/acpi "
        "lists nothing on this machine anyway (as /proc/kcore, which it judged by reading, reads nothing without "
        "CAP_SYS_RAWIO, and does not exist here)",
        "engine/setup/masking.py",
        [
            (
                "dev_null: int) -> None:\n    for path in paths:",
                'dev_null: int) -> None:\n    for path in [p for p in paths if p != "/proc/acpi"]:',
            )
        ],
        [IT + "test_container_setup.py::test_masked_and_readonly_paths"],
    ),
    fault(
        "runc-fallback-podman",
        "12.6",
        "engine hands every command to runc (a fallback runtime): podman's containers still run",
        "engine/cli.py",
        RUNC_FALLBACK,
        [IT + "test_podman.py::test_the_container_is_isolated"],
    ),
    fault(
        "runc-fallback-containerd",
        "12.6",
        "the same under containerd's runc shim",
        "engine/cli.py",
        RUNC_FALLBACK,
        [IT + "test_containerd.py::test_detached_task_ps_and_kill"],
    ),
    fault(
        "gid-map-shifted",
        "12.6",
        "as root, the gid map is written one host id off (container group 0 is host 100001, not 100000); the "
        "container still runs: the podman test printed the maps and never looked at them",
        "engine/rootless/idmap.py",
        [
            (
                "        if privileged:\n            _write(pid, key, map_text(mappings))",
                "        if privileged:\n            _write(pid, key, map_text(mappings if key == 'uidMappings' else "
                "[dict(m, hostID=m['hostID'] + 1) for m in mappings]))",
            )
        ],
        [IT + "test_podman.py::test_the_container_is_isolated"],
    ),
    fault(
        "sync-socket-blocks",
        "12.6",
        "an absent sync-socket listener makes every publish wait its whole timeout (0.5 s) before the right warning",
        "state/publish.py",
        [
            (
                '    except OSError as err:\n        warn(f"sync socket {socket_path}: cannot {step}',
                "    except OSError as err:\n        time.sleep(timeout)\n"
                '        warn(f"sync socket {socket_path}: cannot {step}',
            )
        ],
        [IT + "test_sync_socket.py::test_an_absent_listener_does_not_block_or_fail"],
        evidence="publishing to an absent listener took",
    ),
    fault(
        "missing-process-error-unnamed",
        "12.6",
        "create refuses a config without a process, but its error no longer says what is wrong: conformance's "
        "start_without_process used to pass when create failed for any reason",
        "engine/create.py",
        [
            (
                'ConfigError("config.json: process: required to create a container")',
                'ConfigError("config.json: invalid")',
            )
        ],
        [IT + "test_conformance.py::test_conformance[engine]"],
        evidence="not for its process",
    ),
    fault(
        "conformance-section-not-loaded",
        "12.6",
        "one section's checks are never loaded, so neither run nor have their quotes judged: the old test required "
        "only 25 checks. A fault in the suite: its own judgement is what is proved",
        "conformance/__init__.py",
        [('    "conformance.config_linux_more",', '    # "conformance.config_linux_more",')],
        [IT + "test_conformance.py::test_quotes_are_verbatim"],
    ),
    # --- issue 7's defences (tests/security) -------------------------------------------------------------------
    fault(
        "fds-not-closed",
        "7",
        "fds above the highest one the init keeps (its channel, the exec fifo) stay open into the container: "
        "missed before (the only caller fd a test opened was 3, below those); caught by a new test with a caller "
        "fd at 200",
        "engine/process_setup.py",
        [("    os.closerange(low, 1 << 20)", "    pass")],
        [SEC + "test_fds_and_cwd.py::test_no_fd_of_the_callers_reaches_the_container[engine]"],
    ),
    fault(
        "sysctl-not-namespaced-accepted",
        "7",
        "a sysctl no namespace scopes (kernel.core_pattern: the host's) is accepted",
        "engine/create.py",
        [
            (
                '            raise ConfigError(f"{where}: not namespaced: writing it would change the host")',
                "            pass",
            )
        ],
        [SEC + "test_procfs.py::test_only_namespaced_sysctls[engine-kernel.core_pattern]"],
    ),
    fault(
        "bind-flags-dropped",
        "7",
        "a bind mount is attached without the flags its options ask for (ro, nosuid...), as engine once did in a "
        "user namespace",
        "engine/setup/rootfs.py",
        [
            (
                "                attr_set, attr_clr = mountfd.attrs_from_flags(plan.flags)\n",
                "                _, attr_clr = mountfd.attrs_from_flags(plan.flags)\n                attr_set = 0\n",
            )
        ],
        [SEC + "test_mounts.py::test_bind_options_apply_in_a_user_namespace[engine]"],
    ),
    fault(
        "dev-null-followed",
        "7",
        "masks are bound from whatever the container's /dev/null resolves to, unchecked (CVE-2025-31133)",
        "engine/setup/masking.py",
        [
            (
                'fd = open_in_root(root_fd, "/dev/null", O_PATH | os.O_NOFOLLOW)',
                'fd = open_in_root(root_fd, "/dev/null", O_PATH)',
            ),
            ("        if _is_null_device(fd):\n            return fd", "        if True:\n            return fd"),
        ],
        [SEC + "test_masked_paths.py::test_cve_2025_31133_masked_path_cannot_alias_a_host_file[engine]"],
    ),
    # --- 11: the fast paths must stay correct (and fast) -------------------------------------------------------
    fault(
        "hot-bundle-serves-stale-code",
        "11",
        "the hot bundle serves a module whose source was edited since the bundle was built (stale code runs)",
        "engine/hotload.py",
        [("        if st is None or st.st_mtime_ns != entry[2] or st.st_size != entry[3]:", "        if st is None:")],
        ["tests/unit/test_hotload.py::test_an_edited_module_is_imported_from_its_source"],
    ),
    fault(
        "pyc-fallback-ignores-mtime",
        "11",
        "the .pyc fallback loads a .pyc older than its source (CPython's timestamp check skipped)",
        "engine/hotload.py",
        [
            (
                '        or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF\n',
                "",
            )
        ],
        ["tests/unit/test_hotload.py::test_a_stale_pyc_is_left_to_the_usual_finders"],
    ),
    fault(
        "plain-json-accepts-control-characters",
        "11",
        "jsonio's plain path accepts a string with a raw control character, which JSON (and _json) refuses",
        "state/jsonio.py",
        [
            (
                '    if "\\\\" in value or not (value.isascii() and value.isprintable()):',
                '    if "\\\\" in value:',
            )
        ],
        ["tests/unit/test_jsonio.py::test_invalid_json_is_a_value_error_on_the_plain_path_too"],
    ),
    fault(
        "hot-commands-load-json",
        "11",
        "every state document goes to _json again (a shared library, ~0.25 ms each hot command): the import "
        "budget, not a timing, must catch the regression",
        "state/jsonio.py",
        [('    return _accelerated is None and "_json" not in sys.modules', "    return False")],
        [IT + "test_import_budget.py::test_lifecycle_commands"],
    ),
    # --- the lifecycle -----------------------------------------------------------------------------------------
    fault(
        "exited-container-still-running",
        "lifecycle",
        "state keeps saying `running` after the container's init has exited",
        "state/record.py",
        [
            (
                "        if self.status in ALIVE and not process.is_alive(self.pid, self.pid_start_time):",
                "        if False:",
            )
        ],
        [
            IT + "test_lifecycle.py::test_state_reports_stopped_once_the_program_exits",
            IT + "test_monitor.py::test_a_dead_monitor_is_restarted_and_state_stays_truthful",
        ],
    ),
    fault(
        "hooks-out-of-order",
        "lifecycle",
        "createRuntime hooks run before prestart hooks",
        "engine/create.py",
        [('for stage in ("prestart", "createRuntime"):', 'for stage in ("createRuntime", "prestart"):')],
        [IT + "test_hooks_lifecycle.py::test_all_six_stages_in_order_and_in_the_right_namespaces"],
    ),
]
