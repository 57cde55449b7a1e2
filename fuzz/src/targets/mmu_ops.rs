//! The `mmu_ops` target: map, unmap, protect, TLBI and translate sequences on a model
//! world, checked against the mapper's and the TLB's contracts.

use super::*;

// ===== mmu_ops ==========================================================================

pub(crate) const MMU_RAM_BASE: u64 = 0x4000_0000;
/// Output addresses of mappings start here (outside RAM: translation never reads them).
pub(crate) const MMU_PA_BASE: u64 = 0x1_0000_0000;
/// MAIR_EL1 with Normal and Device types: AttrIndx 4, 6 and 7 are Device.
pub(crate) const MMU_MAIR: u64 = 0x0004_440c_ffee_bbff;
pub(crate) const MMU_MAX_OPS: usize = 96;
pub(crate) const MMU_MAX_PAGES: u64 = 2048;
/// Pages of VA window per mapper (page granule units), per granule.
pub(crate) const fn mmu_span(g: Granule) -> u64 {
    match g {
        Granule::K4 => 4096,
        Granule::K16 => 8192,
        Granule::K64 => 16384,
    }
}
/// Process ASIDs (TCR.AS = 1: 16-bit).
pub(crate) const MMU_ASIDS: [u16; 3] = [1, 0x101, 0xfffe];
/// Leaf attribute bits the model tracks (nG is fixed per address space; Contiguous is
/// left out because splitting a block clears it).
pub(crate) const MODEL_ATTRS: [u64; 16] = [
    1 << 2,  // AttrIndx[0]
    1 << 3,  // AttrIndx[1]
    1 << 4,  // AttrIndx[2]
    1 << 5,  // NS
    1 << 6,  // AP[1]
    1 << 7,  // AP[2]
    1 << 8,  // SH[0]
    1 << 9,  // SH[1]
    1 << 10, // AF
    1 << 50, // GP
    1 << 51, // DBM
    1 << 53, // PXN
    1 << 54, // UXN
    1 << 55, // SW0
    1 << 57, // SW2
    1 << 58, // SW3
];
/// Checks that attribute bits inside the output-address field are refused with
/// `InvalidAttributes`, as `MapError` documents.
pub(crate) const CHECK_OA_ATTRIBUTE_BITS: bool = true;

pub(crate) fn model_attrs(bits: u16) -> u64 {
    (0..16)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| MODEL_ATTRS[i])
        .fold(0, |a, b| a | b)
}

/// Physical memory that journals every write (address, old value) so that a failed call
/// can be checked to have left memory as it was.
pub(crate) struct Journal<'a> {
    mem: SliceMemory<'a>,
    log: Vec<(u64, u64)>,
}

impl PhysMemory for Journal<'_> {
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        self.mem.read_u64(pa)
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        if let Ok(old) = self.mem.read_u64(pa) {
            self.log.push((pa.as_u64(), old));
        }
        self.mem.write_u64(pa, value)
    }

    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        let mut off = 0;
        while off < len {
            if let Some(a) = pa.checked_add(off) {
                if let Ok(old) = self.mem.read_u64(a) {
                    self.log.push((a.as_u64(), old));
                }
            }
            off += 8;
        }
        self.mem.zero(pa, len)
    }
}

/// The frame allocator behind the mappers, with an injectable allocation failure and
/// checks on every release.
pub(crate) struct Frames<'s> {
    alloc: FrameAllocator<'s>,
    fail_at: Option<u64>,
    allocations: u64,
    hogs: BTreeSet<u64>,
    ever_hogged: bool,
    released: Vec<(u64, u32, bool)>,
}

impl FrameSource for Frames<'_> {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        self.allocations += 1;
        if self.fail_at == Some(self.allocations) {
            return None;
        }
        let (pa, zeroed) = FrameSource::allocate(&mut self.alloc, order)?;
        assert!(
            pa.is_aligned(4096 << order) && self.alloc.contains(pa),
            "allocator returned {pa:?} for order {order}"
        );
        Some((pa, zeroed))
    }

    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError> {
        for i in 0..1u64 << order {
            let f = PhysAddr::new(pa.as_u64() + i * 4096);
            assert_eq!(
                self.alloc.is_allocated(f),
                Ok(true),
                "the mapper released {f:?}, which is not allocated"
            );
            assert!(
                !self.hogs.contains(&f.as_u64()),
                "the mapper released {f:?}, which it does not own"
            );
        }
        self.released.push((pa.as_u64(), order, zeroed));
        FrameSource::release(&mut self.alloc, pa, order, zeroed)
    }

    fn available(&self, order: u32) -> u64 {
        FrameSource::available(&self.alloc, order)
    }
}

