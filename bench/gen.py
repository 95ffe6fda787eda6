#!/usr/bin/env python3
"""Deterministic inputs for bench/run.sh (standard library only).

gen.py mappings N FILE          N mappings userI@example.com → mimi://chat.example.com/u/userI
gen.py queries ZONEFILE N FILE  N dnsperf queries: 90% TXT names from the zone, 10% non-existent
gen.py siis N COUNT FILE        COUNT SIIs for `mimi-resolve batch`: 90% of the N users, 10% unknown
gen.py siiqueries SIIFILE FILE  the dnsperf queries (TXT at each SII's home name) of those SIIs
gen.py name SII                 the home discovery name of an email SII under example.com
gen.py p99 FILE                 p99 latency (ms) of the answered queries in `dnsperf -v` output
"""
import base64
import hashlib
import random
import sys


def mappings(n, path):
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"user{i}@example.com,mimi://chat.example.com/u/user{i}\n")


def queries(zonefile, n, path):
    rnd = random.Random(42)
    names = [l.split()[0] for l in open(zonefile) if " IN TXT " in l and "._mimi." in l]
    rnd.shuffle(names)
    with open(path, "w") as f:
        for i in range(n):
            if i % 10 == 9:
                nx = "%032x" % rnd.getrandbits(128)
                f.write(f"{nx}.{nx[:2]}._mimi.example.com. TXT\n")
            else:
                f.write(names[i % len(names)] + " TXT\n")


def siis(n, count, path):
    rnd = random.Random(43)
    with open(path, "w") as f:
        for i in range(count):
            if i % 10 == 9:
                f.write(f"nobody{rnd.getrandbits(48)}@example.com\n")
            else:
                f.write(f"user{rnd.randrange(n)}@example.com\n")


def name(sii):
    """Home discovery name of a plain ASCII email SII (SPEC §1-3: mailto:,
    lower case, SHA-256, base32hex without padding, lower case)."""
    canonical = "mailto:" + sii.strip().lower()
    h = hashlib.sha256(canonical.encode()).digest()
    label = base64.b32hexencode(h).decode().rstrip("=").lower()
    return f"{label}.{label[:2]}._mimi.{canonical.split('@', 1)[1]}."


def siiqueries(siifile, path):
    with open(path, "w") as f:
        for line in open(siifile):
            if line.strip():
                f.write(name(line) + " TXT\n")


def p99(path):
    lat = []
    for line in open(path):
        parts = line.split()
        # "> NOERROR name TYPE 0.000123" (dnsperf -v)
        if len(parts) >= 5 and parts[0] == ">" and parts[1] in ("NOERROR", "NXDOMAIN"):
            try:
                lat.append(float(parts[-1]))
            except ValueError:
                pass
    lat.sort()
    print("%.3f" % (lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "mappings":
        mappings(int(sys.argv[2]), sys.argv[3])
    elif cmd == "queries":
        queries(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "siis":
        siis(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif cmd == "siiqueries":
        siiqueries(sys.argv[2], sys.argv[3])
    elif cmd == "name":
        print(name(sys.argv[2]))
    elif cmd == "p99":
        p99(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")
