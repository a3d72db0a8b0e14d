"""ociVersion checking: SemVer 2.0.0 syntax plus the range of spec versions this engine implements.

Kept apart from the pydantic models so that code which only needs the version rule (e.g. a state or
features reader) can use it without importing pydantic.
"""

import json
import re
from typing import NamedTuple

from engine.spec.constants import OCI_VERSION_MAX, OCI_VERSION_MIN

# The regular expression recommended by semver.org for SemVer 2.0.0 (numeric identifiers have no leading
# zeros; pre-release and build metadata are dot-separated identifiers).
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


class SemVer(NamedTuple):
    major: int
    minor: int
    patch: int
    prerelease: str | None
    build: str | None


def parse_semver(version: str) -> SemVer | None:
    """The parts of a SemVer 2.0.0 string, or None if it is not one (e.g. "1.0", "v1.0.0", "01.0.0")."""
    m = _SEMVER.fullmatch(version)
    if m is None:
        return None
    return SemVer(int(m[1]), int(m[2]), int(m[3]), m[4], m[5])


_MIN = parse_semver(OCI_VERSION_MIN)
_MAX = parse_semver(OCI_VERSION_MAX)
assert _MIN is not None and _MAX is not None


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
    if v.major != _MAX.major or (v.major, v.minor) < (_MIN.major, _MIN.minor) or v.minor > _MAX.minor:
        return (
            f"version {_quote(version)} is not supported: this runtime implements "
            f"{OCI_VERSION_MIN} through {_MAX.major}.{_MAX.minor}.x"
        )
    return None


def _quote(s: str) -> str:
    # JSON-style quoting, like every other value in ConfigError messages; it also escapes newlines, which
    # keeps the message on one line.
    return json.dumps(s, ensure_ascii=False)
