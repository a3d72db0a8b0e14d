"""`engine run` reads config.json once: the bytes it looked in for process.terminal are the ones create validates
(engine/commands/run.py passes them as CreateOptions.config_data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import create as create_module
from engine.cli import Args, Context
from engine.commands import run as run_command
from engine.errors import EngineError
from engine.log import Log
from engine.spec.default import default_config
from state import jsonio


def bundle_with(tmp_path: Path, args: list[str]) -> Path:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config = default_config(args, terminal=False)
    config["root"] = {"path": "rootfs"}
    (tmp_path / "config.json").write_text(jsonio.dumps(config))
    return tmp_path


def test_create_validates_the_bytes_it_is_given(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, ["on-disk"])
    given = jsonio.dumps({**jsonio.loads((bundle / "config.json").read_bytes()), "hostname": "given"}).encode()
    config, rootfs = create_module.load_bundle(str(bundle), given)
    assert config.get("hostname") == "given" and rootfs == str(bundle / "rootfs")
    config, _ = create_module.load_bundle(str(bundle))
    assert config.get("hostname") != "given"  # without bytes: the file's


def test_run_hands_create_the_bytes_it_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b").mkdir()
    bundle = bundle_with(tmp_path / "b", ["true"])
    seen: list[bytes | None] = []

    def fake_create(store: object, options: create_module.CreateOptions, log: Log) -> None:
        seen.append(options.config_data)
        raise EngineError("stop here")

    monkeypatch.setattr(run_command, "create", fake_create)
    ctx = Context(root=str(tmp_path / "root"), log=Log(None), systemd_cgroup=False, hooks_dirs=[])
    args = Args(
        bundle=str(bundle),
        container_id="c1",
        console_socket=None,
        detach=True,
        pid_file=None,
        no_pivot=False,
        preserve_fds=0,
        sync_socket=None,
        keep=False,
    )
    with pytest.raises(EngineError, match="stop here"):
        run_command.run(ctx, args)  # type: ignore[arg-type]
    assert seen == [(bundle / "config.json").read_bytes()]
