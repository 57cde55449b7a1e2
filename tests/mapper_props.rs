//! Property tests for the mapper, the TLB and the MMU together: random sequences of map,
//! unmap, protect, TLBI and context switches against a simple model.

use std::collections::BTreeMap;

use pagesim::arch::{walk, Access, Attributes, Cpu, El, FaultKind, Granule, Registers};
use pagesim::mmu::{FrameError, FrameSource, MapError, Mapper, Mmu, TableFormat, VaRange};
use pagesim::phys::SliceMemory;
use pagesim::{PhysAddr, VirtAddr};
use proptest::prelude::*;

const RAM_BASE: u64 = 0x4000_0000;
const RAM_SIZE: usize = 8 << 20;

/// Frames from a free list, with an optional failure on the Nth allocation.
struct Frames {
    free: Vec<u64>,
    used: usize,
    fail_at: Option<usize>,
    allocations: usize,
}

impl Frames {
    fn new() -> Self {
        let n = (RAM_SIZE >> 12) as u64;
        Frames {
            free: (0..n).rev().map(|i| RAM_BASE + i * 4096).collect(),
            used: 0,
            fail_at: None,
            allocations: 0,
        }
    }
}

impl FrameSource for Frames {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        self.allocations += 1;
        if self.fail_at == Some(self.allocations) {
            return None;
        }
        let n = 1u64 << order;
        // Find n consecutive free frames aligned to n (simple and slow: test only).
        let mut sorted = self.free.clone();
        sorted.sort_unstable();
        let start = sorted.iter().copied().find(|&f| {
            (f - RAM_BASE).is_multiple_of(n * 4096)
                && (0..n).all(|i| sorted.binary_search(&(f + i * 4096)).is_ok())
        })?;
        self.free.retain(|&f| f < start || f >= start + n * 4096);
        self.used += n as usize;
        Some((PhysAddr::new(start), false))
    }

    fn release(&mut self, pa: PhysAddr, order: u32, _zeroed: bool) -> Result<(), FrameError> {
        for i in 0..(1u64 << order) {
            assert!(
                !self.free.contains(&(pa.as_u64() + i * 4096)),
                "double free"
            );
            self.free.push(pa.as_u64() + i * 4096);
        }
        self.used -= 1 << order;
        Ok(())
    }

    fn available(&self, order: u32) -> u64 {
        // A lie when fail_at is set: the mapper must still roll back cleanly.
        (self.free.len() >> order) as u64
    }
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        page: u64,
        pages: u64,
        pa_page: u64,
        ap: u64,
    },
    Unmap {
        page: u64,
        pages: u64,
    },
    Protect {
        page: u64,
        pages: u64,
        ro: bool,
    },
    Switch {
        asid: u16,
    },
    Translate {
        page: u64,
    },
    FailNextAlloc {
        nth: usize,
    },
}

fn op_strategy(span: u64, block_pages: u64) -> impl Strategy<Value = Op> {
    let blocks = (span / block_pages).max(1);
    prop_oneof![
        2 => (0..blocks, 1u64..3, 0u64..8, 0u64..4).prop_map(move |(b, n, pb, ap)| Op::Map {
            page: b * block_pages,
            pages: n * block_pages,
            pa_page: pb * block_pages,
            ap
        }),
        4 => (0..span, 1u64..1100, 0u64..4096, 0u64..4).prop_map(|(page, pages, pa_page, ap)| Op::Map { page, pages, pa_page, ap }),
        3 => (0..span, 1u64..1100).prop_map(|(page, pages)| Op::Unmap { page, pages }),
        2 => (0..span, 1u64..600, any::<bool>()).prop_map(|(page, pages, ro)| Op::Protect { page, pages, ro }),
        1 => (1u16..4).prop_map(|asid| Op::Switch { asid }),
        3 => (0..span).prop_map(|page| Op::Translate { page }),
        1 => (1usize..4).prop_map(|nth| Op::FailNextAlloc { nth }),
    ]
}

fn table_snapshot(mem: &SliceMemory) -> Vec<u8> {
    mem.bytes().to_vec()
}

