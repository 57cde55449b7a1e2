//! The MMU an emulator embeds: a decoded regime, a software TLB and physical memory, with
//! an allocation-free `translate`.

use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::walk::{check_va, resume_at, walk_tables, walk_tables_slot, LeafSlot};
use crate::arch::{
    walk, Access, Cpu, Fault, FaultKind, Level, MairAttr, Regime, Registers, Translation,
};

use super::flush::Flush;
use super::tlb::{AccessCheck, Stats, Tlb, TlbEntry, Tlbi, BYPASS_KEY};
use crate::phys::PhysMemory;

/// Per (half, fetch, EL0) values for the TLB: the pre-lookup checks of spec §4.1 steps
/// 1–3 and the top-byte normalisation of the lookup key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Context {
    range_mask: u64,
    range_expect: u64,
    /// The key of a VA is `(va & key_and) | key_or`: the page address with its top byte
    /// normalised, or a value no entry has ([`BYPASS_KEY`] set) when the TLB must not answer
    /// (TxSZ out of range faults every access; E0PD faults EL0 accesses on a hit too).
    key_and: u64,
    key_or: u64,
}

impl Context {
    /// Returns the lookup key of `va`.
    #[inline]
    fn key(&self, va: u64) -> u64 {
        (va & self.key_and) | self.key_or
    }

    /// Returns whether a walk of `va` may fill the TLB: the VA is in its half's range and
    /// the TLB is not bypassed.
    #[inline]
    fn fills(&self, va: u64) -> bool {
        va & self.range_mask == self.range_expect && self.key_or & BYPASS_KEY == 0
    }
}

/// Returns the index of the [`Context`] for `va` and `access`.
#[inline(always)]
const fn context_index(va: u64, access: &Access) -> usize {
    ((va >> 53) & 4) as usize | ((access.is_fetch() as usize) << 1) | access.is_el0() as usize
}

/// Where an access goes, as [`Mmu::route`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The physical address.
    pub pa: PhysAddr,
    /// The memory attributes (MAIR_EL1 `Attr<AttrIndx>`): Device or Normal, cacheability.
    pub attr: MairAttr,
    /// log2 of the size of the page or block (12 for a 4 KiB page, 21 for a 2 MiB block).
    pub size_log2: u8,
    /// Whether the translation is global (nG = 0): it holds for every ASID.
    pub global: bool,
}

impl Route {
    fn from_entry(pa: PhysAddr, e: &TlbEntry) -> Route {
        Route {
            pa,
            attr: e.mair_attr(),
            size_log2: e.size_log2(),
            global: e.is_global(),
        }
    }
}

