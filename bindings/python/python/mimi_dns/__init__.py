"""DNS-based MIMI user discovery: look SIIs up, get only verified SSIs.

``mimi_dns`` is the Python face of the mimi-dns resolver (Rust, through
uniffi). A :class:`Resolver` holds a trust store, DNS servers and caches;
:meth:`Resolver.lookup` turns an SII (``alice@example.com``,
``+39 06 1234 5678``, ``mailto:…``, ``tel:…``) into a :class:`Resolution`
that keeps the SSIs enough trusted authorities vouch for (``verified``)
apart from the records that were not accepted (``rejected``, each with its
reason). There is no call and no field that yields an SSI that was not
verified: verification is the Rust library's, never re-implemented here.

A lookup never raises: DNS failures, unparsable input and the rest are
outcomes (:class:`Outcome`). Only building a resolver (a bad setting:
:class:`ConfigError`, naming it) and oversized batches raise.

This module is a thin typed layer over the generated uniffi module
``mimi_dns.mimi_dns`` (the same interface Kotlin and Swift get): keyword
arguments instead of a record, immutable dataclasses instead of mutable
records, JSON outcome names, and one exception class per failure.
"""

from __future__ import annotations

import enum
import importlib
import itertools
import json as _json
import os
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = [
    "BatchTooLargeError",
    "ConfigError",
    "Endpoint",
    "MAX_BATCH",
    "Outcome",
    "Rejected",
    "Resolution",
    "Resolver",
    "ResolverError",
    "StartError",
    "UnauthenticatedEndpoints",
    "VerifiedSsi",
]

# The generated module is untyped; everything it returns is converted below
# into the typed classes of this module, so Any stops here.
_ffi: Any = importlib.import_module(".mimi_dns", __name__)

#: At most this many inputs in one batch (the library's limit). An
#: iterator is consumed only this far (plus one, to notice it is longer).
MAX_BATCH = 100_000

_U32_MAX = 2**32 - 1

StrPath = Union[str, "os.PathLike[str]"]


class Outcome(str, enum.Enum):
    """How a lookup ended; the value is the JSON ``outcome`` string, so
    ``Outcome.VERIFIED == "verified"``."""

    #: At least one SSI was verified.
    VERIFIED = "verified"
    #: No mimi records at all.
    NOT_FOUND = "not_found"
    #: Records were found, none verified (see ``rejected``).
    REJECTED = "rejected"
    #: Every DNS source failed (see ``errors``).
    DNS_ERROR = "dns_error"
    #: Private mode, and no zone publishes privacy buckets.
    NO_BUCKETS = "no_buckets"
    #: The input is not an SII, or nothing can be queried for it.
    BAD_INPUT = "bad_input"
    #: A bug in the library; only this lookup failed.
    INTERNAL_ERROR = "internal_error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class VerifiedSsi:
    """An SSI that enough trusted authorities vouch for."""

    #: The SSI, e.g. ``mimi://chat.example.com/u/alice``.
    ssi: str
    #: The trusted authorities that vouch for it, sorted.
    authorities: Tuple[str, ...]
    #: Unix time (seconds) when this result stops being verified.
    expires: int


@dataclass(frozen=True)
class Rejected:
    """A record that was not accepted, and why."""

    #: The authority the record names, when it is well-formed enough.
    authority: Optional[str]
    #: A specific, human-readable reason.
    reason: str
    #: The record text as found.
    record: str


@dataclass(frozen=True)
class Endpoint:
    """One SRV target of a provider host. NOT authenticated."""

    target: str
    port: int
    priority: int
    weight: int


@dataclass(frozen=True)
class UnauthenticatedEndpoints:
    """The SRV endpoints of one provider host of the verified SSIs. SRV
    records are not signed: authenticate the endpoint (TLS for the host)
    before trusting it."""

    host: str
    endpoints: Tuple[Endpoint, ...]
    #: The host declared the service unavailable (target ``.``).
    unavailable: bool


