//! The page-fault handler: what an access that faults costs, as the kernel's
//! `handle_mm_fault` decides it (zero page, new pages, THPs, copy-on-write, SIGSEGV), and
//! the touches of get_user_pages.

use super::*;

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
    /// The process got SIGBUS (`BUS_ADRERR`): a file page past the end of the file.
    Bus(Bus),
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
    /// The file a file mapping maps through the page cache (`None` for anonymous memory
    /// and shmem).
    pub file: Option<FileView>,
}

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Performs one user (EL0) access of `kind` at `va`, taking page faults as the kernel
    /// does: `find_vma(addr)` returns the VMA containing `addr`, if any. It is called only
    /// when the access faults (so it may, say, grow a stack first, as the kernel's fault
    /// path does).
    ///
    /// File pages come from the page cache, read from `files` when first needed.
    pub fn access<V: FnMut(u64) -> Option<VmaView> + ?Sized>(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
        find_vma: &mut V,
        files: &mut dyn FileStore,
    ) -> Touch {
        let access = Access::new(kind, El::El0);
        // The fault of a retried access whose page the handler mapped through the walk's
        // slot (the retry resumed that walk).
        let mut resumed = None;
        // A fault is retried after the handler fixed it; three rounds cover the longest
        // chain (huge zero page split, then copy-on-write).
        for _ in 0..4 {
            self.stats.translations += 1;
            let mut slot = None;
            let fault = match resumed.take() {
                Some(f) => f,
                None => match self.mmu.translate_slot(va, access, &mut slot) {
                    Ok(pa) => return Touch::Done(pa),
                    // The slot's fault, built here rather than read back (see
                    // `Mmu::translate_slot`).
                    Err(_) if slot.is_some() => {
                        Fault::new(FaultKind::Translation, Level::L3, va, access)
                    }
                    Err(f) => f,
                },
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
            // Read where the lookup left it: a copy of the whole view would load wider
            // than the lookup's stores and wait for them to retire.
            let found = find_vma(addr);
            let vma = match &found {
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
            let r = match (fault.kind, vma.file) {
                (FaultKind::Translation, Some(fv)) => {
                    self.fault_file(addr, kind, vma, &fv, fault, files)
                }
                (FaultKind::Translation, None) => match slot {
                    Some(s) if !vma.flags.contains(VmFlags::VM_SHARED) && self.slot_faults() => {
                        match self.fault_anon_at(addr, kind, vma, &s) {
                            Ok(desc) => match self.mmu.resume(va, access, &s, desc) {
                                Ok(pa) => {
                                    self.stats.translations += 1;
                                    return Touch::Done(pa);
                                }
                                Err(f) => {
                                    resumed = Some(f);
                                    continue;
                                }
                            },
                            Err(t) => return t,
                        }
                    }
                    _ => self.fault_missing(addr, kind, vma),
                },
                (FaultKind::Permission, _) if kind == AccessKind::Write => {
                    self.fault_write_protect(addr, vma)
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
                self.deposit_frames() + (1 << (self.config.granule.page_shift() - 12)),
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

    /// Returns whether faults may map through the walk's slot (always, but in tests that
    /// compare with the general path).
    #[inline(always)]
    fn slot_faults(&self) -> bool {
        #[cfg(test)]
        return self.slot_faults;
        #[cfg(not(test))]
        true
    }

    /// Handles a fault on the invalid level-3 entry `slot` of a private anonymous VMA: maps
    /// the zero page for a read, a new page for a write, as [`Paging::fault_missing`] does
    /// there (no THP can go where a page table is), through the entry the walk found.
    /// Returns the descriptor written there.
    fn fault_anon_at(
        &mut self,
        addr: u64,
        kind: AccessKind,
        vma: &VmaView,
        slot: &LeafSlot,
    ) -> Result<u64, Touch> {
        let oom = Touch::OutOfMemory {
            addr: VirtAddr::new(addr),
        };
        let va = addr & !(self.page() - 1);
        if kind != AccessKind::Write {
            let desc = self
                .map_at(slot, va, self.zero, page_attrs(vma.flags, false))
                .map_err(|_| oom)?;
            self.stats.zero_page_maps += 1;
            return Ok(desc);
        }
        let order = self.config.granule.page_shift() - 12;
        let pa = self.alloc(order).ok_or(oom)?;
        // do_anonymous_page: pte_mkwrite(pte_mkdirty(entry)).
        let attrs = page_attrs(vma.flags, vma.flags.contains(VmFlags::VM_WRITE)) | PTE_DIRTY;
        match self.map_at(slot, va, pa, attrs) {
            Ok(desc) => {
                self.stats.anon_pages += 1;
                Ok(desc)
            }
            Err(_) => {
                self.frames.free_run(pa, order).map_err(|_| oom)?;
                Err(oom)
            }
        }
    }

    /// Handles a write to a present read-only page of a writable VMA: copy-on-write off the
    /// zero page (or the huge zero page) or off a page another process maps (fork), or
    /// making an exclusive page writable again.
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
        if leaf.descriptor.bits() & PTE_FILE.bits() != 0 && !vma.flags.contains(VmFlags::VM_SHARED)
        {
            // A cached file page mapped read-only in a private mapping: wp_page_copy.
            return self.cow_file_page(&leaf, vma.flags).ok_or(oom);
        }
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
        if leaf.descriptor.bits() & PTE_FILE.bits() == 0 && self.any_shared(pa, size) {
            let va = addr & !(page - 1);
            if size > page {
                // do_huge_pmd_wp_page: a THP that fork shared is split, and the retried
                // write copies its one page.
                let mem = self.mmu.memory_mut();
                let flush = self
                    .mapper
                    .protect(
                        mem,
                        &mut self.frames,
                        VirtAddr::new(va),
                        page,
                        Attributes::empty(),
                        Attributes::empty(),
                    )
                    .map_err(|_| oom)?;
                self.mmu.flush(flush);
                self.release_deposits(1);
                return Ok(());
            }
            // wp_page_copy: another process maps the page; this one gets a copy.
            self.unmap(va, page).map_err(|_| oom)?;
            self.unshare(pa);
            return self.map_copy(va, leaf.pa, vma.flags).ok_or(oom);
        }
        if leaf.descriptor.bits() & PTE_FILE.bits() != 0 {
            // wp_page_shared: the file system is told, the folio becomes dirty.
            self.cache.mark_dirty_pa(pa);
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

    /// Faults in and touches one page as `get_user_pages` with FOLL_TOUCH does
    /// (MAP_POPULATE, MADV_POPULATE_READ/WRITE): a page that is present and allows the
    /// access is not accessed through the MMU, so its access flag and hardware dirty state
    /// stay as they are; its folio is marked accessed (`folio_mark_accessed`: the first
    /// time sets [`PG_REFERENCED`], the next activates the folio and clears it) and, for a
    /// write, dirty. A missing page, or a write to one that is not writable (a zero page),
    /// is faulted in first, as [`Paging::access`] does.
    pub fn gup_touch<V: FnMut(u64) -> Option<VmaView> + ?Sized>(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
        find_vma: &mut V,
        files: &mut dyn FileStore,
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
            _ => match self.access(va, kind, find_vma, files) {
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
        if d & PTE_FILE.bits() != 0 {
            // A page-cache folio: its state is shared by every mapping and outlives them.
            self.cache.mark_accessed_pa(l.pa.as_u64());
        } else if d & PG_REFERENCED.bits() == 0 {
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
}
