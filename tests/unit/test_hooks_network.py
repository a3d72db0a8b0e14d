"""hooks.network without root: the interface name and the command line. The real thing is in
tests/integration/test_network_hook.py."""

from __future__ import annotations

import ipaddress

import pytest

from hooks.network import default_ifname, parse_args


def test_default_ifname_fits_ifnamsiz_and_differs_for_ids_sharing_a_prefix() -> None:
    a, b = default_ifname("test-container-1"), default_ifname("test-container-2")
    assert len(a) == 15
    assert a.startswith("ve-")
    assert a != b
    assert default_ifname("test-container-1") == a  # set-up and teardown derive the same name


def test_parse_args() -> None:
    args = parse_args(["--host-addr", "10.200.0.1/30", "--container-addr", "10.200.0.2/30", "--default-route"])
    assert args.host_addr == ipaddress.ip_interface("10.200.0.1/30")
    assert args.container_ifname == "eth0"
    assert args.default_route
    assert parse_args(["--teardown"]).teardown


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--host-addr", "10.200.0.1/30"],
        ["--host-addr", "not-an-address", "--container-addr", "10.200.0.2/30"],
        ["--teardown", "--name", "much-too-long-for-ifnamsiz"],
    ],
)
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    assert "usage: python -m hooks.network" in capsys.readouterr().err
