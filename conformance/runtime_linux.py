"""runtime-linux.md: what a Linux runtime must set up beyond config.json."""

from __future__ import annotations

from conformance.bundle import shell
from conformance.harness import Ctx
from conformance.registry import check, expect

DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


@check(
    "runtime-linux.md",
    "Dev symbolic links",
    "While creating the container (step 2 in the lifecycle), runtimes MUST create the following symlinks if the "
    "source file exists after processing mounts:",
)
def dev_symlinks(ctx: Ctx) -> str | None:
    # /proc is mounted by the suite's config, so every source exists; busybox readlink prints the target.
    script = 'for f in fd stdin stdout stderr; do echo "$f $(readlink /dev/$f)"; done > /tmp/links'
    cid, _, _ = ctx.created(shell(script))
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "stopped")
    expect(ctx.marker("links").exists(), "the program listing /dev did not run")
    seen: dict[str, str] = {}
    for line in ctx.marker("links").read_text().splitlines():
        link, _, target = line.partition(" ")
        seen[link] = target
    wrong = {f"/dev/{k}": seen.get(k) or None for k, v in DEV_LINKS.items() if seen.get(k) != v}
    expect(not wrong, f"symlinks missing or wrong (link: target): {wrong}")
    return None
