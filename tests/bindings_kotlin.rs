//! The Kotlin and Swift bindings, generated from the one uniffi interface
//! (`bindings/uniffi`) by the crate's own `uniffi-bindgen`, as
//! `bindings/generate.sh` does.
//!
//! Kotlin is tested end to end: the generated source and
//! `bindings/kotlin/LookupTest.kt` are compiled with Debian's `kotlinc`,
//! run on Debian's JDK with Debian's JNA and kotlinx-coroutines, and look
//! up the example world served by the real `mimi-publisher serve`.
//! Debian 12's `kotlinc` is 1.3.31, and uniffi 0.29 writes Kotlin 1.4+
//! syntax; [`for_kotlin_1_3`] bridges exactly that gap, and nothing else
//! (see its documentation).
//!
//! Swift is generated only (no Swift compiler is packaged in Debian 12):
//! the test checks the generated declarations, and compiles (with Clang,
//! which Swift imports C with), links and runs the plain-C part
//! (`MimiDnsFFI.h`) against the library, calling
//! the same contract-version and checksum functions the Swift module
//! checks when it loads.

use std::path::{Path, PathBuf};
use std::process::Command;

use mimi_e2e::world::World;
use mimi_e2e::{bin, free_port, require};

/// The built library of `bindings/uniffi` (`libmimi_dns.so`), built
/// for the source this test runs with.
fn library() -> PathBuf {
    mimi_e2e::c_library("mimi-resolver-uniffi", "libmimi_dns.so")
}

