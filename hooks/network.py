"""A hook that gives a container a veth link to the runtime's network namespace (pyroute2).

Set-up, as a createRuntime (or prestart) hook, which runs in the runtime namespace once the container's
namespaces exist; the container's init pid comes from the state on stdin:

    python -m hooks.network --host-addr 10.200.0.1/30 --container-addr 10.200.0.2/30 \\
        [--name HOST_IFNAME] [--container-ifname eth0] [--default-route] [--mtu N]

  1. creates a veth pair: HOST_IFNAME in the hook's own network namespace, its peer created directly in the
     container's (/proc/<pid>/ns/net) under --container-ifname, so that name never collides with a host one;
  2. addresses and brings up the host end;
  3. inside the container: brings up lo, addresses and brings up its end, and with --default-route routes
     everything via the host end's address.
If a step fails, the pair is deleted again (deleting one end deletes both): no half-made link is left.

Teardown, as a poststop hook:

    python -m hooks.network --teardown [--name HOST_IFNAME]

deletes the host end if it still exists (when the container's network namespace died with its last process,
the kernel has already removed the pair: nothing to do, exit 0).

HOST_IFNAME defaults to "ve-" + the first 12 hex digits of sha256(container id): 15 characters, the kernel's
limit, and unlike a prefix of the id it does not collide for ids that share a beginning. Set-up and teardown
derive the same name from the same id.

Errors go to stderr (the runtime quotes them) and exit 1. Needs CAP_NET_ADMIN in both namespaces.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import sys


def default_ifname(container_id: str) -> str:
    return "ve-" + hashlib.sha256(container_id.encode()).hexdigest()[:12]


def host_ifname(state: dict[str, object], args: argparse.Namespace) -> str:
    if args.name:
        return str(args.name)
    container_id = state.get("id")
    if not isinstance(container_id, str) or not container_id:
        raise ValueError("the state has no container id to name the veth after; pass --name")
    return default_ifname(container_id)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hooks.network", description=__doc__.split("\n")[0])
    parser.add_argument("--teardown", action="store_true", help="delete the host end (a poststop hook)")
    parser.add_argument("--name", help="the host end's name (default: ve-<12 hex of sha256(id)>)")
    parser.add_argument("--host-addr", type=ipaddress.ip_interface, help="the host end's CIDR, e.g. 10.200.0.1/30")
    parser.add_argument("--container-addr", type=ipaddress.ip_interface, help="the container end's CIDR")
    parser.add_argument("--container-ifname", default="eth0", help="the container end's name (default eth0)")
    parser.add_argument("--default-route", action="store_true", help="route via the host end inside")
    parser.add_argument("--mtu", type=int, help="MTU of both ends")
    args = parser.parse_args(argv)
    if not args.teardown and (args.host_addr is None or args.container_addr is None):
        parser.error("--host-addr and --container-addr are required (or --teardown)")
    if args.name is not None and not 0 < len(args.name) <= 15:
        parser.error("--name must be 1 to 15 characters")
    return args


def setup(state: dict[str, object], args: argparse.Namespace) -> str:
    """Create and configure the pair; returns the host end's name."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]  # pyroute2 ships no type information
    from pyroute2.netns import setns  # type: ignore[import-untyped]

    pid = state.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"the state has no container pid (got {pid!r}); run this as a createRuntime hook")
    host_if = host_ifname(state, args)
    ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host:  # this socket stays in the hook's namespace even after setns below
            mtu = {"mtu": args.mtu} if args.mtu else {}
            peer = {"ifname": args.container_ifname, "net_ns_fd": ns_fd, **mtu}
            host.link("add", ifname=host_if, kind="veth", peer=peer, **mtu)
            try:
                index = host.link_lookup(ifname=host_if)[0]
                _address(host, index, args.host_addr)
                host.link("set", index=index, state="up")
                # Only this (single-threaded) process moves; sockets opened from now on live in the container.
                setns(ns_fd, flags=0)
                with IPRoute() as inside:
                    lo = inside.link_lookup(ifname="lo")[0]
                    inside.link("set", index=lo, state="up")
                    peer_index = inside.link_lookup(ifname=args.container_ifname)[0]
                    _address(inside, peer_index, args.container_addr)
                    inside.link("set", index=peer_index, state="up")
                    if args.default_route:
                        default = "0.0.0.0/0" if args.host_addr.version == 4 else "::/0"
                        inside.route("add", dst=default, gateway=str(args.host_addr.ip))
            except BaseException:
                host.link("del", ifname=host_if)
                raise
    finally:
        os.close(ns_fd)
    return host_if


def teardown(state: dict[str, object], args: argparse.Namespace) -> bool:
    """Delete the host end if it exists; True if there was one."""
    from pyroute2 import IPRoute

    host_if = host_ifname(state, args)
    with IPRoute() as host:
        if not host.link_lookup(ifname=host_if):
            return False
        host.link("del", ifname=host_if)
    return True


def _address(ipr: object, index: int, interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
    ipr.addr("add", index=index, address=str(interface.ip), prefixlen=interface.network.prefixlen)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        raw = sys.stdin.buffer.read()
        state = json.loads(raw) if raw.strip() else {}
        if not isinstance(state, dict):
            raise ValueError("the state on stdin is not a JSON object")
        if args.teardown:
            teardown(state, args)
        else:
            setup(state, args)
    except Exception as err:  # a hook reports on stderr and by its exit status, never with a traceback
        print(f"network hook: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
