//! Pages shared between processes by `fork`: the per-frame map counts of anonymous pages
//! (the kernel's `_mapcount` of a `struct page`), the translation tables of processes that
//! are not running ([`Tables`]), the copy of a VMA's page-table entries into a child
//! (`copy_page_range`), and the frame accounting over every process's tables.

use super::*;
use crate::mmu::{CopyLeaf, Tlbi};

/// The ASID of a parked lazy-free move that applies to every process mapping the frame at
/// its address (ASIDs of processes are below it).
pub(super) const ANY_ASID: u16 = u16::MAX;

/// The user translation tables of a process that is not running: its mapper (root table
/// and ASID) and the tables deposited for its blocks. [`Paging`] runs one set of tables at a
/// time; the others wait in these.
#[derive(Debug, PartialEq, Eq)]
pub struct Tables {
    mapper: Mapper,
    deposits: u64,
}

impl Tables {
    /// Returns the ASID the tables are tagged with.
    pub const fn asid(&self) -> u16 {
        self.mapper.asid()
    }

    /// Returns the mapper of the tables.
    pub const fn mapper(&self) -> &Mapper {
        &self.mapper
    }
}

/// The frame accounting of every process's tables (see [`Paging::validate_with`]).
#[derive(Clone, Copy, Debug)]
struct FrameAccount {
    tables: u64,
    /// Frames mapped by one leaf only.
    exclusive: u64,
    /// `shared[k]`: leaves of all processes mapping a frame that `k + 1` leaves map, by
    /// their count (frames shared by fork, up to 64 mappings).
    shared: [u64; 64],
    /// Frames whose map count is above 64.
    beyond: u64,
}

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Gives the paging one map-count slot per 4 KiB frame of its allocator (what `fork`
    /// needs to share anonymous pages). Without it, [`Paging::fork_range`] fails.
    ///
    /// # Errors
    /// [`PagingError::OutOfFrames`] when `storage` has fewer slots than the allocator has
    /// frames.
    pub fn set_share_counts(&mut self, storage: &'f mut [u16]) -> Result<(), PagingError> {
        if storage.len() < self.frames.total_frames() {
            return Err(PagingError::OutOfFrames);
        }
        for (new, old) in storage.iter_mut().zip(self.shares.iter()) {
            *new = *old;
        }
        self.shares = storage;
        Ok(())
    }

    /// Returns the slot of the frame at `pa`.
    fn share_slot(&self, pa: u64) -> Option<usize> {
        let i = (pa.checked_sub(self.frames.base().as_u64())? >> 12) as usize;
        (i < self.shares.len()).then_some(i)
    }

    /// Returns how many mappings besides one the anonymous page at `pa` has (0 for a page
    /// mapped once, and for every page without share storage).
    pub(super) fn shares_of(&self, pa: u64) -> u16 {
        self.share_slot(pa).map_or(0, |i| self.shares[i])
    }

    /// Returns whether any page of `[pa, pa + len)` is mapped more than once.
    pub(super) fn any_shared(&self, pa: u64, len: u64) -> bool {
        if self.shares.is_empty() {
            return false;
        }
        let page = self.page();
        let mut a = pa;
        while a < pa + len {
            if self.shares_of(a) > 0 {
                return true;
            }
            a += page;
        }
        false
    }

    /// Drops one mapping of the anonymous page at `pa`: returns true when others still map
    /// it (so it must not be freed).
    pub(super) fn unshare(&mut self, pa: u64) -> bool {
        match self.share_slot(pa) {
            Some(i) if self.shares[i] > 0 => {
                self.shares[i] -= 1;
                true
            }
            _ => false,
        }
    }

    /// Frees the anonymous pages of `[pa, pa + len)` that nothing else maps, dropping one
    /// mapping of the others.
    pub(super) fn release_anon(&mut self, pa: u64, len: u64) -> Result<(), FrameError> {
        let page = self.page();
        release_frames(&mut self.frames, self.shares, pa, len, page)
    }

    /// Creates empty tables for a new process with `asid`, leaving the deposits free.
    ///
    /// # Errors
    /// [`MapError::OutOfFrames`] without a frame for the start table.
    pub fn new_tables(&mut self, asid: u16) -> Result<Tables, MapError> {
        let format = *self.mapper.format();
        let floor = self.deposit_frames();
        let mem = self.mmu.memory_mut();
        let mut frames = Reserve {
            frames: &mut self.frames,
            floor,
        };
        let mut mapper = Mapper::new(format, mem, &mut frames)?;
        mapper.set_asid(asid);
        Ok(Tables {
            mapper,
            deposits: 0,
        })
    }

    /// Makes `t` the running tables (TTBR0 and its ASID) and leaves the ones that ran in
    /// `t`. The TLB keeps the entries of both apart by ASID.
    pub fn swap_tables(&mut self, t: &mut Tables) {
        self.parked_deposits = (self.parked_deposits + self.deposits).saturating_sub(t.deposits);
        core::mem::swap(&mut self.mapper, &mut t.mapper);
        core::mem::swap(&mut self.deposits, &mut t.deposits);
        let mut regs = *self.mmu.regime().registers();
        regs.ttbr0 = self.mapper.ttbr(self.mapper.asid());
        self.mmu.set_registers(regs);
    }

    /// Makes lazy-free, in the tables `t` of a process that is not running, the folios of
    /// that process the `lru_lazyfree` batch moved while another ran (the batch is per
    /// CPU, not per process).
    ///
    /// # Errors
    /// [`MapError`] if a table cannot be read or changed.
    pub fn settle_parked(&mut self, t: &mut Tables) -> Result<(), MapError> {
        let asid = t.mapper.asid();
        let page = self.page();
        let mut i = 0;
        while i < self.lazyfree_parked.len() {
            let (a, va, pa) = self.lazyfree_parked[i];
            if a != asid && a != ANY_ASID {
                i += 1;
                continue;
            }
            if a == asid {
                self.lazyfree_parked.remove(i);
            } else {
                // Every parked process gets it; Paging::settled drops it afterwards.
                i += 1;
            }
            let mem = self.mmu.memory_mut();
            let same = t
                .mapper
                .lookup(mem, VirtAddr::new(va))?
                .is_some_and(|l| l.pa.as_u64() + (va - l.va.as_u64()) == pa);
            if same {
                let flush = t.mapper.protect(
                    mem,
                    &mut self.frames,
                    VirtAddr::new(va),
                    page,
                    PTE_LAZYFREE,
                    PG_REFERENCED,
                )?;
                self.mmu.flush(flush);
            }
        }
        Ok(())
    }

    /// Drops the parked moves meant for every process, once [`Paging::settle_parked`] has
    /// seen the tables of every process not running.
    pub fn settled(&mut self) {
        self.lazyfree_parked.retain(|e| e.0 != ANY_ASID);
    }

    /// Frees tables whose pages are all gone (an exited process: zap its range while it
    /// runs, then swap it out and give its tables here), and invalidates its ASID.
    ///
    /// # Errors
    /// [`MapError`] if a table cannot be read or a frame not returned; tables that still
    /// map pages are freed all the same (their pages are not).
    pub fn free_tables(&mut self, t: Tables) -> Result<(), MapError> {
        let Tables { mapper, deposits } = t;
        self.parked_deposits = self.parked_deposits.saturating_sub(deposits);
        let asid = mapper.asid();
        self.lazyfree_parked.retain(|e| e.0 != asid);
        let mem = self.mmu.memory_mut();
        mapper.release_all(mem, &mut self.frames)?;
        self.mmu.tlbi(Tlbi::Aside1 { asid });
        Ok(())
    }

    /// Copies the page-table entries of `[start, end)`, a VMA with `flags`, into the
    /// child's tables `child` as `copy_page_range` does at `fork`: private anonymous pages
    /// (and the private copies of file pages) become read-only in both processes and are
    /// counted mapped once more, page-cache pages are mapped once more, zero pages are
    /// shared as they are; the child's entries are old (`pte_mkold`). THPs are shared
    /// whole.
    ///
    /// # Errors
    /// [`MapError::OutOfFrames`] when the child's tables cannot be allocated, or when
    /// there is no share storage ([`Paging::set_share_counts`]) for anonymous pages; the
    /// entries copied so far stay (the caller drops the child).
    pub fn fork_range(
        &mut self,
        child: &mut Tables,
        start: u64,
        end: u64,
        flags: VmFlags,
    ) -> Result<(), MapError> {
        if end <= start {
            return Ok(());
        }
        let page = self.page();
        let private = !flags.contains(VmFlags::VM_SHARED);
        let zero = (self.zero.as_u64(), page);
        let huge = self.huge_zero.map(|h| (h.as_u64(), self.pmd()));
        let is_zero = |pa: u64| {
            (pa >= zero.0 && pa < zero.0 + zero.1)
                || huge.is_some_and(|(h, n)| pa >= h && pa < h + n)
        };
        let floor = self.deposit_frames();
        let base = self.frames.base().as_u64();
        let Paging {
            mapper,
            mmu,
            frames,
            shares,
            cache,
            ..
        } = self;
        let mut blocks = 0u64;
        let mut no_storage = None;
        let mut reserve = Reserve { frames, floor };
        let flush = child.mapper.copy_from(
            mapper,
            mmu.memory_mut(),
            &mut reserve,
            VirtAddr::new(start),
            end - start,
            |leaf| {
                let size = 1u64 << leaf.size_log2;
                let pa = leaf.pa.as_u64();
                let mut d = leaf.descriptor.bits();
                let file = d & PTE_FILE.bits() != 0;
                let anon = !file && !is_zero(pa);
                if anon && shares.is_empty() {
                    no_storage.get_or_insert(leaf.va);
                    return CopyLeaf {
                        source: None,
                        copy: None,
                    };
                }
                let mut source = None;
                if anon && private && d & Attributes::DBM.bits() != 0 {
                    // ptep_set_wrprotect: the hardware-dirty state moves to PTE_DIRTY.
                    if pte_dirty(d) {
                        d |= PTE_DIRTY.bits();
                    }
                    d = (d | Attributes::AP_RO.bits()) & !Attributes::DBM.bits();
                    source = Some(d);
                }
                // copy_present_pte: the child's entry is old; a shared mapping's is clean.
                let mut attrs = Attributes::from_bits_truncate(d) - Attributes::AF;
                if !private {
                    attrs.remove(PTE_DIRTY);
                    if attrs.contains(Attributes::DBM) {
                        attrs.insert(Attributes::AP_RO);
                    }
                }
                if size > page {
                    blocks += 1;
                }
                if file {
                    if let Some(i) = cache.by_pa(pa) {
                        cache.mapped(i);
                    }
                } else if anon {
                    let mut a = pa;
                    while a < pa + size {
                        if let Some(s) = a
                            .checked_sub(base)
                            .and_then(|o| shares.get_mut((o >> 12) as usize))
                        {
                            *s = s.saturating_add(1);
                        }
                        a += page;
                    }
                }
                CopyLeaf {
                    source,
                    copy: Some(attrs),
                }
            },
        );
        // The blocks copied owe their deposits whatever happens next.
        child.deposits += blocks;
        self.parked_deposits += blocks;
        let flush = flush?;
        self.mmu.flush(flush);
        if let Some(va) = no_storage {
            return Err(MapError::OutOfFrames { va });
        }
        if (self.frames.free_frames() as u64) < self.deposit_frames() {
            return Err(MapError::OutOfFrames {
                va: VirtAddr::new(start),
            });
        }
        Ok(())
    }

    /// Adds what `mapper`'s tables hold to `acc`; returns the blocks they map.
    fn account(&self, mapper: &Mapper, acc: &mut FrameAccount) -> Result<u64, MapError> {
        let page = self.page();
        let mut blocks = 0;
        acc.tables += mapper.table_count() << (self.config.granule.page_shift() - 12);
        mapper.for_each_leaf(
            self.mmu.memory(),
            VirtAddr::new(0),
            1u64 << self.config.va_bits,
            |l| {
                let size = 1u64 << l.size_log2;
                if size > page {
                    blocks += 1;
                }
                let pa = l.pa.as_u64();
                if l.descriptor.bits() & PTE_FILE.bits() == 0 && !self.is_zero(pa) {
                    let mut a = pa;
                    while a < pa + size {
                        match self.shares_of(a) {
                            0 => acc.exclusive += page >> 12,
                            s if usize::from(s) < acc.shared.len() => {
                                acc.shared[usize::from(s)] += page >> 12
                            }
                            _ => acc.beyond += page >> 12,
                        }
                        a += page;
                    }
                }
                true
            },
        )?;
        Ok(blocks)
    }

    /// Checks the paging invariants over the running tables and the `others` (the tables
    /// of the processes not running): one deposited table per block mapped in each, the
    /// deposits still free, every frame that `k` leaves map counted `k - 1` times shared,
    /// and every frame in use accounted for (tables, mapped pages counted once, zero
    /// pages, the page cache).
    ///
    /// # Errors
    /// [`PagingInvariant`] naming the first invariant that does not hold.
    pub fn validate_with<'t>(
        &self,
        others: impl IntoIterator<Item = &'t Tables>,
    ) -> Result<(), PagingInvariant> {
        let mut acc = FrameAccount {
            tables: 0,
            exclusive: 0,
            shared: [0; 64],
            beyond: 0,
        };
        let mut check = |mapper: &Mapper, deposits: u64| {
            let blocks = self
                .account(mapper, &mut acc)
                .map_err(PagingInvariant::Tables)?;
            if blocks != deposits {
                return Err(PagingInvariant::Deposits { blocks, deposits });
            }
            Ok(())
        };
        check(&self.mapper, self.deposits)?;
        let mut parked = 0;
        for t in others {
            check(&t.mapper, t.deposits)?;
            parked += t.deposits;
        }
        if parked != self.parked_deposits {
            return Err(PagingInvariant::Deposits {
                blocks: parked,
                deposits: self.parked_deposits,
            });
        }
        let free = self.frames.free_frames() as u64;
        if free < self.deposit_frames() {
            return Err(PagingInvariant::DepositsSpent {
                free,
                needed: self.deposit_frames(),
            });
        }
        // A frame mapped k times is met k times, and counts once.
        let mut mapped = acc.exclusive;
        for (s, &n) in acc.shared.iter().enumerate().skip(1) {
            let k = s as u64 + 1;
            if n % k != 0 {
                return Err(PagingInvariant::Shares {
                    mappings: k,
                    leaves: n,
                });
            }
            mapped += n / k;
        }
        if acc.beyond > 0 {
            return Err(PagingInvariant::Shares {
                mappings: u64::MAX,
                leaves: acc.beyond,
            });
        }
        let page = self.page();
        let zero_frames = (page >> 12) + self.huge_zero.map_or(0, |_| self.pmd() >> 12);
        let used = self.frames.total_frames() as u64 - free;
        let cache_frames =
            (self.cache.pages().len() as u64) << (self.config.granule.page_shift() - 12);
        let accounted = acc.tables + mapped + zero_frames + cache_frames;
        if used != accounted {
            return Err(PagingInvariant::Frames { used, accounted });
        }
        Ok(())
    }
}

