//! What is resident: smaps residency, mincore, the paging invariants, and a traced walk.

use super::*;

/// Resident memory of a range, as smaps counts it (bytes).
///
/// A page is shared when more than one page-table entry maps it: a page-cache page mapped
/// twice, or an anonymous page a fork shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Residency {
    /// Pages mapped (zero pages excluded).
    pub rss: u64,
    /// Of those, mapped once and dirty as `pte_dirty()` or the folio sees them.
    pub private_dirty: u64,
    /// Of those, mapped once and clean (e.g. after MADV_FREE).
    pub private_clean: u64,
    /// Of those, mapped more than once and dirty.
    pub shared_dirty: u64,
    /// Of those, mapped more than once and clean.
    pub shared_clean: u64,
    /// The proportional set size with 12 extra fraction bits, as the kernel sums it
    /// (`(size << 12) / mapcount` per page; smaps prints it `>> 12`).
    pub pss_shifted: u64,
    /// The dirty part of [`Residency::pss_shifted`].
    pub pss_dirty_shifted: u64,
    /// Of the pages mapped, young: the access flag is set (it is cleared by MADV_FREE and
    /// set again by the next access) or the folio's `PG_referenced`.
    pub referenced: u64,
    /// Of those, anonymous (not page-cache pages of a file).
    pub anonymous: u64,
    /// Of those, lazy-free (made so by MADV_FREE) and still clean.
    pub lazy_free: u64,
    /// Bytes mapped by level-2 blocks (PMD THPs).
    pub anon_huge: u64,
    /// Pages with any mapping, zero pages included (what mincore reports), in base pages.
    pub present_pages: u64,
}

impl Residency {
    /// Returns the proportional set size in bytes, truncated once over the range as the
    /// kernel truncates it.
    pub const fn pss(&self) -> u64 {
        self.pss_shifted >> 12
    }

    /// Returns the dirty part of [`Residency::pss`].
    pub const fn pss_dirty(&self) -> u64 {
        self.pss_dirty_shifted >> 12
    }
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
    /// Leaves mapping frames shared `mappings` times are not a multiple of it: the map
    /// counts of shared pages and the tables that map them disagree.
    Shares {
        /// The map count of the frames.
        mappings: u64,
        /// Leaves (in 4 KiB frames) found mapping such frames.
        leaves: u64,
    },
    /// Frames in use are not the tables, mapped pages and zero pages.
    Frames {
        /// Frames the allocator has handed out.
        used: u64,
        /// Tables + frames the leaves map + the zero pages + the page cache.
        accounted: u64,
    },
}

impl core::error::Error for PagingInvariant {}

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
            PagingInvariant::Shares { mappings, leaves } => write!(
                f,
                "{leaves} frames of leaves map pages mapped {mappings} times: not a multiple"
            ),
            PagingInvariant::Frames { used, accounted } => write!(
                f,
                "{used} frames in use, {accounted} held by tables, pages and zero pages"
            ),
        }
    }
}

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
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
                    let n = e - s;
                    let file = d & PTE_FILE.bits() != 0;
                    let pa = l.pa.as_u64() + (s - l_start);
                    let (mapcount, folio_dirty, folio_referenced) = if file {
                        self.cache.state_of(pa).map_or((1, false, false), |p| {
                            (p.mapcount(), p.is_dirty(), p.is_referenced())
                        })
                    } else {
                        (1, false, false)
                    };
                    let dirty = pte_dirty(d) || folio_dirty;
                    let mut count = |n: u64, mapcount: u32| {
                        let share = (n << 12) / u64::from(mapcount.max(1));
                        r.pss_shifted += share;
                        match (mapcount >= 2, dirty) {
                            (false, true) => r.private_dirty += n,
                            (false, false) => r.private_clean += n,
                            (true, true) => r.shared_dirty += n,
                            (true, false) => r.shared_clean += n,
                        }
                        if dirty {
                            r.pss_dirty_shifted += share;
                        }
                    };
                    if !file && self.any_shared(pa, n) {
                        // Pages shared by fork: each counts by its own map count.
                        let mut a = pa;
                        while a < pa + n {
                            count(page, u32::from(self.shares_of(a)) + 1);
                            a += page;
                        }
                    } else {
                        count(n, mapcount);
                    }
                    r.rss += n;
                    if !dirty && d & PTE_LAZYFREE.bits() != 0 {
                        r.lazy_free += n;
                    }
                    if !file {
                        r.anonymous += n;
                    }
                    if folio_referenced || d & (Attributes::AF | PG_REFERENCED).bits() != 0 {
                        r.referenced += n;
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
        self.validate_with([])
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
        let mut t = crate::phys::TracingMemory::new(self.mmu.memory_mut());
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
