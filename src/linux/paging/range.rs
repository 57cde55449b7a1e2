//! Range operations on present pages: zap (munmap, MADV_DONTNEED), split, change of
//! protection (mprotect), MADV_FREE and MADV_COLD, and the per-CPU folio batches.

use super::*;

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Frees every page mapped in `[start, end)` and removes the mappings (munmap,
    /// MADV_DONTNEED, MAP_FIXED over); a THP partly inside is split first.
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be changed (then nothing was freed).
    pub fn zap(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        self.zap_recency(start, end, true)
    }

    /// Zaps `[start, end)` as [`Paging::zap`] does; `recency` says whether the mapping's
    /// young file pages mark their folios accessed (`vma_has_recency`: not after
    /// MADV_SEQUENTIAL, nor, since 6.4, after MADV_RANDOM).
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be changed (then nothing was freed).
    pub fn zap_recency(&mut self, start: u64, end: u64, recency: bool) -> Result<(), MapError> {
        if end <= start {
            return Ok(());
        }
        // One aligned page overlaps only the leaf containing its start: one walk.
        let page = self.page();
        let mapped = if end - start <= page && start & (page - 1) == 0 {
            self.leaf_at(start)?.is_some()
        } else {
            self.next_leaf(start, end)?.is_some()
        };
        if !mapped {
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
                self.zap_part(&l, a, e, recency)?;
                a = e;
            }
        }
        if a < b {
            if let Some(l) = self.leaf_at(b - 1)? {
                let ls = l.va.as_u64();
                if ls + (1u64 << l.size_log2) > b && ls >= a {
                    self.zap_part(&l, ls, b, recency)?;
                    b = ls;
                }
            }
        }
        if a >= b {
            return Ok(());
        }
        // The interior: every leaf lies wholly inside [a, b). Remove them all in one table
        // change, which needs no split, freeing each one's frames as it goes.
        let zero = self.zero.as_u64();
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
            cache,
            shares,
            ..
        } = self;
        let mut blocks = 0;
        let mut freeing = Ok(());
        let mut removed = |l: &Leaf, frames: &mut FrameAllocator<'f>| {
            let d = l.descriptor.bits();
            if d & PTE_FILE.bits() != 0 {
                // A page-cache page: one mapping fewer; the frame stays in the cache.
                let young = recency && d & Attributes::AF.bits() != 0;
                cache.unmapped(l.pa.as_u64(), pte_dirty(d), young);
            } else if !is_zero(l.pa.as_u64()) {
                let size = 1u64 << l.size_log2;
                freeing = freeing.and(share::release_frames(
                    frames,
                    shares,
                    l.pa.as_u64(),
                    size,
                    page,
                ));
            }
            if u32::from(l.size_log2) > page_log2 {
                blocks += 1;
            }
        };
        let flush = mapper.unmap_with(
            mmu.memory_mut(),
            frames,
            VirtAddr::new(a),
            b - a,
            &mut removed,
        )?;
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
    fn zap_part(&mut self, l: &Leaf, s: u64, e: u64, recency: bool) -> Result<(), MapError> {
        let page = self.page();
        let d = l.descriptor.bits();
        if d & PTE_FILE.bits() != 0 {
            // File pages are mapped one page at a time: only a whole one can be zapped.
            self.unmap(l.va.as_u64(), 1u64 << l.size_log2)?;
            let young = recency && d & Attributes::AF.bits() != 0;
            self.cache.unmapped(l.pa.as_u64(), pte_dirty(d), young);
            return Ok(());
        }
        let order = self.config.granule.page_shift() - 12;
        let ls = l.va.as_u64();
        let size = 1u64 << l.size_log2;
        let zero = self.is_zero(l.pa.as_u64());
        let pa = l.pa.as_u64() + (s - ls);
        let mut first = pa;
        match self.unmap(s, e - s) {
            Ok(()) => {}
            Err(MapError::OutOfFrames { .. })
                if size > page && !zero && !self.any_shared(pa, page) =>
            {
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
                self.release_anon(x, page)?;
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
            // A zero page, a cached file page in a private mapping, or an anonymous page
            // another process maps (fork) stays read-only: a write must copy it.
            let file = leaf.descriptor.bits() & PTE_FILE.bits() != 0;
            let part_pa = leaf.pa.as_u64() + (s - leaf.va.as_u64());
            let cow_only = self.is_zero(leaf.pa.as_u64())
                || (file && !flags.contains(VmFlags::VM_SHARED))
                || (!file && self.any_shared(part_pa, e - s));
            let writable = flags.contains(VmFlags::VM_WRITE) && !cow_only;
            let dirty = pte_dirty(leaf.descriptor.bits());
            let mut want = page_attrs(flags, writable && dirty);
            // A clean shared file page stays read-only (write-notify): its write must fault.
            // Shmem has no write-notify.
            if writable && !dirty && (!file || self.is_shmem_pa(leaf.pa.as_u64())) {
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
            self.protect_part(&leaf, s, e, set, owned - set)?;
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
        let page = self.page();
        let set = Attributes::AP_RO;
        let clear = PTE_DIRTY | Attributes::AF;
        self.modify_present(start, end, set, clear, |me, leaf, s, e| {
            if leaf.descriptor.bits() & PTE_LAZYFREE.bits() != 0 {
                // Already lazy-free (not swap-backed): folio_mark_lazyfree skips it.
                return Ok(());
            }
            let size = 1u64 << leaf.size_log2;
            if size > page && s == leaf.va.as_u64() && e - s == size {
                // A whole THP: a large folio moves the batch at once.
                me.set_lazyfree(s, size)?;
                return me.lru_add_drain();
            }
            let pa0 = leaf.pa.as_u64() + (s - leaf.va.as_u64());
            let mut a = s;
            while a < e {
                if me.lazyfree_batch.is_full() {
                    me.lru_add_drain()?;
                }
                let asid = me.mapper.asid();
                let pushed = me.lazyfree_batch.try_push((asid, a, pa0 + (a - s))).is_ok();
                debug_assert!(pushed, "a drained batch has room");
                if me.lazyfree_batch.len() >= usize::from(me.config.lru_batch).max(1) {
                    // folio_batch_add() returned no space left: the batch moves.
                    me.lru_add_drain()?;
                }
                a += page;
            }
            Ok(())
        })
    }

    /// Sets `set` and clears `clear` on `[s, e)`, the part of `leaf` a change covers
    /// (splitting it if it is a block covered in part), and applies the invalidations.
    fn protect_part(
        &mut self,
        leaf: &Leaf,
        s: u64,
        e: u64,
        set: Attributes,
        clear: Attributes,
    ) -> Result<(), MapError> {
        let mem = self.mmu.memory_mut();
        let flush =
            self.mapper
                .protect(mem, &mut self.frames, VirtAddr::new(s), e - s, set, clear)?;
        self.mmu.flush(flush);
        self.settle_split(leaf, s)
    }

    /// Drains the folio batches, then sets `set` and clears `clear` on every page of
    /// `[start, end)` that is mapped to something other than a zero page (splitting a block
    /// the range covers in part), and calls `then` with each leaf as it was and the part
    /// of it changed.
    fn modify_present(
        &mut self,
        start: u64,
        end: u64,
        set: Attributes,
        clear: Attributes,
        mut then: impl FnMut(&mut Self, &Leaf, u64, u64) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        self.lru_add_drain()?;
        let mut cursor = start;
        while let Some((leaf, s, e)) = self.next_leaf_part(cursor, end)? {
            cursor = e;
            if self.is_zero(leaf.pa.as_u64()) {
                continue;
            }
            if self.split_folio(&leaf, s, e)? {
                cursor = s;
                continue;
            }
            self.protect_part(&leaf, s, e, set, clear)?;
            then(self, &leaf, s, e)?;
        }
        Ok(())
    }

    /// Deactivates the private pages of `[start, end)` (MADV_COLD) as
    /// `madvise_cold_or_pageout_pte_range` does after draining the folio batches: each
    /// page that is not a zero page becomes old and loses `PG_referenced`, so that smaps
    /// no longer counts it as Referenced until it is accessed again. A THP that the range
    /// covers only in part is split first. A page another process maps since a fork is
    /// left alone (`folio_maybe_mapped_shared`).
    ///
    /// # Errors
    /// [`MapError`] if a table change fails.
    pub fn deactivate(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        let clear = Attributes::AF | PG_REFERENCED;
        self.lru_add_drain()?;
        let mut cursor = start;
        while let Some((leaf, s, e)) = self.next_leaf_part(cursor, end)? {
            cursor = e;
            let pa = leaf.pa.as_u64() + (s - leaf.va.as_u64());
            let file = leaf.descriptor.bits() & PTE_FILE.bits() != 0;
            // "Do not interfere with other mappings of this folio": a page another
            // process maps since a fork stays as it is.
            if self.is_zero(leaf.pa.as_u64()) || (!file && self.any_shared(pa, e - s)) {
                continue;
            }
            if self.split_folio(&leaf, s, e)? {
                cursor = s;
                continue;
            }
            self.protect_part(&leaf, s, e, Attributes::empty(), clear)?;
            if file {
                self.cache.deactivate_pa(pa);
            }
        }
        Ok(())
    }

    /// Drains this CPU's folio batches (`lru_add_drain`): the folios waiting in the
    /// `lru_lazyfree` batch become lazy-free. The kernel drains before MADV_FREE,
    /// MADV_DONTNEED, MADV_COLD/PAGEOUT and before unmapping VMAs (munmap, MAP_FIXED over
    /// a mapping, brk shrink); [`crate::linux::process::Process`] calls it there.
    ///
    /// # Errors
    /// [`MapError`] if a table change fails (a software-bit change of a mapped page never
    /// needs a frame).
    #[inline]
    pub fn lru_add_drain(&mut self) -> Result<(), MapError> {
        if self.lazyfree_batch.is_empty() {
            return Ok(());
        }
        self.drain_lazyfree_batch()
    }

    /// [`Paging::lru_add_drain`] of a batch that holds folios.
    #[inline(never)]
    fn drain_lazyfree_batch(&mut self) -> Result<(), MapError> {
        let page = self.page();
        while let Some((asid, va, pa)) = self.lazyfree_batch.pop_at(0) {
            if asid != self.mapper.asid() {
                // Another process's folio: it moves too, into that process's tables at
                // the next settle_parked (there is room: the batch held it).
                let _ = self.lazyfree_parked.try_push((asid, va, pa));
                continue;
            }
            // The folio is mapped where MADV_FREE found it unless a write since copied it
            // (a page a fork shared); every path that unmaps pages drains first.
            let same = self
                .leaf_at(va)?
                .is_some_and(|l| l.pa.as_u64() + (va - l.va.as_u64()) == pa);
            if same {
                self.set_lazyfree(va, page)?;
            }
            if !same || self.shares_of(pa) > 0 {
                // The folio moves for every process that maps it: those a fork shared it
                // with map it at the same address.
                let _ = self.lazyfree_parked.try_push((share::ANY_ASID, va, pa));
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

    /// Splits the THP `leaf` into base pages when the advice covers only `[s, e)` of it, as
    /// MADV_FREE and MADV_COLD do (`split_folio`, not just the PMD); returns whether it
    /// did. A THP another process maps since a fork is left whole (the advice skips it).
    /// With [`PagingConfig::split_maps_zero_pages`] (Linux 6.12 and later) every subpage
    /// that holds only zeros is freed and maps the shared zero page instead
    /// (`remap_page` with `RMP_USE_SHARED_ZEROPAGE`), so that it leaves Rss.
    fn split_folio(&mut self, leaf: &Leaf, s: u64, e: u64) -> Result<bool, MapError> {
        let page = self.page();
        let ls = leaf.va.as_u64();
        let size = 1u64 << leaf.size_log2;
        let d = leaf.descriptor.bits();
        if size <= page
            || (s == ls && e == ls + size)
            || d & PTE_FILE.bits() != 0
            || self.any_shared(leaf.pa.as_u64(), size)
        {
            return Ok(false);
        }
        self.split_block_at(ls + page)?;
        if !self.config.split_maps_zero_pages {
            return Ok(true);
        }
        let keep = Attributes::SH0
            | Attributes::SH1
            | Attributes::NG
            | Attributes::PXN
            | Attributes::UXN
            | Attributes::AP_EL0;
        let attrs = (leaf.descriptor.attributes() & keep) | Attributes::AF | Attributes::AP_RO;
        let mut off = 0;
        while off < size {
            let pa = leaf.pa.as_u64() + off;
            if self.holds_zeros(pa) {
                self.unmap(ls + off, page)?;
                self.release_anon(pa, page)?;
                self.map(ls + off, self.zero, page, attrs)?;
            }
            off += page;
        }
        Ok(true)
    }

    /// Returns whether the page at `pa` holds only zeros (`memchr_inv(addr, 0,
    /// PAGE_SIZE)`); without stored data every page reads as zeros.
    fn holds_zeros(&self, pa: u64) -> bool {
        let page = self.page();
        let mem = self.mmu.memory();
        let mut off = 0;
        while off < page {
            match mem.read_u64(PhysAddr::new(pa + off)) {
                Ok(0) => off += 8,
                _ => return false,
            }
        }
        true
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
}