/// One address space: a mapper, its VA window and the model of the window's pages.
pub(crate) struct Space {
    mapper: Mapper,
    /// VA of model page 0.
    base_va: u64,
    asid: u16,
    global: bool,
    /// Per page of the window: (output address, leaf attribute bits incl. nG).
    model: Vec<Option<(u64, u64)>>,
    /// How many entries of `model` are `Some`.
    mapped: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Pa(u64),
    Fault(FaultKind),
}

pub(crate) struct MmuWorld<'a, 's> {
    mmu: Mmu<Journal<'a>, 64>,
    frames: Frames<'s>,
    spaces: Vec<Space>,
    /// Index of the current process (spaces[0..nproc]); the kernel is spaces[nproc].
    current: usize,
    nproc: usize,
    kernel: bool,
    granule: Granule,
    tcr: u64,
    cpu: Cpu,
    flush_style: bool,
}

impl MmuWorld<'_, '_> {
    fn page(&self) -> u64 {
        self.granule.page_size()
    }

    fn order(&self) -> u32 {
        self.granule.page_shift() - 12
    }

    fn regs_for(&self, process: usize) -> Registers {
        Registers {
            tcr: self.tcr,
            sctlr: 1,
            ttbr0: self.spaces[process].mapper.ttbr(self.spaces[process].asid),
            ttbr1: if self.kernel {
                self.spaces[self.nproc].mapper.ttbr(0)
            } else {
                0
            },
            mair: MMU_MAIR,
        }
    }

    fn va_range(&self, s: usize) -> (u64, u64) {
        self.spaces[s].mapper.format().va_range()
    }

    fn frames_in_use(&self) -> u64 {
        (self.frames.alloc.total_frames() - self.frames.alloc.free_frames()) as u64
    }

    fn check_frames(&self) {
        let tables: u64 = self
            .spaces
            .iter()
            .map(|s| s.mapper.table_count() << self.order())
            .sum();
        assert_eq!(
            self.frames_in_use(),
            tables + self.frames.hogs.len() as u64,
            "frames in use are not the mappers' tables"
        );
    }

    /// Whether space `s` translates through the MMU's current registers.
    fn live(&self, s: usize) -> bool {
        s == self.current || s >= self.nproc
    }

    fn fail_pending(&self) -> bool {
        self.frames
            .fail_at
            .is_some_and(|n| n > self.frames.allocations)
    }

    /// The model's answer for an access to page `idx` (+ `off`) of space `s`.
    fn want(&self, s: usize, idx: u64, off: u64, access: Access) -> Want {
        let entry = usize::try_from(idx)
            .ok()
            .and_then(|i| self.spaces[s].model.get(i).copied().flatten());
        let Some((pa, attrs)) = entry else {
            return Want::Fault(FaultKind::Translation);
        };
        if attrs & AF == 0 {
            return Want::Fault(FaultKind::AccessFlag);
        }
        let mair = (MMU_MAIR >> (8 * ((attrs >> 2) & 7))) as u8;
        if mair & 0xf0 == 0 && !access.is_fetch() && !off.is_multiple_of(u64::from(access.size())) {
            return Want::Fault(FaultKind::Alignment);
        }
        let ap1 = attrs & (1 << 6) != 0;
        let ap2 = attrs & AP_RO != 0;
        let pxn = attrs & (1 << 53) != 0;
        let uxn = attrs & (1 << 54) != 0;
        let pan = access.pan() && !access.is_fetch();
        let ok = match (access.el(), access.kind()) {
            (El::El0, AccessKind::Read) => ap1,
            (El::El0, AccessKind::Write) => ap1 && !ap2,
            (El::El0, AccessKind::Fetch) => !uxn,
            (El::El1, AccessKind::Read) => !(pan && ap1),
            (El::El1, AccessKind::Write) => !(ap2 || (pan && ap1)),
            (El::El1, AccessKind::Fetch) => !(pxn || (ap1 && !ap2)),
        };
        if ok {
            Want::Pa(pa + off)
        } else {
            Want::Fault(FaultKind::Permission)
        }
    }

