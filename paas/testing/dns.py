"""A real DNS server on 127.0.0.1 and a free UDP port (dnslib), with records tests set and remove.

The product's domain checks (projects.domains) query it through DNS_VERIFY_NAMESERVERS like any resolver:
    with LocalDns() as dns_server:
        settings.DNS_VERIFY_NAMESERVERS = [dns_server.address]
        dns_server.add("www.example.com", "CNAME", "web-shop.apps.example.com")
Names it holds no record for answer NXDOMAIN; a name with records of other types answers NOERROR, empty.
"""

from __future__ import annotations

import threading
from typing import Any

from dnslib import CNAME, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

_RDATA = {"A": A, "CNAME": CNAME, "TXT": TXT}


class _ZoneResolver(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            values = list(self.records.get((name, qtype), []))
            known = any(n == name for n, _ in self.records)
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        for value in values:
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, qtype), rdata=_RDATA[qtype](value), ttl=60))
        return reply


class LocalDns:
    def __init__(self) -> None:
        self._resolver = _ZoneResolver()
        self._server = DNSServer(self._resolver, address="127.0.0.1", port=0,
                                 logger=DNSLogger(logf=lambda _line: None))
        self.address = ""

    def start(self) -> LocalDns:
        self._server.start_thread()
        self.address = f"127.0.0.1:{self._server.server.server_address[1]}"
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()

    def __enter__(self) -> LocalDns:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, name: str, rtype: str, value: str) -> None:
        with self._resolver.lock:
            self._resolver.records.setdefault((name.rstrip(".").lower(), rtype), []).append(value)

    def clear(self, name: str | None = None) -> None:
        with self._resolver.lock:
            for key in [k for k in self._resolver.records if name is None or k[0] == name.rstrip(".").lower()]:
                del self._resolver.records[key]
