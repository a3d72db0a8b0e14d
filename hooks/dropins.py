"""hooks.d drop-ins: the OCI hooks configuration files of oci-hooks(5), as podman and CRI-O read them.

A drop-in is a `*.json` file in a hooks directory, schema version 1.0.0:

    {"version": "1.0.0",
     "hook":   {"path": "/abs/path", "args": [...], "env": ["K=V"], "timeout": 5},
     "when":   {"always": true, "annotations": {"key-regex": "value-regex"}, "commands": ["regex"],
                "hasBindMounts": true},
     "stages": ["prestart", "poststop"]}

Which files count (the semantics of containers/common pkg/hooks, which podman and CRI-O share):
  * Directories are given in INCREASING precedence: a file in a later directory masks the file with the same
    name in an earlier one (podman's default is [/usr/share/containers/oci/hooks.d,
    /etc/containers/oci/hooks.d], so /etc wins). A directory that does not exist is skipped.
  * The surviving files are ordered by their names converted to lower case, by Unicode code point (ties, which
    only differ in case, by the original name): that is the order hooks are injected in within each stage.

When a drop-in matches a container -- ALL the conditions set in `when` must hold (oci-hooks(5): "If *all* of
the conditions set in `when` match"):
  * always: true holds; always: false never holds (so the hook is never injected).
  * annotations: for EVERY key/value regex pair, some annotation of the container has a key matching the key
    regex and a value matching the value regex.
  * commands: process.args[0] matches ANY of the regexes. A config without process.args never matches here
    (podman skips the condition when there is no process; a runtime always has one).
  * hasBindMounts: true holds if the container has bind mounts; hasBindMounts: false never holds (as in
    podman: it does not mean "has no bind mounts").
  Regexes are searched, not anchored (Go's regexp.MatchString); write ^...$ to anchor. Python's `re` stands in
  for Go's RE2 syntax; the two agree on the usual patterns (classes, alternation, anchors, repetition).

Stricter than podman, on purpose: `when` must set at least one condition and must not carry unknown keys (a
misspelt condition would otherwise change which containers get the hook). Unknown keys at the top level and in
`hook` are ignored, as podman ignores them. Schema 0.1.0 (no "version") is not supported. Any invalid file
raises DropInError, one line naming the file and the problem.

How drop-ins join the config's hooks: merge() puts each stage's config.json hooks first, then the matching
drop-ins' hooks in file order (podman appends to the config's hooks the same way).
"""

from __future__ import annotations

import os
import re

import orjson

from hooks.runner import STAGES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from engine.spec.typed import Hook, Spec

    _Bad = Callable[[str], "DropInError"]

VERSION = "1.0.0"
# Podman's default directories, lowest precedence first.
DEFAULT_DIRS = ("/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d")
_WHEN_KEYS = ("always", "annotations", "commands", "hasBindMounts")


class DropInError(ValueError):
    """An invalid hooks.d file or directory; str(err) is one line naming the file and the problem."""


class DropIn:
    """One validated drop-in file. `hook` is the OCI hook dict it injects (path, args?, env?, timeout?)."""

    __slots__ = ("always", "annotations", "commands", "has_bind_mounts", "hook", "name", "path", "stages")

    def __init__(
        self,
        *,
        name: str,
        path: str,
        hook: Hook,
        stages: tuple[str, ...],
        always: bool | None = None,
        annotations: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (),
        commands: tuple[re.Pattern[str], ...] = (),
        has_bind_mounts: bool | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.hook = hook
        self.stages = stages
        self.always = always
        self.annotations = annotations
        self.commands = commands
        self.has_bind_mounts = has_bind_mounts

    def __repr__(self) -> str:
        return f"DropIn({self.path!r}, stages={list(self.stages)})"

    def matches(
        self,
        config: Spec,
        *,
        annotations: Mapping[str, str] | None = None,
        has_bind_mounts: bool | None = None,
    ) -> bool:
        """Whether every condition of `when` holds for this container (see the module docstring).

        annotations defaults to config["annotations"]; has_bind_mounts defaults to config_has_bind_mounts().
        """
        if self.always is not None and not self.always:
            return False
        if self.has_bind_mounts is not None:
            if has_bind_mounts is None:
                has_bind_mounts = config_has_bind_mounts(config)
            if not (self.has_bind_mounts and has_bind_mounts):
                return False
        if self.annotations:
            if annotations is None:
                annotations = config.get("annotations", {})
            pairs = [(k, v) for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)]
            for key_re, value_re in self.annotations:
                if not any(key_re.search(k) and value_re.search(v) for k, v in pairs):
                    return False
        if self.commands:
            args = config.get("process", {}).get("args", [])
            if not args or not isinstance(args[0], str):
                return False
            if not any(command_re.search(args[0]) for command_re in self.commands):
                return False
        return True


