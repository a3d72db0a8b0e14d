"""config.md "Linux mount options": one mount's `options` array -> what to pass to mount(2) and friends.

Pure parsing, no syscalls: the rootfs stage applies the MountPlan. The tables follow runc's specconv
(parseMountOptions) so a config.json behaves the same under both runtimes:
- mount(8) flag options set or clear MS_* bits; a later option wins over an earlier one ("ro,rw" is rw).
- propagation options (shared, rprivate, ...) are collected in order: each one is its own mount(2) call,
  since the kernel takes one propagation type per call.
- recursive options (rro, rnosuid, rnoatime, ...) become mount_setattr(2) attr_set/attr_clr bits, applied
  with AT_RECURSIVE to the whole tree (Linux 5.12).
- idmap / ridmap and tmpcopyup are flagged for the rootfs stage, never passed to mount(2).
- anything else (mode=755, size=64k, or an option name this table does not know) is filesystem data,
  joined with "," for mount(2)'s data argument; config.md: "Runtimes SHOULD treat unknown options as
  filesystem-specific ones".
Two deliberate differences from runc: "defaults" is dropped rather than passed on as data (mount(8) drops
it too, and e.g. tmpfs rejects it as data), and the recursive atime options always set the whole
MOUNT_ATTR__ATIME field, because the kernel refuses (EINVAL) a partial change of that field, which is what
runc's table produces for ratime and rnostrictatime.
"""

from __future__ import annotations

from engine.linux.mount_attr import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
)
from engine.linux.syscalls import (
    MS_BIND,
    MS_DIRSYNC,
    MS_I_VERSION,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)
from engine.record import record

# option -> (clears the flag?, MS_* flag)
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "iversion": (False, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "noiversion": (True, MS_I_VERSION),
    "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "nosymfollow": (False, MS_NOSYMFOLLOW),  # Linux 5.10
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "sync": (False, MS_SYNCHRONOUS),
}

PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Recursive (mount_setattr) options other than atime: option -> (clears the attribute?, MOUNT_ATTR_*).
RECURSIVE_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),  # Linux 5.14
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
# The recursive atime options. The atime field is an enum (relatime / noatime / strictatime), so each
# option picks a value for the whole field; "ratime" and "rnostrictatime" mean "the kernel default",
# which is relatime, and "rnorelatime" changes nothing (without relatime the kernel defaults to relatime).
RECURSIVE_ATIME = ("rnoatime", "rstrictatime", "rrelatime", "ratime", "rnostrictatime", "rnorelatime")

IDMAP_OPTIONS = ("idmap", "ridmap")
EXTENSION_OPTIONS = ("tmpcopyup",)
NOOP_OPTIONS = ("defaults",)

KNOWN_OPTIONS: tuple[str, ...] = tuple(
    sorted(
        {
            *MOUNT_FLAGS,
            *PROPAGATION_FLAGS,
            *RECURSIVE_ATTRS,
            *RECURSIVE_ATIME,
            *IDMAP_OPTIONS,
            *EXTENSION_OPTIONS,
            *NOOP_OPTIONS,
        }
    )
)


@record(frozen=True)
class MountPlan:
    """What one config.json mount's options ask for."""

    flags: int = 0  # MS_* for mount(2), MS_BIND (| MS_REC) included for bind / rbind
    cleared_flags: int = 0  # MS_* the options turned off explicitly (rw, suid, dev...): matters on remounts
    propagations: tuple[int, ...] = ()  # MS_SHARED/SLAVE/PRIVATE/UNBINDABLE (| MS_REC), one mount(2) each
    rec_attr_set: int = 0  # MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE)
    rec_attr_clr: int = 0
    idmap: bool = False  # idmap or ridmap: apply MOUNT_ATTR_IDMAP (mount's or container's mappings)
    idmap_recursive: bool = False  # ridmap
    tmpcopyup: bool = False  # copy the directory's contents into the new tmpfs
    data: str = ""  # filesystem-specific options for mount(2)'s data argument

    @property
    def propagation(self) -> int:
        """The last propagation option (0 if none): the one that wins when only one call is made."""
        return self.propagations[-1] if self.propagations else 0

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    @property
    def recursive_bind(self) -> bool:
        return self.flags & (MS_BIND | MS_REC) == MS_BIND | MS_REC

    @property
    def has_recursive_attrs(self) -> bool:
        return bool(self.rec_attr_set or self.rec_attr_clr)


def parse_mount_options(options: list[str] | tuple[str, ...] | None) -> MountPlan:
    """Parse one mount's `options` (config.md "Linux mount options") into a MountPlan."""
    flags = 0
    cleared = 0
    propagations: list[int] = []
    rec_set = 0
    rec_clr = 0
    atime: int | None = None  # the MOUNT_ATTR__ATIME value asked for recursively, if any
    idmap = False
    idmap_recursive = False
    tmpcopyup = False
    data: list[str] = []
    for option in options or ():
        if not option:
            continue  # "" would put an empty ",," item into the data string
        if option in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[option]
            if clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif option in PROPAGATION_FLAGS:
            propagations.append(PROPAGATION_FLAGS[option])
        elif option in RECURSIVE_ATTRS:
            clear, attr = RECURSIVE_ATTRS[option]
            if clear:
                rec_clr |= attr
                rec_set &= ~attr
            else:
                rec_set |= attr
                rec_clr &= ~attr
        elif option in RECURSIVE_ATIME:
            atime = _next_atime(option, atime)
        elif option in IDMAP_OPTIONS:
            idmap = True
            idmap_recursive = option == "ridmap"
        elif option == "tmpcopyup":
            tmpcopyup = True
        elif option in NOOP_OPTIONS:
            continue
        else:
            data.append(option)
    if atime is not None:
        # mount_setattr(2): an atime value in attr_set is only accepted with all of MOUNT_ATTR__ATIME
        # in attr_clr.
        rec_set = rec_set & ~MOUNT_ATTR__ATIME | atime
        rec_clr |= MOUNT_ATTR__ATIME
    return MountPlan(
        flags=flags,
        cleared_flags=cleared,
        propagations=tuple(propagations),
        rec_attr_set=rec_set,
        rec_attr_clr=rec_clr,
        idmap=idmap,
        idmap_recursive=idmap_recursive,
        tmpcopyup=tmpcopyup,
        data=",".join(data),
    )


def _next_atime(option: str, current: int | None) -> int | None:
    if option == "rnoatime":
        return MOUNT_ATTR_NOATIME
    if option == "rstrictatime":
        return MOUNT_ATTR_STRICTATIME
    if option == "rrelatime":
        return MOUNT_ATTR_RELATIME
    if option == "ratime":  # "do not use noatime": the kernel default unless strictatime was asked for
        return current if current == MOUNT_ATTR_STRICTATIME else MOUNT_ATTR_RELATIME
    if option == "rnostrictatime":  # "the kernel's default", unless noatime was asked for
        return current if current == MOUNT_ATTR_NOATIME else MOUNT_ATTR_RELATIME
    return current  # rnorelatime
