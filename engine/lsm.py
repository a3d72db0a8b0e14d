"""AppArmor and SELinux labels of the container's process (config.md `apparmorProfile`, `selinuxLabel`): checked on
the host by `engine create` and `engine exec`, applied by the init and by exec's process just before their last
execve (as runc's apparmor.ApplyProfile and selinux.SetExecLabel, shared by its two init paths).

A label is written to /proc/thread-self/attr/..., where the LSM applies it at the next execve (the trampoline's,
engine/linux/trampoline.py: the program is then exec'd inside the profile), and only through a procfs engine made
itself: a container can put anything on its /proc, and a write that lands in a plain file would silently drop the
label (CVE-2019-16884). AppArmor and SELinux are not enabled on the machines engine is tested on, so applying a
label is exercised by the unit tests only.
"""

from __future__ import annotations

import os

from engine.errors import ConfigError, EngineError
from engine.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # Only a type here (the caller passes its own): procfs brings ctypes, which `engine create`'s own process
    # does without (its children import it).
    from engine.linux.procfs import ProcFS
    from engine.spec.typed import Process

APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"


@record(frozen=True)
class Labels:
    """What to apply: None where nothing was asked for or the host has no such LSM (SELinux: a warning)."""

    apparmor: str | None = None
    selinux: str | None = None


def apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED) as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists(SELINUX_ENFORCE)


def check(process: Process, warn: Callable[[str], None], where: str = "config.json: ") -> Labels:
    """The labels `process` asks for, as this host can apply them: an AppArmor profile without AppArmor is an
    error (runtime.md: a property the runtime cannot apply), an SELinux label without SELinux a warning (as runc,
    which ignores it)."""
    profile = process.get("apparmorProfile") or None
    if profile and not apparmor_enabled():
        raise ConfigError(
            f"{where}process.apparmorProfile {profile!r}: AppArmor is not enabled on this host"
            f" ({APPARMOR_ENABLED} is not Y)"
        )
    label = process.get("selinuxLabel") or None
    if label and not selinux_enabled():
        warn(f"process.selinuxLabel: SELinux is not enabled on this host; the label {label!r} is not applied")
        label = None
    return Labels(profile, label)


def apply(proc: ProcFS, labels: Labels) -> None:
    """Label the coming execve, through our own procfs. Raises EngineError naming the field."""
    if labels.apparmor:
        _write(proc, ("apparmor/exec", "exec"), f"exec {labels.apparmor}", "process.apparmorProfile")
    if labels.selinux:
        _write(proc, ("exec",), labels.selinux, "process.selinuxLabel")


def _write(proc: ProcFS, names: tuple[str, ...], value: str, where: str) -> None:
    """The first of /proc/thread-self/attr/<names> that exists (AppArmor's own directory since Linux 5.1)."""
    for name in names:
        try:
            proc.write_thread_self(f"attr/{name}", value.encode())
        except FileNotFoundError:
            continue
        except OSError as err:
            raise EngineError(f"{where} {value!r}: /proc/thread-self/attr/{name}: {err.strerror}") from None
        return
    raise EngineError(f"{where} {value!r}: /proc/thread-self/attr is missing")
