//! Demand paging of anonymous memory through the simulated AArch64 MMU: the kernel's side
//! of a page fault (zero page, zero-filled pages, copy-on-write, transparent huge pages as
//! level-2 blocks), and the residency that `smaps` and `mincore` report.
//!
//! Every page lives in real AArch64 translation tables in simulated physical memory: an
//! access goes through the TLB and the walker, and a fault is what the MMU raised.

use core::fmt;

use arrayvec::ArrayVec;

use super::mm::{KernelVersion, LayoutParams};
use super::vmflags::VmFlags;
use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{
    Access, AccessKind, Attributes, Cpu, Descriptor, El, Fault, FaultKind, Granule, Level,
    Registers,
};
use crate::machinery::{
    FrameAllocator, FrameError, FrameSource, Leaf, MapError, Mapper, Mmu, PhysMemory, TableFormat,
};

/// The `si_code` of a SIGSEGV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegvCode {
    /// No mapping at the address (`SEGV_MAPERR`, 1).
    MapErr = 1,
    /// A mapping without the permission the access needs (`SEGV_ACCERR`, 2).
    AccErr = 2,
}

impl SegvCode {
    /// Returns the kernel's name, `SEGV_MAPERR` or `SEGV_ACCERR`.
    pub const fn name(self) -> &'static str {
        match self {
            SegvCode::MapErr => "SEGV_MAPERR",
            SegvCode::AccErr => "SEGV_ACCERR",
        }
    }
}

/// A SIGSEGV delivered for an access, with the architectural fault behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segv {
    /// `si_code`.
    pub code: SegvCode,
    /// `si_addr`: the faulting address (tag bits cleared, as arm64 reports it).
    pub addr: VirtAddr,
    /// The MMU fault (ESR/FAR) the kernel handled.
    pub fault: Fault,
}

/// The outcome of one access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// The access completed at this physical address.
    Done(PhysAddr),
    /// The process got SIGSEGV.
    Segv(Segv),
    /// No frame for the page the fault needed: the kernel's OOM path. State is intact.
    OutOfMemory {
        /// The faulting address.
        addr: VirtAddr,
    },
}

/// What the fault handler needs to know of the VMA containing a faulting address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmaView {
    /// First address.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// `vm_flags`.
    pub flags: VmFlags,
    /// Whether a PMD-sized THP may back a fault here (the caller applies the THP mode,
    /// `hg`/`nh` and prctl rules; the handler checks block coverage and existing tables).
    pub thp: bool,
}

/// What a write to the huge zero page does (spec §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HugeZeroWrite {
    /// Linux 6.18: allocate a whole THP.
    AllocateThp,
    /// Linux 6.1 and 6.12: split the PMD and copy one base page.
    SplitAndCopy,
}

/// The parameters of a process's paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingConfig {
    /// The base page size: 4 KiB or 16 KiB.
    pub granule: Granule,
    /// User VA bits (47, 48, or 52 with FEAT_LPA2).
    pub va_bits: u32,
    /// Whether read faults in THP-eligible blocks map the huge zero page.
    pub huge_zero_page: bool,
    /// What a write to the huge zero page does.
    pub huge_zero_write: HugeZeroWrite,
    /// The ASID of the process.
    pub asid: u16,
    /// The capacity of the kernel's per-CPU folio batches (`PAGEVEC_SIZE`, at most
    /// [`MAX_LRU_BATCH`]): MADV_FREE makes small folios lazy-free only when this many are
    /// pending or the batch is drained (see [`Paging::lru_add_drain`]).
    pub lru_batch: u8,
    /// Whether unmapping and zapping pages (munmap, MAP_FIXED over a mapping, brk shrink,
    /// MADV_DONTNEED) drain the folio batches first (`lru_add_drain()` in `unmap_region`
    /// and `zap_page_range_single`): Linux 6.1 and 6.12 do, 6.18 does not.
    pub unmap_drains: bool,
}

/// The largest folio batch of any kernel modelled (`PAGEVEC_SIZE` of Linux 6.6 and later).
pub const MAX_LRU_BATCH: usize = 31;

impl PagingConfig {
    /// Returns the paging of a process laid out by `params`: its page size and VA size,
    /// and the kernel version's huge-zero-page write, folio batch and drain rules.
    pub fn for_layout(params: &LayoutParams) -> PagingConfig {
        let va_bits = 64 - params.task_size.saturating_sub(1).leading_zeros();
        PagingConfig {
            granule: if params.page_shift == 14 {
                Granule::K16
            } else {
                Granule::K4
            },
            va_bits: va_bits.clamp(36, 52),
            huge_zero_page: true,
            huge_zero_write: if params.version >= KernelVersion::V6_18 {
                HugeZeroWrite::AllocateThp
            } else {
                HugeZeroWrite::SplitAndCopy
            },
            asid: 1,
            lru_batch: MAX_LRU_BATCH as u8,
            unmap_drains: params.version < KernelVersion::V6_18,
        }
    }
}

impl Default for PagingConfig {
    fn default() -> Self {
        PagingConfig {
            granule: Granule::K4,
            va_bits: 48,
            huge_zero_page: true,
            huge_zero_write: HugeZeroWrite::AllocateThp,
            asid: 1,
            lru_batch: MAX_LRU_BATCH as u8,
            unmap_drains: false,
        }
    }
}

/// Returned when paging cannot be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The configuration is not one the architecture supports.
    InvalidConfig,
    /// No frames for the root table or the zero pages.
    OutOfFrames,
    /// A table operation failed.
    Map(MapError),
    /// The frame allocator's range is not backed by the physical memory given.
    FramesOutsideMemory,
}

impl core::error::Error for PagingError {}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagingError::InvalidConfig => f.write_str("unsupported paging configuration"),
            PagingError::OutOfFrames => f.write_str("no frames for the page tables"),
            PagingError::Map(e) => write!(f, "{e}"),
            PagingError::FramesOutsideMemory => {
                f.write_str("the frame allocator's range is not backed by the memory")
            }
        }
    }
}

impl From<MapError> for PagingError {
    fn from(e: MapError) -> Self {
        PagingError::Map(e)
    }
}

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
}