def load_dropins(dirs: Iterable[str], *, extension_stages: Iterable[str] = ()) -> list[DropIn]:
    """Read every *.json file of dirs (increasing precedence), masking same-named files of earlier dirs;
    return them in injection order. Raises DropInError for the first invalid file."""
    chosen: dict[str, str] = {}
    for directory in dirs:
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise DropInError(f"hooks.d {directory}: cannot list: {err.strerror or err}") from None
        for name in entries:
            if not name.endswith(".json"):
                continue
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                continue
            chosen[name] = path
    stages = frozenset(STAGES) | frozenset(extension_stages)
    return [load_dropin(chosen[name], allowed_stages=stages) for name in sorted(chosen, key=lambda n: (n.lower(), n))]


def load_dropin(path: str, *, allowed_stages: Iterable[str] = STAGES) -> DropIn:
    """Read and validate one drop-in file."""

    def bad(problem: str) -> DropInError:
        return DropInError(f"hooks.d file {path}: {problem}")

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise bad(f"cannot read: {err.strerror or err}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise bad(f"invalid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise bad(f"expected a JSON object, got {_kind(doc)}")

    version = doc.get("version")
    if version is None:
        raise bad(f'no "version": only schema {VERSION} is supported (0.1.0 files are not)')
    if version != VERSION:
        raise bad(f"unsupported version {version!r} (only {VERSION} is supported)")

    hook = _hook(doc.get("hook"), bad)
    when = doc.get("when")
    if not isinstance(when, dict):
        raise bad(f'"when" is required and must be an object, got {_kind(when)}')
    unknown = sorted(set(when) - set(_WHEN_KEYS))
    if unknown:
        raise bad(f'"when" has unknown condition {unknown[0]!r} (known: {", ".join(_WHEN_KEYS)})')

    always = _optional_bool(when, "always", bad)
    has_bind_mounts = _optional_bool(when, "hasBindMounts", bad)
    annotations = when.get("annotations")
    pairs: list[tuple[re.Pattern[str], re.Pattern[str]]] = []
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            raise bad('"when.annotations" must be an object of regex strings')
        for key, value in annotations.items():
            pairs.append((_regex(key, "when.annotations key", bad), _regex(value, "when.annotations value", bad)))
    commands = when.get("commands")
    command_res: list[re.Pattern[str]] = []
    if commands is not None:
        if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
            raise bad('"when.commands" must be an array of regex strings')
        command_res = [_regex(c, "when.commands entry", bad) for c in commands]
    if always is None and has_bind_mounts is None and not pairs and not command_res:
        raise bad('"when" must set at least one condition (always, annotations, commands, hasBindMounts)')

    stages = doc.get("stages")
    if not isinstance(stages, list) or not stages or not all(isinstance(s, str) for s in stages):
        raise bad('"stages" is required and must be a non-empty array of strings')
    allowed = frozenset(allowed_stages)
    for stage in stages:
        if stage not in allowed:
            raise bad(f"unknown stage {stage!r} (known: {', '.join(sorted(allowed))})")

    return DropIn(
        name=os.path.basename(path),
        path=path,
        hook=hook,
        stages=tuple(dict.fromkeys(stages)),  # a stage listed twice injects the hook once
        always=always,
        annotations=tuple(pairs),
        commands=tuple(command_res),
        has_bind_mounts=has_bind_mounts,
    )


def matching_hooks(
    dropins: Iterable[DropIn],
    config: Spec,
    *,
    annotations: Mapping[str, str] | None = None,
    has_bind_mounts: bool | None = None,
) -> dict[str, list[Hook]]:
    """The hooks the matching drop-ins inject, per stage, in drop-in order. Each hook dict is a fresh copy."""
    result: dict[str, list[Hook]] = {}
    for dropin in dropins:
        if dropin.matches(config, annotations=annotations, has_bind_mounts=has_bind_mounts):
            for stage in dropin.stages:
                result.setdefault(stage, []).append(_copy_hook(dropin.hook))
    return result


def merge(config_hooks: Mapping[str, list[Hook]] | None, extra: Mapping[str, list[Hook]]) -> dict[str, list[Hook]]:
    """config.json's hooks, then the drop-ins' hooks, per stage. Neither input is modified."""
    merged = {stage: list(hooks) for stage, hooks in (config_hooks or {}).items() if hooks is not None}
    for stage, hooks in extra.items():
        if hooks:
            merged.setdefault(stage, []).extend(hooks)
    return merged


def config_has_bind_mounts(config: Spec) -> bool:
    """Whether config.json asks for a bind mount (type "bind", or a "bind"/"rbind" option).

    Podman asks a narrower question (did the *user* request host bind mounts?), which only the caller knows:
    pass has_bind_mounts explicitly to answer that one.
    """
    for mount in config.get("mounts") or ():
        if not isinstance(mount, dict):
            continue
        if mount.get("type") == "bind" or {"bind", "rbind"} & set(mount.get("options") or ()):
            return True
    return False


def _hook(hook: object, bad: _Bad) -> Hook:
    if not isinstance(hook, dict):
        raise bad(f'"hook" is required and must be an object, got {_kind(hook)}')
    path = hook.get("path")
    if not isinstance(path, str) or not path:
        raise bad('"hook.path" is required and must be a non-empty string')
    if not path.startswith("/"):
        raise bad(f'"hook.path" must be absolute, got {path!r}')
    try:
        os.stat(path)
    except OSError as err:
        raise bad(f'"hook.path" {path}: {err.strerror or err}') from None
    args = hook.get("args")
    if args is not None and (not isinstance(args, list) or not all(isinstance(a, str) for a in args)):
        raise bad('"hook.args" must be an array of strings')
    env = hook.get("env")
    if env is not None:
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise bad('"hook.env" must be an array of strings')
        for entry in env:
            name, sep, _value = entry.partition("=")
            if not sep or not name:
                raise bad(f'"hook.env" entry {entry!r} is not NAME=VALUE')
    timeout = hook.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        raise bad(f'"hook.timeout" must be an integer greater than zero, got {timeout!r}')
    valid: Hook = {"path": path}  # and those of args, env, timeout that are set, in that order
    if args is not None:
        valid["args"] = args
    if env is not None:
        valid["env"] = env
    if timeout is not None:
        valid["timeout"] = timeout
    return valid


def _optional_bool(when: dict[str, Any], key: str, bad: _Bad) -> bool | None:
    value = when.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad(f'"when.{key}" must be true or false, got {value!r}')
    return value


def _regex(pattern: str, what: str, bad: _Bad) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise bad(f"invalid regex in {what} {pattern!r}: {err}") from None


def _copy_hook(hook: Hook) -> Hook:
    copy = hook.copy()
    for key in ("args", "env"):  # the lists: a container's changes to its copy stay its own
        if key in copy:
            copy[key] = list(copy[key])
    return copy


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
