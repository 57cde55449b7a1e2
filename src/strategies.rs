//! Proptest strategies for users' own property tests (feature `proptest`).
//!
//! Compose them to drive an emulator's MMU, or pagesim itself, with random but meaningful
//! inputs:
//!
//! ```
//! use pagesim::arch::{walk, El};
//! use pagesim::strategies::{access, table_image, ImageShape};
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::default();
//! let strat = (table_image(ImageShape::default()), proptest::collection::vec(access(), 8));
//! runner
//!     .run(&strat, |(mut image, accesses)| {
//!         let regime = image.regime();
//!         for m in image.mappings.clone() {
//!             for a in &accesses {
//!                 let r = walk(&regime, &mut image.memory, m.va, *a);
//!                 // Every mapping the image promises translates to its PA when allowed.
//!                 if let Ok(t) = r {
//!                     prop_assert_eq!(t.pa, m.pa);
//!                 }
//!             }
//!         }
//!         Ok(())
//!     })
//!     .unwrap();
//! ```

use std::vec::Vec;

use proptest::prelude::*;

use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{Access, AccessKind, Attributes, Cpu, El, Granule, Regime, Registers};
use crate::machinery::{FrameSource, Mapper, PhysMemory, SparseMemory, TableFormat};

/// Where [`table_image`] places its tables in physical memory.
pub const IMAGE_RAM_BASE: u64 = 0x4000_0000;
/// How much RAM a [`TableImage`] has.
pub const IMAGE_RAM_SIZE: u64 = 0x4000_0000;

/// Returns a strategy for one of the three granules.
pub fn granule() -> impl Strategy<Value = Granule> {
    prop_oneof![Just(Granule::K4), Just(Granule::K16), Just(Granule::K64)]
}

/// Returns a strategy for register values that decode to a valid regime (every TxSZ the
/// granule allows, either half's granule, IPS 40–52 bits, optional HA/HD, TBI, HPD, WXN),
/// with the TTBRs left 0 for the caller to fill.
pub fn registers() -> impl Strategy<Value = Registers> {
    (granule(), granule(), any::<u64>(), 0u64..3).prop_flat_map(|(g0, g1, flags, ips)| {
        let range = |g: Granule| match g {
            Granule::K64 => 17u64..=39,
            _ => 16u64..=39,
        };
        (range(g0), range(g1)).prop_map(move |(t0, t1)| {
            let mut tcr = t0 | (g0.tg0() << 14) | (t1 << 16) | (g1.tg1() << 30) | ((ips + 2) << 32);
            // Optional behaviour bits: HA, HD, TBI0/1, HPD0/1.
            tcr |= flags & ((1 << 39) | (1 << 40) | (3 << 37) | (3 << 41));
            let sctlr = 1 | (flags & (1 << 19)); // M, optional WXN
            Registers {
                tcr,
                sctlr,
                ttbr0: 0,
                ttbr1: 0,
                mair: 0x0000_0000_0044_ff04 | ((flags >> 8) & 0xff) << 24,
            }
        })
    })
}

/// Returns a strategy for an access: kind, EL, PAN.
pub fn access() -> impl Strategy<Value = Access> {
    (0u8..3, any::<bool>(), any::<bool>()).prop_map(|(k, el0, pan)| {
        let kind = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch][k as usize];
        Access::new(kind, if el0 { El::El0 } else { El::El1 }).with_pan(pan)
    })
}

/// The shape of a [`table_image`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    /// The granule, or any when `None`.
    pub granule: Option<Granule>,
    /// How many mappings (at most).
    pub max_mappings: usize,
    /// Whether block mappings may be used.
    pub blocks: bool,
    /// How many garbage words to scatter over the tables after building them.
    pub garbage_words: usize,
}

impl Default for ImageShape {
    fn default() -> Self {
        ImageShape {
            granule: None,
            max_mappings: 8,
            blocks: true,
            garbage_words: 0,
        }
    }
}

/// One mapping a [`TableImage`] holds (before any garbage was added).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageMapping {
    /// First VA.
    pub va: VirtAddr,
    /// First PA.
    pub pa: PhysAddr,
    /// Length in bytes.
    pub len: u64,
    /// The leaf attribute bits.
    pub attrs: Attributes,
}

/// Translation tables in sparse physical memory with the registers that walk them.
#[derive(Clone, Debug)]
pub struct TableImage {
    /// The registers (TTBR0 points at the tables; TTBR1 is 0 with EPD1 set).
    pub registers: Registers,
    /// Physical memory holding the tables.
    pub memory: SparseMemory,
    /// What was mapped.
    pub mappings: Vec<ImageMapping>,
    /// The addresses of garbage words written over the tables.
    pub garbage: Vec<PhysAddr>,
}

