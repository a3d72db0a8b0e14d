"""Linux capabilities for the container process: names, the five sets, and the order they are applied in.

config.md "Linux Process" -> `capabilities` holds five arrays of names (bounding, effective, inheritable,
permitted, ambient). An absent array, or an absent `capabilities` object, means the empty set: the process
keeps nothing it was not given, as runc does.

Which requests are errors and which are warnings:
- a name that is not a capability at all (a typo such as "CAP_CHWON") is an error by default, naming the
  name and the set; `unknown="warn"` gives runc's behaviour (warn and ignore) instead.
- a known capability this kernel does not have (number above /proc/sys/kernel/cap_last_cap), or one the
  runtime cannot grant because it does not hold it itself (here: CAP_SYS_RESOURCE), is logged through the
  `warn` callback and skipped. config.md: such values "MUST be logged as a warning by the runtime. Runtimes
  SHOULD NOT fail if the container configuration requests capabilities that cannot be granted".

Order (the same as runc's finalizeNamespace): drop the bounding set first, while CAP_SETPCAP is still
effective; then switch user with PR_SET_KEEPCAPS so the permitted set survives setuid(non-zero); then capset
the effective/permitted/inheritable sets; then the ambient set, which the kernel only lets contain caps that
are both permitted and inheritable.
"""

from __future__ import annotations

import errno
import os

from engine.linux import ffi
from engine.linux.capability_names import CAP_SETS as CAP_SETS  # re-exported
from engine.linux.capability_names import CAPABILITIES as CAPABILITIES  # re-exported
from engine.linux.libc import check, libc
from engine.linux.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAPBSET_DROP,
    PR_CAPBSET_READ,
    PR_GET_NO_NEW_PRIVS,
    PR_GET_PDEATHSIG,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
)

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Literal

    from engine.spec.typed import Capabilities, User

    # Only for annotations: collections.abc imports collections (~1.5 ms of the child `engine create` forks).
    Warn = Callable[[str], None]

CAP_NAMES: dict[int, str] = {number: name for name, number in CAPABILITIES.items()}
CAP_LAST_KNOWN = max(CAP_NAMES)


# prctl(PR_CAP_AMBIENT) sub-options.
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# capget/capset: version 3 takes two 32-bit data structs, i.e. 64 capability bits.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ffi.Structure):
    _fields_ = [("version", ffi.c_uint32), ("pid", ffi.c_int)]


class _CapData(ffi.Structure):
    _fields_ = [
        ("effective", ffi.c_uint32),
        ("permitted", ffi.c_uint32),
        ("inheritable", ffi.c_uint32),
    ]


_CapDataPair = _CapData * 2

libc.capget.argtypes = [ffi.POINTER(_CapHeader), ffi.POINTER(_CapData)]
libc.capset.argtypes = [ffi.POINTER(_CapHeader), ffi.POINTER(_CapData)]
libc.prctl.argtypes = [ffi.c_int, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong]


class UnknownCapability(ValueError):
    """A capability name that is not in capabilities(7): almost always a typo in config.json."""


def _default_warn(message: str) -> None:
    import warnings  # only on the (rare) warning path

    warnings.warn(message, RuntimeWarning, stacklevel=3)


def cap_number(name: str) -> int:
    """'CAP_CHOWN' -> 0. Raises UnknownCapability naming the capability."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise UnknownCapability(f"unknown capability {name!r}") from None


def cap_name(number: int) -> str:
    """0 -> 'CAP_CHOWN'; numbers newer than this table come back as 'CAP_<n>'."""
    return CAP_NAMES.get(number, f"CAP_{number}")


def mask_to_names(mask: int) -> list[str]:
    """A capability bitmask (as in /proc/self/status CapEff) -> sorted list of names."""
    return [cap_name(bit) for bit in range(64) if mask >> bit & 1]


def names_to_mask(names: Iterable[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number the running kernel knows (what /proc/sys/kernel/cap_last_cap says).

    Asked of the kernel, not read from /proc: in the container's init /proc is the container's, and an image
    with a fake cap_last_cap of 10 would keep every capability above 10 in the bounding set. PR_CAPBSET_READ
    answers EINVAL above the last capability. Asked once per process (the kernel's answer cannot change): the
    init asks before it waits for `start`, which then does not wait for these ~41 prctls."""
    global _last_cap
    if _last_cap is None:
        cap = 0
        while cap < 63 and libc.prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0:
            cap += 1
        _last_cap = cap
    return _last_cap