    /// Translates page `idx` (+ `off`) of space `s` through the TLB (when live), a fresh
    /// walk and the mapper's lookup, and compares all three with the model.
    fn probe(&mut self, s: usize, idx: u64, off: u64, access: Access) {
        let page = self.page();
        let Some(va) = idx
            .checked_mul(page)
            .and_then(|d| self.spaces[s].base_va.checked_add(d))
            .and_then(|v| v.checked_add(off))
        else {
            return;
        };
        let (lo, hi) = self.va_range(s);
        if va < lo || va > hi {
            return;
        }
        let va = VirtAddr::new(va);
        let regime = if self.live(s) {
            *self.mmu.regime()
        } else {
            Regime::new(self.regs_for(s), self.cpu)
        };
        let fresh = walk_va(&regime, self.mmu.memory_mut(), va, access).map(|t| t.pa);
        if self.live(s) {
            let got = self.mmu.translate(va, access);
            assert_eq!(
                got, fresh,
                "TLB and a fresh walk disagree at {va:?} ({access:?})"
            );
        }
        let want = self.want(s, idx, off, access);
        let got = match fresh {
            Ok(pa) => Want::Pa(pa.as_u64()),
            Err(f) => Want::Fault(f.kind),
        };
        assert_eq!(got, want, "space {s} page {idx} at {va:?} ({access:?})");
        let leaf = self.spaces[s]
            .mapper
            .lookup(self.mmu.memory(), va)
            .expect("lookup reads the tables");
        match (
            leaf,
            self.spaces[s].model.get(idx as usize).copied().flatten(),
        ) {
            (None, None) => {}
            (Some(l), Some((pa, attrs))) => {
                let size = 1u64 << l.size_log2;
                assert_eq!(l.pa.as_u64() + (va.as_u64() & (size - 1)), pa + off);
                assert_eq!(
                    l.descriptor.bits() & leaf_attr_mask(),
                    attrs,
                    "leaf attributes at {va:?}"
                );
            }
            (l, m) => panic!("lookup {l:?} but model {m:x?} at {va:?}"),
        }
    }

    fn probe_around(&mut self, s: usize, first: u64, pages: u64) {
        let span = mmu_span(self.granule);
        let mut idxs = vec![first, first + pages - 1, first + pages, span / 2];
        if first > 0 {
            idxs.push(first - 1);
        }
        for idx in idxs {
            for access in [
                Access::read(El::El1),
                Access::write(El::El1),
                Access::read(El::El0),
            ] {
                self.probe(s, idx, 16, access);
            }
        }
    }

    /// Compares every leaf of every space with the model, page by page: in the whole VA
    /// half (`whole`), or only in the model's window (cheaper, for checks between
    /// operations; a stray leaf outside the window is caught at the end).
    fn full_check(&mut self, whole: bool) {
        let page = self.page();
        for s in 0..self.spaces.len() {
            let (mut lo, mut hi) = self.va_range(s);
            let sp = &self.spaces[s];
            if !whole {
                let window = sp.model.len() as u64 * page;
                lo = lo.max(sp.base_va);
                hi = hi.min(sp.base_va.saturating_add(window - 1));
            }
            let mut seen = 0u64;
            let mut leaves = Vec::new();
            sp.mapper
                .for_each_leaf(self.mmu.memory(), VirtAddr::new(lo), hi - lo + 1, |l| {
                    leaves.push(*l);
                    true
                })
                .expect("for_each_leaf reads the tables");
            for l in leaves {
                let start = l.va.as_u64();
                assert!(start >= sp.base_va, "leaf {l:?} below the window");
                let n = (1u64 << l.size_log2) / page;
                let first = (start - sp.base_va) / page;
                for i in 0..n {
                    let idx = (first + i) as usize;
                    let m = sp.model.get(idx).copied().flatten();
                    let got = (
                        l.pa.as_u64() + i * page,
                        l.descriptor.bits() & leaf_attr_mask(),
                    );
                    assert_eq!(m, Some(got), "space {s} page {idx}: leaf {l:?}");
                    seen += 1;
                }
            }
            assert_eq!(
                seen, sp.mapped,
                "space {s}: leaves cover other pages than the model"
            );
            let mut dump = String::new();
            sp.mapper
                .ptdump(self.mmu.memory(), MMU_MAIR, &mut dump)
                .expect("ptdump into a String");
            assert!(dump.starts_with("---[ TTBR"));
        }
    }

    /// Checks the memory effects of the call just made (recorded in the journal) and
    /// clears the journal: nothing written into frames the mapper does not own; after a
    /// failure every allocated frame as before; freed frames the allocator now calls zero
    /// do read as zero.
    fn after_call(&mut self, failed: bool) {
        let log = std::mem::take(&mut self.mmu.memory_mut().log);
        let released = std::mem::take(&mut self.frames.released);
        let mut touched = BTreeSet::new();
        let mut last_frame = u64::MAX;
        for &(pa, _) in &log {
            let frame = pa & !0xfff;
            if frame == last_frame {
                continue;
            }
            last_frame = frame;
            assert!(
                !self.frames.hogs.contains(&frame),
                "the mapper wrote {pa:#x}, in a frame it does not own"
            );
            assert!(
                self.frames.alloc.contains(PhysAddr::new(pa)),
                "the mapper wrote {pa:#x}, outside RAM"
            );
            touched.insert(frame);
        }
        for (pa, order, _) in released {
            for i in 0..1u64 << order {
                touched.insert(pa + i * 4096);
            }
        }
        if failed {
            let mut first_old = std::collections::BTreeMap::new();
            for &(pa, old) in &log {
                first_old.entry(pa).or_insert(old);
            }
            for (&pa, &old) in &first_old {
                let now = self.mmu.memory().read_u64(PhysAddr::new(pa)).unwrap_or(old);
                if now != old {
                    let allocated = self.frames.alloc.is_allocated(PhysAddr::new(pa & !0xfff));
                    assert_ne!(
                        allocated,
                        Ok(true),
                        "a failed call changed {pa:#x} from {old:#x} to {now:#x}"
                    );
                }
            }
        }
        for frame in touched {
            self.check_known_zero(frame);
        }
    }