/// An AArch64 stage-1 MMU: registers, a TLB of `N` entries and physical memory `M`.
///
/// [`Mmu::translate`] serves hits from the TLB and walks on a miss, caching fault-free
/// leaves; the TLB keeps stale entries until a [`Tlbi`], as hardware does. `COUNT_HITS`
/// is the TLB's (see [`Tlb`]).
///
/// # Example
///
/// Tables built by a [`Mapper`](super::Mapper) from frames of a
/// [`FrameAllocator`](super::FrameAllocator), translated through the TLB; an unmap is seen
/// only once the [`Flush`] it returned is applied.
///
/// ```
/// use pagesim::arch::{Access, Attributes, Cpu, El, FaultKind, Granule, Registers};
/// use pagesim::mmu::{Contents, FrameAllocator, Lpa2, Mapper, Mmu, TableFormat, VaRange};
/// use pagesim::phys::SliceMemory;
/// use pagesim::{PhysAddr, VirtAddr};
///
/// // 1 MiB of RAM at 0x4000_0000, whose frames hold the tables.
/// let mut ram = vec![0u8; 1 << 20];
/// let mut mem = SliceMemory::new(PhysAddr::new(0x4000_0000), &mut ram);
/// let mut storage = vec![0u64; FrameAllocator::storage_words(256)];
/// let mut frames = FrameAllocator::new(PhysAddr::new(0x4000_0000), 1 << 20, &mut storage, Contents::Zeroed)?;
///
/// // 16 KiB of user pages at 0x1000_0000 -> 0x8000_0000: 4 KiB granule, 48-bit VA.
/// let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48)?;
/// let mut mapper = Mapper::new(format, &mut mem, &mut frames)?;
/// mapper.set_asid(1); // its Flush records invalidate for ASID 1
/// let attrs = Attributes::AF | Attributes::AP_EL0 | Attributes::NG;
/// let va = VirtAddr::new(0x1000_0000);
/// let flush = mapper.map(&mut mem, &mut frames, va, PhysAddr::new(0x8000_0000), 0x4000, attrs)?;
///
/// let regs = Registers {
///     tcr: 0x5_8010_0010, // T0SZ = 16, 4 KiB granule, IPS = 48 bits
///     sctlr: 1,           // MMU on
///     ttbr0: mapper.ttbr(1),
///     ttbr1: 0,
///     mair: 0xff,
/// };
/// let mut mmu: Mmu<_, 64, true> = Mmu::new(regs, Cpu::MAX, mem); // hits counted
/// mmu.flush(flush); // every change's record is applied (nothing was cached yet)
///
/// let read = Access::read(El::El0);
/// let at = VirtAddr::new(0x1000_2345);
/// assert_eq!(mmu.translate(at, read), Ok(PhysAddr::new(0x8000_2345))); // walk and fill
/// assert_eq!(mmu.translate(at, read), Ok(PhysAddr::new(0x8000_2345))); // TLB hit
/// assert_eq!((mmu.stats().walks, mmu.stats().hits), (1, 1));
///
/// // Unmap the page: the cached translation stays usable until its TLBI.
/// let flush = mapper.unmap(mmu.memory_mut(), &mut frames, VirtAddr::new(0x1000_2000), 0x1000)?;
/// assert!(mmu.translate(at, read).is_ok());
/// mmu.flush(flush);
/// let fault = mmu.translate(at, read).unwrap_err();
/// assert_eq!((fault.kind, fault.esr()), (FaultKind::Translation, 0x9200_0007));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Mmu<M: PhysMemory, const N: usize, const COUNT_HITS: bool = false> {
    regime: Regime,
    ctx: [Context; 8],
    epan: bool,
    tlb: Tlb<N, COUNT_HITS>,
    mem: M,
}

impl<M: PhysMemory, const N: usize, const COUNT_HITS: bool> Mmu<M, N, COUNT_HITS> {
    /// Creates an MMU with an empty TLB.
    pub fn new(regs: Registers, cpu: Cpu, mem: M) -> Self {
        let regime = Regime::new(regs, cpu);
        let mut mmu = Mmu {
            regime,
            ctx: [Context::default(); 8],
            epan: false,
            tlb: Tlb::new(),
            mem,
        };
        mmu.derive();
        mmu
    }

    fn derive(&mut self) {
        let r = &self.regime;
        for upper in [false, true] {
            let h = r.half(upper);
            for fetch in [false, true] {
                let range_mask = h.va_check(fetch);
                let tbi = h.tbi && !(fetch && h.tbid);
                let (norm_and, norm_or) = match (tbi, upper) {
                    (false, _) => (u64::MAX, 0),
                    (true, false) => (0x00ff_ffff_ffff_ffff, 0),
                    (true, true) => (0x00ff_ffff_ffff_ffff, 0xff00_0000_0000_0000),
                };
                for el0 in [false, true] {
                    // The accesses check_va faults before any lookup (TxSZ, E0PD).
                    let bypass = h.faults_before_lookup(el0);
                    let (key_and, key_or) = if bypass {
                        (0, BYPASS_KEY)
                    } else {
                        (norm_and & !0xfff, norm_or)
                    };
                    let i = (upper as usize) << 2 | (fetch as usize) << 1 | el0 as usize;
                    self.ctx[i] = Context {
                        range_mask,
                        range_expect: if upper { range_mask } else { 0 },
                        key_and,
                        key_or,
                    };
                }
            }
        }
        self.epan = r.epan();
        self.tlb.set_asid(r.asid());
    }

    /// Returns the decoded regime.
    #[inline]
    pub fn regime(&self) -> &Regime {
        &self.regime
    }

