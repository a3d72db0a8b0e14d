"""`engine` as installed two ways works and starts Python lean: setup.sh's wrapper, and a plain `pip install .`.

setup.sh writes .venv/bin/engine with `#!python -SI` and explicit paths (every other test runs that one). A
user who runs `pip install .` into a fresh venv gets bin/engine from the wheel: a /bin/sh + Python script that
starts the venv's python3 with -S -I (pip would drop options from a `#!python` line; see bin/engine). Here a
copy of the checkout is pip-installed into a new venv (its dependencies from the package index, as a user gets
them), and that engine runs a container through its lifecycle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from engine.spec.default import default_config

REPO = Path(__file__).resolve().parents[2]
BASE_PYTHON = getattr(sys, "_base_executable", None) or sys.executable
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".cache", ".git", "__pycache__", "build", "*.egg-info", ".hypothesis", ".pytest_cache", ".ruff_cache"
)


@pytest.fixture(scope="module")
def pip_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the checkout pip-installed (non-editable) into it."""
    base = tmp_path_factory.mktemp("pip-install")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)  # the build writes build/ and *.egg-info into its source
    venv = base / "venv"
    subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return venv


def exec_line(engine: Path, *args: str) -> str:
    """The command the launcher's shell part ends in (`sh -x` shows it), after running it."""
    result = subprocess.run(["sh", "-x", str(engine), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stderr.splitlines() if line.startswith("+ exec "))


def test_pip_installs_the_lean_launcher(pip_venv: Path) -> None:
    engine = pip_venv / "bin" / "engine"
    assert engine.read_text().startswith("#!/bin/sh\n"), "pip installed another script as bin/engine"
    assert exec_line(engine, "--version") == f"+ exec {pip_venv}/bin/python3 -S -I {engine} --version"
    result = subprocess.run([str(engine), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("engine version ")


def test_launcher_called_through_a_symlink(pip_venv: Path, tmp_path: Path) -> None:
    # /usr/local/bin/engine -> /opt/venv/bin/engine: the interpreter is found beside the real file.
    link = tmp_path / "engine"
    link.symlink_to(pip_venv / "bin" / "engine")
    assert exec_line(link, "--version").startswith(f"+ exec {pip_venv}/bin/python3 -S -I {pip_venv}/bin/engine")


def test_pip_installed_engine_runs_a_container(pip_venv: Path, tmp_path: Path, rootfs: Path) -> None:
    engine = str(pip_venv / "bin" / "engine")
    root = tmp_path / "root"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = default_config(["sleep", "60"], terminal=False)
    config["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(config))
    container_id = f"t-{uuid.uuid4().hex[:10]}"

    def run(*args: str) -> str:
        # Files, not pipes: a created init inherits stdio and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run([engine, "--root", str(root), *args], stdout=out, stderr=err, timeout=60).returncode
            out.seek(0)
            err.seek(0)
            assert code == 0, f"engine {' '.join(args)}: {err.read()}"
            return out.read()

    try:
        run("create", "--bundle", str(bundle), container_id)
        assert json.loads(run("state", container_id))["status"] == "created"
        run("start", container_id)
        assert json.loads(run("state", container_id))["status"] == "running"
        run("kill", container_id, "KILL")
        run("delete", "--force", container_id)
        assert not (root / container_id).exists()
    finally:
        subprocess.run([engine, "--root", str(root), "delete", "--force", container_id], capture_output=True)


def test_setup_sh_engine_starts_without_site() -> None:
    engine = Path(sys.executable).with_name("engine")
    first = engine.read_text().splitlines()[0]
    assert first.startswith("#!") and first.endswith(" -SI"), f"{engine}: {first}"
    result = subprocess.run([str(engine), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("engine version ")


def test_setup_sh_venv_runs_on_the_distributions_interpreter() -> None:
    """setup.sh builds the venv on /usr/bin/python3, not on whatever python3 PATH finds first (a pyenv build here,
    ~15% slower to start: README, Performance). The interpreter the `engine` command names is the venv's, whose base
    must be the distribution's."""
    engine = Path(sys.executable).with_name("engine")
    shebang = engine.read_text().splitlines()[0][2:].split()[0]
    base = subprocess.run(
        [shebang, "-S", "-I", "-c", "import sys; print(sys._base_executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(base).resolve() == Path("/usr/bin/python3").resolve(), f"{engine} runs on {base}"


def imported_by(python: Path, engine: Path, *args: str) -> tuple[set[str], str]:
    """The modules `engine <args>` imports through importlib, started as its launcher starts it (-S -I), from -X
    importtime, and the rest of its stderr. (Those engine/hotload.py's bundle runs ahead are not listed.)"""
    command = [str(python), "-S", "-I", "-X", "importtime", str(engine), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    lines = result.stderr.splitlines()
    modules = {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}
    return modules, "\n".join(line for line in lines if not line.startswith("import time:"))


@pytest.mark.parametrize("install", ["pip", "setup.sh"])
def test_launchers_leave_os_out_of_state(install: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # `import os` is ~1 ms of the ~2 ms `engine state` costs above the interpreter; neither launcher may bring it
    # (test_import_budget.py holds the commands to it, from engine.cli on).
    if install == "pip":
        venv = request.getfixturevalue("pip_venv")
        python, engine = venv / "bin" / "python3", venv / "bin" / "engine"
    else:
        python, engine = Path(sys.executable), Path(sys.executable).with_name("engine")
    modules, errors = imported_by(python, engine, "--root", str(tmp_path), "state", "nosuch")
    assert "container 'nosuch' does not exist" in errors, errors  # the command ran
    assert "os" not in modules


def test_pip_launcher_serves_engine_from_the_bundle_once_built(pip_venv: Path, tmp_path: Path) -> None:
    # pip builds no bundle (bin/engine then leaves the hot commands to the path finder, and create and run install
    # engine/hotload.py's finder for the .pyc files); once `python -m engine.hotload_codegen` built one in the
    # install, bin/engine serves engine's modules from it, as setup.sh's launcher does.
    python, engine = pip_venv / "bin" / "python3", pip_venv / "bin" / "engine"
    before, _ = imported_by(python, engine, "--root", str(tmp_path), "state", "nosuch")
    assert {"engine.cli", "engine.commands.state", "state.store"} <= before
    # (cwd: not this checkout, which -m would put first on sys.path)
    subprocess.run([str(python), "-m", "engine.hotload_codegen"], cwd=tmp_path, check=True, capture_output=True)
    bundles = list(pip_venv.glob("lib/python*/site-packages/engine/__pycache__/*.bundle"))
    try:
        assert len(bundles) == 2
        after, errors = imported_by(python, engine, "--root", str(tmp_path), "state", "nosuch")
        assert "container 'nosuch' does not exist" in errors, errors
        assert not {"engine.cli", "engine.commands.state", "state.store"} & after, after
    finally:
        for bundle in bundles:
            bundle.unlink()