/// Resident memory of a range, as smaps counts it (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Residency {
    /// Private pages mapped (zero pages excluded).
    pub rss: u64,
    /// Of those, dirty as `pte_dirty()` sees them (hardware or software dirty).
    pub private_dirty: u64,
    /// Of those, clean (e.g. after MADV_FREE).
    pub private_clean: u64,
    /// Of those, young: the access flag is set (it is cleared by MADV_FREE and set again
    /// by the next access).
    pub referenced: u64,
    /// Of those, lazy-free (made so by MADV_FREE) and still clean.
    pub lazy_free: u64,
    /// Bytes mapped by level-2 blocks (PMD THPs).
    pub anon_huge: u64,
    /// Pages with any mapping, zero pages included (what mincore reports), in base pages.
    pub present_pages: u64,
}

/// A paging invariant that does not hold (see [`Paging::validate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingInvariant {
    /// The tables could not be read.
    Tables(MapError),
    /// Blocks mapped and tables deposited differ.
    Deposits {
        /// Blocks (THPs and huge-zero-page maps) in the tables.
        blocks: u64,
        /// Tables deposited.
        deposits: u64,
    },
    /// Fewer frames are free than the deposits hold back.
    DepositsSpent {
        /// Free frames.
        free: u64,
        /// Frames the deposits need.
        needed: u64,
    },
    /// Frames in use are not the tables, mapped pages and zero pages.
    Frames {
        /// Frames the allocator has handed out.
        used: u64,
        /// Tables + frames the leaves map + the zero pages.
        accounted: u64,
    },
}