@dataclass(frozen=True)
class Resolution:
    """Everything one lookup came to. Immutable, comparable, hashable."""

    #: The input as given.
    input: str
    #: The canonical SII (``mailto:…``, ``tel:+…``), when the input is one.
    canonical: Optional[str]
    #: How the lookup ended.
    outcome: Outcome
    #: Verified SSIs, sorted by SSI.
    verified: Tuple[VerifiedSsi, ...]
    #: Records not accepted, with reasons.
    rejected: Tuple[Rejected, ...]
    #: Failures that did or did not stop the lookup.
    errors: Tuple[str, ...]
    #: For ``NO_BUCKETS``: the zones consulted.
    zones: Tuple[str, ...]
    #: SRV endpoints, only when the resolver was built with ``endpoints=True``.
    unauthenticated_endpoints: Tuple[UnauthenticatedEndpoints, ...]
    #: The same result as the JSON object ``mimi-resolve lookup --json``
    #: prints (and the HTTP gateway returns), for logging or passing on.
    json: str = field(repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object of :attr:`json`, parsed."""
        value: Dict[str, Any] = _json.loads(self.json)
        return value


class ResolverError(Exception):
    """Why a :class:`Resolver` could not be built or a batch was refused.
    A lookup itself never raises: its failures are outcomes."""


class ConfigError(ResolverError):
    """A setting is unusable; :attr:`field` names it (``servers[1]``,
    ``trust_file``, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StartError(ResolverError):
    """The resolver could not start (its threads, its DNS client)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BatchTooLargeError(ResolverError):
    """More inputs in one batch than the library accepts (:data:`MAX_BATCH`).
    For an iterator, :attr:`count` is ``MAX_BATCH + 1``: it is not consumed
    further."""

    def __init__(self, count: int, max: int) -> None:
        super().__init__(f"{count} inputs in one batch; at most {max} are accepted")
        self.count = count
        self.max = max


def _error(e: BaseException) -> ResolverError:
    if isinstance(e, _ffi.ResolverError.Config):
        return ConfigError(str(e.field), str(e.reason))
    if isinstance(e, _ffi.ResolverError.BatchTooLarge):
        return BatchTooLargeError(int(e.count), int(e.max))
    if isinstance(e, _ffi.ResolverError.Start):
        return StartError(str(e.reason))
    return ResolverError(str(e))


def _opt_str(name: str, value: object) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(name, f"expected a string, not {type(value).__name__}")


def _opt_path(name: str, value: object) -> Optional[str]:
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
        raise ConfigError(name, "expected a text path, not bytes")
    return _opt_str(name, value)


def _opt_bool(name: str, value: object) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(name, f"expected true or false, not {type(value).__name__}")


def _opt_u32(name: str, value: object) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"expected an integer, not {type(value).__name__}")
    if not 0 <= value <= _U32_MAX:
        raise ConfigError(name, f"{value} is out of range 0..={_U32_MAX}")
    return value


def _strings(name: str, value: object) -> List[str]:
    # A lone string is iterable too, and would become one entry per
    # character: refuse it rather than guess.
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(name, f"expected a list of strings, not {type(value).__name__}")
    out: List[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{name}[{i}]", f"expected a string, not {type(item).__name__}")
        out.append(item)
    return out


def _sii(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"an SII is a str, not {type(value).__name__}")
    return value


def _siis(values: Iterable[str]) -> List[str]:
    if isinstance(values, str):
        raise TypeError("lookup_batch takes a list of SIIs, not one str")
    # Sized inputs go to the library whole (it reports their real count);
    # iterators are consumed at most one past the limit.
    items = values if isinstance(values, Sized) else itertools.islice(values, MAX_BATCH + 1)
    return [_sii(v) for v in items]


def _resolution(r: Any) -> Resolution:
    return Resolution(
        input=str(r.input),
        canonical=None if r.canonical is None else str(r.canonical),
        outcome=Outcome[r.outcome.name],
        verified=tuple(
            VerifiedSsi(str(v.ssi), tuple(str(a) for a in v.authorities), int(v.expires))
            for v in r.verified
        ),
        rejected=tuple(
            Rejected(None if x.authority is None else str(x.authority), str(x.reason), str(x.record))
            for x in r.rejected
        ),
        errors=tuple(str(e) for e in r.errors),
        zones=tuple(str(z) for z in r.zones),
        unauthenticated_endpoints=tuple(
            UnauthenticatedEndpoints(
                str(h.host),
                tuple(
                    Endpoint(str(e.target), int(e.port), int(e.priority), int(e.weight))
                    for e in h.endpoints
                ),
                bool(h.unavailable),
            )
            for h in r.unauthenticated_endpoints
        ),
        json=str(r.json),
    )


class Resolver:
    """A resolver: trust store, DNS servers and caches, shared by every
    call. Thread-safe: one resolver may serve many threads and many
    concurrent ``lookup_async`` calls; lookups run on the library's own
    threads (blocking calls release the GIL).

    Every argument is a keyword, with the meaning of the same field of the
    resolver's JSON configuration. Exactly one of ``trust_file`` and
    ``trust_toml`` must be given. A bad setting raises :class:`ConfigError`
    naming it (``servers[1]``, ``timeout_ms``, ``trust_file``).

    :param trust_file: path of the trust store (TOML, SPEC §7).
    :param trust_toml: the trust store's text.
    :param zones: distribution zones queried for every SII.
    :param tel_roots: telephone roots.
    :param region: default region (ISO 3166) of national telephone numbers.
    :param home: whether to query the SIIs' home zones (default true).
    :param servers: ``IP[:PORT]``, ``tls://…``, ``https://…[/PATH]``,
        ``quic://…``; empty: the trust store's ``[dns] servers``, else the
        system's.
    :param tls_name: the name encrypted servers' certificates must carry.
    :param ca_file: PEM file of a private CA for encrypted servers.
    :param private: private mode (ask privacy buckets, never exact names);
        default: the trust store's ``[policy] private``.
    :param timeout_ms: timeout of one DNS request (default 2000).
    :param attempts: retries after a failed request (default 1).
    :param dnssec: ``"off"``, ``"prefer"`` or ``"require"``.
    :param trust_anchor_file: DNSKEY and/or DS records to validate from.
    :param endpoints: also look up the (unauthenticated) SRV endpoints of
        verified SSIs.
    """

    def __init__(
        self,
        *,
        trust_file: Optional[StrPath] = None,
        trust_toml: Optional[str] = None,
        zones: Sequence[str] = (),
        tel_roots: Sequence[str] = (),
        region: Optional[str] = None,
        home: Optional[bool] = None,
        servers: Sequence[str] = (),
        tls_name: Optional[str] = None,
        ca_file: Optional[StrPath] = None,
        private: Optional[bool] = None,
        timeout_ms: Optional[int] = None,
        attempts: Optional[int] = None,
        dnssec: Optional[str] = None,
        trust_anchor_file: Optional[StrPath] = None,
        endpoints: bool = False,
    ) -> None:
        if not isinstance(endpoints, bool):
            raise ConfigError("endpoints", f"expected true or false, not {type(endpoints).__name__}")
        config = _ffi.Config(
            trust_file=_opt_path("trust_file", trust_file),
            trust_toml=_opt_str("trust_toml", trust_toml),
            zones=_strings("zones", zones),
            tel_roots=_strings("tel_roots", tel_roots),
            region=_opt_str("region", region),
            home=_opt_bool("home", home),
            servers=_strings("servers", servers),
            tls_name=_opt_str("tls_name", tls_name),
            ca_file=_opt_path("ca_file", ca_file),
            private=_opt_bool("private", private),
            timeout_ms=_opt_u32("timeout_ms", timeout_ms),
            attempts=_opt_u32("attempts", attempts),
            dnssec=_opt_str("dnssec", dnssec),
            trust_anchor_file=_opt_path("trust_anchor_file", trust_anchor_file),
            endpoints=endpoints,
        )
        try:
            self._inner: Any = _ffi.Resolver(config)
        except _ffi.ResolverError as e:
            raise _error(e) from None

    def lookup(self, sii: str) -> Resolution:
        """Looks one SII up, blocking the calling thread (not the others:
        the GIL is released). Never raises for the lookup's sake."""
        return _resolution(self._inner.lookup(_sii(sii)))

    def lookup_batch(self, siis: Iterable[str]) -> List[Resolution]:
        """Looks many SIIs up concurrently, blocking; one result per input,
        in order. Raises :class:`BatchTooLargeError` beyond
        :data:`MAX_BATCH` inputs."""
        try:
            return [_resolution(r) for r in self._inner.lookup_batch(_siis(siis))]
        except _ffi.ResolverError as e:
            raise _error(e) from None

    async def lookup_async(self, sii: str) -> Resolution:
        """:meth:`lookup` for asyncio: the lookup runs on the library's
        threads while the event loop goes on."""
        return _resolution(await self._inner.lookup_async(_sii(sii)))

    async def lookup_batch_async(self, siis: Iterable[str]) -> List[Resolution]:
        """:meth:`lookup_batch` for asyncio."""
        try:
            results = await self._inner.lookup_batch_async(_siis(siis))
        except _ffi.ResolverError as e:
            raise _error(e) from None
        return [_resolution(r) for r in results]
