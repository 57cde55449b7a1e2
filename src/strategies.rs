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

use std::format;
use std::vec::Vec;

use proptest::prelude::*;

use crate::linux::mm::mman;
use crate::linux::script::{Addr, Call};

use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{Access, AccessKind, Attributes, Cpu, El, Granule, Regime, Registers};
use crate::mmu::{FrameError, FrameSource, Mapper, TableFormat, VaRange};
use crate::phys::{PhysMemory, SparseMemory};

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
    fn release(&mut self, _: PhysAddr, _: u32, _: bool) -> Result<(), FrameError> {
        Ok(())
    }
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
    let format = TableFormat::from_regime(&Regime::new(regs, Cpu::MAX), VaRange::Lower);
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

/// Returns a strategy for a sequence of Linux memory calls and touches in the `pagesim run`
/// script model: mmaps bound to names `m0`, `m1`, … and later calls addressed relative to
/// them (sometimes off their end, unaligned, or at raw edge addresses), with every
/// protection, the common flag sets and advices, and forks, vforks, switches and exits
/// (pids 1 to 4). Feed them to
/// [`crate::linux::script::run::run`] or a [`crate::linux::process::Process`].
///
/// ```
/// use pagesim::linux::storage::{Start, ProcessStorage};
/// use pagesim::linux::mm::{ImportHints, LayoutParams};
/// use pagesim::strategies::linux_calls;
/// use proptest::test_runner::TestRunner;
///
/// let mut runner = TestRunner::default();
/// runner
///     .run(&linux_calls(12), |calls| {
///         let params = LayoutParams::arm64_6_12();
///         let mut storage = ProcessStorage::new(&params, 32 << 20).with_processes(3);
///         let mut sys = storage.build_system(params, Start::Fresh, ImportHints::default()).unwrap();
///         let numbered: Vec<_> = calls.into_iter().enumerate().map(|(i, c)| (i + 1, c)).collect();
///         let mut out = String::new();
///         // Names of failed mmaps are reported as errors; nothing panics.
///         let _ = pagesim::linux::script::run::run(&mut sys, &numbered, true, &mut out);
///         sys.validate().unwrap();
///         Ok(())
///     })
///     .unwrap();
/// ```
pub fn linux_calls(max_len: usize) -> impl Strategy<Value = Vec<Call>> {
    proptest::collection::vec(
        (0u8..11, any::<u64>(), any::<u64>(), any::<u32>()),
        1..=max_len.max(1),
    )
    .prop_map(|raw| {
        let mut calls = Vec::new();
        let mut names = 0usize;
        let prots = [
            mman::PROT_NONE,
            mman::PROT_READ,
            mman::PROT_READ | mman::PROT_WRITE,
            mman::PROT_READ | mman::PROT_EXEC,
            mman::PROT_READ | mman::PROT_WRITE | mman::PROT_EXEC,
        ];
        let flag_sets = [
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS,
            mman::MAP_SHARED | mman::MAP_ANONYMOUS,
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_FIXED,
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_FIXED_NOREPLACE,
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_POPULATE,
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_NORESERVE | mman::MAP_STACK,
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_GROWSDOWN,
        ];
        let advices = [
            mman::MADV_DONTNEED,
            mman::MADV_FREE,
            mman::MADV_HUGEPAGE,
            mman::MADV_NOHUGEPAGE,
            mman::MADV_WILLNEED,
            mman::MADV_POPULATE_READ,
            mman::MADV_POPULATE_WRITE,
            mman::Advice::Other(999),
        ];
        for (kind, a, b, c) in raw {
            let len = ((b % 64) + 1) * 4096 + if c % 17 == 0 { 1 } else { 0 };
            let addr = |names: usize| -> Addr {
                match (names, a % 8) {
                    (0, _) | (_, 0) => {
                        Addr::Num([0, 4096, a & !0xfff, !0xfff][(a >> 3) as usize % 4])
                    }
                    (n, _) => Addr::Name(
                        format!("m{}", (a >> 3) as usize % n),
                        ((b >> 8) % 96) as i64 * 4096 - 16 * 4096 + if c % 23 == 0 { 8 } else { 0 },
                    ),
                }
            };
            let call = match kind {
                0 | 1 => {
                    let fixed = flag_sets[c as usize % flag_sets.len()];
                    let hint = if fixed.intersects(mman::MAP_FIXED | mman::MAP_FIXED_NOREPLACE)
                        || kind == 1
                    {
                        addr(names)
                    } else {
                        Addr::Num(0)
                    };
                    let bind = Some(format!("m{names}"));
                    names += 1;
                    Call::Mmap {
                        bind,
                        addr: hint,
                        len,
                        prot: prots[(c >> 8) as usize % prots.len()],
                        flags: fixed,
                        file: None,
                    }
                }
                2 => Call::Munmap {
                    addr: addr(names),
                    len,
                },
                3 => Call::Mprotect {
                    addr: addr(names),
                    len,
                    prot: prots[c as usize % prots.len()],
                },
                4 => Call::Madvise {
                    addr: addr(names),
                    len,
                    advice: advices[c as usize % advices.len()],
                },
                5 => Call::Brk {
                    addr: Addr::Num(a % (64 << 20)),
                },
                6..=8 => Call::Touch {
                    kind: [
                        crate::arch::AccessKind::Read,
                        crate::arch::AccessKind::Write,
                        crate::arch::AccessKind::Fetch,
                    ][kind as usize - 6],
                    addr: addr(names),
                    len: len.min(64 * 4096),
                },
                9 => match c % 4 {
                    0 => Call::Fork {
                        bind: None,
                        vfork: c % 16 == 4,
                    },
                    1 => Call::Switch {
                        pid: Addr::Num(1 + a % 4),
                    },
                    2 => Call::Exit { status: 0 },
                    _ => Call::Smaps {
                        pid: Some(Addr::Num(1 + a % 4)),
                    },
                },
                _ => Call::Maps { pid: None },
            };
            calls.push(call);
        }
        calls
    })
}