    fn frame_bytes(&self, frame: u64) -> &[u8] {
        let off = (frame - MMU_RAM_BASE) as usize;
        &self.mmu.memory().mem.bytes()[off..off + 4096]
    }

    fn check_known_zero(&self, frame: u64) {
        if self.frames.alloc.is_known_zero(PhysAddr::new(frame)) == Ok(true) {
            let bytes = self.frame_bytes(frame);
            if bytes != [0u8; 4096].as_slice() {
                let i = bytes.iter().position(|&b| b != 0).unwrap_or(0);
                panic!(
                    "free frame {frame:#x} is marked zero but byte {i:#x} is {:#x}",
                    bytes[i]
                );
            }
        }
    }

    /// Applies the invalidations of a successful change.
    fn apply(&mut self, flush: Flush) {
        self.flush_style = !self.flush_style;
        if self.flush_style {
            self.mmu.flush(flush);
        } else {
            for op in flush.ops() {
                self.mmu.tlbi(op);
            }
        }
    }

    /// The expected range check of `check_range` for a page-aligned request.
    fn range_error(&self, s: usize, va: u64, len: u64) -> Option<MapError> {
        let (lo, hi) = self.va_range(s);
        let Some(last) = va.checked_add(len - 1) else {
            return Some(MapError::OutOfRange {
                va: VirtAddr::new(va),
            });
        };
        if va < lo || va > hi {
            return Some(MapError::OutOfRange {
                va: VirtAddr::new(va),
            });
        }
        if last > hi {
            return Some(MapError::OutOfRange {
                va: VirtAddr::new(last),
            });
        }
        None
    }

    /// Frames (in tables) a map of `[va, last]` may need at most.
    fn tables_bound(&self, s: usize, va: u64, last: u64) -> u64 {
        let g = self.granule;
        let start = self.spaces[s].mapper.format().start_level().get();
        let mut n = 0;
        for l in start + 1..=3 {
            let covered = g.level_shift(Level::new(l - 1).unwrap_or(Level::L0));
            n += (last >> covered) - (va >> covered) + 1;
        }
        n
    }

    /// Whether an OutOfFrames from a change is impossible: no injected failure, enough
    /// free tables, and no fragmentation that could make the estimate wrong.
    fn frames_certain(&self, tables: u64) -> bool {
        !self.fail_pending()
            && (self.order() == 0 || !self.frames.ever_hogged)
            && FrameSource::available(&self.frames, self.order()) >= tables
    }

    fn do_map(&mut self, s: usize, idx: u64, pages: u64, pa: u64, attrs: u64) {
        let page = self.page();
        let va = self.spaces[s].base_va.wrapping_add(idx * page);
        let len = pages * page;
        let before_tables = self.spaces[s].mapper.table_count();
        let expect_err = self.range_error(s, va, len).or_else(|| {
            let oa = 48;
            match pa.checked_add(len - 1) {
                None => Some(MapError::OutputOutOfRange { pa }),
                Some(l) if l >> oa != 0 => Some(MapError::OutputOutOfRange { pa: l }),
                _ => (idx..idx + pages)
                    .find(|&q| self.spaces[s].model[q as usize].is_some())
                    .map(|q| MapError::AlreadyMapped {
                        va: VirtAddr::new(self.spaces[s].base_va + q * page),
                    }),
            }
        });
        let certain =
            expect_err.is_none() && self.frames_certain(self.tables_bound(s, va, va + (len - 1)));
        let sp = &mut self.spaces[s];
        let r = sp.mapper.map(
            self.mmu.memory_mut(),
            &mut self.frames,
            VirtAddr::new(va),
            PhysAddr::new(pa),
            len,
            Attributes::from_bits_retain(attrs),
        );
        match (&r, expect_err) {
            (Ok(flush), None) => {
                assert!(flush.is_empty(), "map returned invalidations: {flush:?}");
                for q in 0..pages {
                    sp.model[(idx + q) as usize] = Some((pa + q * page, attrs));
                }
                sp.mapped += pages;
            }
            (Err(e), Some(want)) => assert_eq!(*e, want, "map error"),
            (Err(MapError::OutOfFrames { .. }), None) => {
                assert!(!certain, "map ran out of frames with plenty free");
            }
            (r, want) => panic!("map {va:#x}+{len:#x}: got {r:?}, expected {want:?}"),
        }
        if r.is_err() {
            assert_eq!(self.spaces[s].mapper.table_count(), before_tables);
        }
        self.after_call(r.is_err());
    }