    /// Writes the translation registers.
    ///
    /// A new ASID switches context without flushing (entries are ASID-tagged; global ones
    /// stay). A change to TCR_EL1, SCTLR_EL1 or MAIR_EL1 flushes the TLB, as QEMU does (the
    /// architecture lets those fields be cached until a TLBI; flushing is the safe side).
    /// A TTBR base change under the same ASID keeps the entries: software must TLBI.
    pub fn set_registers(&mut self, regs: Registers) {
        let old = *self.regime.registers();
        self.regime = Regime::new(regs, *self.regime.cpu());
        if old.tcr != regs.tcr || old.sctlr != regs.sctlr || old.mair != regs.mair {
            self.tlb.invalidate(Tlbi::Vmalle1);
        }
        self.derive();
    }

    /// Replaces the CPU model (features, compat) and flushes the TLB.
    pub fn set_cpu(&mut self, cpu: Cpu) {
        self.regime = Regime::new(*self.regime.registers(), cpu);
        self.tlb.invalidate(Tlbi::Vmalle1);
        self.derive();
    }

    /// Translates `va` for `access`: from the TLB on a hit, by a walk on a miss.
    ///
    /// # Errors
    /// The [`Fault`] the access takes.
    #[inline(always)]
    pub fn translate(&mut self, va: VirtAddr, access: Access) -> Result<PhysAddr, Fault> {
        let v = va.as_u64();
        // The VA's own page address is the key. Entries hold normalised keys of VAs that
        // passed the range check, so only a VA whose top byte is already the normalised one
        // (no tag) can match, and then it passes the check too; a tagged VA misses here and
        // is looked up again under its normalised key. The TxSZ and E0PD conditions need no
        // test: no entry exists for a half whose TxSZ faults every walk, and entries of an
        // E0PD half refuse EL0 accesses themselves.
        if let Some(pa) =
            self.tlb
                .lookup_page(v & !0xfff, v & 0xfff, AccessCheck::new(&access, self.epan))
        {
            return Ok(pa);
        }
        self.translate_miss(va, access)
    }

    /// The TLB missed (or cannot be used): walk, fill, or fault. Cold, so that the hit
    /// path is laid out straight.
    #[cold]
    #[inline(never)]
    fn translate_miss(&mut self, va: VirtAddr, access: Access) -> Result<PhysAddr, Fault> {
        self.miss(va, access, None)
    }

    /// Translates `va` for `access` like [`Mmu::translate`]. When the walk stops on an
    /// invalid level-3 entry, `slot` receives where, for [`Mmu::resume`] to finish the
    /// retried access once a fault handler wrote that entry; the fault is then a level-3
    /// Translation fault at `va` for `access`.
    ///
    /// # Errors
    /// The [`Fault`] the access takes.
    #[inline]
    pub(crate) fn translate_slot(
        &mut self,
        va: VirtAddr,
        access: Access,
        slot: &mut Option<LeafSlot>,
    ) -> Result<PhysAddr, Fault> {
        let v = va.as_u64();
        if let Some(pa) =
            self.tlb
                .lookup_page(v & !0xfff, v & 0xfff, AccessCheck::new(&access, self.epan))
        {
            return Ok(pa);
        }
        self.miss(va, access, Some(slot))
    }

    /// Retries the access of [`Mmu::translate_slot`] that faulted at `slot`, after a fault
    /// handler wrote `desc` to the entry there (and changed nothing else the walk or the
    /// TLB reads): counts and fills as [`Mmu::translate`] would, reading no table.
    ///
    /// # Errors
    /// The [`Fault`] the access takes.
    #[inline]
    pub(crate) fn resume(
        &mut self,
        va: VirtAddr,
        access: Access,
        slot: &LeafSlot,
        desc: u64,
    ) -> Result<PhysAddr, Fault> {
        let v = va.as_u64();
        let tag = self.ctx[context_index(v, &access)].key(v) >> 12;
        // The lookups miss again: nothing was filled for the page since they last did.
        self.tlb.stats_mut().misses += 1;
        let h = self.regime.half(va.select_bit());
        self.tlb.stats_mut().walks += 1;
        let r = resume_at(&self.regime, h, &mut self.mem, va, access, slot, desc);
        self.account(tag, h.e0pd, r).map(|t| t.pa)
    }

