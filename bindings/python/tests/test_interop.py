"""The Python results against the other front ends of the same verifier:
the ``mimi-resolve`` CLI and the HTTP gateway, on the same world."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import urllib.parse
import urllib.request
from typing import Any, Dict, List

import pytest

from mimi_dns import Resolution, Resolver

SIIS = [
    "alice@example.com",
    "bob@example.com",
    "carol@mail.example",
    "+39 06 1234 5678",
    "dave@example.com",
    "nobody@example.com",
    "not an sii",
]

PACKAGE = pathlib.Path(__file__).resolve().parent.parent


def as_json(r: Resolution) -> Dict[str, Any]:
    """The typed fields of ``r``, in the JSON shape (lists, outcome names)."""
    return {
        "input": r.input,
        "canonical": r.canonical,
        "outcome": r.outcome.value,
        "verified": [
            {"ssi": v.ssi, "authorities": list(v.authorities), "expires": v.expires}
            for v in r.verified
        ],
        "rejected": [
            {"authority": x.authority, "reason": x.reason, "record": x.record} for x in r.rejected
        ],
        "errors": list(r.errors),
        "zones": list(r.zones),
    }


def compare_fields(r: Resolution, other: Dict[str, Any], source: str) -> None:
    """Every field ``other`` has, equal to the Python result's; and every
    field it lacks empty in the Python result."""
    mine = as_json(r)
    unknown = set(other) - set(mine)
    assert not unknown, f"{source} has fields the Python Resolution lacks: {unknown}"
    for key, value in mine.items():
        if key in other:
            theirs = other[key]
            if key == "rejected":
                # `authority` may be left out when unknown.
                theirs = [{"authority": None, **x} for x in theirs]
            assert value == theirs, f"{r.input}: {key}: python {value!r} != {source} {theirs!r}"
        elif key != "input":
            assert value in (None, []), f"{r.input}: {key} is {value!r} but {source} has none"


@pytest.mark.parametrize("sii", [s for s in SIIS if s != "not an sii"])
def test_json_is_what_mimi_resolve_prints(
    resolver: Resolver, mimi_resolve: str, cli_args: List[str], sii: str
) -> None:
    out = subprocess.run(
        [mimi_resolve, "lookup", sii, "--json", *cli_args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    cli = json.loads(out.stdout)
    r = resolver.lookup(sii)
    assert json.loads(r.json) == cli, out.stderr
    compare_fields(r, cli, "mimi-resolve")


def test_batch_json_is_what_mimi_resolve_batch_prints(
    resolver: Resolver, mimi_resolve: str, cli_args: List[str]
) -> None:
    # `lookup` refuses malformed input with exit status 2 and no JSON;
    # `batch` answers it as a `bad_input` line, like the binding.
    out = subprocess.run(
        [mimi_resolve, "batch", *cli_args],
        input="".join(f"{s}\n" for s in SIIS),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    results = resolver.lookup_batch(SIIS)
    # `batch` adds the input line to every object.
    assert [{"input": r.input, **json.loads(r.json)} for r in results] == lines, out.stderr
    for r, line in zip(results, lines):
        compare_fields(r, line, "mimi-resolve batch")
    assert results[-1].to_dict()["outcome"] == "bad_input"


def gateway_get(base: str, sii: str) -> Dict[str, Any]:
    url = f"{base}/v1/lookup?{urllib.parse.urlencode({'sii': sii})}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "application/json"
        value: Dict[str, Any] = json.load(response)
    return value


@pytest.mark.parametrize("sii", [s for s in SIIS if s != "not an sii"])
def test_the_gateway_agrees_field_by_field(resolver: Resolver, gateway_url: str, sii: str) -> None:
    g = gateway_get(gateway_url, sii)
    r = resolver.lookup(sii)
    compare_fields(r, g, "gateway")
    # The fields the issue names, explicitly.
    assert g["outcome"] == r.outcome.value
    assert g["canonical"] == r.canonical
    assert [(v["ssi"], v["authorities"], v["expires"]) for v in g["verified"]] == [
        (v.ssi, list(v.authorities), v.expires) for v in r.verified
    ]
    assert [x["reason"] for x in g["rejected"]] == [x.reason for x in r.rejected]
    assert g.get("errors", []) == list(r.errors)


def test_the_example_type_checks_under_mypy_strict_and_runs(
    server: str, trust: str, tmp_path: pathlib.Path
) -> None:
    example = PACKAGE / "examples" / "lookup.py"
    check = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(example)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The typed layer itself (its source, as shipped) and this suite are
    # strict-clean too.
    check = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         str(PACKAGE / "python" / "mimi_dns" / "__init__.py"), str(PACKAGE / "tests")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # A deliberate type error is caught: the stubs are really used.
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import mimi_dns\n"
        "r = mimi_dns.Resolver(trust_file='t').lookup('a@b.example')\n"
        "n: int = r.canonical\n"
    )
    check = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert check.returncode == 1 and "Optional[str]" in check.stdout.replace("str | None", "Optional[str]"), check.stdout

    run = subprocess.run(
        [sys.executable, str(example), "--trust", trust, "--server", server,
         "--zone", "dir.chat.example.org", "alice@example.com", "carol@mail.example",
         "nobody@example.com"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "alice@example.com: mimi://chat.example.com/u/alice (example.com, ma.example.net)",
        "carol@mail.example: mimi://chat.example.org/u/carol (chat.example.org)",
        "nobody@example.com: not_found",
    ], run.stdout
