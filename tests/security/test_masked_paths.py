"""CVE-2025-31133: maskedPaths bind "/dev/null" over each masked file. A runtime that binds whatever the
container's /dev/null resolves to can be made to bind, say, /proc/sys/kernel/core_pattern over /proc/keys: the
mask then exposes (and, writable, hands over) the host's core_pattern, a path to root on the host."""

from __future__ import annotations

from pathlib import Path

from tests.security.conftest import Runtime, bind, one_line_error


def test_cve_2025_31133_masked_path_cannot_alias_a_host_file(runtime: Runtime, tmp_path: Path) -> None:
    """/dev comes from a bind of a directory where `null` is a symlink to /proc/sys/kernel/core_pattern. The
    masked /proc/keys must read as the null device (empty), never as the host's core_pattern."""
    runtime.falls("it binds what the container's /dev/null resolves to over every masked file")
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    dev = tmp_path / "image-dev"
    dev.mkdir()
    (dev / "null").symlink_to("/proc/sys/kernel/core_pattern")

    def edit(config: dict) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        config["mounts"].insert(1, bind(dev, "/dev"))
        config["linux"]["maskedPaths"] = ["/proc/keys", "/proc/timer_list"]

    # Only reads: a runtime that falls to this must not be helped to write the host's core_pattern.
    script = "echo '== keys'; cat /proc/keys; echo '== timer_list'; cat /proc/timer_list; echo '== end'"
    result = runtime.run(runtime.config(["sh", "-c", script], edit=edit))
    assert result.returncode == 0, result.stderr
    keys = result.stdout.split("== keys\n")[1].split("== timer_list\n")[0]
    timers = result.stdout.split("== timer_list\n")[1].split("== end")[0]
    assert keys == "" and timers == "", f"masks not empty (core_pattern is {core_pattern!r}):\n{result.stdout}"


def test_cve_2025_52565_console_never_bound_through_a_symlink(engine: Runtime, tmp_path: Path) -> None:
    """/dev/console is where the pty is bound: an image (here a /dev bound from a directory it controls) that
    makes it a symlink to a procfs file would have the bind land there. engine binds the pty it got from its own
    devpts (TIOCGPTPEER, checked) by fd onto a /dev/console it opened without following links: refused."""
    from tests.console_receiver import ConsoleReceiver

    dev = tmp_path / "image-dev"
    dev.mkdir()
    (dev / "console").symlink_to("/proc/sys/kernel/core_pattern")
    (dev / "null").symlink_to("/proc/sys/kernel/core_pattern")

    def edit(config: dict) -> None:
        config["process"]["terminal"] = True
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        config["mounts"].insert(1, bind(dev, "/dev"))

    with ConsoleReceiver(tmp_path / "console.sock") as receiver:
        _, result = engine.create(
            engine.config(["sh", "-c", "cat /proc/sys/kernel/core_pattern"], edit=edit),
            "--console-socket",
            str(receiver.path),
        )
    error = one_line_error(result)
    assert "/dev/console is a symlink" in error, error