    /// The page array missed: looks in the rest of the TLB, then walks (leaving the slot of
    /// an invalid last-level entry in `slot`, where given) and fills, or faults.
    #[inline(always)]
    fn miss(
        &mut self,
        va: VirtAddr,
        access: Access,
        slot: Option<&mut Option<LeafSlot>>,
    ) -> Result<PhysAddr, Fault> {
        let v = va.as_u64();
        let c = &self.ctx[context_index(v, &access)];
        let key = c.key(v);
        let check = AccessCheck::new(&access, self.epan);
        if key != v & !0xfff {
            if let Some(pa) = self.tlb.lookup_page(key, v & 0xfff, check) {
                return Ok(pa);
            }
        }
        if let Some(pa) = self.tlb.lookup_block_gated(key, v & 0xfff, check) {
            return Ok(pa);
        }
        if self.regime.mmu_enabled() && c.fills(v) {
            let tag = key >> 12;
            return match slot {
                None => self.walk_and_fill_outlined(va, tag, access).map(|t| t.pa),
                Some(s) => match self.walk_and_fill(va, tag, access, Some(&mut *s)) {
                    Ok(t) => Ok(t.pa),
                    // The walk stopped at the slot: its fault, built here rather than
                    // copied out of the walk's result (a wide load of the narrow stores
                    // that wrote it would wait for them).
                    Err(_) if s.is_some() => {
                        Err(Fault::new(FaultKind::Translation, Level::L3, va, access))
                    }
                    Err(f) => Err(f),
                },
            };
        }
        self.slow(va, access).map(|t| t.pa)
    }

    /// Translates `va` for `access` like [`Mmu::translate`] (from the TLB on a hit), and
    /// returns what an emulator routes the access on: the physical address, the memory
    /// attributes (Device or Normal, cacheability), the size of the page or block, and
    /// whether the translation is global. A Device access can go to MMIO without a second
    /// walk.
    ///
    /// # Errors
    /// The [`Fault`] the access takes.
    pub fn route(&mut self, va: VirtAddr, access: Access) -> Result<Route, Fault> {
        let v = va.as_u64();
        let c = &self.ctx[context_index(v, &access)];
        let key = c.key(v);
        let check = AccessCheck::new(&access, self.epan);
        let off = v & 0xfff;
        if let Some(e) = self.tlb.page_hit(key, check) {
            return Ok(Route::from_entry(
                PhysAddr::from_bits_52(e.pa_page().as_u64() | off),
                e,
            ));
        }
        if let Some(e) = self.tlb.block_hit(key, check) {
            let pa = e.pa_page().as_u64() + (key - e.va_page()) + off;
            return Ok(Route::from_entry(PhysAddr::from_bits_52(pa), e));
        }
        self.translate_walk(va, access).map(|t| Route {
            pa: t.pa,
            attr: t.mair_attr(),
            size_log2: t.size_log2,
            global: t.global(),
        })
    }

    /// Translates like [`Mmu::translate`] but always walks (filling the TLB on success) and
    /// returns the whole [`Translation`].
    ///
    /// # Errors
    /// The [`Fault`] the access takes.
    pub fn translate_walk(&mut self, va: VirtAddr, access: Access) -> Result<Translation, Fault> {
        let v = va.as_u64();
        let c = &self.ctx[context_index(v, &access)];
        if self.regime.mmu_enabled() && c.fills(v) {
            return self.walk_and_fill_outlined(va, c.key(v) >> 12, access);
        }
        self.slow(va, access)
    }

    /// [`Mmu::walk_and_fill`] with no slot, out of line: the TLB hit path that
    /// [`Mmu::translate`] inlines into its callers stays small. (The fault path's walk,
    /// with a slot, is inline in [`Mmu::translate_slot`].)
    #[inline(never)]
    fn walk_and_fill_outlined(
        &mut self,
        va: VirtAddr,
        tag: u64,
        access: Access,
    ) -> Result<Translation, Fault> {
        self.walk_and_fill(va, tag, access, None)
    }

