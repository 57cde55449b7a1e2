//! Where table frames come from, and what a mapper operation returns when it cannot be carried out.

use super::*;

/// Where table frames come from: any frame allocator.
pub trait FrameSource {
    /// Allocates a naturally aligned run of `2^order` 4 KiB frames. Returns its address and
    /// whether it is already known to read as zero; `None` when memory is exhausted.
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)>;

    /// Returns a run obtained from [`FrameSource::allocate`]; `zeroed` says it reads as
    /// zero.
    ///
    /// # Errors
    /// [`FrameError`] when the run was not allocated from this source (nothing changes).
    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError>;

    /// Returns about how many runs of `2^order` frames can still be allocated. The mapper
    /// refuses early when fewer are available than it needs, and rolls back cleanly when an
    /// allocation fails anyway (fragmentation, or an estimate that was too high).
    fn available(&self, order: u32) -> u64;
}

impl FrameSource for crate::mmu::frames::FrameAllocator<'_> {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        let mut dirty = false;
        let pa = self.alloc_run_zeroed(order, |_, _| dirty = true).ok()?;
        Some((pa, !dirty))
    }

    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError> {
        if zeroed {
            self.free_run_zeroed(pa, order)
        } else {
            self.free_run(pa, order)
        }
    }

    fn available(&self, order: u32) -> u64 {
        (self.free_frames() >> order.min(63)) as u64
    }
}

/// Returned by a [`Mapper`] operation that could not be carried out. The tables are exactly
/// as before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapError {
    /// An address or length is not a multiple of the page size.
    Unaligned {
        /// The offending value.
        addr: u64,
    },
    /// The range leaves the half's VA range (or wraps around).
    OutOfRange {
        /// The offending virtual address.
        va: VirtAddr,
    },
    /// The physical range exceeds the output address size.
    OutputOutOfRange {
        /// The offending physical address.
        pa: u64,
    },
    /// A page in the range is already mapped.
    AlreadyMapped {
        /// The first mapped address found.
        va: VirtAddr,
    },
    /// No frame for a translation table.
    OutOfFrames {
        /// The address whose mapping needed the table.
        va: VirtAddr,
    },
    /// Physical memory refused an access to a table.
    Memory(MemoryError),
    /// The frame source refused to take back a table frame (it did not hand it out).
    Frames(FrameError),
    /// The attributes include bits the mapper owns (valid, type, output address).
    InvalidAttributes {
        /// The offending bits.
        bits: u64,
    },
    /// The table format is not one the architecture defines.
    InvalidFormat,
}

impl core::error::Error for MapError {}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::Unaligned { addr } => write!(f, "{addr:#x} is not page aligned"),
            MapError::OutOfRange { va } => write!(f, "{:#x} is outside the VA range", va.as_u64()),
            MapError::OutputOutOfRange { pa } => {
                write!(f, "{pa:#x} exceeds the output address size")
            }
            MapError::AlreadyMapped { va } => write!(f, "{:#x} is already mapped", va.as_u64()),
            MapError::OutOfFrames { va } => {
                write!(f, "no frame for a table to map {:#x}", va.as_u64())
            }
            MapError::Memory(e) => write!(f, "table access failed: {e}"),
            MapError::Frames(e) => write!(f, "table frame not returned: {e}"),
            MapError::InvalidAttributes { bits } => {
                write!(f, "attribute bits {bits:#x} are not allowed")
            }
            MapError::InvalidFormat => f.write_str("invalid table format"),
        }
    }
}

impl From<FrameError> for MapError {
    fn from(e: FrameError) -> Self {
        MapError::Frames(e)
    }
}

impl From<MemoryError> for MapError {
    fn from(e: MemoryError) -> Self {
        MapError::Memory(e)
    }
}