impl fmt::Display for PagingInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PagingInvariant::Tables(e) => write!(f, "tables unreadable: {e}"),
            PagingInvariant::Deposits { blocks, deposits } => {
                write!(f, "{blocks} blocks mapped but {deposits} tables deposited")
            }
            PagingInvariant::DepositsSpent { free, needed } => {
                write!(f, "{free} frames free, the deposits need {needed}")
            }
            PagingInvariant::Frames { used, accounted } => write!(
                f,
                "{used} frames in use, {accounted} held by tables, pages and zero pages"
            ),
        }
    }
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
    /// The per-CPU `lru_lazyfree` batch: (VA, PA) of the small folios MADV_FREE marked
    /// since the last drain. They become lazy-free ([`PTE_LAZYFREE`]) when the batch
    /// moves: when it fills, when a large folio joins, or at [`Paging::lru_add_drain`].
    lazyfree_batch: ArrayVec<(u64, u64), MAX_LRU_BATCH>,
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
        let format = TableFormat::try_new(g, config.va_bits, false, ds, oa_bits)
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
        let tg0 = g.tg0();
        let mut tcr = (64 - config.va_bits as u64) | (tg0 << 14) | (3 << 12) | (1 << 8) | (1 << 10);
        tcr |= 1 << 23; // EPD1: the kernel half is not modelled.
        tcr |= (if ds { 6u64 } else { 5 }) << 32; // IPS
        tcr |= (1 << 37) | (1 << 39) | (1 << 40); // TBI0, HA, HD
        tcr |= 2 << 30; // TG1 = 4K (unused)
        tcr |= 16 << 16;
        if ds {
            tcr |= 1 << 59;
        }
        let regs = Registers {
            tcr,
            sctlr: 1,
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
            lazyfree_batch: ArrayVec::new(),
        })
    }

    /// Returns the MMU (regime, TLB and its counters, physical memory).
    pub fn mmu(&self) -> &Mmu<M, N> {
        &self.mmu
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

    /// Performs one user (EL0) access of `kind` at `va`, taking page faults as the kernel
    /// does: `find_vma(addr)` returns the VMA containing `addr`, if any. It is called only
    /// when the access faults (so it may, say, grow a stack first, as the kernel's fault
    /// path does).
    pub fn access(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
        find_vma: &mut dyn FnMut(u64) -> Option<VmaView>,
    ) -> Touch {
        let access = Access::new(kind, El::El0);
        // A fault is retried after the handler fixed it; three rounds cover the longest
        // chain (huge zero page split, then copy-on-write).
        for _ in 0..4 {
            let fault = match self.mmu.translate(va, access) {
                Ok(pa) => return Touch::Done(pa),
                Err(f) => f,
            };
            self.stats.faults += 1;
            // arm64 reports untagged addresses (TBI).
            let addr = va.as_u64() & 0x00ff_ffff_ffff_ffff;
            let segv = |code| {
                Touch::Segv(Segv {
                    code,
                    addr: VirtAddr::new(addr),
                    fault,
                })
            };
            let vma = match find_vma(addr) {
                Some(v) if addr >= v.start && addr < v.end => v,
                _ => {
                    self.stats.segv += 1;
                    return segv(SegvCode::MapErr);
                }
            };
            let f = vma.flags;
            let allowed = match kind {
                AccessKind::Fetch => f.contains(VmFlags::VM_EXEC),
                AccessKind::Write => f.contains(VmFlags::VM_WRITE),
                AccessKind::Read => {
                    f.intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC)
                }
            };
            if !allowed {
                self.stats.segv += 1;
                return segv(SegvCode::AccErr);
            }
            let r = match fault.kind {
                FaultKind::Translation => self.fault_missing(addr, kind, &vma),
                FaultKind::Permission if kind == AccessKind::Write => {
                    self.fault_write_protect(addr, &vma)
                }
                _ => {
                    self.stats.segv += 1;
                    return segv(SegvCode::AccErr);
                }
            };
            if let Err(t) = r {
                return t;
            }
        }
        Touch::OutOfMemory { addr: va }
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
        let pa = self
            .frames
            .alloc_run_zeroed(order, |pa, len| {
                zeroing = zeroing.and(mem.zero(pa, len));
            })
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
        self.deposits << (self.config.granule.page_shift() - 12)
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
        let floor = (self.deposits + 1) << (self.config.granule.page_shift() - 12);
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
        // With FEAT_LPA2 (52-bit VA) descriptor bits [9:8] hold output address bits and
        // the shareability comes from TCR_EL1.SH0.
        let attrs = if self.config.va_bits > 48 {
            attrs - (Attributes::SH0 | Attributes::SH1)
        } else {
            attrs
        };
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

    fn unmap(&mut self, va: u64, len: u64) -> Result<(), MapError> {
        let mem = self.mmu.memory_mut();
        let flush = self
            .mapper
            .unmap(mem, &mut self.frames, VirtAddr::new(va), len)?;
        self.mmu.flush(flush);
        Ok(())
    }

    /// Handles a fault on an address with no mapping: zero page, a new page, or a THP.
    fn fault_missing(&mut self, addr: u64, kind: AccessKind, vma: &VmaView) -> Result<(), Touch> {
        let oom = Touch::OutOfMemory {
            addr: VirtAddr::new(addr),
        };
        let page = self.page();
        let pmd = self.pmd();
        let block = addr & !(pmd - 1);
        let shared = vma.flags.contains(VmFlags::VM_SHARED);
        let write = kind == AccessKind::Write;
        let writable = vma.flags.contains(VmFlags::VM_WRITE);
        // No page table for the block yet: the level-2 entry is invalid, or the path stops
        // above it (looked up only where a huge page could go).
        let no_table =
            || match self
                .mapper
                .descriptor_at(self.mmu.memory(), VirtAddr::new(block), Level::L2)
            {
                Ok(Some(d)) => !d.is_valid(),
                Ok(None) => true,
                Err(_) => false,
            };
        if vma.thp && !shared && block >= vma.start && block + pmd <= vma.end && no_table() {
            if !write {
                if let Some(hz) = self.huge_zero {
                    if self.map_block(block, hz, page_attrs(vma.flags, false)) {
                        self.stats.huge_zero_maps += 1;
                        return Ok(());
                    }
                }
            } else if let Some(pa) = self.alloc_above(
                self.config.granule.level_shift(Level::L2) - 12,
                (self.deposits + 1) << (self.config.granule.page_shift() - 12),
            ) {
                if self.map_block(block, pa, page_attrs(vma.flags, writable) | PTE_DIRTY) {
                    self.stats.thp += 1;
                    return Ok(());
                }
                self.frames
                    .free_run(pa, self.config.granule.level_shift(Level::L2) - 12)
                    .map_err(|_| oom)?;
            }
            // Allocation failure falls back to base pages.
        }
        let va = addr & !(page - 1);
        if !write && !shared {
            self.map(va, self.zero, page, page_attrs(vma.flags, false))
                .map_err(|_| oom)?;
            self.stats.zero_page_maps += 1;
            return Ok(());
        }
        let order = self.config.granule.page_shift() - 12;
        let pa = self.alloc(order).ok_or(oom)?;
        // A shared mapping's page starts clean; hardware DBM marks it dirty on write.
        let attrs = page_attrs(vma.flags, writable);
        let attrs = if write {
            // do_anonymous_page: pte_mkwrite(pte_mkdirty(entry)).
            attrs | PTE_DIRTY
        } else {
            attrs | Attributes::AP_RO
        };
        if self.map(va, pa, page, attrs).is_err() {
            self.frames.free_run(pa, order).map_err(|_| oom)?;
            return Err(oom);
        }
        self.stats.anon_pages += 1;
        Ok(())
    }

    /// Handles a write to a present read-only page of a writable VMA: copy-on-write off the
    /// zero page (or the huge zero page), or making an exclusive page writable again.
    fn fault_write_protect(&mut self, addr: u64, vma: &VmaView) -> Result<(), Touch> {
        let oom = Touch::OutOfMemory {
            addr: VirtAddr::new(addr),
        };
        let page = self.page();
        let leaf = match self.leaf_at(addr).map_err(|_| oom)? {
            Some(l) => l,
            None => return Ok(()),
        };
        let pa = leaf.pa.as_u64();
        let size = 1u64 << leaf.size_log2;
        if self.is_zero(pa) {
            if size > page {
                // The huge zero page. Its block goes, and its deposit with it; a THP that
                // takes its place deposits anew.
                let start = leaf.va.as_u64();
                let mut mapped = true;
                if self.config.huge_zero_write == HugeZeroWrite::AllocateThp {
                    let order = self.config.granule.level_shift(Level::L2) - 12;
                    if let Some(thp) = self.alloc(order) {
                        if self.unmap(start, size).is_ok() {
                            mapped = false;
                            self.release_deposits(1);
                            let attrs = page_attrs(vma.flags, true) | PTE_DIRTY;
                            if self.map_block(start, thp, attrs) {
                                self.stats.thp += 1;
                                self.stats.cow += 1;
                                return Ok(());
                            }
                        }
                        self.frames.free_run(thp, order).map_err(|_| oom)?;
                    }
                }
                // Split: every base page maps the zero page; then copy one page.
                if mapped {
                    self.unmap(start, size).map_err(|_| oom)?;
                    self.release_deposits(1);
                }
                let attrs = page_attrs(vma.flags, false);
                let mut off = 0;
                while off < size {
                    self.map(start + off, self.zero, page, attrs)
                        .map_err(|_| oom)?;
                    off += page;
                }
            }
            let va = addr & !(page - 1);
            let order = self.config.granule.page_shift() - 12;
            let new = self.alloc(order).ok_or(oom)?;
            self.unmap(va, page).map_err(|_| oom)?;
            // wp_page_copy: maybe_mkwrite(pte_mkdirty(entry)).
            if self
                .map(va, new, page, page_attrs(vma.flags, true) | PTE_DIRTY)
                .is_err()
            {
                self.frames.free_run(new, order).map_err(|_| oom)?;
                return Err(oom);
            }
            self.stats.anon_pages += 1;
            self.stats.cow += 1;
            return Ok(());
        }
        // An exclusive anonymous page: reuse it, young, writable and dirty (wp_page_reuse:
        // maybe_mkwrite(pte_mkdirty(pte_mkyoung(entry)))).
        let start = leaf.va.as_u64();
        let mem = self.mmu.memory_mut();
        let flush = self
            .mapper
            .protect(
                mem,
                &mut self.frames,
                VirtAddr::new(start),
                size,
                Attributes::DBM | Attributes::AF | PTE_DIRTY,
                Attributes::AP_RO,
            )
            .map_err(|_| oom)?;
        self.mmu.flush(flush);
        Ok(())
    }

    /// Frees every page mapped in `[start, end)` and removes the mappings (munmap,
    /// MADV_DONTNEED, MAP_FIXED over); a THP partly inside is split first.
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be changed (then nothing was freed).
    pub fn zap(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        if end <= start || self.next_leaf(start, end)?.is_none() {
            // Nothing mapped (an untouched mapping): no table change, no TLBI.
            return Ok(());
        }
        // A leaf straddling either end is split by unmapping its inside part on its own:
        // the only step that needs frames (for the split tables), so the only one that can
        // fail, and it fails before changing anything.
        let (mut a, mut b) = (start, end);
        if let Some(l) = self.leaf_at(a)? {
            let ls = l.va.as_u64();
            if ls < a {
                let e = (ls + (1u64 << l.size_log2)).min(b);
                self.zap_part(&l, a, e)?;
                a = e;
            }
        }
        if a < b {
            if let Some(l) = self.leaf_at(b - 1)? {
                let ls = l.va.as_u64();
                if ls + (1u64 << l.size_log2) > b && ls >= a {
                    self.zap_part(&l, ls, b)?;
                    b = ls;
                }
            }
        }
        if a >= b {
            return Ok(());
        }
        // The interior: every leaf lies wholly inside [a, b). Free their frames, then
        // remove them all in one table change, which needs no split.
        let page_order = self.config.granule.page_shift() - 12;
        let zero = self.zero.as_u64();
        let page = self.page();
        let huge = self.huge_zero.map(|h| (h.as_u64(), self.pmd()));
        let is_zero = |pa: u64| {
            (pa >= zero && pa < zero + page) || huge.is_some_and(|(h, n)| pa >= h && pa < h + n)
        };
        let page_log2 = self.config.granule.page_shift();
        let Paging {
            mapper,
            mmu,
            frames,
            deposits,
            ..
        } = self;
        let mut blocks = 0;
        let mut freeing = Ok(());
        mapper.for_each_leaf(mmu.memory(), VirtAddr::new(a), b - a, |l| {
            if !is_zero(l.pa.as_u64()) {
                let order = (l.size_log2 - 12).max(page_order);
                freeing = freeing.and(frames.free_run(l.pa, order));
            }
            if l.size_log2 > page_log2 {
                blocks += 1;
            }
            true
        })?;
        let flush = mapper.unmap(mmu.memory_mut(), frames, VirtAddr::new(a), b - a)?;
        mmu.flush(flush);
        *deposits = deposits.saturating_sub(blocks);
        freeing?;
        Ok(())
    }

    /// Unmaps `[s, e)` of leaf `l` and frees the frames that part held.
    ///
    /// Splitting a block needs a frame for the new table. Out of frames, a private block
    /// lends one of its own pages that this call frees anyway (the kernel never fails
    /// here: it deposits a table with every huge page); a huge-zero-page block is dropped
    /// whole, since its other pages are zero pages that fault back in unchanged.
    fn zap_part(&mut self, l: &Leaf, s: u64, e: u64) -> Result<(), MapError> {
        let page = self.page();
        let order = self.config.granule.page_shift() - 12;
        let ls = l.va.as_u64();
        let size = 1u64 << l.size_log2;
        let zero = self.is_zero(l.pa.as_u64());
        let pa = l.pa.as_u64() + (s - ls);
        let mut first = pa;
        match self.unmap(s, e - s) {
            Ok(()) => {}
            Err(MapError::OutOfFrames { .. }) if size > page && !zero => {
                self.frames.free_run(PhysAddr::new(pa), order)?;
                self.unmap(s, e - s)?;
                first = pa + page;
            }
            Err(MapError::OutOfFrames { .. }) if size > page => {
                self.unmap(ls, size)?;
                self.release_deposits(1);
                return Ok(());
            }
            Err(err) => return Err(err),
        }
        if size > page {
            // Split (or gone): the deposit paid for the table.
            self.release_deposits(1);
        }
        if !zero {
            let mut x = first;
            while x < pa + (e - s) {
                self.frames.free_run(PhysAddr::new(x), order)?;
                x += page;
            }
        }
        Ok(())
    }

    /// Splits a block (a THP or the huge zero page) that straddles `addr` into pages, as
    /// the kernel splits a huge PMD when a VMA boundary falls inside it.
    ///
    /// # Errors
    /// [`MapError::OutOfFrames`] when no frame is left for the page table (nothing changes).
    pub fn split_block_at(&mut self, addr: u64) -> Result<(), MapError> {
        let page = self.page();
        if let Some(l) = self.leaf_at(addr)? {
            let ls = l.va.as_u64();
            let size = 1u64 << l.size_log2;
            if size > page && addr > ls && addr < ls + size {
                let mem = self.mmu.memory_mut();
                // A protect that changes nothing splits the block the range starts in.
                let flush = self.mapper.protect(
                    mem,
                    &mut self.frames,
                    VirtAddr::new(addr),
                    ls + size - addr,
                    Attributes::empty(),
                    Attributes::empty(),
                )?;
                self.mmu.flush(flush);
                self.release_deposits(1);
            }
        }
        Ok(())
    }

    /// Rewrites the attributes of the pages present in `[start, end)` for new VMA flags
    /// (mprotect), as arm64 Linux's `pte_modify()`: zero-page mappings stay read-only,
    /// private pages become writable with `VM_WRITE`, PROT_NONE keeps pages resident but
    /// inaccessible. The dirty state survives every change: a hardware-dirty page that
    /// loses write permission keeps it in [`PTE_DIRTY`], and a software-dirty page that
    /// becomes writable is hardware-dirty again.
    ///
    /// # Errors
    /// [`MapError`] if a table change fails.
    pub fn change_protection(
        &mut self,
        start: u64,
        end: u64,
        flags: VmFlags,
    ) -> Result<(), MapError> {
        let mut cursor = start;
        while let Some((leaf, s, e)) = self.next_leaf_part(cursor, end)? {
            let writable = flags.contains(VmFlags::VM_WRITE) && !self.is_zero(leaf.pa.as_u64());
            let dirty = pte_dirty(leaf.descriptor.bits());
            let mut want = page_attrs(flags, writable && dirty);
            if writable && !dirty {
                // Clean but writable: DBM set, AP[2] set until hardware marks it dirty.
                want |= Attributes::DBM | Attributes::AP_RO;
            }
            if !flags.intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC) {
                want.remove(Attributes::AP_EL0 | Attributes::DBM);
                want |= Attributes::AP_RO | Attributes::UXN;
            }
            if dirty {
                want |= PTE_DIRTY;
            }
            let owned = Attributes::AP_EL0
                | Attributes::AP_RO
                | Attributes::DBM
                | Attributes::UXN
                | Attributes::PXN
                | PTE_DIRTY;
            let set = want & owned;
            let clear = owned - set;
            let mem = self.mmu.memory_mut();
            let flush =
                self.mapper
                    .protect(mem, &mut self.frames, VirtAddr::new(s), e - s, set, clear)?;
            self.mmu.flush(flush);
            self.settle_split(&leaf, s)?;
            cursor = e;
        }
        Ok(())
    }

    /// Makes the private pages of `[start, end)` lazy-free (MADV_FREE) as
    /// `madvise_free_single_vma` does: it drains the folio batches first, then leaves every
    /// page resident, clean and old (`pte_mkclean`, `pte_mkold`: Private_Dirty becomes
    /// Private_Clean, Referenced drops until the next access) and hands each folio that is
    /// not lazy-free yet to the per-CPU `lru_lazyfree` batch (`folio_mark_lazyfree`). A
    /// folio counts as LazyFree once that batch moves: when it fills
    /// ([`PagingConfig::lru_batch`]), at once for a THP, or at the next drain.
    ///
    /// # Errors
    /// [`MapError`] if a table change fails.
    pub fn mark_clean(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        self.lru_add_drain()?;
        let page = self.page();
        let mut cursor = start;
        while let Some((leaf, s, e)) = self.next_leaf_part(cursor, end)? {
            cursor = e;
            if self.is_zero(leaf.pa.as_u64()) {
                continue;
            }
            let mem = self.mmu.memory_mut();
            let flush = self.mapper.protect(
                mem,
                &mut self.frames,
                VirtAddr::new(s),
                e - s,
                Attributes::AP_RO,
                PTE_DIRTY | Attributes::AF,
            )?;
            self.mmu.flush(flush);
            self.settle_split(&leaf, s)?;
            if leaf.descriptor.bits() & PTE_LAZYFREE.bits() != 0 {
                // Already lazy-free (not swap-backed): folio_mark_lazyfree skips it.
                continue;
            }
            let size = 1u64 << leaf.size_log2;
            if size > page && s == leaf.va.as_u64() && e - s == size {
                // A whole THP: a large folio moves the batch at once.
                self.set_lazyfree(s, size)?;
                self.lru_add_drain()?;
                continue;
            }
            let pa0 = leaf.pa.as_u64() + (s - leaf.va.as_u64());
            let mut a = s;
            while a < e {
                if self.lazyfree_batch.is_full() {
                    self.lru_add_drain()?;
                }
                let pushed = self.lazyfree_batch.try_push((a, pa0 + (a - s))).is_ok();
                debug_assert!(pushed, "a drained batch has room");
                if self.lazyfree_batch.len() >= usize::from(self.config.lru_batch).max(1) {
                    // folio_batch_add() returned no space left: the batch moves.
                    self.lru_add_drain()?;
                }
                a += page;
            }
        }
        Ok(())
    }

    /// Deactivates the private pages of `[start, end)` (MADV_COLD) as
    /// `madvise_cold_or_pageout_pte_range` does after draining the folio batches: each
    /// page that is not a zero page becomes old and loses `PG_referenced`, so that smaps
    /// no longer counts it as Referenced until it is accessed again. A THP that the range
    /// covers only in part is split first.
    ///
    /// # Errors
    /// [`MapError`] if a table change fails.
    pub fn deactivate(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        self.lru_add_drain()?;
        let mut cursor = start;
        while let Some((leaf, s, e)) = self.next_leaf_part(cursor, end)? {
            cursor = e;
            if self.is_zero(leaf.pa.as_u64()) {
                continue;
            }
            let mem = self.mmu.memory_mut();
            let flush = self.mapper.protect(
                mem,
                &mut self.frames,
                VirtAddr::new(s),
                e - s,
                Attributes::empty(),
                Attributes::AF | PG_REFERENCED,
            )?;
            self.mmu.flush(flush);
            self.settle_split(&leaf, s)?;
        }
        Ok(())
    }

    /// Faults in and touches one page as `get_user_pages` with FOLL_TOUCH does
    /// (MAP_POPULATE, MADV_POPULATE_READ/WRITE): a page that is present and allows the
    /// access is not accessed through the MMU, so its access flag and hardware dirty state
    /// stay as they are; its folio is marked accessed (`folio_mark_accessed`: the first
    /// time sets [`PG_REFERENCED`], the next activates the folio and clears it) and, for a
    /// write, dirty. A missing page, or a write to one that is not writable (a zero page),
    /// is faulted in first, as [`Paging::access`] does.
    pub fn gup_touch(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
        find_vma: &mut dyn FnMut(u64) -> Option<VmaView>,
    ) -> Touch {
        let addr = va.as_u64() & 0x00ff_ffff_ffff_ffff;
        let write = kind == AccessKind::Write;
        // A table that cannot be read is reported like the kernel's failure to get a page.
        let oom = Touch::OutOfMemory { addr: va };
        let Ok(leaf) = self.leaf_at(addr) else {
            return oom;
        };
        // pte_write() on arm64 is PTE_WRITE, the DBM bit.
        let done = match leaf {
            Some(l) if !write || l.descriptor.bits() & Attributes::DBM.bits() != 0 => {
                Touch::Done(PhysAddr::new(l.pa.as_u64() + (addr - l.va.as_u64())))
            }
            _ => match self.access(va, kind, find_vma) {
                Touch::Done(pa) => Touch::Done(pa),
                t => return t,
            },
        };
        let Ok(Some(l)) = self.leaf_at(addr) else {
            return oom;
        };
        if self.is_zero(l.pa.as_u64()) {
            return done;
        }
        let d = l.descriptor.bits();
        let mut set = Attributes::empty();
        let mut clear = Attributes::empty();
        if write && !pte_dirty(d) {
            // folio_mark_dirty: pagesim keeps folio and PTE dirtiness in one bit.
            set |= PTE_DIRTY;
        }
        if d & PG_REFERENCED.bits() == 0 {
            set |= PG_REFERENCED;
        } else {
            clear |= PG_REFERENCED;
        }
        let mem = self.mmu.memory_mut();
        match self
            .mapper
            .protect(mem, &mut self.frames, l.va, 1u64 << l.size_log2, set, clear)
        {
            Ok(flush) => {
                self.mmu.flush(flush);
                done
            }
            Err(_) => Touch::OutOfMemory { addr: va },
        }
    }

    /// Drains this CPU's folio batches (`lru_add_drain`): the folios waiting in the
    /// `lru_lazyfree` batch become lazy-free. The kernel drains before MADV_FREE,
    /// MADV_DONTNEED, MADV_COLD/PAGEOUT and before unmapping VMAs (munmap, MAP_FIXED over
    /// a mapping, brk shrink); [`crate::linux::process::Process`] calls it there.
    ///
    /// # Errors
    /// [`MapError`] if a table change fails (a software-bit change of a mapped page never
    /// needs a frame).
    pub fn lru_add_drain(&mut self) -> Result<(), MapError> {
        let page = self.page();
        while let Some((va, pa)) = self.lazyfree_batch.pop_at(0) {
            // The folio is still mapped where MADV_FREE found it: every path that unmaps
            // pages drains first, so the check only guards the model's own invariant.
            let same = self
                .leaf_at(va)?
                .is_some_and(|l| l.pa.as_u64() + (va - l.va.as_u64()) == pa);
            if same {
                self.set_lazyfree(va, page)?;
            }
        }
        Ok(())
    }

    /// Returns how many small folios wait in the `lru_lazyfree` batch.
    pub fn pending_lazyfree(&self) -> usize {
        self.lazyfree_batch.len()
    }

    /// The lazy-free move of one folio (`lru_lazyfree`): not swap-backed any more, and
    /// neither referenced nor active.
    fn set_lazyfree(&mut self, va: u64, len: u64) -> Result<(), MapError> {
        let mem = self.mmu.memory_mut();
        let flush = self.mapper.protect(
            mem,
            &mut self.frames,
            VirtAddr::new(va),
            len,
            PTE_LAZYFREE,
            PG_REFERENCED,
        )?;
        self.mmu.flush(flush);
        Ok(())
    }

    /// Releases `n` deposits (blocks split or unmapped).
    fn release_deposits(&mut self, n: u64) {
        debug_assert!(self.deposits >= n, "deposit accounting went below zero");
        self.deposits = self.deposits.saturating_sub(n);
    }

    /// Releases the deposit of block `leaf` if a change starting at `s` split it (a
    /// protect of part of a block splits it).
    fn settle_split(&mut self, leaf: &Leaf, s: u64) -> Result<(), MapError> {
        let size = 1u64 << leaf.size_log2;
        if size > self.page() && self.leaf_at(s)?.is_some_and(|l| 1u64 << l.size_log2 < size) {
            self.release_deposits(1);
        }
        Ok(())
    }

    /// Returns what smaps counts as resident in `[start, end)`.
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be read.
    pub fn residency(&self, start: u64, end: u64) -> Result<Residency, MapError> {
        let mut r = Residency::default();
        if end <= start {
            return Ok(r);
        }
        let page = self.page();
        self.mapper
            .for_each_leaf(self.mmu.memory(), VirtAddr::new(start), end - start, |l| {
                let l_start = l.va.as_u64();
                let size = 1u64 << l.size_log2;
                let s = l_start.max(start);
                let e = (l_start + size).min(end);
                r.present_pages += (e - s) / page;
                if !self.is_zero(l.pa.as_u64()) {
                    let d = l.descriptor.bits();
                    r.rss += e - s;
                    if pte_dirty(d) {
                        r.private_dirty += e - s;
                    } else {
                        r.private_clean += e - s;
                        if d & PTE_LAZYFREE.bits() != 0 {
                            r.lazy_free += e - s;
                        }
                    }
                    if d & (Attributes::AF | PG_REFERENCED).bits() != 0 {
                        r.referenced += e - s;
                    }
                    if size > page && s == l_start && e == l_start + size {
                        r.anon_huge += size;
                    }
                }
                true
            })?;
        Ok(r)
    }

    /// Writes one byte per page of `[start, start + len)` into `out`: 1 where a page is
    /// mapped (zero pages included), 0 elsewhere. Returns how many bytes were written.
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be read.
    pub fn mincore(&self, start: u64, len: u64, out: &mut [u8]) -> Result<usize, MapError> {
        let page = self.page();
        let pages = (len.div_ceil(page) as usize).min(out.len());
        for b in out[..pages].iter_mut() {
            *b = 0;
        }
        self.mapper
            .for_each_leaf(self.mmu.memory(), VirtAddr::new(start), len, |l| {
                let l_start = l.va.as_u64();
                let s = l_start.max(start);
                let e = (l_start + (1u64 << l.size_log2)).min(start + len);
                let mut a = s;
                while a < e {
                    let i = ((a - start) / page) as usize;
                    if i < pages {
                        out[i] = 1;
                    }
                    a += page;
                }
                true
            })?;
        Ok(pages)
    }

    /// Checks the paging invariants: one deposited table per block mapped, the deposits
    /// still free, and every frame in use accounted for (the tables, the pages the leaves
    /// map, and the zero pages). Property tests and fuzz targets call it after each step.
    ///
    /// # Errors
    /// [`PagingInvariant`] naming the first invariant that does not hold.
    pub fn validate(&self) -> Result<(), PagingInvariant> {
        let page = self.page();
        let mut blocks = 0u64;
        let mut mapped_frames = 0u64;
        self.mapper
            .for_each_leaf(
                self.mmu.memory(),
                VirtAddr::new(0),
                1u64 << self.config.va_bits,
                |l| {
                    let size = 1u64 << l.size_log2;
                    if size > page {
                        blocks += 1;
                    }
                    if !self.is_zero(l.pa.as_u64()) {
                        mapped_frames += size >> 12;
                    }
                    true
                },
            )
            .map_err(PagingInvariant::Tables)?;
        if blocks != self.deposits {
            return Err(PagingInvariant::Deposits {
                blocks,
                deposits: self.deposits,
            });
        }
        let free = self.frames.free_frames() as u64;
        if free < self.deposit_frames() {
            return Err(PagingInvariant::DepositsSpent {
                free,
                needed: self.deposit_frames(),
            });
        }
        let table_frames = self.mapper.table_count() << (self.config.granule.page_shift() - 12);
        let zero_frames = (page >> 12) + self.huge_zero.map_or(0, |_| self.pmd() >> 12);
        let used = self.frames.total_frames() as u64 - free;
        let accounted = table_frames + mapped_frames + zero_frames;
        if used != accounted {
            return Err(PagingInvariant::Frames { used, accounted });
        }
        Ok(())
    }

    /// Walks the tables for an EL0 access of `kind` at `va` without the TLB and without
    /// taking faults, recording the descriptor read at each level (for showing a
    /// translation level by level).
    pub fn trace(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
    ) -> (
        Result<crate::arch::Translation, Fault>,
        arrayvec::ArrayVec<(PhysAddr, u64), 5>,
    ) {
        let regime = *self.mmu.regime();
        let mut t = crate::machinery::TracingMemory::new(self.mmu.memory_mut());
        let r = crate::arch::walk(&regime, &mut t, va, Access::new(kind, El::El0));
        (r, t.reads())
    }

    /// Returns the leaf descriptor mapping `va`, if any (for showing translations).
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be read.
    pub fn descriptor(&self, va: VirtAddr) -> Result<Option<Descriptor>, MapError> {
        Ok(self.leaf_at(va.as_u64())?.map(|l| l.descriptor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machinery::SliceMemory;
    use std::vec;
    use std::vec::Vec;

    const BASE: u64 = 0x4000_0000;
    const RAM: usize = 32 << 20;

    fn with_paging<R>(
        cfg: PagingConfig,
        f: impl FnOnce(&mut Paging<'_, SliceMemory<'_>, 64>) -> R,
    ) -> R {
        let mut ram = vec![0u8; RAM];
        let frames = RAM / 4096;
        let mut storage = vec![0u64; FrameAllocator::storage_words(frames)];
        let alloc =
            FrameAllocator::new(PhysAddr::new(BASE), RAM as u64, &mut storage, true).unwrap();
        let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
        let mut p = Paging::new(cfg, mem, alloc).unwrap();
        f(&mut p)
    }

    const RW: VmFlags = VmFlags::VM_READ
        .union(VmFlags::VM_WRITE)
        .union(VmFlags::VM_MAYREAD)
        .union(VmFlags::VM_MAYWRITE);

    fn vma(start: u64, end: u64, flags: VmFlags, thp: bool) -> impl Fn(u64) -> Option<VmaView> {
        move |a| {
            (a >= start && a < end).then_some(VmaView {
                start,
                end,
                flags,
                thp,
            })
        }
    }

    #[test]
    fn read_maps_zero_page_write_allocates_and_cow() {
        with_paging(PagingConfig::default(), |p| {
            let mut v = vma(0x1000_0000, 0x1001_0000, RW, false);
            let free0 = p.frames().free_frames();
            let r = p.access(VirtAddr::new(0x1000_0010), AccessKind::Read, &mut v);
            assert_eq!(r, Touch::Done(PhysAddr::new(p.zero_page().as_u64() + 0x10)));
            assert_eq!(
                p.residency(0x1000_0000, 0x1001_0000).unwrap(),
                Residency {
                    present_pages: 1,
                    ..Default::default()
                }
            );
            // Write after read: copy-on-write off the zero page.
            let r = p.access(VirtAddr::new(0x1000_0010), AccessKind::Write, &mut v);
            assert!(matches!(r, Touch::Done(pa) if pa.as_u64() != p.zero_page().as_u64() + 0x10));
            assert_eq!(p.stats().cow, 1);
            let res = p.residency(0x1000_0000, 0x1001_0000).unwrap();
            assert_eq!(
                (res.rss, res.private_dirty, res.present_pages),
                (4096, 4096, 1)
            );
            // Frames: one data page plus the L1/L2/L3 tables of the new mapping.
            assert_eq!(
                free0 - p.frames().free_frames(),
                1 + p.mapper().table_count() as usize - 1
            );
            // A second write hits the TLB: no new fault.
            let faults = p.stats().faults;
            let _ = p.access(VirtAddr::new(0x1000_0018), AccessKind::Write, &mut v);
            assert_eq!(p.stats().faults, faults);
            p.zap(0x1000_0000, 0x1001_0000).unwrap();
            assert_eq!(p.frames().free_frames(), free0);
            assert_eq!(
                p.residency(0x1000_0000, 0x1001_0000).unwrap(),
                Residency::default()
            );
        });
    }

    #[test]
    fn segv_codes() {
        with_paging(PagingConfig::default(), |p| {
            let mut v = vma(0x1000_0000, 0x1001_0000, VmFlags::VM_READ, false);
            match p.access(VirtAddr::new(0), AccessKind::Write, &mut v) {
                Touch::Segv(s) => {
                    assert_eq!(s.code, SegvCode::MapErr);
                    assert_eq!(s.fault.kind, FaultKind::Translation);
                    assert_eq!(s.fault.esr() >> 26, 0x24);
                }
                t => panic!("{t:?}"),
            }
            assert!(matches!(
                p.access(VirtAddr::new(0x1000_0000), AccessKind::Read, &mut v),
                Touch::Done(_)
            ));
            match p.access(VirtAddr::new(0x1000_0000), AccessKind::Write, &mut v) {
                Touch::Segv(s) => {
                    assert_eq!(s.code, SegvCode::AccErr);
                    assert_eq!(s.fault.kind, FaultKind::Permission);
                }
                t => panic!("{t:?}"),
            }
            // A tagged pointer reports the untagged address.
            match p.access(
                VirtAddr::new(0x5a00_0000_0000_0000),
                AccessKind::Read,
                &mut v,
            ) {
                Touch::Segv(s) => assert_eq!((s.code, s.addr.as_u64()), (SegvCode::MapErr, 0)),
                t => panic!("{t:?}"),
            }
        });
    }

    #[test]
    fn thp_write_and_huge_zero_read() {
        for (hzw, after_write_huge) in [
            (HugeZeroWrite::AllocateThp, 2 << 20),
            (HugeZeroWrite::SplitAndCopy, 0),
        ] {
            let cfg = PagingConfig {
                huge_zero_write: hzw,
                ..PagingConfig::default()
            };
            with_paging(cfg, |p| {
                let mut v = vma(0x4000_0000, 0x4060_0000, RW, true);
                // Write fault in an eligible block: a THP.
                assert!(matches!(
                    p.access(VirtAddr::new(0x4000_1000), AccessKind::Write, &mut v),
                    Touch::Done(_)
                ));
                let r = p.residency(0x4000_0000, 0x4020_0000).unwrap();
                assert_eq!((r.rss, r.anon_huge), (2 << 20, 2 << 20));
                // Read fault in the next block: the huge zero page.
                assert!(matches!(
                    p.access(VirtAddr::new(0x4020_0000), AccessKind::Read, &mut v),
                    Touch::Done(_)
                ));
                let r = p.residency(0x4020_0000, 0x4040_0000).unwrap();
                assert_eq!((r.rss, r.present_pages), (0, 512));
                // Write to it: 6.18 allocates a THP, 6.1/6.12 split and copy one page.
                assert!(matches!(
                    p.access(VirtAddr::new(0x4020_0000), AccessKind::Write, &mut v),
                    Touch::Done(_)
                ));
                let r = p.residency(0x4020_0000, 0x4040_0000).unwrap();
                assert_eq!(r.anon_huge, after_write_huge);
                assert_eq!(r.rss, if after_write_huge > 0 { 2 << 20 } else { 4096 });
                // MADV_DONTNEED of 4 KiB of the THP splits it.
                p.zap(0x4000_0000, 0x4000_1000).unwrap();
                let r = p.residency(0x4000_0000, 0x4020_0000).unwrap();
                assert_eq!((r.rss, r.anon_huge), ((2 << 20) - 4096, 0));
                let mut mc = vec![0u8; 512];
                assert_eq!(p.mincore(0x4000_0000, 2 << 20, &mut mc), Ok(512));
                assert_eq!(mc.iter().filter(|&&b| b == 1).count(), 511);
            });
        }
    }

    #[test]
    fn blocks_split_even_with_no_frame_left() {
        // 6 MiB of RAM: a few THPs and a huge-zero map, then base pages until memory runs
        // out. Each block still splits (mprotect inside it, MADV_DONTNEED of part of it):
        // its deposited table pays for the split, as the kernel's deposit does.
        let ram_len = 6usize << 20;
        let mut ram = vec![0u8; ram_len];
        let mut storage = vec![0u64; FrameAllocator::storage_words(ram_len / 4096)];
        let alloc =
            FrameAllocator::new(PhysAddr::new(BASE), ram_len as u64, &mut storage, true).unwrap();
        let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
        let mut p: Paging<'_, _, 16> = Paging::new(PagingConfig::default(), mem, alloc).unwrap();
        let mut v = vma(0x4000_0000, 0x4100_0000, RW, true);
        assert!(matches!(
            p.access(VirtAddr::new(0x4000_0000), AccessKind::Write, &mut v),
            Touch::Done(_)
        ));
        assert!(matches!(
            p.access(VirtAddr::new(0x4020_0000), AccessKind::Read, &mut v),
            Touch::Done(_)
        ));
        assert_eq!(p.deposited_tables(), 2);
        let mut small = vma(0x5000_0000, 0x6000_0000, RW, false);
        let mut i = 0;
        while matches!(
            p.access(
                VirtAddr::new(0x5000_0000 + i * 4096),
                AccessKind::Write,
                &mut small
            ),
            Touch::Done(_)
        ) {
            i += 1;
        }
        assert_eq!(p.frames().free_frames() as u64, p.deposited_tables());
        // mprotect of the second half of the THP: the block splits.
        p.split_block_at(0x4010_0000).unwrap();
        p.change_protection(0x4010_0000, 0x4020_0000, VmFlags::VM_READ)
            .unwrap();
        assert_eq!(p.deposited_tables(), 1);
        assert_eq!(p.leaf_at(0x4000_0000).unwrap().unwrap().size_log2, 12);
        assert_eq!(p.residency(0x4000_0000, 0x4020_0000).unwrap().rss, 2 << 20);
        // MADV_DONTNEED of one page of the huge zero map splits it too.
        p.zap(0x4020_0000, 0x4020_1000).unwrap();
        assert_eq!(p.deposited_tables(), 0);
        let mut mc = vec![0u8; 512];
        assert_eq!(p.mincore(0x4020_0000, 2 << 20, &mut mc), Ok(512));
        assert_eq!(mc.iter().filter(|&&b| b == 1).count(), 511);
    }

    #[test]
    fn out_of_frames_is_reported_and_state_is_intact() {
        let mut ram = vec![0u8; 1 << 20];
        let mut storage = vec![0u64; FrameAllocator::storage_words(256)];
        let alloc = FrameAllocator::new(PhysAddr::new(BASE), 1 << 20, &mut storage, true).unwrap();
        let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
        let cfg = PagingConfig {
            huge_zero_page: false,
            ..PagingConfig::default()
        };
        let mut p: Paging<'_, _, 16> = Paging::new(cfg, mem, alloc).unwrap();
        let mut v = vma(0x1000_0000, 0x2000_0000, RW, false);
        let mut done = Vec::new();
        let mut oom = None;
        for i in 0..400u64 {
            match p.access(
                VirtAddr::new(0x1000_0000 + i * 4096),
                AccessKind::Write,
                &mut v,
            ) {
                Touch::Done(_) => done.push(i),
                Touch::OutOfMemory { addr } => {
                    oom = Some(addr);
                    break;
                }
                t => panic!("{t:?}"),
            }
        }
        assert!(oom.is_some());
        assert_eq!(p.frames().free_frames(), 0);
        // Everything mapped before is still there.
        let r = p.residency(0x1000_0000, 0x2000_0000).unwrap();
        assert_eq!(r.rss, done.len() as u64 * 4096);
        for &i in &done {
            assert!(matches!(
                p.access(
                    VirtAddr::new(0x1000_0000 + i * 4096),
                    AccessKind::Read,
                    &mut v
                ),
                Touch::Done(_)
            ));
        }
    }
}
