//! Replays every committed corpus file through its target: what CI runs
//! instead of fuzzing. A failing input is named by its path, so it can be
//! run again with `fuzz/run.sh` or under a debugger.

use std::path::PathBuf;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut failures = Vec::new();
    for target in mimi_fuzz::TARGETS {
        let dir = root.join(target.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "corpus {} has only {} files",
            dir.display(),
            files.len()
        );
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            let run = target.run;
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failing corpus files: {failures:#?}");
}

/// Every target has a directory of seeds and a harness binary, so
/// `fuzz/run.sh` and this replay cover the same set.
#[test]
fn every_target_has_a_harness() {
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/src/bin");
    for target in mimi_fuzz::TARGETS {
        let bin = harness.join(format!("{}.rs", target.name));
        let text = std::fs::read_to_string(&bin)
            .unwrap_or_else(|e| panic!("harness {}: {e}", bin.display()));
        assert!(
            text.contains(&format!("mimi_fuzz::{}::run", target.name)),
            "{} does not call its target",
            bin.display()
        );
    }
}

/// The verify target is not vacuous: its seeds include records that the
/// resolver accepts, and its independent check rejects a verification
/// that the records do not support.
#[test]
fn verify_seeds_verify_and_the_check_catches_a_forgery() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/verify");
    let mut verified = 0;
    let mut forged = 0;
    for e in std::fs::read_dir(dir).expect("corpus") {
        let data = std::fs::read(e.expect("entry").path()).expect("file");
        let Some((input, result)) = mimi_fuzz::verify::verify_input(&data) else {
            continue;
        };
        if result.verified.is_empty() {
            continue;
        }
        verified += 1;
        let mut bad = result.clone();
        bad.verified[0].ssi = mimi_proto::Ssi::parse("mimi://chat.example.org/u/mallory").unwrap();
        if std::panic::catch_unwind(|| mimi_fuzz::verify::check(&input, &bad)).is_err() {
            forged += 1;
        }
    }
    assert!(verified >= 5, "only {verified} verify seeds verify");
    assert_eq!(forged, verified, "the check let a forged SSI through");
}
