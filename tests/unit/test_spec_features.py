"""engine.spec.features: the features.json document against features-schema.json and the spec text.

Its content is judged from outside engine in tests/integration/test_features.py: by the spec's schemas and
sentences, by runc's `features`, and by engine recognizing every name it lists (never by the constants the
document is built from)."""

import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest
from pydantic import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from engine.spec.features import features_document
from engine.spec.models import Features

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "runtime-spec"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """The runtime-spec checkout (markdown + schema/), which lives next to the repository."""
    if not (SPEC_DIR / "schema").is_dir():
        pytest.skip(f"runtime-spec checkout not found at {SPEC_DIR} (expected as the repo's sibling ../shared)")
    return SPEC_DIR


def validator(spec_dir: Path, name: str) -> jsonschema.Draft4Validator:
    """A draft-04 validator for schema/<name>; its relative $refs (defs.json, ...) resolve via a registry."""
    schema_dir = spec_dir / "schema"
    registry: Registry = Registry().with_resources(
        (p.name, Resource.from_contents(orjson.loads(p.read_bytes()), default_specification=DRAFT4))
        for p in schema_dir.glob("*.json")
    )
    schema = orjson.loads((schema_dir / name).read_bytes())
    return jsonschema.Draft4Validator(schema, registry=registry)


def test_document_validates_against_features_schema(spec_dir: Path) -> None:
    v = validator(spec_dir, "features-schema.json")
    errors = [f"{list(e.path)}: {e.message}" for e in v.iter_errors(features_document())]
    assert errors == []


def test_schema_validator_is_not_vacuous(spec_dir: Path) -> None:
    # The bad example must fail, and an unknown namespace must fail through the $ref into defs-linux.json.
    v = validator(spec_dir, "features-schema.json")
    bad = orjson.loads((spec_dir / "schema/test/features/bad/missing-ociVersionMax.json").read_bytes())
    assert not v.is_valid(bad)
    doc = features_document()
    doc["linux"]["namespaces"].append("nope")
    assert not v.is_valid(doc)


def test_document_is_json_and_fits_the_model() -> None:
    doc = features_document()
    assert orjson.loads(orjson.dumps(doc)) == doc
    assert Features.model_validate(doc).model_dump(by_alias=True, exclude_none=True) == doc


def test_each_call_returns_a_fresh_document() -> None:
    first = features_document()
    first["linux"]["namespaces"].clear()
    first["mountOptions"].append("bogus")
    assert "pid" in features_document()["linux"]["namespaces"]
    assert "bogus" not in features_document()["mountOptions"]


def config_md_mount_options(spec_dir: Path) -> list[str]:
    """The option names of config.md's "Linux mount options" table, in table order."""
    text = (spec_dir / "config.md").read_text()
    table = text[text.index('name="configLinuxMountOptions"') : text.index("[^1]:")]
    return [m.group(1).strip() for m in re.finditer(r"^\s*`([^`]+)`\s*\|", table, re.MULTILINE)]


def test_mount_options_are_config_md_table(spec_dir: Path) -> None:
    table = config_md_mount_options(spec_dir)
    assert len(table) > 50  # the parser found the table
    assert features_document()["mountOptions"] == table


def test_capabilities_are_every_known_cap_in_kernel_order(spec_dir: Path) -> None:
    # runc's features example lists all capabilities up to CAP_CHECKPOINT_RESTORE (40) in kernel order.
    runc = orjson.loads((spec_dir / "schema/test/features/good/runc.json").read_bytes())
    caps = features_document()["linux"]["capabilities"]
    assert caps == runc["linux"]["capabilities"]
    assert caps.index("CAP_SYS_ADMIN") == 21 and caps[-1] == "CAP_CHECKPOINT_RESTORE"
    assert len(set(caps)) == len(caps) == 41


def test_importing_features_is_cheap() -> None:
    # `engine features` must not pay for pydantic; checked in a clean interpreter.
    code = "import sys, engine.spec.features; assert 'pydantic' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_features_model_rejects_bad_enumerations() -> None:
    doc = features_document()
    doc["linux"]["seccomp"]["actions"] = ["SCMP_ACT_NOPE"]
    with pytest.raises(ValidationError):
        Features.model_validate(doc)
