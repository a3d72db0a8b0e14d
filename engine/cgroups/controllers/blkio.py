"""linux.resources.blockIO: the v1 blkio controller, the v2 io controller.

| field                    | cgroup v1                                     | cgroup v2                                 |
|--------------------------|-----------------------------------------------|-------------------------------------------|
| weight (0 unset)         | blkio.weight, or blkio.bfq.weight without CFQ | io.bfq.weight as is, else io.weight       |
| leafWeight               | blkio.leaf_weight (CFQ only)                  | error: no leaf weights                    |
| weightDevice[]           | blkio.weight_device / blkio.bfq.weight_device | io.bfq.weight / io.weight "maj:min w"     |
| throttle{Read,Write}*    | blkio.throttle.*_device "maj:min rate"        | io.max "maj:min rbps=..." (rate 0 -> max) |
"""

from __future__ import annotations

from engine.cgroups import convert, fs
from engine.cgroups.fs import fail, jpath
from engine.cgroups.values import device_node, number

KEY = "blockIO"
# blockIO key -> (v1 file, v2 io.max key)
THROTTLES: tuple[tuple[Throttle, str, str], ...] = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from engine.spec.typed import BlockIO

    Throttle = Literal[
        "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"
    ]


def check(cg: Any, bio: BlockIO, w: str) -> None:
    if number(bio, "leafWeight", w) and cg.v2:
        raise fail(jpath(w, "leafWeight"), "cgroup v2 has no leaf weights (a CFQ feature)")
    for i, dev in enumerate(bio.get("weightDevice") or ()):
        wd = jpath(w, "weightDevice", i)
        device_node(dev, wd)
        value, leaf = number(dev, "weight", wd), number(dev, "leafWeight", wd)
        if value is None and leaf is None:
            raise fail(wd, "needs weight or leafWeight (or both)")
        if leaf and cg.v2:
            raise fail(jpath(wd, "leafWeight"), "cgroup v2 has no leaf weights (a CFQ feature)")
    for key, _, _ in THROTTLES:
        for i, rule in enumerate(bio.get(key) or ()):
            wd = jpath(w, key, i)
            device_node(rule, wd)
            rate = number(rule, "rate", wd)
            if rate is None or rate < 0:
                raise fail(jpath(wd, "rate"), "required, a rate")
    if not cg.v2 and any(bio.get(k) for k in bio):
        cg.directory_for("blkio", w)


def apply(cg: Any, bio: BlockIO, w: str) -> None:
    if not any(bio.get(k) for k in bio):
        return
    if cg.v2:
        _apply_v2(cg, cg.unified_dir, bio, w)
    else:
        _apply_v1(cg.directory_for("blkio", w), bio, w)


def _apply_v1(d: str, bio: BlockIO, w: str) -> None:
    # Without CFQ (gone since Linux 5.0) the proportional weights are BFQ's files.
    cfq = fs.exists(d, "blkio.weight")
    weight_file = "blkio.weight" if cfq else "blkio.bfq.weight"
    weight_device_file = "blkio.weight_device" if cfq else "blkio.bfq.weight_device"
    weight, leaf = number(bio, "weight", w), number(bio, "leafWeight", w)
    if weight:
        fs.write(jpath(w, "weight"), d, weight_file, str(weight))
    if leaf:
        fs.write(jpath(w, "leafWeight"), d, "blkio.leaf_weight", str(leaf))
    for i, dev in enumerate(bio.get("weightDevice") or ()):
        wd = jpath(w, "weightDevice", i)
        node = device_node(dev, wd)
        value, leaf_value = number(dev, "weight", wd), number(dev, "leafWeight", wd)
        if value:
            fs.write(jpath(wd, "weight"), d, weight_device_file, f"{node} {value}")
        if leaf_value:
            fs.write(jpath(wd, "leafWeight"), d, "blkio.leaf_weight_device", f"{node} {leaf_value}")
    for key, name, _ in THROTTLES:
        for i, rule in enumerate(bio.get(key) or ()):
            wd = jpath(w, key, i)
            fs.write(wd, d, name, f"{device_node(rule, wd)} {rule['rate']}")


def _apply_v2(cg: Any, d: str, bio: BlockIO, w: str) -> None:
    bfq = fs.exists(d, "io.bfq.weight")

    def weight_line(value: int) -> tuple[str, str]:
        return ("io.bfq.weight", str(value)) if bfq else ("io.weight", str(convert.blkio_weight_to_io_weight(value)))

    weight = number(bio, "weight", w)
    if weight:
        cg.write(jpath(w, "weight"), d, *weight_line(weight))
    for i, dev in enumerate(bio.get("weightDevice") or ()):
        wd = jpath(w, "weightDevice", i)
        value = number(dev, "weight", wd)
        if value:
            name, converted = weight_line(value)
            cg.write(jpath(wd, "weight"), d, name, f"{device_node(dev, wd)} {converted}")
    for key, _, knob in THROTTLES:
        for i, rule in enumerate(bio.get(key) or ()):
            wd = jpath(w, key, i)
            # v1 removes a throttle rule with rate 0; the v2 spelling of "no limit" is "max".
            rate = "max" if not rule["rate"] else str(rule["rate"])
            cg.write(wd, d, "io.max", f"{device_node(rule, wd)} {knob}={rate}")