impl TableImage {
    /// Returns the regime the registers decode to on a `Cpu::MAX` core.
    pub fn regime(&self) -> Regime {
        Regime::new(self.registers, Cpu::MAX)
    }
}

struct Bump(u64, u64);

impl FrameSource for Bump {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        let size = 4096u64 << order;
        let pa = (self.0 + size - 1) & !(size - 1);
        if pa + size > self.1 {
            return None;
        }
        self.0 = pa + size;
        Some((PhysAddr::new(pa), true))
    }
    fn release(&mut self, _: PhysAddr, _: u32, _: bool) {}
    fn available(&self, order: u32) -> u64 {
        (self.1 - self.0) >> (12 + order)
    }
}

/// Returns a strategy for translation tables built by the mapper from random mappings of
/// the given shape, optionally with garbage words written over the tables afterwards.
pub fn table_image(shape: ImageShape) -> impl Strategy<Value = TableImage> {
    let g = match shape.granule {
        Some(g) => Just(g).boxed(),
        None => granule().boxed(),
    };
    (
        g,
        proptest::collection::vec(
            (
                0u64..64,
                1u64..8,
                0u64..1024,
                0u64..4,
                any::<bool>(),
                any::<bool>(),
            ),
            1..=shape.max_mappings.max(1),
        ),
        proptest::collection::vec((any::<u64>(), any::<u64>()), shape.garbage_words),
    )
        .prop_map(move |(g, maps, garbage)| build_image(g, shape.blocks, &maps, &garbage))
}

fn build_image(
    g: Granule,
    blocks: bool,
    maps: &[(u64, u64, u64, u64, bool, bool)],
    garbage: &[(u64, u64)],
) -> TableImage {
    let tsz = 16u64 + (g == Granule::K64) as u64;
    let regs = Registers {
        tcr: tsz | (g.tg0() << 14) | (16 << 16) | (2 << 30) | (5 << 32) | (1 << 23),
        sctlr: 1,
        ttbr0: 0,
        ttbr1: 0,
        mair: 0x0000_0000_0044_ff04,
    };
    let mut memory = SparseMemory::new(PhysAddr::new(IMAGE_RAM_BASE), IMAGE_RAM_SIZE);
    let mut frames = Bump(IMAGE_RAM_BASE, IMAGE_RAM_BASE + IMAGE_RAM_SIZE);
    let format = TableFormat::from_regime(&Regime::new(regs, Cpu::MAX), false);
    // The bump allocator always has room for the root of a fresh image.
    let mut mapper = Mapper::new(format, &mut memory, &mut frames)
        .unwrap_or_else(|_| Mapper::from_root(format, PhysAddr::new(IMAGE_RAM_BASE)));
    mapper.set_block_mappings(blocks);
    let page = g.page_size();
    // Slots of 2 MiB (4K), 32 MiB (16K) or 512 MiB (64K): room for a block each.
    let slot = 1u64 << g.level_shift(crate::arch::Level::L2);
    let mut mappings = Vec::new();
    for &(s, pages, pa_page, ap, uxn, ng) in maps {
        let va = 0x10_0000_0000 + s * slot;
        let len = if blocks && pages == 7 {
            slot
        } else {
            pages * page
        };
        let pa = 0x1_0000_0000 + pa_page * slot;
        let mut attrs = Attributes::AF
            | Attributes::SH0
            | Attributes::SH1
            | Attributes::from_bits_truncate(ap << 6);
        if uxn {
            attrs |= Attributes::UXN;
        }
        if ng {
            attrs |= Attributes::NG;
        }
        if mapper
            .map(
                &mut memory,
                &mut frames,
                VirtAddr::new(va),
                PhysAddr::new(pa),
                len,
                attrs,
            )
            .is_ok()
        {
            mappings.push(ImageMapping {
                va: VirtAddr::new(va),
                pa: PhysAddr::new(pa),
                len,
                attrs,
            });
        }
    }
    // Garbage over the table frames the mapper used.
    let used = frames.0 - IMAGE_RAM_BASE;
    let mut garbage_at = Vec::new();
    for &(where_, value) in garbage {
        let pa = (IMAGE_RAM_BASE + (where_ % used.max(8))) & !7;
        if memory.write_u64(PhysAddr::new(pa), value).is_ok() {
            garbage_at.push(PhysAddr::new(pa));
        }
    }
    TableImage {
        registers: Registers {
            ttbr0: mapper.ttbr(0),
            ..regs
        },
        memory,
        mappings,
        garbage: garbage_at,
    }
}