    /// Walks for page `tag` (leaving the slot of an invalid last-level entry in `slot`,
    /// where given) and fills the TLB, or counts the fault.
    #[inline(always)]
    fn walk_and_fill(
        &mut self,
        va: VirtAddr,
        tag: u64,
        access: Access,
        slot: Option<&mut Option<LeafSlot>>,
    ) -> Result<Translation, Fault> {
        let h = self.regime.half(va.select_bit());
        self.tlb.stats_mut().walks += 1;
        let r = match slot {
            None => walk_tables(&self.regime, h, &mut self.mem, va, access),
            Some(s) => walk_tables_slot(&self.regime, h, &mut self.mem, va, access, s),
        };
        self.account(tag, h.e0pd, r)
    }

    /// Fills the TLB with a walk's translation of page `tag`, or counts its fault.
    #[inline(always)]
    fn account(
        &mut self,
        tag: u64,
        no_el0: bool,
        r: Result<Translation, Fault>,
    ) -> Result<Translation, Fault> {
        match r {
            Ok(t) => {
                self.tlb.fill_entry(tag, &t, no_el0);
                Ok(t)
            }
            Err(f) => {
                self.tlb.stats_mut().faults += 1;
                Err(f)
            }
        }
    }

    /// The MMU-off path and the pre-lookup faults.
    #[cold]
    fn slow(&mut self, va: VirtAddr, access: Access) -> Result<Translation, Fault> {
        if self.regime.mmu_enabled() {
            if let Err(f) = check_va(&self.regime, va, access) {
                self.tlb.stats_mut().faults += 1;
                return Err(f);
            }
        }
        let r = walk(&self.regime, &mut self.mem, va, access);
        if r.is_err() {
            self.tlb.stats_mut().faults += 1;
        }
        r
    }

    /// Applies a TLB maintenance operation.
    #[inline]
    pub fn tlbi(&mut self, op: Tlbi) {
        self.tlb.invalidate(op);
    }

    /// Applies every invalidation a table change recorded.
    pub fn flush(&mut self, flush: Flush) {
        self.flush_with(flush, |_| {});
    }

    /// Applies every invalidation a table change recorded, and hands each one to
    /// `observer` as it is applied, so that an embedder's own translation cache (a JIT's,
    /// an emulator's soft TLB) can be invalidated in step.
    ///
    /// ```
    /// # use pagesim::arch::{Cpu, Registers};
    /// # use pagesim::mmu::{Flush, Mmu, Tlbi};
    /// # use pagesim::phys::SparseMemory;
    /// # use pagesim::PhysAddr;
    /// let regs = Registers { tcr: 0x5_8010_0010, sctlr: 1, ttbr0: 0, ttbr1: 0, mair: 0xff };
    /// let mut mmu: Mmu<_, 64> = Mmu::new(regs, Cpu::MAX, SparseMemory::new(PhysAddr::new(0), 1 << 20));
    /// let mut flush = Flush::new(1);
    /// flush.add(0x1000, 0x2000, false);
    /// let mut seen = Vec::new();
    /// mmu.flush_with(flush, |op| seen.push(op));
    /// assert_eq!(seen.len(), 2); // one TLBI VAE1 per page
    /// assert!(matches!(seen[0], Tlbi::Vae1 { .. }));
    /// ```
    pub fn flush_with(&mut self, flush: Flush, mut observer: impl FnMut(Tlbi)) {
        for op in flush.ops() {
            self.tlb.invalidate(op);
            observer(op);
        }
    }

    /// Returns the TLB.
    #[inline]
    pub fn tlb(&self) -> &Tlb<N, COUNT_HITS> {
        &self.tlb
    }

    /// Returns the counters (see [`Tlb::stats`]).
    pub fn stats(&self) -> Stats {
        self.tlb.stats()
    }

    /// Returns physical memory.
    #[inline]
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Returns physical memory, mutably. Writes to descriptors are not seen by the TLB
    /// until invalidated.
    #[inline]
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Consumes the MMU, returning its memory.
    pub fn into_memory(self) -> M {
        self.mem
    }
}
