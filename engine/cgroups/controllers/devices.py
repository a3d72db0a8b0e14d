"""The device allowlist: the replayed rule list (engine/cgroups/devices.py's Emulator) made real.

cgroup v1: the minimal devices.deny / devices.allow transition from the current devices.list, then devices.list
read back (the kernel ignores some requests silently). cgroup v2: a BPF_CGROUP_DEVICE program (ebpf.py) attached
with BPF_F_ALLOW_MULTI; the new program is attached before the ones it replaces are detached, so there is no
moment without a policy. Programs an LSM hides from us are left alone (runc does the same).
"""

from __future__ import annotations

import errno
import os

from engine.cgroups import fs
from engine.cgroups.fs import fail
from engine.errors import suppress

KEY = "devices"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.cgroups.devices import Emulator


def check(cg: Any, target: Emulator, w: str) -> None:
    """The manager replayed the rules already (their errors name each rule)."""


def apply(cg: Any, target: Emulator, w: str) -> None:
    if cg.v2:
        cg.bpf_programs = install_program(cg.unified_dir, target, w)
    else:
        _apply_v1(cg.directory_for("devices", w), target, w)


def _apply_v1(d: str, target: Emulator, w: str) -> None:
    from engine.cgroups.devices import Emulator

    current = Emulator.from_list(fs.read(d, "devices.list"))
    for rule in current.transition(target):
        fs.write(w, d, "devices.allow" if rule.allow else "devices.deny", rule.line())
    after = Emulator.from_list(fs.read(d, "devices.list"))
    if after.default_allow != target.default_allow or (not target.default_allow and after != target):
        raise fail(w, f"{d}/devices.list ended up as {after}, not the requested {target}")


def install_program(d: str, target: Emulator, w: str) -> list[int]:
    """Attach the program for `target` to cgroup d, then detach the programs it replaces; the new program's id."""
    from engine.cgroups.ebpf import device_program
    from engine.linux import bpf  # ctypes: only when a device program is loaded

    program = device_program(target)
    try:
        cgroup_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise fail(w, f"opening {d}: {fs.os_reason(err)}") from None
    try:
        old = bpf.prog_query(cgroup_fd)
        prog_fd = bpf.prog_load_cgroup_device(program)
        try:
            bpf.prog_attach(prog_fd, cgroup_fd)
            new_id = bpf.prog_id(prog_fd)
        finally:
            os.close(prog_fd)
        for prog_id in old:
            _detach(bpf, cgroup_fd, prog_id)
        return [new_id]
    except OSError as err:
        raise fail(w, f"installing the eBPF device program on {d}: {err.strerror or err}") from None
    finally:
        os.close(cgroup_fd)


def release(d: str, programs: list[int]) -> None:
    """Detach our programs from a cgroup we joined but did not create (destroy leaves that cgroup behind)."""
    if not programs:
        return
    from engine.linux import bpf

    with suppress(OSError):
        cgroup_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for prog_id in programs:
                with suppress(OSError):
                    _detach(bpf, cgroup_fd, prog_id)
        finally:
            os.close(cgroup_fd)


def _detach(bpf: Any, cgroup_fd: int, prog_id: int) -> None:
    try:
        prog_fd = bpf.prog_fd_by_id(prog_id)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
            return  # gone already, or hidden from us by an LSM
        raise
    try:
        bpf.prog_detach(prog_fd, cgroup_fd)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise
    finally:
        os.close(prog_fd)