fn run(granule: Granule, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let page = granule.page_size();
    let mut ram = vec![0u8; RAM_SIZE];
    let mem = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut ram);
    let (tg0, tsz) = match granule {
        Granule::K4 => (0u64, 16u64),
        Granule::K16 => (2, 17),
        Granule::K64 => (1, 22),
    };
    let regs = |asid: u16, root: u64| Registers {
        tcr: tsz | (tg0 << 14) | (16 << 16) | (2 << 30) | (5 << 32),
        sctlr: 1,
        ttbr0: root | ((asid as u64) << 48),
        ttbr1: 0,
        mair: 0xff,
    };
    let mut mmu: Mmu<SliceMemory, 256> = Mmu::new(regs(1, 0), Cpu::MAX, mem);
    let format = TableFormat::from_regime(mmu.regime(), VaRange::Lower);
    let mut frames = Frames::new();
    let mut mapper = Mapper::new(format, mmu.memory_mut(), &mut frames).unwrap();
    mapper.set_asid(1);
    mmu.set_registers(regs(1, mapper.root().as_u64()));
    let mut asid = 1u16;
    // Model: page index -> (pa, ap); all mappings global.
    let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let base_va = 0x10_0000_0000u64 & !(page - 1);
    let va_of = |p: u64| base_va + p * page;
    for op in ops {
        match op {
            Op::Map {
                page: p,
                pages,
                pa_page,
                ap,
            } => {
                let before = table_snapshot(mmu.memory());
                let pa = 0x1_0000_0000 + pa_page * page;
                let attrs = Attributes::AF
                    | Attributes::SH0
                    | Attributes::SH1
                    | Attributes::from_bits_truncate(ap << 6);
                let conflict = (p..p + pages).any(|q| model.contains_key(&q));
                let r = mapper.map(
                    mmu.memory_mut(),
                    &mut frames,
                    VirtAddr::new(va_of(p)),
                    PhysAddr::new(pa),
                    pages * page,
                    attrs,
                );
                match r {
                    Ok(flush) => {
                        prop_assert!(!conflict);
                        prop_assert!(flush.is_empty());
                        for q in 0..pages {
                            model.insert(p + q, (pa + q * page, ap));
                        }
                    }
                    Err(MapError::AlreadyMapped { .. }) => {
                        prop_assert!(conflict);
                        prop_assert!(
                            table_snapshot(mmu.memory()) == before,
                            "failed map changed the tables"
                        );
                    }
                    Err(MapError::OutOfFrames { .. }) => {
                        prop_assert!(
                            table_snapshot(mmu.memory()) == before,
                            "failed map changed the tables"
                        );
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Unmap { page: p, pages } => {
                let before = table_snapshot(mmu.memory());
                match mapper.unmap(
                    mmu.memory_mut(),
                    &mut frames,
                    VirtAddr::new(va_of(p)),
                    pages * page,
                ) {
                    Ok(flush) => {
                        for t in flush.ops() {
                            mmu.tlbi(t);
                        }
                        for q in p..p + pages {
                            model.remove(&q);
                        }
                    }
                    Err(MapError::OutOfFrames { .. }) => {
                        prop_assert!(
                            table_snapshot(mmu.memory()) == before,
                            "failed unmap changed the tables"
                        );
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Protect { page: p, pages, ro } => {
                let before = table_snapshot(mmu.memory());
                let (set, clear) = if ro {
                    (Attributes::AP_RO, Attributes::empty())
                } else {
                    (Attributes::empty(), Attributes::AP_RO)
                };
                match mapper.protect(
                    mmu.memory_mut(),
                    &mut frames,
                    VirtAddr::new(va_of(p)),
                    pages * page,
                    set,
                    clear,
                ) {
                    Ok(flush) => {
                        for t in flush.ops() {
                            mmu.tlbi(t);
                        }
                        for q in p..p + pages {
                            if let Some(e) = model.get_mut(&q) {
                                e.1 = if ro { e.1 | 2 } else { e.1 & !2 };
                            }
                        }
                    }
                    Err(MapError::OutOfFrames { .. }) => {
                        prop_assert!(
                            table_snapshot(mmu.memory()) == before,
                            "failed protect changed the tables"
                        );
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Switch { asid: a } => {
                asid = a;
                mmu.set_registers(regs(asid, mapper.root().as_u64()));
            }
            Op::FailNextAlloc { nth } => frames.fail_at = Some(frames.allocations + nth),
            Op::Translate { page: p } => {
                let va = VirtAddr::new(va_of(p) + 8);
                let regime = *mmu.regime();
                let fresh =
                    walk(&regime, mmu.memory_mut(), va, Access::read(El::El1)).map(|t| t.pa);
                prop_assert_eq!(mmu.translate(va, Access::read(El::El1)), fresh);
            }
        }
        // Frames conserved: every frame in use is a table the mapper holds.
        prop_assert_eq!(
            frames.used as u64,
            mapper.table_count() << (granule.page_shift() - 12)
        );
        // Coherence: with the invalidations applied, the TLB-backed MMU, a fresh walk and the
        // mapper's lookup all agree with the model, for every modelled page and some others.
        let probes: Vec<u64> = model
            .keys()
            .copied()
            .step_by(7)
            .chain((0..8).map(|i| i * 97))
            .collect();
        for q in probes {
            let va = VirtAddr::new(va_of(q) + 16);
            let want = model.get(&q);
            let got = mmu.translate(va, Access::read(El::El1));
            let regime = *mmu.regime();
            let fresh = walk(&regime, mmu.memory_mut(), va, Access::read(El::El1)).map(|t| t.pa);
            prop_assert_eq!(got, fresh, "TLB and a fresh walk disagree at page {}", q);
            // Again, now certainly from the TLB (a page entry, or a block entry for the
            // other pages of a block).
            let neighbour = VirtAddr::new(va.as_u64() ^ 0x1000);
            prop_assert_eq!(
                mmu.translate(va, Access::read(El::El1)),
                got,
                "hit at page {}",
                q
            );
            let n_fresh =
                walk(&regime, mmu.memory_mut(), neighbour, Access::read(El::El1)).map(|t| t.pa);
            prop_assert_eq!(
                mmu.translate(neighbour, Access::read(El::El1)),
                n_fresh,
                "neighbour of page {}",
                q
            );
            match want {
                Some(&(pa, ap)) => {
                    prop_assert_eq!(
                        got.map(|p| p.as_u64()),
                        Ok(pa + 16),
                        "page {} asid {}",
                        q,
                        asid
                    );
                    let w = mmu.translate(va, Access::write(El::El1));
                    prop_assert_eq!(w.is_ok(), ap & 2 == 0, "write permission of page {}", q);
                    let leaf = mapper.lookup(mmu.memory(), va).unwrap().unwrap();
                    prop_assert_eq!(
                        leaf.pa.as_u64() + (va.as_u64() & ((1 << leaf.size_log2) - 1)),
                        pa + 16
                    );
                }
                None => {
                    prop_assert_eq!(
                        got.map_err(|f| f.kind),
                        Err(FaultKind::Translation),
                        "page {}",
                        q
                    );
                    prop_assert!(mapper.lookup(mmu.memory(), va).unwrap().is_none());
                }
            }
        }
    }
    // Unmapping everything frees every table but the root.
    let (lo, hi) = format.va_range();
    let flush = mapper
        .unmap(
            mmu.memory_mut(),
            &mut frames,
            VirtAddr::new(lo),
            hi - lo + 1,
        )
        .unwrap();
    drop(flush);
    prop_assert_eq!(mapper.table_count(), 1);
    prop_assert_eq!(frames.used as u64, 1u64 << (granule.page_shift() - 12));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn mapper_tlb_and_model_agree_4k(ops in proptest::collection::vec(op_strategy(4096, 512), 1..40)) {
        run(Granule::K4, ops)?;
    }

    #[test]
    fn mapper_tlb_and_model_agree_16k(ops in proptest::collection::vec(op_strategy(8192, 2048), 1..25)) {
        run(Granule::K16, ops)?;
    }

    #[test]
    fn mapper_tlb_and_model_agree_64k(ops in proptest::collection::vec(op_strategy(16384, 8192), 1..20)) {
        run(Granule::K64, ops)?;
    }
}
