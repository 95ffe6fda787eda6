//! `check` and `build --out`, run as a user runs them, on inputs caught
//! while being written and on zones that would replace a larger one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn publisher(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mimi-publisher"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Zone {
    dir: tempfile::TempDir,
}

impl Zone {
    fn new(mappings: &str, presigned: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let z = Zone { dir };
        let o = publisher(&["keygen", "--out", z.path("k.pem").to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(z.path("m.csv"), mappings).unwrap();
        let mut config = String::from(
            "origin = \"example.com\"\nrole = \"home\"\nns = [\"ns1.example.com\"]\nmappings = \"m.csv\"\n",
        );
        if let Some(p) = presigned {
            std::fs::write(z.path("p.txt"), p).unwrap();
            config.push_str("presigned = [\"p.txt\"]\n");
        }
        config.push_str("[soa]\nmname = \"ns1.example.com\"\nrname = \"hostmaster.example.com\"\n[authority]\nname = \"example.com\"\nkey = \"k.pem\"\n");
        std::fs::write(z.path("zone.toml"), config).unwrap();
        z
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }
}

fn lines(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("user{i}@example.com,mimi://chat.example.org/u/user{i}\n"))
        .collect()
}

/// The TXT lines of a zone file, sorted.
fn txt_lines(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" IN TXT "))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn check_and_build_refuse_a_file_without_a_final_newline() {
    let z = Zone::new(&lines(0..3), Some(""));
    // Half-written mappings.
    let cut = lines(0..3);
    std::fs::write(z.path("m.csv"), &cut[..cut.len() - 10]).unwrap();
    let want = format!(
        "{}:3: does not end with a newline: the file may still be being written; add a final newline",
        z.p("m.csv")
    );
    let o = publisher(&["check", &z.p("zone.toml")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&want), "{}", text(&o));
    let o = publisher(&["build", &z.p("zone.toml"), "--out", &z.p("out.zone")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&want), "{}", text(&o));
    assert!(!z.path("out.zone").exists());
    // A pre-signed file likewise (its content does not matter).
    std::fs::write(z.path("m.csv"), lines(0..3)).unwrap();
    std::fs::write(z.path("p.txt"), "# pre-signed\nmailto:x@example.com v=mi").unwrap();
    let o = publisher(&["check", &z.p("zone.toml")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{}:2: does not end with a newline", z.p("p.txt"))),
        "{}",
        text(&o)
    );
    // Complete (and an empty file has no lines: complete).
    std::fs::write(z.path("p.txt"), "").unwrap();
    let o = publisher(&["check", &z.p("zone.toml")]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn build_and_check_hold_back_a_zone_that_removes_too_much() {
    let z = Zone::new(&lines(0..10), None);
    let (config, out) = (z.p("zone.toml"), z.p("out.zone"));
    let o = publisher(&["build", &config, "--out", &out]);
    assert!(o.status.success(), "{}", text(&o));
    let first = std::fs::read_to_string(&out).unwrap();
    assert!(
        first
            .lines()
            .last()
            .unwrap()
            .starts_with("; mimi-publisher seal hmac-sha256:"),
        "{first}"
    );

    // 9 of 10 gone: held back, the file untouched.
    std::fs::write(z.path("m.csv"), lines(9..10)).unwrap();
    let o = publisher(&["build", &config, "--out", &out]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("would remove 9 of the 10 published assertions (90.0%, 1 left), more than max_shrink = 10% allows"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("nothing was written"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);

    // check says so when told what the zone would replace, and not
    // otherwise.
    let o = publisher(&["check", &config]);
    assert!(o.status.success(), "{}", text(&o));
    let o = publisher(&["check", &config, "--out", &out]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("10 assertions there, 1 in the new zone, 9 of them removed"),
        "{}",
        text(&o)
    );
    let o = publisher(&["check", &config, "--out", &out, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report[0]["ok"], false);
    assert_eq!(report[0]["shrink"]["removed"], 9);
    let o = publisher(&["check", &config, "--out", &out, "--allow-shrink"]);
    assert!(o.status.success(), "{}", text(&o));
    // The same against a state directory's kept zone.
    let state = z.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::copy(&out, state.join("example.com.zone")).unwrap();
    let o = publisher(&["check", &config, "--state-dir", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("would remove 9 of the 10"),
        "{}",
        text(&o)
    );

    // Confirmed.
    let o = publisher(&["build", &config, "--out", &out, "--allow-shrink"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(txt_lines(Path::new(&out)).len(), 1);
}

#[test]
fn build_reuses_an_out_file_only_if_its_seal_verifies() {
    let z = Zone::new(&lines(0..5), None);
    let (config, out) = (z.p("zone.toml"), z.p("out.zone"));
    let now = "1765000000";
    let o = publisher(&["build", &config, "--out", &out, "--now", now]);
    assert!(o.status.success(), "{}", text(&o));
    let good = txt_lines(Path::new(&out));
    // Swap two signatures: well-formed records that do not verify.
    let text0 = std::fs::read_to_string(&out).unwrap();
    let sigs: Vec<&str> = text0
        .match_indices(";sig=")
        .map(|(i, _)| &text0[i + 5..i + 5 + 86])
        .collect();
    let tampered = text0
        .replacen(sigs[0], "SIG-A", 1)
        .replacen(sigs[1], sigs[0], 1)
        .replacen("SIG-A", sigs[1], 1);
    std::fs::write(&out, &tampered).unwrap();
    // A later build (same windows) would have reused them all.
    let o = publisher(&["build", &config, "--out", &out, "--now", now]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("its seal does not match the current signing key"),
        "{}",
        text(&o)
    );
    assert_eq!(txt_lines(Path::new(&out)), good);
    // Rewritten sealed: the next build finds it unchanged.
    let o = publisher(&["build", &config, "--out", &out, "--now", now]);
    assert!(text(&o).contains("unchanged"), "{}", text(&o));
}
