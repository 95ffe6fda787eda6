"""The typed API against the example world served by mimi-publisher."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List

import pytest

import mimi_dns
from mimi_dns import Outcome, Resolution, Resolver

# Every SII of the example world and what it comes to (min_authorities 1).
WORLD = {
    "alice@example.com": Outcome.VERIFIED,
    "bob@example.com": Outcome.VERIFIED,
    "carol@mail.example": Outcome.VERIFIED,
    "+39 06 1234 5678": Outcome.VERIFIED,
    "dave@example.com": Outcome.REJECTED,
    "nobody@example.com": Outcome.NOT_FOUND,
    "not an sii": Outcome.BAD_INPUT,
}


def test_alice_is_verified_by_two_authorities(resolver: Resolver) -> None:
    r = resolver.lookup("alice@example.com")
    assert r.outcome is Outcome.VERIFIED and r.outcome.value == str(r.outcome) == "verified"
    assert r.input == "alice@example.com"
    assert r.canonical == "mailto:alice@example.com"
    assert [v.ssi for v in r.verified] == ["mimi://chat.example.com/u/alice"]
    assert r.verified[0].authorities == ("example.com", "ma.example.net")
    # Expiry is a Unix time in the future (the records run for days).
    assert r.verified[0].expires > time.time() + 3600
    assert r.errors == ()


def test_a_telephone_number_has_two_ssis(resolver: Resolver) -> None:
    r = resolver.lookup("+39 06 1234 5678")
    assert r.outcome is Outcome.VERIFIED
    assert r.canonical == "tel:+390612345678"
    assert [v.ssi for v in r.verified] == [
        "im:bob@talk.example.net",
        "mimi://chat.example.org/u/bob",
    ]


def test_bob_is_verified_and_the_replayed_record_rejected(resolver: Resolver) -> None:
    r = resolver.lookup("bob@example.com")
    assert r.outcome is Outcome.VERIFIED
    assert [v.ssi for v in r.verified] == ["mimi://chat.example.com/u/bob"]
    assert len(r.rejected) == 1 and r.rejected[0].authority == "ma.example.net"
    assert r.rejected[0].reason and r.rejected[0].record


def test_carol_is_verified_through_the_distribution_zone(resolver: Resolver) -> None:
    r = resolver.lookup("carol@mail.example")
    assert r.outcome is Outcome.VERIFIED
    assert [(v.ssi, v.authorities) for v in r.verified] == [
        ("mimi://chat.example.org/u/carol", ("chat.example.org",))
    ]


def test_dave_is_rejected_with_the_reason(resolver: Resolver) -> None:
    r = resolver.lookup("dave@example.com")
    assert r.outcome is Outcome.REJECTED
    assert r.verified == ()
    assert r.rejected, r
    assert all(x.reason for x in r.rejected)
    assert any("evil.example.org" in x.record for x in r.rejected), r.rejected
    assert any("scope" in x.reason for x in r.rejected), r.rejected


def test_nobody_is_not_found(resolver: Resolver) -> None:
    r = resolver.lookup("nobody@example.com")
    assert r.outcome is Outcome.NOT_FOUND
    assert r.canonical == "mailto:nobody@example.com"
    assert r.verified == () and r.rejected == ()


def test_malformed_input_is_bad_input_not_an_exception(resolver: Resolver) -> None:
    r = resolver.lookup("not an sii")
    assert r.outcome is Outcome.BAD_INPUT
    assert r.canonical is None and r.verified == ()
    assert len(r.errors) == 1 and "not an sii" in r.errors[0]
    with pytest.raises(TypeError, match="str, not int"):
        resolver.lookup(42)  # type: ignore[arg-type]


def dead_port() -> int:
    # A UDP+TCP port nothing listens on (bound, then released).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_dead_server_is_a_dns_error(trust: str) -> None:
    r = Resolver(
        trust_file=trust, servers=[f"127.0.0.1:{dead_port()}"], timeout_ms=300, attempts=0
    ).lookup("alice@example.com")
    assert r.outcome is Outcome.DNS_ERROR
    assert r.canonical == "mailto:alice@example.com"
    assert r.verified == () and r.errors


def test_a_batch_answers_in_input_order(resolver: Resolver) -> None:
    siis = list(WORLD) * 3
    results = resolver.lookup_batch(siis)
    assert [r.input for r in results] == siis
    assert [r.outcome for r in results] == [WORLD[s] for s in siis]
    # Generators are accepted too.
    assert resolver.lookup_batch(s for s in siis[:3]) == results[:3]
    assert resolver.lookup_batch([]) == []


def test_a_too_large_batch_is_refused(resolver: Resolver) -> None:
    with pytest.raises(mimi_dns.BatchTooLargeError) as e:
        resolver.lookup_batch(["x"] * (mimi_dns.MAX_BATCH + 1))
    assert (e.value.count, e.value.max) == (mimi_dns.MAX_BATCH + 1, mimi_dns.MAX_BATCH)
    # An endless iterator is not consumed past the limit.
    def endless() -> Iterator[str]:
        while True:
            yield "x"

    with pytest.raises(mimi_dns.BatchTooLargeError):
        resolver.lookup_batch(endless())
    with pytest.raises(TypeError):
        resolver.lookup_batch("alice@example.com")


def test_asyncio_single_lookup(resolver: Resolver) -> None:
    async def main() -> Resolution:
        return await resolver.lookup_async("alice@example.com")

    assert asyncio.run(main()) == resolver.lookup("alice@example.com")


def test_asyncio_gather_of_many_lookups(resolver: Resolver) -> None:
    siis = list(WORLD) * 20

    async def main() -> List[Resolution]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        results = await asyncio.gather(*(resolver.lookup_async(s) for s in siis))
        t.cancel()
        # The event loop kept running while the lookups were in flight.
        assert ticks > 0
        return list(results)

    results = asyncio.run(main())
    assert [r.input for r in results] == siis
    assert [r.outcome for r in results] == [WORLD[s] for s in siis]


def test_asyncio_batch(resolver: Resolver) -> None:
    siis = list(WORLD)
    results = asyncio.run(resolver.lookup_batch_async(siis))
    assert results == resolver.lookup_batch(siis)


def test_one_resolver_shared_by_many_threads(resolver: Resolver) -> None:
    expected = {s: resolver.lookup(s) for s in WORLD}
    siis = list(WORLD) * 60
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(resolver.lookup, siis))
        batches = list(pool.map(resolver.lookup_batch, [list(WORLD)] * 16))
    for s, r in zip(siis, results):
        assert r == expected[s], s
    for b in batches:
        assert b == [expected[s] for s in WORLD]


def test_results_are_immutable_comparable_values(resolver: Resolver) -> None:
    a = resolver.lookup("alice@example.com")
    b = resolver.lookup("alice@example.com")
    assert a == b and hash(a) == hash(b)
    assert a != resolver.lookup("bob@example.com")
    assert dataclasses.is_dataclass(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.outcome = Outcome.REJECTED  # type: ignore[misc]
    text = repr(a)
    assert text.startswith("Resolution(input='alice@example.com'")
    assert "mimi://chat.example.com/u/alice" in text and "Outcome.VERIFIED" in text
    assert a.to_dict()["outcome"] == "verified"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"servers": ["127.0.0.1:53", "udp://x"]}, "servers[1]"),
        ({"servers": "127.0.0.1:53"}, "servers"),
        ({"servers": ["127.0.0.1:53", 53]}, "servers[1]"),
        ({"zones": ["ok.example", "bad..name"]}, "zones[1]"),
        ({"tel_roots": [".."]}, "tel_roots[0]"),
        ({"region": "XX1"}, "region"),
        ({"timeout_ms": -1}, "timeout_ms"),
        ({"timeout_ms": "fast"}, "timeout_ms"),
        ({"dnssec": "maybe"}, "dnssec"),
        ({"home": "yes"}, "home"),
        ({"trust_toml": "x = 1"}, "trust_toml"),
    ],
)
def test_configuration_errors_name_the_field(trust: str, kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    args = {"trust_file": trust, **kwargs}
    with pytest.raises(mimi_dns.ConfigError) as e:
        Resolver(**args)
    assert e.value.field == field, e.value
    assert isinstance(e.value, mimi_dns.ResolverError)
    assert str(e.value).startswith(f"{field}: ") and e.value.message


def test_trust_store_errors_name_the_field(tmp_path: object) -> None:
    with pytest.raises(mimi_dns.ConfigError) as e:
        Resolver(trust_file="/nonexistent/trust.toml")
    assert e.value.field == "trust_file" and "/nonexistent/trust.toml" in e.value.message
    with pytest.raises(mimi_dns.ConfigError) as e:
        Resolver()
    assert e.value.field in ("trust_file", "trust_toml"), e.value
    with pytest.raises(mimi_dns.ConfigError) as e:
        Resolver(trust_toml="[[authority]]\nname = 3\n")
    assert e.value.field == "trust_toml", e.value
