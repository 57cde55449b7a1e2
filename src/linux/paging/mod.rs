//! Demand paging of anonymous memory through the simulated AArch64 MMU: the kernel's side
//! of a page fault (zero page, zero-filled pages, copy-on-write, transparent huge pages as
//! level-2 blocks), and the residency that `smaps` and `mincore` report.
//!
//! Every page lives in real AArch64 translation tables in simulated physical memory: an
//! access goes through the TLB and the walker, and a fault is what the MMU raised.
//!
//! * this file: the [`Paging`] state, its setup, and the deposited tables that let every
//!   block split without allocating;
//! * `config`: [`PagingConfig`] from a layout and kernel version;
//! * `fault`: the fault handler ([`Paging::access`], [`Paging::gup_touch`]);
//! * `cache`, `file_fault`: the page cache and faults on file mappings;
//! * `moves`: the page-table moves of mremap;
//! * `range`: zap, split, mprotect, MADV_FREE and MADV_COLD over present pages, and the
//!   per-CPU folio batch that decides LazyFree;
//! * `residency`: smaps residency, mincore and [`Paging::validate`].

use core::fmt;

use arrayvec::ArrayVec;

use super::mm::vmflags::VmFlags;
use super::mm::{Arch, KernelVersion, LayoutParams};
use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::regime::{sctlr, tcr};
use crate::arch::walk::LeafSlot;
use crate::arch::{
    Access, AccessKind, Attributes, Cpu, Descriptor, El, Fault, FaultKind, Granule, Level,
    Registers,
};
use crate::mmu::{
    FrameAllocator, FrameError, FrameSource, Leaf, Lpa2, MapError, Mapper, Mmu, TableFormat,
    VaRange,
};
use crate::phys::PhysMemory;

/// Counters of what demand paging did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingStats {
    /// Faults the MMU raised and the handler took.
    pub faults: u64,
    /// Read faults served by the shared zero page.
    pub zero_page_maps: u64,
    /// Read faults served by the huge zero page.
    pub huge_zero_maps: u64,
    /// Base pages allocated for write faults (including copy-on-write).
    pub anon_pages: u64,
    /// Copy-on-write faults (writes to zero-page mappings).
    pub cow: u64,
    /// Transparent huge pages allocated.
    pub thp: u64,
    /// SIGSEGVs delivered.
    pub segv: u64,
    /// SIGBUSes delivered (file pages past the end of the file).
    pub sigbus: u64,
    /// Translations asked of the MMU by accesses (retries after a fault included): with
    /// the TLB's misses, the hits (`translations - misses`) without counting them on the
    /// hit path.
    pub translations: u64,
}

/// The software dirty bit, arm64 Linux's `PTE_DIRTY` (bit 55). It keeps a page's dirty
/// state while the hardware-dirty encoding (DBM set, AP\[2\] clear) cannot hold it: when
/// mprotect takes write permission away, as `pte_modify()` and `pte_wrprotect()` do.
pub const PTE_DIRTY: Attributes = Attributes::SW0;

/// Software bit 56 of a leaf: the page was made lazy-free by MADV_FREE. The kernel keeps
/// this in the folio (it clears `PG_swapbacked`); pagesim has no `struct folio` and keeps it
/// in the leaf, which is where smaps finds it. (arm64 Linux uses bit 56 for `PTE_SPECIAL`,
/// which pagesim does not model.)
pub const PTE_LAZYFREE: Attributes = Attributes::SW1;

/// Software bit 57 of a leaf: the folio's `PG_referenced`, which `folio_mark_accessed()`
/// sets (get_user_pages with FOLL_TOUCH: MAP_POPULATE, MADV_POPULATE_*) and MADV_COLD and
/// the lazy-free move clear. smaps counts a page as Referenced when its access flag or this
/// bit is set. (arm64 Linux uses bit 57 for `PTE_DEVMAP`, which pagesim does not model.)
pub const PG_REFERENCED: Attributes = Attributes::SW2;

/// Software bit 58 of a leaf: the page is a page-cache page of a file (mapped from the
/// cache, not owned by the mapping). Zapping it drops a mapping of the cached page instead
/// of freeing the frame. (arm64 Linux uses bit 58 for `PTE_PROT_NONE`'s neighbour
/// software bits; pagesim keeps what the kernel finds in `struct page` here.)
pub const PTE_FILE: Attributes = Attributes::SW3;

