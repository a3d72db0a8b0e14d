"""hooks.dropins: oci-hooks(5) 1.0.0 files, directory masking, file order, AND-ed `when` conditions, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hooks.dropins import (
    DropInError,
    config_has_bind_mounts,
    load_dropin,
    load_dropins,
    matching_hooks,
    merge,
)

HOOK = "/bin/true"


def write(directory: Path, name: str, doc: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def dropin(when: dict, stages: list[str] | None = None, **hook: object) -> dict:
    return {"version": "1.0.0", "hook": {"path": HOOK, **hook}, "when": when, "stages": stages or ["prestart"]}


def config(args: list[str] | None = None, annotations: dict | None = None, mounts: list | None = None) -> dict:
    cfg: dict = {"process": {"args": args or ["/bin/sh"]}}
    if annotations is not None:
        cfg["annotations"] = annotations
    if mounts is not None:
        cfg["mounts"] = mounts
    return cfg


def matches(when: dict, cfg: dict, tmp_path: Path, **kw: object) -> bool:
    return load_dropin(str(write(tmp_path, "h.json", dropin(when)))).matches(cfg, **kw)  # type: ignore[arg-type]


def test_parse_a_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "01-net.json",
        dropin(
            {"annotations": {"^io\\.x$": "on"}, "commands": [".*/init$"], "hasBindMounts": True},
            ["createRuntime", "poststop", "createRuntime"],
            args=["net", "--up"],
            env=["A=1"],
            timeout=5,
            unknownHookKey="ignored",
        ),
    )
    d = load_dropin(str(path))
    assert d.name == "01-net.json"
    assert d.path == str(path)
    assert d.hook == {"path": HOOK, "args": ["net", "--up"], "env": ["A=1"], "timeout": 5}
    assert d.stages == ("createRuntime", "poststop")  # a stage listed twice injects once
    assert d.has_bind_mounts is True


def test_later_directory_masks_same_name_and_order_is_by_lowercased_name(tmp_path: Path) -> None:
    low, high = tmp_path / "usr-share", tmp_path / "etc"
    write(low, "01-my-hook.json", dropin({"always": True}, args=["low"]))
    write(high, "01-my-hook.json", dropin({"always": True}, args=["high"]))
    write(low, "02-another-hook.json", dropin({"always": True}, args=["another"]))
    write(high, "01-UPPERCASE.json", dropin({"always": True}, args=["upper"]))
    write(low, "README", "not a hook")
    (high / "dir.json").mkdir()
    dropins = load_dropins([str(low), str(high), str(tmp_path / "missing")])
    # oci-hooks(5)'s own example: 01-my-hook before 01-UPPERCASE ("01-uppercase") before 02-another-hook.
    assert [d.name for d in dropins] == ["01-my-hook.json", "01-UPPERCASE.json", "02-another-hook.json"]
    assert dropins[0].hook["args"] == ["high"]
    assert dropins[0].path == str(high / "01-my-hook.json")


def test_no_directories_no_dropins(tmp_path: Path) -> None:
    assert load_dropins([]) == []
    assert load_dropins([str(tmp_path / "absent")]) == []


def test_always(tmp_path: Path) -> None:
    assert matches({"always": True}, config(), tmp_path)
    assert not matches({"always": False}, config(), tmp_path)


def test_commands_match_args0_with_any_regex_unanchored(tmp_path: Path) -> None:
    when = {"commands": [".*/init$", "systemd"]}
    assert matches(when, config(["/sbin/init"]), tmp_path)
    assert matches(when, config(["/usr/lib/systemd/systemd-x"]), tmp_path)  # search, not fullmatch
    assert not matches(when, config(["/bin/sh", "/sbin/init"]), tmp_path)  # args[0] only
    assert not matches(when, {"process": {"args": []}}, tmp_path)
    assert not matches(when, {}, tmp_path)


def test_annotations_every_pair_must_match_some_annotation(tmp_path: Path) -> None:
    when = {"annotations": {"^com\\.example\\.department$": ".*fluid-dynamics$", "^gpu$": "^yes$"}}
    both = {"com.example.department": "r&d fluid-dynamics", "gpu": "yes", "other": "x"}
    assert matches(when, config(annotations=both), tmp_path)
    assert not matches(when, config(annotations={"com.example.department": "fluid-dynamics"}), tmp_path)
    assert not matches(when, config(annotations={**both, "gpu": "no"}), tmp_path)
    assert not matches(when, config(), tmp_path)
    # The caller may supply the annotations to match (podman passes its own).
    assert matches(when, config(), tmp_path, annotations=both)


def test_has_bind_mounts(tmp_path: Path) -> None:
    bind = [{"destination": "/data", "source": "/srv", "options": ["rbind", "ro"]}]
    assert matches({"hasBindMounts": True}, config(mounts=bind), tmp_path)
    assert not matches({"hasBindMounts": True}, config(mounts=[{"destination": "/proc", "type": "proc"}]), tmp_path)
    assert not matches({"hasBindMounts": True}, config(mounts=bind), tmp_path, has_bind_mounts=False)
    # As in podman, hasBindMounts: false does not mean "has none": it never matches.
    assert not matches({"hasBindMounts": False}, config(), tmp_path)


def test_conditions_are_anded(tmp_path: Path) -> None:
    when = {"always": True, "commands": ["init$"], "annotations": {"^a$": "^1$"}}
    assert matches(when, config(["/init"], {"a": "1"}), tmp_path)
    assert not matches(when, config(["/init"], {"a": "2"}), tmp_path)
    assert not matches(when, config(["/bin/sh"], {"a": "1"}), tmp_path)
    assert not matches({**when, "always": False}, config(["/init"], {"a": "1"}), tmp_path)


def test_matching_hooks_per_stage_in_file_order_and_merge_after_config(tmp_path: Path) -> None:
    write(tmp_path, "20-b.json", dropin({"always": True}, ["prestart", "poststop"], args=["b"]))
    write(tmp_path, "10-a.json", dropin({"always": True}, ["prestart"], args=["a"]))
    write(tmp_path, "30-never.json", dropin({"commands": ["^nope$"]}, ["prestart"], args=["never"]))
    dropins = load_dropins([str(tmp_path)])
    extra = matching_hooks(dropins, config())
    assert extra == {
        "prestart": [{"path": HOOK, "args": ["a"]}, {"path": HOOK, "args": ["b"]}],
        "poststop": [{"path": HOOK, "args": ["b"]}],
    }
    own = {"prestart": [{"path": "/own"}], "poststart": [{"path": "/own2"}]}
    merged = merge(own, extra)
    assert merged == {
        "prestart": [{"path": "/own"}, {"path": HOOK, "args": ["a"]}, {"path": HOOK, "args": ["b"]}],
        "poststart": [{"path": "/own2"}],
        "poststop": [{"path": HOOK, "args": ["b"]}],
    }
    assert own == {"prestart": [{"path": "/own"}], "poststart": [{"path": "/own2"}]}  # untouched
    assert merge(None, {}) == {}
    # The returned hooks are copies: changing them does not change the drop-in.
    extra["prestart"][0]["args"].append("mutated")
    assert dropins[0].hook["args"] == ["a"]


def test_extension_stages(tmp_path: Path) -> None:
    write(tmp_path, "x.json", dropin({"always": True}, ["precreate"]))
    with pytest.raises(DropInError, match="unknown stage 'precreate'"):
        load_dropins([str(tmp_path)])
    [d] = load_dropins([str(tmp_path)], extension_stages=["precreate"])
    assert matching_hooks([d], config()) == {"precreate": [{"path": HOOK}]}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "invalid JSON: "),
        ("[]", "expected a JSON object, got an array"),
        (
            {"hook": {"path": HOOK}, "when": {"always": True}, "stages": ["prestart"]},
            'no "version": only schema 1.0.0 is supported (0.1.0 files are not)',
        ),
        ({**dropin({"always": True}), "version": "2.0.0"}, "unsupported version '2.0.0' (only 1.0.0 is supported)"),
        ({**dropin({"always": True}), "hook": "/bin/true"}, '"hook" is required and must be an object, got a string'),
        ({**dropin({"always": True}), "hook": {}}, '"hook.path" is required'),
        ({**dropin({"always": True}), "hook": {"path": "true"}}, "\"hook.path\" must be absolute, got 'true'"),
        (
            {**dropin({"always": True}), "hook": {"path": "/does/not/exist"}},
            '"hook.path" /does/not/exist: No such file or directory',
        ),
        (dropin({"always": True}, args="x"), '"hook.args" must be an array of strings'),
        (dropin({"always": True}, env=["NOVALUE"]), "\"hook.env\" entry 'NOVALUE' is not NAME=VALUE"),
        (dropin({"always": True}, timeout=0), '"hook.timeout" must be an integer greater than zero, got 0'),
        (dropin({"always": True}, timeout=1.5), '"hook.timeout" must be an integer greater than zero'),
        ({**dropin({"always": True}), "when": None}, '"when" is required and must be an object, got nothing'),
        (dropin({}), '"when" must set at least one condition'),
        (dropin({"annotation": {"a": "b"}}), "\"when\" has unknown condition 'annotation'"),
        (dropin({"always": "yes"}), "\"when.always\" must be true or false, got 'yes'"),
        (dropin({"commands": "init"}), '"when.commands" must be an array of regex strings'),
        (dropin({"commands": ["["]}), "invalid regex in when.commands entry '['"),
        (dropin({"annotations": {"[": "a"}}), "invalid regex in when.annotations key '['"),
        (dropin({"annotations": {"a": "("}}), "invalid regex in when.annotations value '('"),
        (dropin({"annotations": {"a": 1}}), '"when.annotations" must be an object of regex strings'),
        ({**dropin({"always": True}), "stages": []}, '"stages" is required and must be a non-empty array'),
        (dropin({"always": True}, ["prestart", "later"]), "unknown stage 'later' (known: createContainer"),
    ],
)
def test_invalid_files_give_one_line_naming_the_file(tmp_path: Path, content: object, problem: str) -> None:
    path = write(tmp_path / "d", "01-bad.json", content)
    with pytest.raises(DropInError) as info:
        load_dropins([str(tmp_path / "d")])
    message = str(info.value)
    assert message.startswith(f"hooks.d file {path}: ")
    assert problem in message
    assert "\n" not in message


def test_unreadable_directory_is_an_error(tmp_path: Path) -> None:
    not_a_dir = write(tmp_path, "file", "x")
    with pytest.raises(DropInError, match=f"^hooks.d {not_a_dir}: cannot list: Not a directory$"):
        load_dropins([str(not_a_dir)])


def test_config_has_bind_mounts() -> None:
    assert config_has_bind_mounts({"mounts": [{"destination": "/a", "type": "bind", "source": "/b"}]})
    assert config_has_bind_mounts({"mounts": [{"destination": "/a", "options": ["bind"]}]})
    assert not config_has_bind_mounts({"mounts": [{"destination": "/proc", "type": "proc", "options": ["nosuid"]}]})
    assert not config_has_bind_mounts({})
