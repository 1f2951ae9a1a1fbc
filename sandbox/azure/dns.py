"""One UDP DNS server per virtual network, answering as Azure DNS does for that network.

The answers come from :meth:`AzureState.resolve`, so the in-cluster ``nslookup`` that the
behaviour code emulates and a real ``dnspython`` resolver pointed at these ports always agree.
"""

from __future__ import annotations

import asyncio
import logging

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from sandbox.azure.models import AzureState

logger = logging.getLogger(__name__)


def answer(state: AzureState, vnet_id: str, wire: bytes) -> bytes | None:
    """The wire-format reply to one query, or ``None`` when the datagram is not a DNS query."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # a malformed datagram gets no answer, as from a real resolver
        return None
    response = dns.message.make_response(query, recursion_available=True)
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True)
    resolution = state.resolve(name, vnet_id)

    # The CNAME chain is part of every answer, whatever type was asked for.
    owner = question.name
    for target in resolution.cname_chain:
        target_name = dns.name.from_text(target)
        response.answer.append(
            dns.rrset.from_text(
                owner, resolution.ttl, dns.rdataclass.IN, dns.rdatatype.CNAME, target_name.to_text()
            )
        )
        owner = target_name
    if resolution.nxdomain:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A and resolution.addresses:
        response.answer.append(
            dns.rrset.from_text(
                owner, resolution.ttl, dns.rdataclass.IN, dns.rdatatype.A, *resolution.addresses
            )
        )
    if resolution.private:
        # Answers from a private zone are authoritative in Azure DNS's view.
        response.flags |= dns.flags.AA
    return response.to_wire()


class _VnetDnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, state: AzureState, vnet_id: str) -> None:
        self._state = state
        self._vnet_id = vnet_id
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(self._state, self._vnet_id, data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


class VnetDnsServers:
    """The per-VNet resolvers of a sandbox: ``start_for(vnet_id)`` binds one UDP port each."""

    def __init__(self, state: AzureState, *, host: str = "127.0.0.1") -> None:
        self._state = state
        self._host = host
        self._transports: dict[str, asyncio.DatagramTransport] = {}
        self.addresses: dict[str, tuple[str, int]] = {}

    async def start_for(self, vnet_id: str, port: int = 0) -> tuple[str, int]:
        if vnet_id in self.addresses:
            return self.addresses[vnet_id]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _VnetDnsProtocol(self._state, vnet_id), local_addr=(self._host, port)
        )
        self._transports[vnet_id] = transport
        host, bound_port = transport.get_extra_info("sockname")[:2]
        self.addresses[vnet_id] = (host, bound_port)
        logger.info("DNS for %s listens on %s:%d", vnet_id, host, bound_port)
        return self.addresses[vnet_id]

    async def stop(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        self.addresses.clear()
