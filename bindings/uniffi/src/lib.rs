//! Python, Kotlin and Swift bindings (skeleton).
uniffi::setup_scaffolding!();