/// Frees the anonymous pages (of `page` bytes) of `[pa, pa + len)` that no other leaf
/// maps, and drops one mapping of the others: a run nothing shares goes back whole.
pub(super) fn release_frames(
    frames: &mut FrameAllocator<'_>,
    shares: &mut [u16],
    pa: u64,
    len: u64,
    page: u64,
) -> Result<(), FrameError> {
    let page_order = page.trailing_zeros() - 12;
    let base = frames.base().as_u64();
    let n = shares.len();
    let slot = |a: u64| {
        a.checked_sub(base)
            .map(|o| (o >> 12) as usize)
            .filter(|&i| i < n)
    };
    let shared = |shares: &[u16], a: u64| slot(a).is_some_and(|i| shares[i] > 0);
    let mut a = pa;
    let mut any = false;
    while a < pa + len && !shares.is_empty() {
        any |= shared(shares, a);
        a += page;
    }
    if !any {
        let order = (len.trailing_zeros() - 12).max(page_order);
        if order == 0 {
            return frames.free(PhysAddr::new(pa));
        }
        return frames.free_run(PhysAddr::new(pa), order);
    }
    let mut r = Ok(());
    let mut a = pa;
    while a < pa + len {
        match slot(a) {
            Some(i) if shares[i] > 0 => shares[i] -= 1,
            _ => r = r.and(frames.free_run(PhysAddr::new(a), page_order)),
        }
        a += page;
    }
    r
}
