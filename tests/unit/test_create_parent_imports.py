"""What `engine create`'s own process leaves unloaded on a good config: each module costs every create ~0.1 ms
(engine/hotload.py), and these serve only a config that fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_valid_config_loads_no_error_messages(tmp_path: Path) -> None:
    from engine.spec.default import default_config
    from state import jsonio

    config = tmp_path / "config.json"
    config.write_text(jsonio.dumps(default_config(["true"], terminal=False)))
    probe = (
        f"import sys; sys.path += [{str(REPO)!r}]\n"
        "from engine.spec.document import load_config\n"
        f"load_config({str(config)!r})\n"
        "print('engine.spec.messages' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_bad_config_still_gets_its_one_line_message() -> None:
    from engine.errors import ConfigError
    from engine.spec.document import parse_config

    for text, message in (
        (b'{"ociVersion": "1.3.0", "process": {"args": 1}}', "process.args"),
        (b'{"ociVersion": \n', "invalid JSON at line"),
    ):
        try:
            parse_config(text)
        except ConfigError as err:
            assert message in str(err) and "\n" not in str(err), str(err)
        else:
            raise AssertionError(f"{text!r} was accepted")