def current_sets(
    *, kernel_last_cap: int | None = None, ambient: bool = True, bounding: int | None = None
) -> dict[str, int]:
    """This thread's capability sets as bitmasks, from capget(2) and the bounding/ambient prctls (one per
    capability each). ambient=False leaves the ambient set out (no "ambient" key); `bounding`, when the caller
    knows it (drop_bounding_set's result), saves reading it back."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair()
    check(libc.capget(ffi.byref(header), data), "capget")
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    if bounding is None:
        bounding = 0
        for cap in range(top + 1):
            if libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
                bounding |= 1 << cap
    sets = {
        "effective": data[0].effective | data[1].effective << 32,
        "permitted": data[0].permitted | data[1].permitted << 32,
        "inheritable": data[0].inheritable | data[1].inheritable << 32,
        "bounding": bounding,
    }
    if ambient:
        sets["ambient"] = 0
        for cap in range(top + 1):
            # -1 (EINVAL) on kernels without ambient capabilities.
            if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1:
                sets["ambient"] |= 1 << cap
    return sets


def resolve(
    caps: Capabilities | None,
    *,
    warn: Warn | None = None,
    unknown: Literal["error", "warn"] = "error",
    kernel_last_cap: int | None = None,
) -> dict[str, int]:
    """config.json `process.capabilities` -> {set name: bitmask}, without touching the process.

    Unknown names raise UnknownCapability (or, with unknown="warn", are warned about and skipped); caps
    above the kernel's cap_last_cap are warned about and skipped.
    """
    warn = warn or _default_warn
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    caps = caps or {}
    masks: dict[str, int] = {}
    too_new: set[str] = set()
    for set_name in CAP_SETS:
        names = caps.get(set_name) or []
        if not isinstance(names, list | tuple):
            raise ValueError(f"process.capabilities.{set_name}: expected an array of names, got {names!r}")
        mask = 0
        for name in names:
            if name not in CAPABILITIES:
                message = f"process.capabilities.{set_name}: unknown capability {name!r}"
                if unknown == "error":
                    raise UnknownCapability(message)
                warn(message + " (ignored)")
                continue
            number = CAPABILITIES[name]
            if number > top:
                too_new.add(name)
                continue
            mask |= 1 << number
        masks[set_name] = mask
    if too_new:
        warn(f"ignoring capabilities this kernel does not support (cap_last_cap={top}): {sorted(too_new)}")
    return masks


def _grantable(masks: dict[str, int], held: dict[str, int], warn: Warn) -> dict[str, int]:
    """Trim the requested sets to what the kernel will let this process set, warning about each loss.

    The kernel refuses (EPERM) a permitted cap the process does not hold, an effective cap outside the new
    permitted set, an inheritable cap outside old inheritable | bounding, and an ambient cap that is not
    both permitted and inheritable. config.md says not to fail for caps "that cannot be granted".
    """
    out = dict(masks)
    lost: list[str] = []

    def trim(set_name: str, allowed: int, why: str) -> None:
        extra = out[set_name] & ~allowed
        if extra:
            lost.append(f"{set_name} {mask_to_names(extra)} ({why})")
            out[set_name] &= allowed

    trim("bounding", held["bounding"], "not in the runtime's own bounding set")
    trim("permitted", held["permitted"], "not held by the runtime")
    trim("effective", out["permitted"], "not in the permitted set")
    inheritable_limit = held["inheritable"] | held["bounding"]
    if not held["effective"] >> CAPABILITIES["CAP_SETPCAP"] & 1:
        # Without CAP_SETPCAP the kernel also caps it at old inheritable | old permitted.
        inheritable_limit &= held["inheritable"] | held["permitted"]
    trim("inheritable", inheritable_limit, "not in the bounding set, or CAP_SETPCAP missing")
    trim("ambient", out["permitted"] & out["inheritable"], "not both permitted and inheritable")
    if lost:
        warn("capabilities that cannot be granted are ignored: " + "; ".join(lost))
    return out


def drop_bounding_set(keep: int, *, kernel_last_cap: int | None = None) -> int:
    """PR_CAPBSET_DROP every capability not in the bitmask `keep` (needs CAP_SETPCAP); the bounding set left.

    In the init this runs while `engine start` waits for the exec: one prctl per capability, as runc's, not a
    read before each drop and a read of the whole set afterwards (~80 prctls through ctypes). Only the kept
    capabilities are read, for the bounding set this returns."""
    top = last_cap() if kernel_last_cap is None else kernel_last_cap
    left = 0
    for cap in range(top + 1):
        if keep >> cap & 1:
            if libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
                left |= 1 << cap
            continue
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            continue
        err = ffi.get_errno()
        if libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 0:
            continue  # already gone: a drop without CAP_SETPCAP fails even then
        raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap_name(cap)}): {os.strerror(err)}")
    return left


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) version 3 on this thread: the three sets as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair()
    for i in range(2):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    check(libc.capset(ffi.byref(header), data), "capset")


def set_ambient(mask: int, *, warn: Warn | None = None) -> None:
    """Clear the ambient set, then raise each capability in `mask`."""
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1:
        err = ffi.get_errno()
        if err == errno.EINVAL and mask == 0:  # kernel < 4.3 has no ambient set, and none was asked for
            return
        if err == errno.EINVAL:
            (warn or _default_warn)("this kernel has no ambient capabilities: capabilities.ambient ignored")
            return
        check(-1, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    for cap in range(64):
        if mask >> cap & 1:
            check(
                libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0),
                f"prctl(PR_CAP_AMBIENT_RAISE, {cap_name(cap)})",
            )


def _set_keepcaps(on: bool) -> None:
    check(libc.prctl(PR_SET_KEEPCAPS, int(on), 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")


def _apply_sets(masks: dict[str, int], warn: Warn, kernel_last_cap: int, bounding: int) -> None:
    """capset then ambient, after the bounding set (`bounding`: what drop_bounding_set left) and the user switch
    are done."""
    # Not the ambient set: _grantable does not look at it, and each of its ~41 prctls is time that `engine start`
    # waits for the container's exec.
    held = current_sets(kernel_last_cap=kernel_last_cap, ambient=False, bounding=bounding)
    if held["effective"] != held["permitted"]:
        # setuid(non-zero) with KEEPCAPS empties the effective set. Without CAP_SETPCAP effective the
        # kernel would cap the new inheritable set at old inheritable | permitted instead of the bounding
        # set, so make the permitted caps effective again before the final capset.
        capset(held["permitted"], held["permitted"], held["inheritable"])
        held["effective"] = held["permitted"]
    final = _grantable(masks, held, warn)
    capset(final["effective"], final["permitted"], final["inheritable"])
    set_ambient(final["ambient"], warn=warn)


def apply_capabilities(
    caps: Capabilities | None,
    *,
    warn: Warn | None = None,
    unknown: Literal["error", "warn"] = "error",
) -> None:
    """Set all five capability sets of this thread from config.json `process.capabilities`.

    For a process that keeps its uid. When the container also switches user, use
    apply_user_and_capabilities, which puts the user switch between the bounding set and capset.
    """
    warn = warn or _default_warn
    top = last_cap()
    masks = resolve(caps, warn=warn, unknown=unknown, kernel_last_cap=top)
    bounding = drop_bounding_set(masks["bounding"], kernel_last_cap=top)
    _apply_sets(masks, warn, top, bounding)


def _setgroups_allowed() -> bool:
    """False inside a user namespace where setgroups is denied (rootless mappings). Asked of the kernel (an
    empty setgroups is EPERM exactly then), not read from the container's /proc: a fake /proc/self/setgroups
    saying "deny" would keep the runtime's own supplementary groups in the container."""
    try:
        os.setgroups([])
    except PermissionError:
        return False
    return True


