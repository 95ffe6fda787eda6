#!/usr/bin/env python3
"""A slow secondary for bench/transfer-rss.sh (standard library only).

axfr_reader.py PORT ZONE RATE   asks 127.0.0.1:PORT for an AXFR of ZONE over
TCP and reads it at no more than RATE octets per second (averaged since the
request; 0 = as fast as it can), with a 256 KiB receive buffer so that the
server feels the pace. Prints one JSON line: octets, messages, records,
seconds, and whether the stream ended with the closing SOA.
"""
import json
import socket
import struct
import sys
import time


def skip_name(m, i):
    while True:
        n = m[i]
        if n >= 0xC0:
            return i + 2
        if n == 0:
            return i + 1
        i += n + 1


def axfr_query(zone):
    q = b"".join(bytes([len(l)]) + l.encode() for l in zone.strip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x4D49, 0, 1, 0, 0, 0) + q + struct.pack(">HH", 252, 1)


def main():
    port, zone, rate = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.settimeout(120)
    s.connect(("127.0.0.1", port))
    q = axfr_query(zone)
    start = time.monotonic()
    s.sendall(struct.pack(">H", len(q)) + q)
    buf = bytearray()
    octets = messages = records = soas = 0
    error = None
    while soas < 2 and error is None:
        chunk = s.recv(65536)
        if not chunk:
            error = "closed by the server before the closing SOA"
            break
        octets += len(chunk)
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from(">H", buf)[0]:
            n = struct.unpack_from(">H", buf)[0]
            m = bytes(buf[2:2 + n])
            del buf[:2 + n]
            messages += 1
            rcode = m[3] & 0x0F
            if rcode:
                error = f"rcode {rcode}"
                break
            qd, an = struct.unpack_from(">HH", m, 4)
            i = 12
            for _ in range(qd):
                i = skip_name(m, i) + 4
            for _ in range(an):
                i = skip_name(m, i)
                rtype, _, _, rdlen = struct.unpack_from(">HHIH", m, i)
                i += 10 + rdlen
                records += 1
                soas += rtype == 6
        if rate > 0:
            due = start + octets / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    s.close()
    print(json.dumps({
        "octets": octets, "messages": messages, "records": records,
        "seconds": round(time.monotonic() - start, 2),
        "complete": soas == 2 and error is None, "error": error,
    }))


if __name__ == "__main__":
    main()
