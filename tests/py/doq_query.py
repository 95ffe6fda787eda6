#!/usr/bin/env python3
"""One DNS-over-QUIC query with an independent implementation (dnspython
over aioquic), for tests/doq_independent.rs.

    doq_query.py IP PORT CAFILE HOSTNAME QNAME

Prints one JSON object: the response's id, rcode, TXT texts, wire size and
whether it carries an EDNS Padding option (RFC 7830); or {"error": ...}
and exit status 1 when the query fails (e.g. the certificate is not
trusted). The query asks for padding itself (EDNS, padded to 128).
"""
import json
import sys

import dns.edns
import dns.message
import dns.quic
import dns.rcode
import dns.rdatatype


def main():
    ip, port, cafile, hostname, qname = sys.argv[1:6]
    q = dns.message.make_query(qname, dns.rdatatype.TXT, use_edns=0, pad=128)
    q.id = 0  # RFC 9250 §4.2.1
    # What dns.query.quic does, keeping the response's wire form for its size.
    try:
        with dns.quic.SyncQuicManager(verify_mode=cafile, server_name=hostname) as m:
            conn = m.connect(ip, int(port))
            with conn.make_stream(5) as stream:
                stream.send(q.to_wire(), True)
                wire = stream.receive(5)
        r = dns.message.from_wire(wire)
    except Exception as e:  # the reason is what the test checks
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    texts = []
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rd in rrset:
                texts.append(b"".join(rd.strings).decode("ascii", "replace"))
    padded = any(o.otype == dns.edns.OptionType.PADDING for o in r.options)
    print(json.dumps({
        "id": r.id,
        "rcode": dns.rcode.to_text(r.rcode()),
        "txt": texts,
        "size": len(wire),
        "padded": padded,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
