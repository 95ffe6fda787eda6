//! The committed header is what cbindgen generates from the source.
//!
//! C users build against `include/mimi_resolver.h` from the repository,
//! not against a header generated at build time; if it drifted from the
//! Rust signatures, C programs would compile against a wrong contract and
//! fail only at run time. This test regenerates it and fails on any
//! difference; `MIMI_UPDATE_HEADER=1` rewrites the committed file instead.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen cannot generate the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = dir.join("include/mimi_resolver.h");
    if std::env::var_os("MIMI_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is out of date (first difference at line {}: committed {:?}, generated {:?}); \
             regenerate it with `MIMI_UPDATE_HEADER=1 cargo test -p mimi-resolver-ffi --test header` \
             and review the diff with `git diff bindings/c/include`",
            path.display(),
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}
