"""CVE-2019-5736: the container must never execute, or get a writable handle on, the runtime's own binary. For
engine that is the host's Python interpreter (and the files it runs from): the container's init and `exec`'s
process are that interpreter until their last execve.

The image here has a C library (the host's, bound read-only), as any Debian image has: without one, the host's
interpreter would fail to load inside the container and hide the hole (ENOENT for its ELF interpreter), which is
what engine relied on by accident before (issue #7)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.security.conftest import Runtime, bind, one_line_error, userns

INTERPRETER = os.path.realpath(sys.executable)


def _library_dirs() -> list[str]:
    """The directories the host's interpreter loads its libraries (and its ELF interpreter) from."""
    out = subprocess.run(["ldd", INTERPRETER], capture_output=True, text=True, check=True).stdout
    dirs = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                dirs.add(os.path.dirname(os.path.realpath(word)))
                dirs.add(os.path.dirname(word))
    return sorted(dirs)


@pytest.fixture
def image(fresh_rootfs: Callable[[], Path]) -> Path:
    """A rootfs with a script whose #! is /proc/self/exe (the exec'ing process's own executable)."""
    rootfs = fresh_rootfs()
    script = rootfs / "selfexe"
    script.write_text("#!/proc/self/exe -V\n")
    script.chmod(0o755)
    return rootfs


def _with_libraries(config: dict) -> None:
    config["mounts"] += [bind(d, d, "ro") for d in _library_dirs()]


def _edits(*more: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        _with_libraries(config)
        for e in more:
            e(config)

    return edit


VARIANTS = {
    "create": ((), ()),
    "no-pivot": (("--no-pivot",), ()),
    "user namespace": ((), (lambda c: userns(c, host=0),)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cve_2019_5736_init_never_runs_the_host_interpreter(engine: Runtime, image: Path, variant: str) -> None:
    """args[0] = /proc/self/exe is refused at create (a magic link); a #!/proc/self/exe script, which the kernel
    resolves itself during the execve, runs engine's sealed trampoline instead of the host's interpreter."""
    flags, more = VARIANTS[variant]
    direct = engine.run(engine.config(["/proc/self/exe", "-V"], rootfs=image, edit=_edits(*more)), *flags)
    assert "Python" not in direct.stdout + direct.stderr, direct.stdout
    assert "magic link" in one_line_error(direct)
    script = engine.run(engine.config(["/selfexe"], rootfs=image, edit=_edits(*more)), *flags)
    assert "Python" not in script.stdout + script.stderr, f"the host's interpreter ran: {script.stdout}"


def test_cve_2019_5736_exec_never_runs_the_host_interpreter(engine: Runtime, image: Path) -> None:
    """The same through `engine exec`, whose process is the host's interpreter until it execs."""
    container_id, created = engine.create(engine.config(["sleep", "60"], rootfs=image, edit=_edits()))
    assert created.returncode == 0, created.stderr
    direct = engine("exec", container_id, "/proc/self/exe", "-V")
    assert "Python" not in direct.stdout and "magic link" in one_line_error(direct)
    script = engine("exec", container_id, "/selfexe")
    assert "Python" not in script.stdout + script.stderr, f"the host's interpreter ran: {script.stdout}"


def _every_capability(config: dict) -> None:
    from engine.linux.capabilities import CAPABILITIES, last_cap

    every = [name for name, number in CAPABILITIES.items() if number <= last_cap()]
    config["process"]["capabilities"] = {name: every for name in ("bounding", "effective", "permitted")}


@pytest.mark.parametrize("variant", ["default", "user namespace, every capability"])
def test_cve_2019_5736_the_waiting_init_is_out_of_reach(engine: Runtime, image: Path, variant: str) -> None:
    """While the init waits for `start` it is still the host's interpreter: a process in the container (an exec
    into the created container) can open none of its /proc links to the host: exe, the mapped files, fds, cwd,
    root. With the default capabilities the kernel refuses anyway (the init holds more); in a user namespace with
    every capability only the init being non-dumpable stands between them."""
    edit = _edits(_every_capability, lambda c: userns(c, host=0)) if variant != "default" else _edits()
    container_id, created = engine.create(engine.config(["sleep", "60"], rootfs=image, edit=edit))
    assert created.returncode == 0, created.stderr
    # Listing /proc/1/fd is allowed (its names are not secrets); following any entry is what must fail.
    script = (
        "for f in /proc/1/exe /proc/1/cwd /proc/1/root /proc/1/fd/* /proc/1/map_files/*; do "
        "[ -e $f ] || [ -L $f ] || continue; readlink $f >/dev/null 2>&1 && echo REACHED $f; "
        "cat $f >/dev/null 2>&1 && echo REACHED $f; ls $f/ >/dev/null 2>&1 && echo REACHED $f; done; echo done"
    )
    result = engine("exec", container_id, "sh", "-c", script)
    assert result.stdout.strip().endswith("done") and "REACHED" not in result.stdout, result.stdout


def test_cve_2019_5736_the_trampoline_cannot_be_written(tmp_path: Path) -> None:
    """What /proc/self/exe names while the kernel resolves the image's #! and ELF interpreters: a sealed memfd
    that nobody, root included, can change or grow (not a property of a running process: ETXTBSY is not it)."""
    from engine.linux.trampoline import Trampoline

    tramp = Trampoline("/bin/true", -1)
    try:
        with pytest.raises(PermissionError):
            os.write(tramp.fd, b"x")
        with pytest.raises(PermissionError):
            os.ftruncate(tramp.fd, 0)
        reopened = os.open(f"/proc/self/fd/{tramp.fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.pwrite(reopened, b"\x90", 200)
        finally:
            os.close(reopened)
    finally:
        tramp.close()


def test_the_trampoline_still_reports_a_failed_exec(engine: Runtime, fresh_rootfs: Callable[[], Path]) -> None:
    """The defence keeps the contract: a program the kernel cannot run (here an ELF whose interpreter the image
    lacks) fails `start` with one line naming it and the reason, as a direct execve did; `exec` likewise."""
    rootfs = fresh_rootfs()
    shutil.copy("/usr/bin/true", rootfs / "dynamic-true")  # dynamically linked: no ld.so in the busybox image
    container_id, created = engine.create(engine.config(["/dynamic-true"], rootfs=rootfs))
    assert created.returncode == 0, created.stderr
    error = one_line_error(engine("start", container_id))
    assert "exec /dynamic-true: No such file or directory" in error, error
    other, created = engine.create(engine.config(["sleep", "60"], rootfs=rootfs))
    assert created.returncode == 0, created.stderr
    error = one_line_error(engine("exec", other, "/dynamic-true"))
    assert "exec /dynamic-true: No such file or directory" in error, error
