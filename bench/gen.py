#!/usr/bin/env python3
"""Deterministic inputs for bench/run.sh (standard library only).

gen.py mappings N FILE          N mappings userI@example.com → mimi://chat.example.com/u/userI
gen.py queries ZONEFILE N FILE  N dnsperf queries: 90% TXT names from the zone, 10% non-existent
gen.py siis N COUNT FILE        COUNT SIIs for `mimi-resolve batch`: 90% of the N users, 10% unknown
gen.py siiqueries SIIFILE FILE  the dnsperf queries (TXT at each SII's home name) of those SIIs
gen.py name SII                 the home discovery name of an email SII under example.com
gen.py p99 FILE                 p99 latency (ms) of the answered queries in `dnsperf -v` output
gen.py domains D M FILE         M mappings for each of D domains: userJ@dI.example → mimi://chat.provider.example/u/J-I
gen.py zonequeries DIR N FILE [BIG]  N dnsperf queries over every zone file DIR/*.zone: 90% TXT names
                                of a random zone, 10% non-existent names in one; with BIG (a zone file),
                                one query in ten goes to it instead
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


def domains(d, m, path):
    with open(path, "w") as f:
        for i in range(d):
            for j in range(m):
                f.write(f"user{j}@d{i}.example,mimi://chat.provider.example/u/{j}-{i}\n")


def zone_names(path):
    origin = None
    names = []
    for l in open(path):
        if l.startswith("$ORIGIN"):
            origin = l.split()[1]
        elif " IN TXT " in l and "._mimi." in l:
            names.append(l.split()[0])
        elif origin is None and " IN SOA " in l:
            origin = l.split()[0]
    return origin, names


def zonequeries(directory, n, path, big=None):
    import os
    rnd = random.Random(44)
    zones = []
    for entry in sorted(os.listdir(directory)):
        if entry.endswith(".zone"):
            origin, names = zone_names(os.path.join(directory, entry))
            if names:
                zones.append((origin or entry[: -len(".zone")] + ".", names))
    big_names = zone_names(big)[1] if big else []
    with open(path, "w") as f:
        for i in range(n):
            if big_names and i % 10 == 5:
                f.write(rnd.choice(big_names) + " TXT\n")
                continue
            origin, names = rnd.choice(zones)
            if i % 10 == 9:
                nx = "%032x" % rnd.getrandbits(128)
                zone = origin.split("._mimi.", 1)[-1] if "._mimi." in origin else origin
                f.write(f"{nx}.{nx[:2]}._mimi.{zone.removeprefix('_mimi.')} TXT\n")
            else:
                f.write(rnd.choice(names) + " TXT\n")


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
    elif cmd == "domains":
        domains(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif cmd == "zonequeries":
        zonequeries(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        sys.exit(f"unknown command {cmd}")