/// Runs `uniffi-bindgen generate` for `language` into `out`.
fn generate(language: &str, out: &Path) {
    let o = Command::new(bin("uniffi-bindgen"))
        .args(["generate", "--no-format", "--library"])
        .arg(library())
        .args(["--language", language, "--out-dir"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "uniffi-bindgen generate --language {language}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The text from `start` to the first `end` after it, panicking (with the
/// file's name) when `start` is missing.
fn block<'a>(src: &'a str, what: &str, start: &str, end: &str) -> &'a str {
    let i = src
        .find(start)
        .unwrap_or_else(|| panic!("{what}: no `{start}` in the generated code"));
    let rest = &src[i..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

fn assert_has(src: &str, what: &str, needles: &[&str]) {
    let missing: Vec<_> = needles.iter().filter(|n| !src.contains(**n)).collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}");
}

/// `src` without `/* … */` comments and without whitespace.
fn flat(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("/*") {
        out.extend(rest[..i].chars().filter(|c| !c.is_whitespace()));
        rest = rest[i..].split_once("*/").map_or("", |(_, after)| after);
    }
    out.extend(rest.chars().filter(|c| !c.is_whitespace()));
    out
}

/// A jar of a Debian package, or a panic naming the package.
fn jar(name: &str, package: &str) -> PathBuf {
    let p = Path::new("/usr/share/java").join(name);
    assert!(
        p.exists(),
        "{} not found: install the Debian package {package} (tests/run.sh does)",
        p.display()
    );
    p
}

/// The generated Kotlin, made acceptable to Debian 12's kotlinc 1.3.31,
/// and the number of trailing commas removed.
///
/// uniffi 0.29 generates Kotlin for 1.4 and later; the only constructs
/// 1.3.31 rejects are (found by compiling it):
/// - trailing commas in parameter and argument lists (`f(a, b,)`,
///   Kotlin 1.4): "expecting a parameter declaration" / "expecting an
///   argument". Removing a comma that only whitespace separates from `)`
///   changes no meaning.
/// - `import kotlinx.coroutines.DelicateCoroutinesApi`
///   (kotlinx-coroutines 1.5; Debian has 1.0.1): imported but not used,
///   so the line is dropped; the function panics if the name is used
///   anywhere else.
///
/// Everything else (unsigned types, `suspendCancellableCoroutine`,
/// `java.lang.ref.Cleaner`, JNA structures and callbacks) compiles and
/// runs as generated.
fn for_kotlin_1_3(src: &str) -> (String, usize) {
    const IMPORT: &str = "import kotlinx.coroutines.DelicateCoroutinesApi";
    let src: String = src
        .lines()
        .filter(|l| l.trim() != IMPORT)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        !src.contains("DelicateCoroutinesApi"),
        "the generated Kotlin uses DelicateCoroutinesApi beyond its import: \
         for_kotlin_1_3 must learn to handle it"
    );
    let mut out = String::with_capacity(src.len());
    let mut removed = 0;
    for (i, c) in src.char_indices() {
        if c == ',' && src[i + 1..].trim_start().starts_with(')') {
            removed += 1;
            continue;
        }
        out.push(c);
    }
    (out, removed)
}

/// Every type, field and call of the interface, in the Kotlin as
/// generated (before [`for_kotlin_1_3`]), and no other call on the
/// resolver: in particular none that could return an unverified SSI.
#[test]
fn kotlin_bindings_declare_the_whole_interface() {
    let dir = tempfile::tempdir().unwrap();
    generate("kotlin", dir.path());
    // uniffi.toml: package org.mimidns.
    let kt = read(&dir.path().join("org/mimidns/mimi_dns.kt"));
    assert_has(&kt, "mimi_dns.kt", &["package org.mimidns\n"]);
    assert_has(
        &kt,
        "mimi_dns.kt",
        &[
            "open class Resolver: Disposable, AutoCloseable, ResolverInterface",
            "constructor(`config`: Config)",
            "enum class Outcome",
            "sealed class ResolverException: kotlin.Exception()",
        ],
    );
    let calls = block(
        &kt,
        "mimi_dns.kt",
        "public interface ResolverInterface",
        "\n}",
    );
    let mut funs: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.trim().strip_prefix("suspend ").or(Some(l.trim())))
        .filter_map(|l| l.strip_prefix("fun `"))
        .map(|l| &l[..l.find('`').unwrap()])
        .collect();
    funs.sort();
    assert_eq!(
        funs,
        ["lookup", "lookupAsync", "lookupBatch", "lookupBatchAsync"],
        "{calls}"
    );
    assert_has(
        calls,
        "ResolverInterface",
        &[
            "fun `lookup`(`sii`: kotlin.String): Resolution",
            "suspend fun `lookupAsync`(`sii`: kotlin.String): Resolution",
            "fun `lookupBatch`(`siis`: List<kotlin.String>): List<Resolution>",
            "suspend fun `lookupBatchAsync`(`siis`: List<kotlin.String>): List<Resolution>",
        ],
    );
    for (record, fields) in [
        (
            "Config",
            &[
                "trustFile",
                "trustToml",
                "zones",
                "telRoots",
                "region",
                "home",
                "servers",
                "tlsName",
                "caFile",
                "private",
                "timeoutMs",
                "attempts",
                "dnssec",
                "trustAnchorFile",
                "endpoints",
            ][..],
        ),
        (
            "Resolution",
            &[
                "input",
                "canonical",
                "outcome",
                "verified",
                "rejected",
                "errors",
                "zones",
                "unauthenticatedEndpoints",
                "json",
            ],
        ),
        ("VerifiedSsi", &["ssi", "authorities", "expires"]),
        ("Rejected", &["authority", "reason", "record"]),
        ("Endpoint", &["target", "port", "priority", "weight"]),
        (
            "UnauthenticatedEndpoints",
            &["host", "endpoints", "unavailable"],
        ),
    ] {
        let decl = block(
            &kt,
            "mimi_dns.kt",
            &format!("data class {record} ("),
            "companion",
        );
        let wanted: Vec<String> = fields.iter().map(|f| format!("var `{f}`:")).collect();
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        assert_has(decl, record, &wanted);
        assert_eq!(
            decl.matches("var `").count(),
            fields.len(),
            "{record} has other fields: {decl}"
        );
    }
    let outcome = block(&kt, "mimi_dns.kt", "enum class Outcome", "companion");
    assert_has(
        outcome,
        "Outcome",
        &[
            "VERIFIED",
            "NOT_FOUND",
            "REJECTED",
            "DNS_ERROR",
            "NO_BUCKETS",
            "BAD_INPUT",
            "INTERNAL_ERROR",
        ],
    );
    let error = block(
        &kt,
        "mimi_dns.kt",
        "sealed class ResolverException",
        "companion object ErrorHandler",
    );
    assert_has(
        error,
        "ResolverException",
        &[
            "class Config(",
            "val `field`: kotlin.String",
            "val `reason`: kotlin.String",
            "class Start(",
            "class BatchTooLarge(",
            "val `count`: kotlin.ULong",
            "val `max`: kotlin.ULong",
        ],
    );
}

