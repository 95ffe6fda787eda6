"""Looks SIIs up and prints their verified SSIs (an example of mimi_dns).

    python lookup.py --trust trust.toml --server 127.0.0.1:5353 \
        --zone dir.chat.example.org alice@example.com +39 06 1234 5678

A lookup never raises: a DNS failure, an unparsable SII, a record nobody
trusted are outcomes. Building the resolver raises ``ConfigError`` naming
the setting that is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List

import mimi_dns


async def lookup_all(resolver: mimi_dns.Resolver, siis: List[str]) -> List[mimi_dns.Resolution]:
    # Concurrent lookups on the resolver's own threads.
    return list(await asyncio.gather(*(resolver.lookup_async(s) for s in siis)))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--trust", required=True)
    p.add_argument("--server", action="append", default=[])
    p.add_argument("--zone", action="append", default=[])
    p.add_argument("sii", nargs="+")
    args = p.parse_args()
    try:
        resolver = mimi_dns.Resolver(trust_file=args.trust, servers=args.server, zones=args.zone)
    except mimi_dns.ConfigError as e:
        print(f"bad setting {e.field}: {e.message}", file=sys.stderr)
        return 2
    for r in asyncio.run(lookup_all(resolver, args.sii)):
        if r.outcome is mimi_dns.Outcome.VERIFIED:
            for v in r.verified:
                print(f"{r.input}: {v.ssi} ({', '.join(v.authorities)})")
        else:
            print(f"{r.input}: {r.outcome}")
            for x in r.rejected:
                print(f"  rejected: {x.reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
