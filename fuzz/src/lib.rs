//! pagesim's fuzz targets as plain functions over byte strings.
//!
//! The logic lives in `targets/` (one file per target), which `tests/fuzz_corpus.rs` in the main crate also
//! includes (by `#[path]`) to replay the corpus on stable Rust; the binaries in
//! `fuzz_targets/` only hand libFuzzer's input to these functions.

mod targets;

pub use targets::{elf, maps_parse, mm_ops, mmu_ops, script, walk};