def switch_user(user: User, exec_gid: int | None = None) -> None:
    """setgroups(additionalGids), setresgid(gid), setresuid(uid), umask: config.md "User" (POSIX).

    Supplementary groups are always set, to an empty list when none are configured, so none of the
    runtime's own groups leak into the container. Must run while CAP_SETGID/CAP_SETUID are effective.
    exec_gid: the effective and saved gid until the exec trampoline sets all three to gid itself (the
    kernel then execs the trampoline non-dumpable, engine/linux/trampoline.py).
    """
    try:
        uid = int(user.get("uid", 0))
        gid = int(user.get("gid", 0))
        groups = [int(g) for g in (user.get("additionalGids") or [])]
    except (TypeError, ValueError) as err:
        raise ValueError(f"process.user: uid, gid and additionalGids must be integers: {err}") from None
    if _setgroups_allowed():
        try:
            os.setgroups(groups)
        except OSError as err:
            message = f"process.user.additionalGids {groups}: setgroups: {err.strerror}"
            raise OSError(err.errno, message) from None
    elif groups:
        message = f"process.user.additionalGids {groups}: setgroups is denied in this user namespace"
        raise OSError(errno.EPERM, message)
    try:
        effective = gid if exec_gid is None else exec_gid
        os.setresgid(gid, effective, effective)
    except OSError as err:
        raise OSError(err.errno, f"process.user.gid {gid}: setresgid: {err.strerror}") from None
    try:
        os.setresuid(uid, uid, uid)
    except OSError as err:
        raise OSError(err.errno, f"process.user.uid {uid}: setresuid: {err.strerror}") from None
    umask = user.get("umask")
    if umask is not None:
        os.umask(int(umask))


