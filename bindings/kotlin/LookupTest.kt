// End-to-end check of the generated Kotlin bindings (package org.mimidns)
// against a running `mimi-publisher serve` of the example world
// (tests/world.rs). Driven by tests/bindings_kotlin.rs:
//
//   java -Djna.library.path=DIR -cp ... LookupTestKt SERVER TRUST_FILE DEAD_SERVER
//
// Every expectation that does not hold is printed; the exit status is 1 if
// there was any, so the Rust test fails with the list.

import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import org.mimidns.Config
import org.mimidns.Outcome
import org.mimidns.Resolution
import org.mimidns.Resolver
import org.mimidns.ResolverException

val failures = mutableListOf<String>()

fun expect(what: String, ok: Boolean, got: Any?) {
    if (!ok) failures.add("$what (got: $got)")
}

fun expectOutcome(r: Resolution, outcome: Outcome) {
    expect("${r.input}: outcome $outcome", r.outcome == outcome, r.json)
    expect("${r.input}: json says ${r.outcome}", r.json.contains("\"outcome\""), r.json)
}

fun main(args: Array<String>) {
    if (args.size != 3) {
        System.err.println("usage: LookupTestKt SERVER TRUST_FILE DEAD_SERVER")
        exitProcess(2)
    }
    val server = args[0]
    val trustFile = args[1]
    val dead = args[2]
    val config = Config(
        trustFile = trustFile,
        zones = listOf("dir.chat.example.org"),
        telRoots = listOf("e164.mimi.example"),
        servers = listOf(server),
        timeoutMs = 2000u
    )
    val now = System.currentTimeMillis() / 1000

    val r = Resolver(config)
    try {
        val alice = r.lookup("alice@example.com")
        expectOutcome(alice, Outcome.VERIFIED)
        expect("alice canonical", alice.canonical == "mailto:alice@example.com", alice.canonical)
        expect("alice one SSI", alice.verified.size == 1, alice.verified)
        val ssi = alice.verified.firstOrNull()
        expect("alice SSI", ssi?.ssi == "mimi://chat.example.com/u/alice", ssi)
        expect("alice two authorities", ssi?.authorities?.size == 2, ssi?.authorities)
        expect("alice not expired", (ssi?.expires ?: 0L) > now, ssi?.expires)
        expect("alice json", alice.json.contains("\"outcome\":\"verified\""), alice.json)

        val dave = r.lookup("dave@example.com")
        expectOutcome(dave, Outcome.REJECTED)
        expect("dave nothing verified", dave.verified.isEmpty(), dave.verified)
        expect(
            "dave rejected with a reason",
            dave.rejected.isNotEmpty() && dave.rejected.all { it.reason.isNotBlank() },
            dave.rejected
        )

        val nobody = r.lookup("nobody@example.com")
        expectOutcome(nobody, Outcome.NOT_FOUND)
        expect("nobody nothing", nobody.verified.isEmpty() && nobody.rejected.isEmpty(), nobody.json)

        val bad = r.lookup("not an sii")
        expectOutcome(bad, Outcome.BAD_INPUT)
        expect("bad input no canonical", bad.canonical == null, bad.canonical)

        val tel = r.lookup("+39 06 1234 5678")
        expect("+39: two SSIs", tel.outcome == Outcome.VERIFIED && tel.verified.size == 2, tel.json)

        val inputs = listOf("alice@example.com", "dave@example.com", "nobody@example.com", "?")
        val batch = r.lookupBatch(inputs)
        expect("batch inputs in order", batch.map { it.input } == inputs, batch.map { it.input })
        expect(
            "batch outcomes",
            batch.map { it.outcome } == listOf(Outcome.VERIFIED, Outcome.REJECTED, Outcome.NOT_FOUND, Outcome.BAD_INPUT),
            batch.map { it.outcome }
        )

        // Suspend functions, on kotlinx.coroutines.
        val bob = runBlocking { r.lookupAsync("bob@example.com") }
        expectOutcome(bob, Outcome.VERIFIED)
        expect("bob replay rejected", bob.rejected.isNotEmpty(), bob.json)
        val asyncBatch = runBlocking { r.lookupBatchAsync(listOf("carol@mail.example", "nobody@example.com")) }
        expect(
            "async batch outcomes",
            asyncBatch.map { it.outcome } == listOf(Outcome.VERIFIED, Outcome.NOT_FOUND),
            asyncBatch.map { it.json }
        )
    } finally {
        r.close()
    }

    // A configuration error is an exception naming the setting.
    try {
        Resolver(config.copy(servers = listOf(server, "udp://x"))).close()
        failures.add("udp://x accepted")
    } catch (e: ResolverException.Config) {
        expect("config error names servers[1]", e.field == "servers[1]", "${e.field}: ${e.reason}")
    }

    // Nothing answers on the dead server: a dns_error result, not an
    // exception.
    val down = Resolver(config.copy(servers = listOf(dead), timeoutMs = 300u, attempts = 0u))
    try {
        val d = down.lookup("alice@example.com")
        expectOutcome(d, Outcome.DNS_ERROR)
        expect("dns_error has errors", d.errors.isNotEmpty(), d.json)
        expect("dns_error nothing verified", d.verified.isEmpty(), d.json)
    } finally {
        down.close()
    }

    if (failures.isEmpty()) {
        println("kotlin: all lookups as expected")
    } else {
        failures.forEach { System.err.println("MISMATCH: $it") }
        exitProcess(1)
    }
}