/// Returns whether a leaf descriptor is dirty as arm64 Linux's `pte_dirty()` sees it:
/// software dirty ([`PTE_DIRTY`]) or hardware dirty (DBM set and AP\[2\] clear).
pub const fn pte_dirty(desc: u64) -> bool {
    desc & PTE_DIRTY.bits() != 0
        || (desc & Attributes::DBM.bits() != 0 && desc & Attributes::AP_RO.bits() == 0)
}

/// MAIR_EL1 as Linux arm64 programs it: Normal WB (0), Normal tagged (1), Normal NC (2),
/// Device-nGnRnE (3), Device-nGnRE (4).
pub const LINUX_MAIR: u64 = 0x0000_0004_0044_f0ff;

/// The demand-paged user half of one process: MMU with TLB `N` entries, translation tables,
/// frames, and the shared zero pages.
pub struct Paging<'f, M: PhysMemory, const N: usize> {
    mmu: Mmu<M, N>,
    mapper: Mapper,
    frames: FrameAllocator<'f>,
    /// Table frames owed to the blocks mapped (THPs and huge-zero-page maps): one each,
    /// kept free so that splitting a block never runs out of frames, as the kernel deposits
    /// a page table with every huge PMD (`pgtable_trans_huge_deposit`).
    deposits: u64,
    zero: PhysAddr,
    huge_zero: Option<PhysAddr>,
    config: PagingConfig,
    stats: PagingStats,
    /// Whether faults on an invalid last-level entry map through the walk's slot (off in
    /// tests that compare that path with the general one).
    #[cfg(test)]
    slot_faults: bool,
    /// The per-CPU `lru_lazyfree` batch: (ASID, VA, PA) of the small folios MADV_FREE
    /// marked since the last drain. They become lazy-free ([`PTE_LAZYFREE`]) when the
    /// batch moves: when it fills, when a large folio joins, or at [`Paging::lru_add_drain`].
    lazyfree_batch: ArrayVec<(u16, u64, u64), MAX_LRU_BATCH>,
    /// Folios the batch moved that processes not running map: they become lazy-free in
    /// those processes' tables at [`Paging::settle_parked`]. The ASID names the process
    /// whose MADV_FREE queued the folio; [`share::ANY_ASID`] stands for every process
    /// that maps the frame at that address (a folio a fork shared).
    lazyfree_parked: ArrayVec<(u16, u64, u64), { 8 * MAX_LRU_BATCH }>,
    /// The page cache (empty storage until [`Paging::set_page_cache`]).
    cache: cache::PageCache<'f>,
    /// Per 4 KiB frame: how many more leaves map the anonymous page starting there
    /// (pages shared by fork; empty storage until [`Paging::set_share_counts`]).
    shares: &'f mut [u16],
    /// Tables deposited for the blocks of the processes not running ([`Tables`]).
    parked_deposits: u64,
}

impl<M: PhysMemory, const N: usize> fmt::Debug for Paging<'_, M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paging")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("tables", &self.mapper.table_count())
            .finish_non_exhaustive()
    }
}

/// The frame allocator as a mapper sees it while `floor` frames are held back (the
/// deposits of the blocks mapped): table allocations that would dip into them fail.
struct Reserve<'a, 'f> {
    frames: &'a mut FrameAllocator<'f>,
    floor: u64,
}

impl FrameSource for Reserve<'_, '_> {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        if (self.frames.free_frames() as u64) < (1u64 << order.min(63)) + self.floor {
            return None;
        }
        self.frames.allocate(order)
    }

    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError> {
        self.frames.release(pa, order, zeroed)
    }

    fn available(&self, order: u32) -> u64 {
        (self.frames.free_frames() as u64).saturating_sub(self.floor) >> order.min(63)
    }
}

