"""engine/linux/kernel.py is the one seam between the setup code and the kernel: the setup code makes no privileged
call around it (else the unit tests' recording double would miss it), and the double stands in for every method."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from engine.linux.kernel import Kernel
from tests.kernel_double import RecordingKernel

ENGINE = Path(__file__).resolve().parents[2] / "engine"
SETUP_CODE = [
    *sorted((ENGINE / "setup").glob("*.py")),
    ENGINE / "process_setup.py",
    ENGINE / "init.py",
    ENGINE / "exec.py",
    ENGINE / "create.py",
    ENGINE / "console.py",
]

# module alias -> the functions that must go through kernel.KERNEL (the aliases these files import them as).
PRIVILEGED = {
    "sc": {"mount", "umount2", "pivot_root", "setns", "unshare", "prctl", "set_parent_death_signal", "fs_type"},
    "os": {"chroot", "mknod", "chown", "fchown", "lchown", "setresuid", "setresgid", "setgroups", "setuid", "setgid"},
    "mountfd": {"new_filesystem", "clone_path", "clone_tree", "set_attrs", "attach", "bind_fd", "fsopen", "fsmount"},
    "capabilities": {"apply_user_and_capabilities", "apply_capabilities", "set_no_new_privileges", "capset"},
    "process_attrs": {
        "apply_rlimits",
        "apply_personality",
        "apply_scheduler",
        "apply_io_priority",
        "apply_exec_cpu_affinity",
        "set_hostname",
        "set_domainname",
    },
    "libseccomp": {"load_plan"},
}


def bypasses(path: Path) -> list[str]:
    where = path.relative_to(ENGINE.parent) if path.is_relative_to(ENGINE.parent) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and node.func.attr in PRIVILEGED.get(owner.id, ()):
                found.append(f"{where}:{node.lineno}: {owner.id}.{node.func.attr}()")
    return found


def test_the_setup_code_calls_the_kernel_only_through_the_seam() -> None:
    found = [line for path in SETUP_CODE for line in bypasses(path)]
    assert not found, "call these through engine.linux.kernel.KERNEL:\n" + "\n".join(found)


def test_the_check_finds_a_bypass(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from engine.linux import syscalls as sc\n\ndef f():\n    sc.mount(None, '/', None, 0)\n")
    assert bypasses(planted) == ["planted.py:4: sc.mount()"]


def test_the_double_stands_in_for_every_call() -> None:
    def methods(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    real, double = methods(Kernel), methods(RecordingKernel)
    assert set(real) <= set(double), f"not recorded by the double: {sorted(set(real) - set(double))}"
    for name, signature in real.items():
        assert list(double[name].parameters) == list(signature.parameters), name
