"""Whose ``X-Forwarded-For`` is believed: only the proxies the operator names (``--trusted-proxies``), none by default.

A direct visitor can write any ``X-Forwarded-For`` it likes, so the header only counts when the TCP peer is one of
the named proxies; then the client is the right-most hop that is not itself a trusted proxy (each proxy appends the
address it saw, so the hops left of the first untrusted one were written by the visitor and prove nothing).
uvicorn's own rewriting (``FORWARDED_ALLOW_IPS``, which believes every loopback peer) is switched off by ``serve``,
so that this is the only place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The operator's proxies: addresses or networks (``10.0.0.0/8``)."""

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item.strip(), strict=False) for item in addresses
        )

    @classmethod
    def parse(cls, value: str) -> TrustedProxies:
        """``ADDR[,ADDR]`` as the command line gives it; ValueError with one line for a malformed address."""
        items = [item.strip() for item in value.split(",") if item.strip()]
        try:
            return cls(items)
        except ValueError as error:
            raise ValueError(f"--trusted-proxies takes IP addresses or networks, comma-separated ({error})") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        if not host or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(_bare(host))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The visitor's address: ``peer`` itself unless it is a trusted proxy that says whom it forwards."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [_bare(hop.strip()) for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop[:64]
        return hops[0][:64] if hops else peer


def _bare(hop: str) -> str:
    """An address without its port or IPv6 brackets (``[::1]:80`` -> ``::1``, ``1.2.3.4:5`` -> ``1.2.3.4``)."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop
