//! The logic of pagesim's fuzz targets, as plain functions over byte strings.
//!
//! This folder is shared by the cargo-fuzz binaries in `fuzz/fuzz_targets/` (through
//! `fuzz/src/lib.rs`) and by the stable test `tests/fuzz_corpus.rs` (through
//! `#[path = "../fuzz/src/targets/mod.rs"]`), so it uses nothing but `pagesim` and `std`: no
//! libFuzzer items, no extra crates. One file per target, plus the shared input decoding
//! (`common.rs`). Each target panics, with a message naming the broken
//! invariant, on a bug, and returns normally on every other input.
//!
//! The input formats are documented on each target and in `fuzz/README.md`; the seed
//! generator `fuzz/make_seeds.py` writes them.

use pagesim::mmu::Contents;
use std::collections::BTreeSet;

use pagesim::arch::walk::{DescriptorUpdate, MAX_UPDATE_RETRIES};
use pagesim::arch::{
    at, walk as walk_va, walk_pa, Access, AccessKind, AtOp, Attributes, Compat, Cpu,
    DescriptorFormat, El, Fault, FaultKind, Granule, Level, Regime, RegimeError, Registers,
    Translation, TxszPolicy,
};
use pagesim::linux::mm::maps_text::{
    import_maps, import_smaps, render_maps, render_smaps, MapsFormat, MapsParser, ParseError,
    ParseErrorKind, SmapsEntry, SmapsParser, MAPS_NAME_PAD,
};
use pagesim::linux::mm::vma::{Vma, VmaKind};
use pagesim::linux::mm::vma_tree::{VmaSlot, VmaTree};
use pagesim::linux::mm::vmflags::MnemonicTable;
use pagesim::mmu::{
    Flush, FrameAllocator, FrameError, FrameSource, MapError, Mapper, Mmu, TableFormat, Tlbi,
    VaRange,
};
use pagesim::phys::{MemoryError, PhysMemory, SliceMemory};
use pagesim::{PhysAddr, VirtAddr};

use pagesim::arch::AccessKind as Kind;
use pagesim::linux::mm::vmflags::VmFlags;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::Touch;
use pagesim::linux::storage::{ProcessStorage, SimProcess, Start};

// ----- input decoding -----------------------------------------------------------------

mod common;
mod elf;
mod maps_parse;
mod mm_ops;
mod mmu_ops;
mod script;
mod walk;

use common::*;
#[allow(unused_imports)]
use maps_parse::*;
#[allow(unused_imports)]
use mm_ops::*;
#[allow(unused_imports)]
use mmu_ops::*;
#[allow(unused_imports)]
use walk::*;

pub use elf::elf;
pub use maps_parse::maps_parse;
pub use mm_ops::mm_ops;
pub use mmu_ops::mmu_ops;
pub use script::script;
pub use walk::walk;
