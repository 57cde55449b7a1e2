//! A Linux process on the simulated MMU: the VMA-level address space and the demand-paged
//! translation tables kept in sync, with the calls returning errno results, accesses ending
//! in a physical address or SIGSEGV, and maps/smaps text with real residency.

use arrayvec::ArrayVec;

use super::maps_text::SmapsCounters;
use super::mm::errno::Errno;
use super::mm::mman::{self, Advice, MapFlags, Prot};
use super::mm::ops::PageOps;
use super::mm::space::AddressSpace;
use super::paging::{Paging, Touch, VmaView};
use super::vma::Vma;
use super::vmflags::VmFlags;
use crate::addr::VirtAddr;
use crate::arch::AccessKind;
use crate::machinery::{MapError, PhysMemory};

/// Applies the page-level consequences of VMA changes to the page tables; population is
/// deferred until the call returns (it needs the new VMAs).
struct Sync<'p, 'f, M: PhysMemory, const N: usize> {
    paging: &'p mut Paging<'f, M, N>,
    populate: ArrayVec<(u64, u64, bool), 8>,
    error: Option<MapError>,
}

impl<M: PhysMemory, const N: usize> Sync<'_, '_, M, N> {
    fn note(&mut self, r: Result<(), MapError>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

impl<M: PhysMemory, const N: usize> PageOps for Sync<'_, '_, M, N> {
    fn unmapped(&mut self, start: u64, end: u64) {
        if self.paging.config().unmap_drains {
            // unmap_region: lru_add_drain() before the zap.
            let r = self.paging.lru_add_drain();
            self.note(r);
        }
        let r = self.paging.zap(start, end);
        self.note(r);
    }

    fn protection_changed(&mut self, start: u64, end: u64, new_flags: VmFlags) {
        let r = self.paging.change_protection(start, end, new_flags);
        self.note(r);
    }

    fn zap(&mut self, start: u64, end: u64) {
        if self.paging.config().unmap_drains {
            // zap_page_range_single: lru_add_drain() before the zap.
            let r = self.paging.lru_add_drain();
            self.note(r);
        }
        let r = self.paging.zap(start, end);
        self.note(r);
    }

    fn populate(&mut self, start: u64, end: u64, write: bool) {
        if self.populate.try_push((start, end, write)).is_err() {
            // More ranges than one call produces in practice: merge into the last.
            if let Some(last) = self.populate.last_mut() {
                last.1 = last.1.max(end);
                last.2 |= write;
            }
        }
    }

    fn advise(&mut self, start: u64, end: u64, advice: Advice) {
        if advice == mman::MADV_FREE {
            let r = self.paging.mark_clean(start, end);
            self.note(r);
        } else if advice == mman::MADV_COLD {
            let r = self.paging.deactivate(start, end);
            self.note(r);
        } else if advice == mman::MADV_PAGEOUT || advice == mman::MADV_WILLNEED {
            // Both run after lru_add_drain(); reclaim itself is not modelled.
            let r = self.paging.lru_add_drain();
            self.note(r);
        }
    }
}

/// A process: address space plus demand-paged tables on the simulated MMU.
#[derive(Debug)]
pub struct Process<'a, 'f, M: PhysMemory, const N: usize> {
    space: AddressSpace<'a>,
    paging: Paging<'f, M, N>,
}

impl<'a, 'f, M: PhysMemory, const N: usize> Process<'a, 'f, M, N> {
    /// Joins an address space and (empty) paging into a process.
    pub fn new(space: AddressSpace<'a>, paging: Paging<'f, M, N>) -> Self {
        Process { space, paging }
    }

    /// Returns the address space.
    pub fn space(&self) -> &AddressSpace<'a> {
        &self.space
    }

    /// Returns the paging state (MMU, tables, frames, counters).
    pub fn paging(&self) -> &Paging<'f, M, N> {
        &self.paging
    }

    fn finish(&mut self, populate: ArrayVec<(u64, u64, bool), 8>) {
        for (start, end, write) in populate {
            self.populate(start, end, write);
        }
    }

