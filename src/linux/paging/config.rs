//! The configuration of a process's paging, from its layout and kernel version.

use super::*;

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
    /// and `zap_page_range_single`): Linux 6.1 and 6.12 do, 6.18 does not (observed on
    /// x86_64 6.18; the calls went in 6.14).
    pub unmap_drains: bool,
    /// Whether the pages fault-around maps beside the faulting one start old (access flag
    /// clear), as arm64's `arch_wants_old_prefaulted_pte()` asks on CPUs with a hardware
    /// access flag; x86 maps them young.
    pub old_prefaulted_ptes: bool,
    /// The VMA flags that make a mapping have no recency (`vma_has_recency()`): zapping its
    /// young file pages does not mark their folios accessed. `VM_SEQ_READ` (MADV_SEQUENTIAL)
    /// always; `VM_RAND_READ` (MADV_RANDOM) too since Linux 6.4.
    pub no_recency: VmFlags,
    /// Whether splitting an anonymous THP (MADV_FREE or MADV_COLD over part of it) maps
    /// its subpages that hold only zeros to the shared zero page and frees them
    /// (`RMP_USE_SHARED_ZEROPAGE`, Linux 6.12 and later).
    pub split_maps_zero_pages: bool,
    /// Whether page contents are kept (see [`DataMode`]).
    pub data: DataMode,
}

/// Whether the simulation keeps what data pages hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataMode {
    /// Data pages hold data: zeroed when allocated, filled from files, copied on write.
    #[default]
    Stored,
    /// Only page tables hold anything: data pages are never written (file contents are
    /// not read, copy-on-write copies nothing, the initial stack of an exec is not written)
    /// and read as zeros on a memory that stores zero pages for free (such as
    /// [`crate::phys::SparseMemory`]). For address-space and translation studies of
    /// machines larger than the host.
    None,
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
            // PAGEVEC_SIZE went from 15 to 31 in Linux 6.9 ("increase PAGEVEC_SIZE from 15
            // to 31"); 6.14 dropped the lru_add_drain() calls before freeing pages ("mm:
            // remove unnecessary calls to lru_add_drain"), as observed on 6.18.
            lru_batch: if params.version >= KernelVersion::V6_12 {
                MAX_LRU_BATCH as u8
            } else {
                15
            },
            unmap_drains: params.version < KernelVersion::V6_18,
            old_prefaulted_ptes: params.arch == Arch::Arm64,
            no_recency: if params.version >= KernelVersion::V6_12 {
                VmFlags::VM_SEQ_READ.union(VmFlags::VM_RAND_READ)
            } else {
                VmFlags::VM_SEQ_READ
            },
            split_maps_zero_pages: params.version >= KernelVersion::V6_12,
            data: DataMode::Stored,
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
            old_prefaulted_ptes: true,
            no_recency: VmFlags::VM_SEQ_READ.union(VmFlags::VM_RAND_READ),
            split_maps_zero_pages: true,
            data: DataMode::Stored,
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
