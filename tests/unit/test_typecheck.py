"""mypy --strict on engine/spec and on the create path, the readers of the validated config.

The readers take the TypedDicts of engine/spec/typed.py (generated from the models; tests/unit/test_spec_typed.py
checks they are not stale and that the validator outputs exactly their shapes), so mypy sees every field name
and type where it is read: a misspelled key or a value used as the wrong type fails here, not in a container.

mypy follows the imports of the modules listed, and reports their errors too (engine/linux, state/...). Its cache
is kept in .cache/mypy (cold: ~2 s, warm: well under 1 s).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "mypy"

# The create path: `engine create` and the container's init (and `engine exec`, which finishes its process the
# same way), the setup stages, the cgroup managers and controllers (linux.resources), the process's attributes
# (user, capabilities, rlimits, scheduler...), seccomp, the console, the hooks, the LSM labels, the rootless
# adjustments.
CHECKED = [
    "engine/spec",
    "engine/commands/create.py",
    "engine/commands/run.py",
    "engine/create.py",
    "engine/channel.py",
    "engine/init.py",
    "engine/init_plan.py",
    "engine/pty.py",
    "engine/process_setup.py",
    "engine/exec.py",
    "engine/console.py",
    "engine/lsm.py",
    "engine/hookpoints.py",
    "engine/setup",
    "engine/cgroups",
    "engine/linux/kernel.py",
    "engine/linux/namespaces.py",
    "engine/linux/capability_names.py",
    "engine/linux/scm.py",
    "engine/linux/capabilities.py",
    "engine/linux/process_attrs.py",
    "engine/linux/seccomp.py",
    "engine/linux/seccomp_enosys.py",
    "engine/rootless",
    "hooks",
]


def mypy(*paths: str | Path, cache: Path = CACHE) -> subprocess.CompletedProcess[str]:
    # mypy comes with the test extra (pyproject.toml, installed by setup.sh); its settings (the stubs in
    # typings/) are pyproject.toml's [tool.mypy].
    command = [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.11", "--cache-dir", str(cache)]
    return subprocess.run([*command, *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_create_path_passes_mypy_strict() -> None:
    result = mypy(*CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


# (reader, what it says, what is planted, what mypy must say): a misspelled field of a generated TypedDict, read
# with [], .get() or a values.py helper, and a field used as the wrong type.
PLANTED = [
    ("engine/create.py", 'ns_type = ns["type"]', 'ns_type = ns["typ"]', 'TypedDict "Namespace" has no key "typ"'),
    # mypy alone passes this one (td.get of an unknown key is `object`): tests/typecheck/typeddict_keys.py
    (
        "engine/process_setup.py",
        'if linux.get("personality"):',
        'if linux.get("personalty"):',
        'TypedDict "Linux" has no key "personalty"',
    ),
    # ...and through engine/cgroups/values.py's helpers, which take the field's name as a string
    (
        "engine/cgroups/controllers/memory.py",
        'byte_limit(mem, "reservation", w)',
        'byte_limit(mem, "reservaton", w)',
        'TypedDict "Memory" has no key "reservaton"',
    ),
    (
        "engine/create.py",
        "console.check_terminal(terminal, options.console_socket,",
        'console.check_terminal(config["process"].get("consoleSize"), options.console_socket,',
        'Argument 1 to "check_terminal" has incompatible type "ConsoleSize | None"',
    ),
    (
        "engine/setup/rootfs.py",
        'return mount.get("type") == "tmpfs" or',
        'return mount.get("type") == 0 or',
        "Non-overlapping equality check",
    ),
]


@pytest.mark.parametrize(
    ("reader", "original", "planted", "error"),
    PLANTED,
    ids=["field-name", "get-field-name", "helper-field-name", "wrong-type-argument", "wrong-type-compared"],
)
def test_a_planted_fault_fails_the_check(tmp_path: Path, reader: str, original: str, planted: str, error: str) -> None:
    # The check can fail: a copy of the reader with one fault planted, checked as a module of its own.
    text = (REPO / reader).read_text()
    assert original in text, f"{reader} no longer says {original!r}: plant the fault somewhere else"
    copy = tmp_path / Path(reader).name
    copy.write_text(text.replace(original, planted, 1))
    cache = tmp_path / "mypy-cache"  # a copy of the warm cache: the planted module must not land in it
    if CACHE.is_dir():
        shutil.copytree(CACHE, cache)
    result = mypy(copy, cache=cache)
    assert result.returncode == 1, result.stdout + result.stderr
    assert error in result.stdout, result.stdout