    /// Faults in `[start, end)` like MAP_POPULATE / MADV_POPULATE_*: write faults on
    /// writable private mappings, read faults elsewhere; inaccessible pages are skipped.
    fn populate(&mut self, start: u64, end: u64, write: bool) {
        let page = self.paging.config().granule.page_size();
        let mut drained = false;
        let mut a = start;
        while a < end {
            let kind = match self.space.vma_lookup(a) {
                Some(v) if write && v.vm_flags.contains(VmFlags::VM_WRITE) => AccessKind::Write,
                Some(v)
                    if v.vm_flags
                        .intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC) =>
                {
                    AccessKind::Read
                }
                _ => {
                    a += page;
                    continue;
                }
            };
            if !drained {
                // get_user_pages on an accessible VMA drains the folio batches first
                // (observed: a PROT_NONE MAP_POPULATE does not).
                drained = true;
                if self.paging.lru_add_drain().is_err() {
                    return;
                }
            }
            if let Touch::OutOfMemory { .. } = self.gup_touch(VirtAddr::new(a), kind) {
                return;
            }
            a += page;
        }
    }

    /// Splits blocks that straddle a VMA boundary at `start` or `end`, as the kernel
    /// splits a huge PMD when it splits a VMA.
    fn split_blocks_at_boundaries(&mut self, start: u64, end: u64) {
        for a in [start, end] {
            if self.space.vma_lookup(a).is_some_and(|v| v.vm_start == a) {
                let _ = self.paging.split_block_at(a);
            }
        }
    }

    /// `mmap` of anonymous memory; MAP_POPULATE faults the range in.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn mmap(&mut self, addr: u64, len: u64, prot: Prot, flags: MapFlags) -> Result<u64, Errno> {
        let mut s = Sync {
            paging: &mut self.paging,
            populate: ArrayVec::new(),
            error: None,
        };
        let r = self.space.mmap_with(addr, len, prot, flags, 0, &mut s);
        let populate = s.populate;
        self.finish(populate);
        r
    }

    /// `munmap`.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        let mut s = Sync {
            paging: &mut self.paging,
            populate: ArrayVec::new(),
            error: None,
        };
        self.space.munmap_with(addr, len, &mut s)
    }

    /// `mprotect`.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        let mut s = Sync {
            paging: &mut self.paging,
            populate: ArrayVec::new(),
            error: None,
        };
        let r = self.space.mprotect_with(addr, len, prot, &mut s);
        let page = self.paging.config().granule.page_size();
        self.split_blocks_at_boundaries(
            addr,
            addr.saturating_add(len).saturating_add(page - 1) & !(page - 1),
        );
        r
    }

    /// `madvise`.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn madvise(&mut self, addr: u64, len: u64, advice: Advice) -> Result<(), Errno> {
        if advice == mman::MADV_POPULATE_READ || advice == mman::MADV_POPULATE_WRITE {
            // Observed on 6.18: MADV_POPULATE_* drains the folio batches even when it fails.
            self.paging.lru_add_drain().map_err(|_| Errno::ENOMEM)?;
        }
        let mut s = Sync {
            paging: &mut self.paging,
            populate: ArrayVec::new(),
            error: None,
        };
        let r = self.space.madvise_with(addr, len, advice, &mut s);
        let populate = s.populate;
        let page = self.paging.config().granule.page_size();
        self.split_blocks_at_boundaries(
            addr,
            addr.saturating_add(len).saturating_add(page - 1) & !(page - 1),
        );
        self.finish(populate);
        r
    }

    /// `brk`: returns the new (or unchanged) break.
    pub fn brk(&mut self, addr: u64) -> u64 {
        let mut s = Sync {
            paging: &mut self.paging,
            populate: ArrayVec::new(),
            error: None,
        };
        let r = self.space.brk_with(addr, &mut s);
        let populate = s.populate;
        self.finish(populate);
        r
    }

    /// `mincore`: writes one byte per page of `[addr, addr + len)` into `out` (1 where a
    /// page is mapped, the shared zero page included) and returns how many were written.
    ///
    /// # Errors
    /// `EINVAL` for an unaligned `addr`; `ENOMEM` when the range wraps or any page of it
    /// (`len` rounded up) lies outside every VMA; `EFAULT` when `out` is too short.
    pub fn mincore(&self, addr: u64, len: u64, out: &mut [u8]) -> Result<usize, Errno> {
        let page = self.paging.config().granule.page_size();
        if !addr.is_multiple_of(page) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let end = addr
            .checked_add(len)
            .and_then(|e| e.checked_add(page - 1))
            .map(|e| e & !(page - 1))
            .ok_or(Errno::ENOMEM)?;
        let mut a = addr;
        while a < end {
            match self.space.vma_lookup(a) {
                Some(v) => a = v.vm_end,
                None => return Err(Errno::ENOMEM),
            }
        }
        let pages = ((end - addr) / page) as usize;
        if out.len() < pages {
            return Err(Errno::EFAULT);
        }
        Ok(self.paging.mincore(addr, end - addr, out))
    }

    /// Performs one user access through the MMU, taking page faults as the kernel does.
    pub fn access(&mut self, va: VirtAddr, kind: AccessKind) -> Touch {
        self.touch(va, kind, false)
    }

    /// Touches a page as get_user_pages does for population (see [`Paging::gup_touch`]).
    fn gup_touch(&mut self, va: VirtAddr, kind: AccessKind) -> Touch {
        self.touch(va, kind, true)
    }

    fn touch(&mut self, va: VirtAddr, kind: AccessKind, gup: bool) -> Touch {
        let space = &mut self.space;
        let before = *self.paging.stats();
        // Called only when the access faults. A fault below a grows-down VMA grows it first
        // (expand_stack); if that is refused, the access finds no VMA and gets SEGV_MAPERR.
        let mut find = |a: u64| {
            let view = |space: &AddressSpace<'_>, v: &Vma| VmaView {
                start: v.vm_start,
                end: v.vm_end,
                flags: v.vm_flags,
                thp: space.thp_eligible(v),
            };
            if let Some(v) = space.vma_lookup(a) {
                return Some(view(space, v));
            }
            // The kernel ignores a refused expansion here too: the lookup below fails.
            let _refused = space.expand_stack(a).is_err();
            space.vma_lookup(a).map(|v| view(space, v))
        };
        let t = if gup {
            self.paging.gup_touch(va, kind, &mut find)
        } else {
            self.paging.access(va, kind, &mut find)
        };
        let after = self.paging.stats();
        if after.anon_pages != before.anon_pages || after.thp != before.thp {
            // A private page was allocated: the VMA gets its anon_vma (which decides merges).
            // Shared anonymous (shmem) pages are page cache, with no anon_vma.
            let addr = va.as_u64() & 0x00ff_ffff_ffff_ffff;
            if self.space.vma_lookup(addr).is_some_and(|v| {
                v.anon_vma.is_none() && !v.vm_flags.contains(VmFlags::VM_SHARED)
            }) {
                let _ = self.space.anon_vma_prepare(addr);
            }
        }
        t
    }

    /// Walks the tables for an EL0 access without the TLB or fault handling, recording
    /// the descriptor read at each level.
    pub fn paging_trace(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
    ) -> (
        Result<crate::arch::Translation, crate::arch::Fault>,
        ArrayVec<(crate::addr::PhysAddr, u64), 5>,
    ) {
        self.paging.trace(va, kind)
    }

    /// Returns the smaps counters of a VMA from the page tables.
    pub fn counters(
        &self,
        start: u64,
        end: u64,
        flags: VmFlags,
        thp_eligible: bool,
    ) -> SmapsCounters {
        let r = self.paging.residency(start, end);
        let kb = |b: u64| b >> 10;
        let anon = !flags.contains(VmFlags::VM_SHARED);
        SmapsCounters {
            rss: kb(r.rss),
            pss: kb(r.rss),
            pss_dirty: kb(r.private_dirty),
            private_clean: kb(r.private_clean),
            private_dirty: kb(r.private_dirty),
            referenced: kb(r.referenced),
            anonymous: if anon { kb(r.rss) } else { 0 },
            lazy_free: if anon { kb(r.lazy_free) } else { 0 },
            anon_huge_pages: kb(r.anon_huge),
            locked: if flags.contains(VmFlags::VM_LOCKED) {
                kb(r.rss)
            } else {
                0
            },
            thp_eligible,
            ..SmapsCounters::default()
        }
    }

    /// Returns /proc/PID/maps.
    pub fn maps_string(&self) -> std::string::String {
        self.space.maps_string()
    }

    /// Returns /proc/PID/smaps with residency from the page tables.
    pub fn smaps_string(&self) -> std::string::String {
        let mut s = std::string::String::new();
        let _ = self.space.render_smaps(&mut s, |v| {
            self.counters(v.vm_start, v.vm_end, v.vm_flags, self.space.thp_eligible(v))
        });
        s
    }
}