/// `bindings/kotlin/LookupTest.kt` against the served example world:
/// verified, rejected, not found, bad input, a batch, the suspend
/// functions, a configuration error and a dead server, through the
/// generated Kotlin compiled by Debian's kotlinc and run on Debian's JDK.
#[test]
fn kotlin_resolves_the_example_world_end_to_end() {
    let kotlinc = require("kotlinc", "kotlin");
    let java = require("java", "default-jdk-headless");
    let jna = jar("jna.jar", "libjna-java");
    let coroutines = jar("kotlinx-coroutines-core.jar", "libkotlinx-coroutines-java");
    let stdlib = jar("kotlin-stdlib.jar", "kotlin");
    // kotlinx-coroutines 1.0 needs atomicfu at run time (runBlocking).
    let atomicfu = jar("atomicfu.jar", "libkotlinx-atomicfu-java");

    let w = World::new();
    let trust = w.write_trust(1);
    let generated = w.ws.path("kotlin");
    generate("kotlin", &generated);
    let (src, removed) = for_kotlin_1_3(&read(&generated.join("org/mimidns/mimi_dns.kt")));
    assert!(
        removed > 0,
        "no trailing commas: is uniffi's Kotlin 1.3-clean now?"
    );
    let compat = w.ws.write("kotlin13/mimi_dns.kt", &src);
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/kotlin/LookupTest.kt");
    let jar_out = w.ws.path("lookup-test.jar");
    let classpath = |extra: &[&Path]| {
        std::env::join_paths(
            extra
                .iter()
                .copied()
                .chain([jna.as_path(), coroutines.as_path()]),
        )
        .unwrap()
    };
    let o = Command::new(&kotlinc)
        .arg("-nowarn")
        .arg("-cp")
        .arg(classpath(&[]))
        .arg(&compat)
        .arg(&program)
        .arg("-d")
        .arg(&jar_out)
        .output()
        .unwrap();
    assert!(
        o.status.success() && jar_out.exists(),
        "kotlinc failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let (_serve, addr) = w.serve_daemon();
    let dead = format!("127.0.0.1:{}", free_port());
    let o = Command::new(&java)
        .arg(format!(
            "-Djna.library.path={}",
            library().parent().unwrap().display()
        ))
        .arg("-cp")
        .arg(classpath(&[&jar_out, &stdlib, &atomicfu]))
        .arg("LookupTestKt")
        .arg(addr.to_string())
        .arg(&trust)
        .arg(&dead)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "LookupTest.kt failed ({}):\n{stdout}\n{stderr}",
        o.status
    );
    assert!(
        stdout.contains("kotlin: all lookups as expected"),
        "{stdout}\n{stderr}"
    );
}