    fn do_change(&mut self, s: usize, idx: u64, pages: u64, protect: Option<(u64, u64)>) {
        let page = self.page();
        let va = self.spaces[s].base_va.wrapping_add(idx * page);
        let len = pages * page;
        let before_tables = self.spaces[s].mapper.table_count();
        let expect_err = self.range_error(s, va, len);
        let certain = expect_err.is_none() && self.frames_certain(16);
        let sp = &mut self.spaces[s];
        let r = match protect {
            None => sp.mapper.unmap(
                self.mmu.memory_mut(),
                &mut self.frames,
                VirtAddr::new(va),
                len,
            ),
            Some((set, clear)) => sp.mapper.protect(
                self.mmu.memory_mut(),
                &mut self.frames,
                VirtAddr::new(va),
                len,
                Attributes::from_bits_retain(set),
                Attributes::from_bits_retain(clear),
            ),
        };
        match (r, expect_err) {
            (Ok(flush), None) => {
                for q in idx..idx + pages {
                    let e = &mut sp.model[q as usize];
                    match protect {
                        None => {
                            if e.take().is_some() {
                                sp.mapped -= 1;
                            }
                        }
                        Some((set, clear)) => {
                            if let Some((_, a)) = e {
                                *a = (*a & !clear) | set;
                            }
                        }
                    }
                }
                self.after_call(false);
                self.apply(flush);
            }
            (Err(e), Some(want)) => {
                assert_eq!(e, want, "unmap/protect error");
                self.after_call(true);
            }
            (Err(MapError::OutOfFrames { .. }), None) => {
                assert!(!certain, "unmap/protect ran out of frames with plenty free");
                assert_eq!(self.spaces[s].mapper.table_count(), before_tables);
                self.after_call(true);
            }
            (r, want) => panic!("unmap/protect {va:#x}+{len:#x}: got {r:?}, expected {want:?}"),
        }
    }

    /// Calls with raw arguments that the documented checks must refuse, before touching
    /// anything (or a zero length, which does nothing).
    fn do_bad(&mut self, s: usize, which: u8, va: u64, len: u64, pa: u64, attrs: u64) {
        // The mapper sees the output address as a `PhysAddr`, which keeps 52 bits.
        let pa = PhysAddr::new(pa).as_u64();
        let page = self.page();
        let (lo, hi) = self.va_range(s);
        let owned = 3u64;
        let range = || -> Option<MapError> {
            if !va.is_multiple_of(page) {
                return Some(MapError::Unaligned { addr: va });
            }
            if !len.is_multiple_of(page) {
                return Some(MapError::Unaligned { addr: len });
            }
            let Some(last) = va.checked_add(len - 1) else {
                return Some(MapError::OutOfRange {
                    va: VirtAddr::new(va),
                });
            };
            if va < lo || va > hi {
                return Some(MapError::OutOfRange {
                    va: VirtAddr::new(va),
                });
            }
            (last > hi).then_some(MapError::OutOfRange {
                va: VirtAddr::new(last),
            })
        };
        let oa_attr_bits = attrs & 0x0000_ffff_ffff_f000 & !Attributes::all().bits();
        let want: Option<MapError> = match which % 3 {
            0 => {
                if len == 0 {
                    None
                } else if let Some(e) = range() {
                    Some(e)
                } else if !pa.is_multiple_of(page) {
                    Some(MapError::Unaligned { addr: pa })
                } else if let Some(e) = match pa.checked_add(len - 1) {
                    None => Some(MapError::OutputOutOfRange { pa }),
                    Some(l) if l >> 48 != 0 => Some(MapError::OutputOutOfRange { pa: l }),
                    _ => None,
                } {
                    Some(e)
                } else if attrs & owned != 0 {
                    Some(MapError::InvalidAttributes {
                        bits: attrs & owned,
                    })
                } else if CHECK_OA_ATTRIBUTE_BITS && oa_attr_bits != 0 {
                    // Only the variant is compared below.
                    Some(MapError::InvalidAttributes { bits: oa_attr_bits })
                } else {
                    return; // a valid request: not this op's business
                }
            }
            1 => {
                if len == 0 {
                    None
                } else if let Some(e) = range() {
                    Some(e)
                } else {
                    return;
                }
            }
            _ => {
                // Set and clear bits are both checked; every bit that is not a leaf
                // attribute is refused.
                let clear = attrs.rotate_left(7) & !owned;
                let refused = if CHECK_OA_ATTRIBUTE_BITS {
                    owned | !Attributes::all().bits()
                } else {
                    owned
                };
                let bad = (attrs | clear) & refused;
                if bad != 0 {
                    Some(MapError::InvalidAttributes { bits: bad })
                } else if len == 0 {
                    None
                } else if let Some(e) = range() {
                    Some(e)
                } else {
                    return;
                }
            }
        };
        let sp = &mut self.spaces[s];
        let mem = self.mmu.memory_mut();
        let r = match which % 3 {
            0 => sp.mapper.map(
                mem,
                &mut self.frames,
                VirtAddr::new(va),
                PhysAddr::new(pa),
                len,
                Attributes::from_bits_retain(attrs),
            ),
            1 => sp
                .mapper
                .unmap(mem, &mut self.frames, VirtAddr::new(va), len),
            _ => sp.mapper.protect(
                mem,
                &mut self.frames,
                VirtAddr::new(va),
                len,
                Attributes::from_bits_retain(attrs),
                Attributes::from_bits_retain(attrs.rotate_left(7) & !owned),
            ),
        };
        match (r, want) {
            (Ok(f), None) => assert!(f.is_empty(), "a zero-length call flushed {f:?}"),
            (Err(MapError::InvalidAttributes { .. }), Some(MapError::InvalidAttributes { .. }))
                if CHECK_OA_ATTRIBUTE_BITS => {}
            (Err(e), Some(w)) => assert_eq!(e, w),
            (r, w) => panic!("bad call {which}: got {r:?}, expected {w:?}"),
        }
        assert!(
            self.mmu.memory().log.is_empty(),
            "a refused call wrote memory"
        );
        self.after_call(true);
    }
}

