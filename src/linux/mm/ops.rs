//! How the VMA layer tells the page layer which ranges changed.

use super::vmflags::VmFlags;

use super::mman::Advice;

/// Receives the page-level consequences of address-space calls, so that page tables,
/// residency and TLBs can be kept in sync by another layer.
///
/// Every method has an empty default; ranges are half-open, page aligned and reported in
/// ascending order within one call. They are reported after the VMA change was made.
pub trait PageOps {
    /// Reports that `[start, end)` left the address space (`munmap`, `MAP_FIXED`
    /// replacement, `brk` shrink, exit): free its pages and page tables, flush the TLB.
    /// `flags` are those of the VMA the range belonged to.
    fn unmapped(&mut self, start: u64, end: u64, flags: VmFlags) {
        let _ = (start, end, flags);
    }

    /// Reports that the pages of `[old, old + len)` move to `[new, new + len)` (`mremap`):
    /// move the page-table entries (the ranges never overlap); the old range keeps its
    /// VMA only with `MREMAP_DONTUNMAP`.
    fn moved(&mut self, old: u64, new: u64, len: u64) {
        let _ = (old, new, len);
    }

    /// Reports that `[start, end)` now has `new_flags` (`mprotect`): downgrade or upgrade
    /// the PTEs; residency does not change.
    fn protection_changed(&mut self, start: u64, end: u64, new_flags: VmFlags) {
        let _ = (start, end, new_flags);
    }

    /// Reports that the pages of `[start, end)` are dropped while the mapping stays
    /// (`MADV_DONTNEED`, `MADV_DONTNEED_LOCKED`, `MADV_REMOVE`, `MADV_GUARD_INSTALL`).
    /// `flags` are those of the VMA.
    fn zap(&mut self, start: u64, end: u64, flags: VmFlags) {
        let _ = (start, end, flags);
    }

    /// Asks for `[start, end)` to be faulted in, with write faults if `write`
    /// (`MAP_POPULATE`, `MAP_LOCKED`, `MADV_POPULATE_READ`/`_WRITE`, `mlockall` brk growth).
    fn populate(&mut self, start: u64, end: u64, write: bool) {
        let _ = (start, end, write);
    }

    /// Reports a page-only advice over `[start, end)` that changes no VMA (`MADV_FREE`,
    /// `MADV_COLD`, `MADV_PAGEOUT`, `MADV_WILLNEED`, `MADV_COLLAPSE`, `MADV_GUARD_REMOVE`),
    /// and the flag-changing advices that the page layer may care about (`MADV_HUGEPAGE`,
    /// `MADV_NOHUGEPAGE`, `MADV_UNMERGEABLE`), after the VMA change.
    fn advise(&mut self, start: u64, end: u64, advice: Advice) {
        let _ = (start, end, advice);
    }
}

/// A [`PageOps`] that ignores everything (VMA-only simulation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoPageOps;

impl PageOps for NoPageOps {}
