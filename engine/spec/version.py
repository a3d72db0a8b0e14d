"""ociVersion checking: SemVer 2.0.0 syntax plus the range of spec versions this engine implements.

Kept apart from the pydantic models so that code which only needs the version rule (e.g. a state or
features reader) can use it without importing pydantic.
"""

from __future__ import annotations

from _json import encode_basestring  # what json.dumps(s, ensure_ascii=False) uses; `import json` imports re

# The runtime-spec versions this engine accepts in config.json and advertises in features.json. Here rather than in
# engine.spec.constants (which re-exports them) because that module imports typing, and create checks every
# config's version: create imports neither typing nor re for it.
OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.3.0"

# SemVer 2.0.0 (semver.org) by hand rather than with its recommended regular expression: create runs this on every
# container, and `import re` costs milliseconds. Identifiers are ASCII; numeric ones have no leading zeros.
_DIGITS = frozenset("0123456789")
_IDENTIFIER = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")


# (major, minor, patch, pre-release or None, build metadata or None). A plain tuple: NamedTuple means typing.
SemVer = tuple[int, int, int, str | None, str | None]


def _number(text: str) -> bool:
    # semver.org: a numeric identifier is 0 or starts with 1-9.
    return bool(text) and _DIGITS.issuperset(text) and (text == "0" or text[0] != "0")


def _identifiers(text: str, *, prerelease: bool) -> bool:
    # Dot-separated, none empty; a pre-release identifier made of digits only is a number (no leading zero).
    for part in text.split("."):
        if not part or not _IDENTIFIER.issuperset(part):
            return False
        if prerelease and _DIGITS.issuperset(part) and not _number(part):
            return False
    return True


def parse_semver(version: str) -> SemVer | None:
    """The parts of a SemVer 2.0.0 string, or None if it is not one (e.g. "1.0", "v1.0.0", "01.0.0")."""
    rest, plus, build = version.partition("+")
    core, dash, prerelease = rest.partition("-")
    if plus and not _identifiers(build, prerelease=False):
        return None
    if dash and not _identifiers(prerelease, prerelease=True):
        return None
    numbers = core.split(".")
    if len(numbers) != 3 or not all(_number(n) for n in numbers):
        return None
    major, minor, patch = (int(n) for n in numbers)
    return (major, minor, patch, prerelease if dash else None, build if plus else None)


def _known(version: str) -> SemVer:
    parsed = parse_semver(version)
    assert parsed is not None, version
    return parsed


_MIN = _known(OCI_VERSION_MIN)
_MAX = _known(OCI_VERSION_MAX)


def semver_error(version: str) -> str | None:
    """Why `version` is not SemVer 2.0.0 (config.md: ociVersion "MUST be in SemVer v2.0.0 format")."""
    if parse_semver(version) is None:
        return f'must be a SemVer 2.0.0 version such as "{OCI_VERSION_MAX}", got {_quote(version)}'
    return None


def oci_version_error(version: str) -> str | None:
    """Why this engine cannot run a config with this ociVersion, or None if it can.

    Accepted: every 1.x.y from OCI_VERSION_MIN up to the whole OCI_VERSION_MAX minor series (1.0.0 .. 1.3.x),
    with any pre-release or build suffix (1.0.2-dev, 1.1.0-rc.1, 1.2.0+dev). The spec promises backward
    compatibility within a major version, so any older 1.x document is fine; a newer minor may rely on fields
    this engine would silently ignore, and another major (0.x included) is a different format altogether.
    """
    v = parse_semver(version)
    if v is None:
        return semver_error(version)
    major, minor = v[0], v[1]
    if major != _MAX[0] or (major, minor) < (_MIN[0], _MIN[1]) or minor > _MAX[1]:
        return (
            f"version {_quote(version)} is not supported: this runtime implements "
            f"{OCI_VERSION_MIN} through {_MAX[0]}.{_MAX[1]}.x"
        )
    return None


def _quote(s: str) -> str:
    # JSON-style quoting, like every other value in ConfigError messages; it also escapes newlines, which
    # keeps the message on one line.
    return encode_basestring(s)