pub(crate) fn leaf_attr_mask() -> u64 {
    Attributes::all().bits() & !3
}

/// Fuzz target `mmu_ops`: address spaces (up to three processes with their own ASIDs and
/// tables, and optionally a kernel half with global mappings) built by `Mapper` over a
/// `FrameAllocator`, driven by arbitrary map / unmap / protect / TLBI / context switch /
/// translate operations, with injected allocation failures and fragmentation. After each
/// operation, with its `Flush` applied, the TLB, a fresh walk and the mapper's lookup
/// agree with a page-by-page model; frames in use are exactly the tables; a failed call
/// left every allocated frame as it was; frames the allocator calls zero are zero.
///
/// Input: `setup:u8 window:u8 ram:u8`, then operations (opcode byte and arguments) until
/// the input ends.
pub fn mmu_ops(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = r.u8();
    let window = r.u8();
    let ram_sel = r.u8();
    let granule = [Granule::K4, Granule::K16, Granule::K64][usize::from(setup & 3) % 3];
    let tsz: u64 = match (granule, (setup >> 2) & 3) {
        (Granule::K4, 1) => 25,
        (Granule::K4, 2) => 39,
        (Granule::K16, 1) => 17,
        (Granule::K16, 2) => 36,
        (Granule::K64, 1) => 22,
        (Granule::K64, 2) => 33,
        _ => 16,
    };
    let nproc = usize::from((setup >> 4) & 3).clamp(1, 3);
    let kernel = setup & 0x40 != 0;
    let blocks = setup & 0x80 == 0;
    let frames_n = 64 + usize::from(ram_sel & 7) * 64;
    let ram_size = frames_n * 4096;

    let tg0 = granule.tg0();
    let tg1 = granule.tg1();
    let mut tcr = tsz | (tg0 << 14) | (tsz << 16) | (tg1 << 30) | (5 << 32) | (1 << 36);
    if !kernel {
        tcr |= 1 << 23; // EPD1
    }
    let cpu = Cpu::MAX;
    let mut ram = vec![0u8; ram_size];
    let mut storage = vec![0u64; FrameAllocator::storage_words(frames_n)];
    let alloc = FrameAllocator::new(
        PhysAddr::new(MMU_RAM_BASE),
        ram_size as u64,
        &mut storage,
        if ram_sel & 0x80 == 0 {
            Contents::Zeroed
        } else {
            Contents::Unknown
        },
    )
    .expect("frame allocator");
    if ram_sel & 0x80 != 0 {
        // Not known to be zero: fill with garbage the mapper must clear before use.
        for (i, c) in ram.chunks_exact_mut(8).enumerate() {
            c.copy_from_slice(&hog_pattern(!(i as u64)).to_le_bytes());
        }
    }
    let mem = Journal {
        mem: SliceMemory::new(PhysAddr::new(MMU_RAM_BASE), &mut ram),
        log: Vec::new(),
    };
    let regs0 = Registers {
        tcr,
        sctlr: 1,
        ttbr0: 0,
        ttbr1: 0,
        mair: MMU_MAIR,
    };
    let mut mmu: Mmu<Journal<'_>, 64> = Mmu::new(regs0, cpu, mem);
    let mut frames = Frames {
        alloc,
        fail_at: None,
        allocations: 0,
        hogs: BTreeSet::new(),
        ever_hogged: false,
        released: Vec::new(),
    };
    let page = granule.page_size();
    let span = mmu_span(granule);
    let block_pages = 1u64 << (granule.level_shift(Level::L2) - granule.page_shift());
    let model_pages = span + MMU_MAX_PAGES.max(2 * block_pages);
    let mut spaces = Vec::new();
    for i in 0..nproc + usize::from(kernel) {
        let upper = i == nproc;
        let format = TableFormat::from_regime(
            mmu.regime(),
            if upper {
                VaRange::Upper
            } else {
                VaRange::Lower
            },
        );
        let mut mapper = match Mapper::new(format, mmu.memory_mut(), &mut frames) {
            Ok(m) => m,
            Err(e) => panic!("Mapper::new with free RAM: {e:?}"),
        };
        mapper.set_block_mappings(blocks);
        let asid = if upper {
            0
        } else {
            MMU_ASIDS[i % MMU_ASIDS.len()]
        };
        mapper.set_asid(asid);
        let (lo, hi) = format.va_range();
        let sel = (window >> (2 * (i % 4))) & 3;
        let base_va = match sel {
            1 => (hi - span * page) + 1,
            2 => lo + ((hi - lo) / 2 + 1),
            3 => lo + 0x40_0000_0000u64.min((hi - lo) / 4) / page * page,
            _ => lo,
        };
        spaces.push(Space {
            mapper,
            base_va,
            asid,
            global: upper,
            model: vec![None; model_pages as usize],
            mapped: 0,
        });
    }
    mmu.memory_mut().log.clear();
    frames.released.clear();
    let mut w = MmuWorld {
        mmu,
        frames,
        spaces,
        current: 0,
        nproc,
        kernel,
        granule,
        tcr,
        cpu,
        flush_style: false,
    };
    let regs = w.regs_for(0);
    w.mmu.set_registers(regs);
    w.check_frames();
    let nspaces = w.spaces.len();

    let mut ops = 0;
    while !r.is_empty() && ops < MMU_MAX_OPS {
        ops += 1;
        let op = r.u8();
        match op % 12 {
            0 | 1 => {
                let sel = r.u8();
                let s = usize::from(sel) % nspaces;
                let mut idx = u64::from(r.u16()) % span;
                let mut pages = u64::from(r.u16()) % MMU_MAX_PAGES + 1;
                let mut pa_page = u64::from(r.u16());
                let attr_bits = r.u16();
                if sel & 0x80 != 0 {
                    idx = idx / block_pages * block_pages;
                    pages = (pages / block_pages % 2 + 1) * block_pages;
                    pa_page = pa_page / block_pages * block_pages;
                }
                let pa = if sel & 0x40 != 0 {
                    (1u64 << 48) - (pa_page % 64 + 1) * page
                } else {
                    MMU_PA_BASE + pa_page * page
                };
                let mut attrs = model_attrs(attr_bits) ^ AF;
                if !w.spaces[s].global {
                    attrs |= 1 << 11;
                }
                w.do_map(s, idx, pages, pa, attrs);
                w.probe_around(s, idx, pages);
            }
            2 | 3 => {
                let sel = r.u8();
                let s = usize::from(sel) % nspaces;
                let mut idx = u64::from(r.u16()) % span;
                let mut pages = u64::from(r.u16()) % MMU_MAX_PAGES + 1;
                if sel & 0x80 != 0 {
                    // Around a block boundary.
                    idx = (idx / block_pages * block_pages + block_pages)
                        .saturating_sub(u64::from(sel & 7))
                        .min(span - 1);
                    pages = pages.min(16);
                }
                let protect = if op % 12 == 3 {
                    Some((model_attrs(r.u16()), model_attrs(r.u16())))
                } else {
                    None
                };
                w.do_change(s, idx, pages, protect);
                w.probe_around(s, idx, pages);
            }
            4 => {
                let p = usize::from(r.u8()) % nproc;
                w.current = p;
                let regs = w.regs_for(p);
                w.mmu.set_registers(regs);
            }
            5 | 6 => {
                let sel = r.u8();
                let s = if sel & 1 == 1 && kernel {
                    nproc
                } else {
                    w.current
                };
                let idx = u64::from(r.u16()) % (span + 16);
                let off = u64::from(r.u16()) % page;
                let b = r.u8();
                let kind = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch]
                    [usize::from(b & 3) % 3];
                let el = if b & 4 != 0 { El::El0 } else { El::El1 };
                let access = Access::new(kind, el)
                    .with_pan(b & 8 != 0)
                    .with_size(WALK_SIZES[usize::from(b >> 4) & 7]);
                w.probe(s, idx, off, access);
            }
            7 => {
                let kind = r.u8();
                let idx = u64::from(r.u16()) % span;
                let asid_sel = r.u8();
                let len = u64::from(r.u16());
                let xt = r.u64();
                let s = usize::from(asid_sel) % nspaces;
                let va = VirtAddr::new(w.spaces[s].base_va.wrapping_add(idx * page));
                let asid = if asid_sel & 0x80 != 0 {
                    u16::from(asid_sel)
                } else {
                    w.spaces[s].asid
                };
                let op = match kind % 10 {
                    0 => Tlbi::Vae1 { asid, va },
                    1 => Tlbi::Vale1 { asid, va },
                    2 => Tlbi::Vaae1 { va },
                    3 => Tlbi::Vaale1 { va },
                    4 => Tlbi::Aside1 { asid },
                    5 => Tlbi::Vmalle1,
                    6 => Tlbi::Rvae1 { asid, va, len },
                    7 => Tlbi::Rvaae1 { va, len },
                    _ => {
                        let names = [
                            "VAE1",
                            "VALE1IS",
                            "VAAE1",
                            "VAALE1OS",
                            "ASIDE1",
                            "VMALLE1IS",
                            "RVAE1",
                            "RVALE1",
                            "RVAAE1IS",
                            "RVAALE1",
                            "ALLE2",
                            "",
                        ];
                        match Tlbi::from_operand(names[usize::from(kind >> 4) % names.len()], xt) {
                            Ok(op) => op,
                            Err(_) => continue,
                        }
                    }
                };
                // Invalidating more than needed never breaks coherence.
                w.mmu.tlbi(op);
                let s = w.current;
                w.probe_around(s, idx, 1);
            }
            8 => {
                let nth = u64::from(r.u8() % 4) + 1;
                w.frames.fail_at = Some(w.frames.allocations + nth);
            }
            9 => {
                let b = r.u8();
                let n = usize::from(b & 15) + 1;
                if b & 0x80 != 0 {
                    let victims: Vec<u64> = if b & 0x40 != 0 {
                        w.frames.hogs.iter().rev().take(n).copied().collect()
                    } else {
                        w.frames.hogs.iter().step_by(2).take(n).copied().collect()
                    };
                    for f in victims {
                        w.frames.hogs.remove(&f);
                        w.frames
                            .alloc
                            .free(PhysAddr::new(f))
                            .expect("free a hog frame");
                    }
                } else {
                    for _ in 0..n {
                        let Ok(f) = w.frames.alloc.alloc() else { break };
                        let f = f.as_u64();
                        w.frames.hogs.insert(f);
                        w.frames.ever_hogged = true;
                        for off in (0..4096).step_by(8) {
                            let pa = PhysAddr::new(f + off);
                            w.mmu
                                .memory_mut()
                                .mem
                                .write_u64(pa, hog_pattern(f + off))
                                .expect("hog frame in RAM");
                        }
                    }
                }
            }
            10 => {
                let b = r.u8();
                let s = usize::from(b) % nspaces;
                w.spaces[s].mapper.set_block_mappings(b & 0x80 == 0);
            }
            _ => {
                let b = r.u8();
                if b & 0x80 != 0 {
                    w.full_check(false);
                } else {
                    let s = usize::from(b & 3) % nspaces;
                    let (va, len, pa, attrs) = (r.u64(), r.u64(), r.u64(), r.u64());
                    w.do_bad(s, b >> 2, va, len, pa, attrs);
                }
            }
        }
        w.check_frames();
    }

    // The end: everything agrees, then unmapping everything frees every table but the
    // roots, and memory holds no trace of the frames the allocator calls zero.
    w.full_check(true);
    for s in 0..nspaces {
        let (lo, hi) = w.va_range(s);
        let sp = &mut w.spaces[s];
        match sp.mapper.unmap(
            w.mmu.memory_mut(),
            &mut w.frames,
            VirtAddr::new(lo),
            hi - lo + 1,
        ) {
            Ok(flush) => {
                sp.model.iter_mut().for_each(|e| *e = None);
                sp.mapped = 0;
                w.after_call(false);
                w.apply(flush);
            }
            Err(e) => panic!("unmapping a whole half failed: {e:?}"),
        }
        assert_eq!(
            w.spaces[s].mapper.table_count(),
            1,
            "tables left after unmap-all"
        );
    }
    w.check_frames();
    for s in 0..nspaces {
        let (lo, hi) = w.va_range(s);
        let mut left = 0;
        w.spaces[s]
            .mapper
            .for_each_leaf(w.mmu.memory(), VirtAddr::new(lo), hi - lo + 1, |_| {
                left += 1;
                true
            })
            .expect("for_each_leaf reads the tables");
        assert_eq!(left, 0, "leaves left after unmapping a whole half");
    }
    for s in 0..nspaces {
        for idx in [0, span / 3, span - 1] {
            w.probe(s, idx, 0, Access::read(El::El1));
        }
    }
    let hogs: Vec<u64> = w.frames.hogs.iter().copied().collect();
    for f in hogs {
        let intact = w
            .frame_bytes(f)
            .chunks_exact(8)
            .zip((0..4096).step_by(8))
            .all(|(c, off)| c == hog_pattern(f + off).to_le_bytes());
        assert!(intact, "hog frame {f:#x} was written");
    }
    for i in 0..frames_n as u64 {
        w.check_known_zero(MMU_RAM_BASE + i * 4096);
    }
}

pub(crate) fn hog_pattern(pa: u64) -> u64 {
    pa.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}