def apply_user_and_capabilities(
    user: User | None,
    caps: Capabilities | None,
    *,
    warn: Warn | None = None,
    unknown: Literal["error", "warn"] = "error",
    exec_gid: int | None = None,
) -> None:
    """Switch to config.json `process.user` and set `process.capabilities`, in the order that works (exec_gid:
    switch_user's).

    1. validate the capability names (nothing has changed yet if this raises);
    2. drop the bounding set, while CAP_SETPCAP is still effective;
    3. PR_SET_KEEPCAPS=1, so setresuid(non-zero) keeps the permitted set (it still clears effective);
    4. setgroups, setresgid, setresuid (switch_user);
    5. PR_SET_KEEPCAPS=0, then capset effective/permitted/inheritable and raise the ambient set;
    6. restore the parent-death signal, which the kernel clears on any uid/gid change.
    """
    warn = warn or _default_warn
    top = last_cap()
    masks = resolve(caps, warn=warn, unknown=unknown, kernel_last_cap=top)
    pdeath = ffi.c_int(0)
    check(libc.prctl(PR_GET_PDEATHSIG, ffi.addressof(pdeath), 0, 0, 0), "prctl(PR_GET_PDEATHSIG)")
    bounding = drop_bounding_set(masks["bounding"], kernel_last_cap=top)
    _set_keepcaps(True)
    try:
        switch_user(user or {}, exec_gid)
    finally:
        _set_keepcaps(False)
    _apply_sets(masks, warn, top, bounding)  # a user switch leaves the bounding set as it is
    if pdeath.value:
        check(libc.prctl(PR_SET_PDEATHSIG, pdeath.value, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def set_no_new_privileges() -> None:
    """config.md `process.noNewPrivileges`: execve can no longer grant privileges (setuid bits, file caps)."""
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def no_new_privileges() -> bool:
    return check(libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), "prctl(PR_GET_NO_NEW_PRIVS)") == 1
