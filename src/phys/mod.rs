//! Simulated physical memory, the bottom layer beside the address types: the trait through
//! which walks, the mapper and the Linux model read and write RAM, its error, and the
//! memories that implement it (slice-backed, sparse, and a tracing wrapper).

mod slice;
#[cfg(feature = "std")]
mod sparse;
mod trace;
mod words;

pub use slice::SliceMemory;
#[cfg(feature = "std")]
pub use sparse::SparseMemory;
pub use trace::{TracingMemory, MAX_WALK_READS};
pub use words::WordView;

use core::fmt;

use crate::addr::PhysAddr;

/// Returned by a [`PhysMemory`] access that the memory system cannot complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryError {
    /// No RAM (or device) at this address: a synchronous External abort.
    ExternalAbort {
        /// The address accessed.
        pa: PhysAddr,
    },
    /// The location cannot be updated atomically (e.g. MMIO): FSC 0x31 for hardware
    /// descriptor updates.
    AtomicUnsupported {
        /// The address accessed.
        pa: PhysAddr,
    },
}

impl MemoryError {
    /// Returns the address the failed access was made to.
    pub const fn pa(&self) -> PhysAddr {
        match *self {
            MemoryError::ExternalAbort { pa } | MemoryError::AtomicUnsupported { pa } => pa,
        }
    }
}

impl core::error::Error for MemoryError {}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::ExternalAbort { pa } => write!(f, "external abort at {:#x}", pa.as_u64()),
            MemoryError::AtomicUnsupported { pa } => {
                write!(f, "no atomic update possible at {:#x}", pa.as_u64())
            }
        }
    }
}

/// Physical memory as the MMU sees it: 64-bit little-endian words, with a compare-and-swap
/// for hardware access-flag and dirty-state updates.
///
/// Word accesses are made at 8-byte aligned addresses.
pub trait PhysMemory {
    /// Reads the little-endian 64-bit word at `pa`.
    ///
    /// # Errors
    /// [`MemoryError::ExternalAbort`] when no memory answers at `pa`.
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError>;

    /// Reads the table entry `offset` bytes into the translation table at `table` (the
    /// word at `table + offset`; `table` is aligned and `offset` below its size). Walks
    /// read every descriptor through this unless the memory has a
    /// [`word_view`](PhysMemory::word_view), so an implementation may override it to form
    /// the address in the order that keeps the table address, which the previous level's
    /// load produced, last (as [`SliceMemory`]'s does for callers that use it directly);
    /// other memories need not implement it.
    ///
    /// # Errors
    /// As [`PhysMemory::read_u64`].
    #[inline]
    fn read_entry(&self, table: PhysAddr, offset: u64) -> Result<u64, MemoryError> {
        self.read_u64(PhysAddr::from_bits_52(table.as_u64().wrapping_add(offset)))
    }

    /// Returns this memory (or a run of RAM in it) as words that walks may index directly.
    /// Walks then read the descriptors the view holds through it, and the rest through
    /// [`PhysMemory::read_entry`]; the view's words must be what `read_u64` returns, and
    /// reading them must have no effect. A memory that must see every read (a tracing
    /// wrapper) keeps the default, `None`.
    #[inline]
    fn word_view(&self) -> Option<WordView<'_>> {
        None
    }

    /// Writes the little-endian 64-bit word at `pa`.
    ///
    /// # Errors
    /// [`MemoryError::ExternalAbort`] when no memory answers at `pa`.
    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError>;

    /// Atomically replaces the word at `pa` with `new` if it equals `current`. Returns
    /// `Ok(Ok(()))` when swapped and `Ok(Err(actual))` when the word held `actual`.
    ///
    /// # Errors
    /// [`MemoryError`] when the location cannot be accessed or updated atomically.
    fn compare_exchange_u64(
        &mut self,
        pa: PhysAddr,
        current: u64,
        new: u64,
    ) -> Result<Result<(), u64>, MemoryError> {
        let actual = self.read_u64(pa)?;
        if actual != current {
            return Ok(Err(actual));
        }
        self.write_u64(pa, new)?;
        Ok(Ok(()))
    }

    /// Fills `len` bytes from `pa` (both multiples of 8) with zeros.
    ///
    /// # Errors
    /// [`MemoryError::ExternalAbort`] at the first word no memory answers; words before it
    /// have been written.
    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        let mut off = 0;
        while off < len {
            let a = pa
                .checked_add(off)
                .ok_or(MemoryError::ExternalAbort { pa })?;
            self.write_u64(a, 0)?;
            off += 8;
        }
        Ok(())
    }
}