fn page_attrs(flags: VmFlags, writable: bool) -> Attributes {
    let mut a =
        Attributes::AF | Attributes::SH0 | Attributes::SH1 | Attributes::NG | Attributes::PXN;
    let accessible = flags.intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC);
    if accessible {
        a |= Attributes::AP_EL0;
    }
    if !flags.contains(VmFlags::VM_EXEC) || !accessible {
        a |= Attributes::UXN;
    }
    if writable {
        a |= Attributes::DBM;
    } else {
        a |= Attributes::AP_RO;
    }
    a
}

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Sets up empty user translation tables, the zero page and (when configured) the huge
    /// zero page, and an MMU whose TTBR0 points at the tables.
    ///
    /// # Errors
    /// [`PagingError`] for an unsupported granule or VA size, or too few frames.
    pub fn new(
        config: PagingConfig,
        mut mem: M,
        mut frames: FrameAllocator<'f>,
    ) -> Result<Self, PagingError> {
        let g = config.granule;
        if g == Granule::K64 || config.va_bits < 36 || config.va_bits > 52 {
            return Err(PagingError::InvalidConfig);
        }
        let ds = config.va_bits > 48;
        let oa_bits = if ds { 52 } else { 48 };
        let format = TableFormat::try_new(
            g,
            config.va_bits,
            VaRange::Lower,
            if ds { Lpa2::On } else { Lpa2::Off },
            oa_bits,
        )
        .map_err(|_| PagingError::InvalidConfig)?;
        let mut mapper =
            Mapper::new(format, &mut mem, &mut frames).map_err(|_| PagingError::OutOfFrames)?;
        mapper.set_asid(config.asid);
        // Every frame the allocator hands out must be backed by memory (tables and pages
        // live there): the first and the last are probed.
        let first = frames.base();
        let last = PhysAddr::try_new(
            first.as_u64() + (frames.total_frames() as u64).saturating_sub(1) * 4096,
        )
        .map_err(|_| PagingError::FramesOutsideMemory)?;
        for pa in [first, last] {
            if frames.total_frames() > 0 && mem.read_u64(pa).is_err() {
                return Err(PagingError::FramesOutsideMemory);
            }
        }
        let page_order = g.page_shift() - 12;
        let mut zeroing = Ok(());
        let zero = frames
            .alloc_run_zeroed(page_order, |pa, len| {
                zeroing = zeroing.and(mem.zero(pa, len));
            })
            .map_err(|_| PagingError::OutOfFrames)?;
        let huge_zero = if config.huge_zero_page {
            let order = g.level_shift(Level::L2) - 12;
            let pa = frames
                .alloc_run_zeroed(order, |pa, len| {
                    zeroing = zeroing.and(mem.zero(pa, len));
                })
                .map_err(|_| PagingError::OutOfFrames)?;
            Some(pa)
        } else {
            None
        };
        zeroing.map_err(|e| PagingError::Map(MapError::Memory(e)))?;
        // TTBR0 as Linux programs it (write-back walks, Inner Shareable, top-byte ignore,
        // hardware access flag and dirty state); the kernel half (TTBR1) is not modelled
        // and disabled with EPD1.
        let mut tcr = ((64 - u64::from(config.va_bits)) << tcr::T0SZ_SHIFT)
            | (g.tg0() << tcr::TG0_SHIFT)
            | (tcr::SH_INNER << tcr::SH0_SHIFT)
            | (tcr::RGN_WBWA << tcr::IRGN0_SHIFT)
            | (tcr::RGN_WBWA << tcr::ORGN0_SHIFT)
            | tcr::EPD1
            | (16 << tcr::T1SZ_SHIFT)
            | (Granule::K4.tg1() << tcr::TG1_SHIFT)
            | (if ds { 6u64 } else { 5 }) << tcr::IPS_SHIFT
            | tcr::TBI0
            | tcr::HA
            | tcr::HD;
        if ds {
            tcr |= tcr::DS;
        }
        let regs = Registers {
            tcr,
            sctlr: sctlr::M,
            ttbr0: mapper.ttbr(config.asid),
            ttbr1: 0,
            mair: LINUX_MAIR,
        };
        let mmu = Mmu::new(regs, Cpu::MAX, mem);
        Ok(Paging {
            mmu,
            mapper,
            frames,
            zero,
            huge_zero,
            config,
            deposits: 0,
            stats: PagingStats::default(),
            #[cfg(test)]
            slot_faults: true,
            lazyfree_batch: ArrayVec::new(),
            lazyfree_parked: ArrayVec::new(),
            cache: cache::PageCache::new(&mut []),
            shares: &mut [],
            parked_deposits: 0,
        })
    }

    /// Returns the MMU (regime, TLB and its counters, physical memory).
    pub fn mmu(&self) -> &Mmu<M, N> {
        &self.mmu
    }

    /// Returns the simulated physical memory, for writing what a kernel writes (the
    /// initial stack of a new program).
    pub(crate) fn memory_mut(&mut self) -> &mut M {
        self.mmu.memory_mut()
    }

    /// Returns the mapper of the user tables.
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// Returns the frame allocator.
    pub fn frames(&self) -> &FrameAllocator<'f> {
        &self.frames
    }

    /// Returns the paging counters.
    pub fn stats(&self) -> &PagingStats {
        &self.stats
    }

    /// Returns the configuration.
    pub fn config(&self) -> &PagingConfig {
        &self.config
    }

    /// Returns the physical address of the shared zero page.
    pub fn zero_page(&self) -> PhysAddr {
        self.zero
    }

    fn page(&self) -> u64 {
        self.config.granule.page_size()
    }

    fn pmd(&self) -> u64 {
        1u64 << self.config.granule.level_shift(Level::L2)
    }

    fn is_zero(&self, pa: u64) -> bool {
        let z = self.zero.as_u64();
        if pa >= z && pa < z + self.page() {
            return true;
        }
        match self.huge_zero {
            Some(h) => pa >= h.as_u64() && pa < h.as_u64() + self.pmd(),
            None => false,
        }
    }

    /// Returns the leaf mapping `va`, if any.
    ///
    /// The tables lie in frames of the allocator, which [`Paging::new`] checked are backed
    /// by memory, so the error is not expected; it is returned all the same.
    fn leaf_at(&self, va: u64) -> Result<Option<Leaf>, MapError> {
        self.mapper.lookup(self.mmu.memory(), VirtAddr::new(va))
    }

    /// Returns the first leaf overlapping `[from, end)`.
    fn next_leaf(&self, from: u64, end: u64) -> Result<Option<Leaf>, MapError> {
        let mut found = None;
        self.mapper
            .for_each_leaf(self.mmu.memory(), VirtAddr::new(from), end - from, |l| {
                found = Some(*l);
                false
            })?;
        Ok(found)
    }

    /// Returns the first leaf overlapping `[from, end)` with the part of it inside that
    /// range.
    fn next_leaf_part(&self, from: u64, end: u64) -> Result<Option<(Leaf, u64, u64)>, MapError> {
        if from >= end {
            return Ok(None);
        }
        let Some(leaf) = self.next_leaf(from, end)? else {
            return Ok(None);
        };
        let l_start = leaf.va.as_u64();
        let l_end = l_start + (1u64 << leaf.size_log2);
        Ok(Some((leaf, l_start.max(from), l_end.min(end))))
    }

    /// Returns how many table frames are held back for splitting the blocks mapped now.
    pub fn deposited_tables(&self) -> u64 {
        self.deposits
    }

    /// Allocates a zeroed run for a page or a THP, leaving `floor` frames free.
    fn alloc_above(&mut self, order: u32, floor: u64) -> Option<PhysAddr> {
        if (self.frames.free_frames() as u64) < (1u64 << order) + floor {
            return None;
        }
        let mem = self.mmu.memory_mut();
        let mut zeroing = Ok(());
        let zero = |pa, len| {
            zeroing = zeroing.and(mem.zero(pa, len));
        };
        let pa = if order == 0 {
            self.frames.alloc_zeroed(zero)
        } else {
            self.frames.alloc_run_zeroed(order, zero)
        }
        .ok()?;
        if zeroing.is_err() {
            // Memory backs every frame (Paging::new checked); a page that could not be
            // zeroed is never handed out all the same.
            return self.frames.free_run(pa, order).ok().and(None);
        }
        Some(pa)
    }

    /// Returns the frames held back for the deposits (one table each).
    fn deposit_frames(&self) -> u64 {
        (self.deposits + self.parked_deposits) << (self.config.granule.page_shift() - 12)
    }

    /// Allocates a zeroed run for a page, leaving the deposits free.
    fn alloc(&mut self, order: u32) -> Option<PhysAddr> {
        self.alloc_above(order, self.deposit_frames())
    }

    /// Maps `[va, va + len)`, leaving the deposits free.
    fn map(&mut self, va: u64, pa: PhysAddr, len: u64, attrs: Attributes) -> Result<(), MapError> {
        self.map_above(va, pa, len, attrs, self.deposit_frames())
    }

    /// Maps the block at `va` to `pa`, with a frame left over for its deposit, which it then
    /// takes. Returns whether it did.
    fn map_block(&mut self, va: u64, pa: PhysAddr, attrs: Attributes) -> bool {
        let floor = self.deposit_frames() + (1 << (self.config.granule.page_shift() - 12));
        let ok = self.map_above(va, pa, self.pmd(), attrs, floor).is_ok();
        if ok {
            self.deposits += 1;
        }
        ok
    }

    /// Maps `[va, va + len)` with table frames allocated only while `floor` stay free.
    fn map_above(
        &mut self,
        va: u64,
        pa: PhysAddr,
        len: u64,
        attrs: Attributes,
        floor: u64,
    ) -> Result<(), MapError> {
        let attrs = self.leaf_attributes(attrs);
        let mem = self.mmu.memory_mut();
        let mut frames = Reserve {
            frames: &mut self.frames,
            floor,
        };
        let flush = if len == self.config.granule.page_size() {
            self.mapper
                .map_page(mem, &mut frames, VirtAddr::new(va), pa, attrs)?
        } else {
            self.mapper
                .map(mem, &mut frames, VirtAddr::new(va), pa, len, attrs)?
        };
        self.mmu.flush(flush);
        Ok(())
    }

    /// Maps the page at `va` to `pa` through `slot`, the invalid level-3 entry for `va`
    /// that the faulting walk found; returns the descriptor written there.
    fn map_at(
        &mut self,
        slot: &LeafSlot,
        va: u64,
        pa: PhysAddr,
        attrs: Attributes,
    ) -> Result<u64, MapError> {
        let attrs = self.leaf_attributes(attrs);
        let mem = self.mmu.memory_mut();
        let (flush, desc) =
            self.mapper
                .map_page_at(mem, slot.descriptor_pa(), VirtAddr::new(va), pa, attrs)?;
        // The entry was invalid, so no TLB holds a translation through it: the record of
        // a new mapping names nothing.
        debug_assert!(flush.is_empty());
        flush.ignore();
        Ok(desc)
    }

    /// Returns a leaf's attributes as the tables hold them: with FEAT_LPA2 (52-bit VA)
    /// descriptor bits \[9:8\] hold output address bits and the shareability comes from
    /// TCR_EL1.SH0.
    fn leaf_attributes(&self, attrs: Attributes) -> Attributes {
        if self.config.va_bits > 48 {
            attrs - (Attributes::SH0 | Attributes::SH1)
        } else {
            attrs
        }
    }

    fn unmap(&mut self, va: u64, len: u64) -> Result<(), MapError> {
        let mem = self.mmu.memory_mut();
        let flush = self
            .mapper
            .unmap(mem, &mut self.frames, VirtAddr::new(va), len)?;
        self.mmu.flush(flush);
        Ok(())
    }

    /// Releases `n` deposits (blocks split or unmapped).
    fn release_deposits(&mut self, n: u64) {
        debug_assert!(self.deposits >= n, "deposit accounting went below zero");
        self.deposits = self.deposits.saturating_sub(n);
    }
}

mod cache;
mod config;
mod fault;
mod file_fault;
mod moves;
mod range;
mod residency;
mod share;
#[cfg(test)]
mod tests;

pub use cache::{CachedPage, FileStore, InodeKey, NoFiles};
pub use config::{DataMode, HugeZeroWrite, PagingConfig, PagingError, MAX_LRU_BATCH};
pub use fault::{Segv, SegvCode, Touch, VmaView};
pub use file_fault::{Bus, FileView};
pub use residency::{PagingInvariant, Residency};
pub use share::Tables;
