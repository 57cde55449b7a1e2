//! Replays the fuzz corpus on stable Rust: every file in `fuzz/corpus/<target>/`, and any
//! crash reproducer in `fuzz/artifacts/<target>/`, goes through the same target function
//! the cargo-fuzz binary runs (the logic is shared with the fuzz crate by `#[path]`).
//!
//! Running the fuzzers needs nightly and cargo-fuzz (see fuzz/README.md); this test keeps
//! what they found from coming back on every `cargo test`.

#[path = "../fuzz/src/targets/mod.rs"]
mod targets;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if p.is_file() && !hidden {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    let mut failed = Vec::new();
    for f in &files {
        let data = fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed (reproduce with `cargo +nightly fuzz run {target} FILE`):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    // The seed corpus is part of the repository: an empty one means it went missing.
    assert!(!files.is_empty(), "no corpus for {target}");
}

#[test]
fn elf_corpus() {
    replay("elf", targets::elf);
}

#[test]
fn walk_corpus() {
    replay("walk", targets::walk);
}

#[test]
fn mmu_ops_corpus() {
    replay("mmu_ops", targets::mmu_ops);
}

#[test]
fn maps_parse_corpus() {
    replay("maps_parse", targets::maps_parse);
}

#[test]
fn mm_ops_corpus() {
    replay("mm_ops", targets::mm_ops);
}

#[test]
fn script_corpus() {
    replay("script", targets::script);
}

/// Inputs too short for any field (every missing byte reads as 0) and a few fixed byte
/// patterns must run cleanly too.
#[test]
fn degenerate_inputs() {
    for data in [&[][..], &[0], &[0xff; 7], &[0xff; 300], &[0x55; 1000]] {
        targets::walk(data);
        targets::mmu_ops(data);
        targets::maps_parse(data);
        targets::mm_ops(data);
        targets::script(data);
    }
}
