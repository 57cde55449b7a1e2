//! The simulated RAM as both sides see it: pagesim's [`ProcessStorage`] owns the bytes, and
//! Unicorn maps the same bytes as guest-physical memory at [`RAM_BASE`], so the guest's
//! loads and stores, pagesim's page tables and its page copies meet in one place.
//!
//! [`ProcessStorage`]: pagesim::linux::storage::ProcessStorage
//! [`RAM_BASE`]: pagesim::linux::storage::RAM_BASE

use pagesim::linux::storage::RAM_BASE;

/// A view of the simulated RAM by physical address.
#[derive(Clone, Copy, Debug)]
pub struct Ram {
    ptr: *mut u8,
    len: usize,
}

impl Ram {
    /// Wraps the host range [`ProcessStorage::ram_host_range`] returned.
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay valid (the storage alive and not moved) while the view is
    /// used, and nothing may hold a Rust reference into it across a use (pagesim touches
    /// the bytes only inside its own calls, Unicorn only inside `emu_start`).
    ///
    /// [`ProcessStorage::ram_host_range`]: pagesim::linux::storage::ProcessStorage::ram_host_range
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Ram {
        Ram { ptr, len }
    }

    /// Returns the host pointer and length (for Unicorn's `mem_map_ptr`).
    pub fn host(&self) -> (*mut u8, usize) {
        (self.ptr, self.len)
    }

    /// Returns the offset of `[pa, pa + n)` in RAM, if it lies inside.
    fn offset(&self, pa: u64, n: usize) -> Option<usize> {
        let off = usize::try_from(pa.checked_sub(RAM_BASE)?).ok()?;
        (off.checked_add(n)? <= self.len).then_some(off)
    }

    /// Copies `out.len()` bytes from physical address `pa`; `false` outside RAM.
    pub fn read(&self, pa: u64, out: &mut [u8]) -> bool {
        let Some(off) = self.offset(pa, out.len()) else {
            return false;
        };
        // SAFETY: inside the range `new` was given (checked above); no reference into RAM
        // is live (see `new`).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), out.as_mut_ptr(), out.len()) };
        true
    }

    /// Copies `data` to physical address `pa`; `false` outside RAM.
    pub fn write(&self, pa: u64, data: &[u8]) -> bool {
        let Some(off) = self.offset(pa, data.len()) else {
            return false;
        };
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
        true
    }
}
