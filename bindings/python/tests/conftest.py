"""Fixtures: the example world that tests/bindings_python.rs serves.

The driver passes everything in the environment:

- ``MIMI_DNS_SERVER``: ``IP:PORT`` of ``mimi-publisher serve`` with the
  example world's zones;
- ``MIMI_DNS_TRUST``: the world's trust store (min_authorities 1);
- ``MIMI_GATEWAY_URL``: ``http://IP:PORT`` of ``mimi-gateway serve`` on
  the same server and trust store;
- ``MIMI_RESOLVE``: path of the ``mimi-resolve`` binary.
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterator, List

import pytest

import mimi_dns

ZONE = "dir.chat.example.org"
TEL_ROOT = "e164.mimi.example"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: run this suite through `cargo test -p mimi-e2e --test "
            "bindings_python`, which starts the servers and sets it"
        )
    return value


def pytest_sessionstart(session: pytest.Session) -> None:
    # The suite tests the installed wheel, never the source tree.
    source = pathlib.Path(__file__).resolve().parent.parent / "python"
    installed = pathlib.Path(mimi_dns.__file__).resolve()
    if source in installed.parents:
        raise RuntimeError(f"mimi_dns imported from the source tree ({installed}), not the wheel")


@pytest.fixture(scope="session")
def server() -> str:
    return env("MIMI_DNS_SERVER")


@pytest.fixture(scope="session")
def trust() -> str:
    return env("MIMI_DNS_TRUST")


@pytest.fixture(scope="session")
def gateway_url() -> str:
    return env("MIMI_GATEWAY_URL")


@pytest.fixture(scope="session")
def mimi_resolve() -> str:
    return env("MIMI_RESOLVE")


@pytest.fixture(scope="session")
def cli_args(server: str, trust: str) -> List[str]:
    """The resolver options of the CLI and the gateway for this world."""
    return ["--trust", trust, "--server", server, "--zone", ZONE, "--tel-root", TEL_ROOT]


@pytest.fixture(scope="session")
def resolver(server: str, trust: str) -> Iterator[mimi_dns.Resolver]:
    yield mimi_dns.Resolver(
        trust_file=pathlib.Path(trust), servers=[server], zones=[ZONE], tel_roots=[TEL_ROOT]
    )