/// The Swift bindings are generated (Swift itself cannot be compiled
/// here): `MimiDns.swift` declares the resolver, its calls and the
/// records; `MimiDnsFFI.h` compiles as C (Clang) and, linked against the library,
/// every function it declares resolves and the contract version and API
/// checksums are the ones `MimiDns.swift` checks when it loads.
#[test]
fn swift_bindings_are_generated() {
    // Clang: the header uses Clang's nullability qualifiers (`_Nonnull`),
    // and Clang is what Swift imports C headers with.
    let cc = require("clang", "clang");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate("swift", out);
    // uniffi.toml: module MimiDns, FFI module MimiDnsFFI.
    let swift = read(&out.join("MimiDns.swift"));
    let header = read(&out.join("MimiDnsFFI.h"));
    let modulemap = read(&out.join("MimiDnsFFI.modulemap"));
    assert_has(
        &modulemap,
        "MimiDnsFFI.modulemap",
        &["module MimiDnsFFI", "header \"MimiDnsFFI.h\""],
    );
    // Compared without comments and whitespace: the generated Swift's
    // spacing is irregular and doc comments sit inside declarations.
    let declarations = flat(&swift);
    let wanted: Vec<String> = [
        "import MimiDnsFFI",
        "open class Resolver: ResolverProtocol",
        "public convenience init(config: Config) throws",
        "open func lookup(sii: String) -> Resolution",
        "open func lookupBatch(siis: [String]) throws -> [Resolution]",
        "open func lookupAsync(sii: String) async -> Resolution",
        "open func lookupBatchAsync(siis: [String]) async throws -> [Resolution]",
        "public struct Config {",
        "public struct Resolution {",
        "public var verified: [VerifiedSsi]",
        "public var rejected: [Rejected]",
        "public var errors: [String]",
        "public var json: String",
        "public struct VerifiedSsi {",
        "public var ssi: String",
        "public var authorities: [String]",
        "public var expires: Int64",
        "public struct Rejected {",
        "public struct Endpoint {",
        "public struct UnauthenticatedEndpoints {",
        "public enum Outcome {",
        "case verified case notFound case rejected case dnsError case noBuckets case badInput case internalError",
        "public enum ResolverError: Swift.Error {",
        "case Config(field: String, reason: String)",
        "case Start(reason: String)",
        "case BatchTooLarge(count: UInt64, max: UInt64)",
    ]
    .iter()
    .map(|d| flat(d))
    .collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    assert_has(&declarations, "MimiDns.swift", &wanted);

    // The checks MimiDns.swift makes at load time:
    //   let bindings_contract_version = 29
    //   if (uniffi_mimi_dns_checksum_method_resolver_lookup() != 11824) {
    let contract: u32 = swift
        .lines()
        .find_map(|l| l.trim().strip_prefix("let bindings_contract_version = "))
        .expect("MimiDns.swift checks the contract version")
        .parse()
        .unwrap();
    let checksums: Vec<(&str, u16)> = swift
        .lines()
        .filter_map(|l| l.trim().strip_prefix("if ("))
        .filter_map(|l| l.split_once("() != "))
        .filter(|(f, _)| f.starts_with("uniffi_mimi_dns_checksum_"))
        .map(|(f, v)| (f, v.trim_end_matches(['{', ' ', ')']).parse().unwrap()))
        .collect();
    assert_eq!(
        checksums.len(),
        5,
        "one checksum per call and constructor: {checksums:?}"
    );

    // Every function the header declares (`uniffi_…(`/`ffi_…(` outside
    // the preprocessor lines).
    let mut functions: Vec<&str> = header
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| {
            let pieces: Vec<&str> = l.split('(').collect();
            pieces[..pieces.len() - 1]
                .iter()
                .map(|p| {
                    let start = p
                        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(0, |i| i + 1);
                    &p[start..]
                })
                .collect::<Vec<_>>()
        })
        .filter(|w| w.starts_with("uniffi_mimi_dns_") || w.starts_with("ffi_mimi_dns_"))
        .collect();
    functions.sort();
    functions.dedup();
    assert!(functions.len() > 40, "{functions:?}");

    let mut c = String::from("#include <stdio.h>\n#include \"MimiDnsFFI.h\"\n");
    c += "static void *const all[] = {\n";
    for f in &functions {
        c += &format!("    (void *){f},\n");
    }
    c += "};\nint main(void) {\n    int bad = 0;\n";
    c += &format!(
        "    if (ffi_mimi_dns_uniffi_contract_version() != {contract}u) {{ printf(\"contract %u\\n\", ffi_mimi_dns_uniffi_contract_version()); bad = 1; }}\n"
    );
    for (f, v) in &checksums {
        c += &format!(
            "    if ({f}() != {v}) {{ printf(\"{f} %u, Swift expects {v}\\n\", (unsigned){f}()); bad = 1; }}\n"
        );
    }
    c += "    for (size_t i = 0; i < sizeof all / sizeof *all; i++) if (!all[i]) bad = 1;\n";
    c += "    if (!bad) printf(\"abi ok: %zu functions\\n\", sizeof all / sizeof *all);\n    return bad;\n}\n";
    std::fs::write(out.join("abi.c"), c).unwrap();

    let libdir = library().parent().unwrap().to_path_buf();
    let o = Command::new(&cc)
        .current_dir(out)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
        ])
        .args(["-I", "."])
        .args(["abi.c", "-o", "abi"])
        .arg(format!("-L{}", libdir.display()))
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-lmimi_dns")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "clang of MimiDnsFFI.h failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(out.join("abi")).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert_eq!(
        stdout.trim(),
        format!("abi ok: {} functions", functions.len())
    );
}
