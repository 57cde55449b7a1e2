//! Faults on file mappings (spec `linux-files-mremap-fork.md` §A.5): read faults map the
//! page-cache page with fault-around, a write to a private mapping copies the page to an
//! anonymous one (`do_cow_fault`, `wp_page_copy`), a write to a shared mapping dirties the
//! cached page (`do_shared_fault`), and a page wholly past the end of the file is SIGBUS.

use super::cache::{FileStore, InodeKey};
use super::*;
use crate::linux::mm::vma::{DevId, FileId};

/// The file behind a file VMA, as the fault handler needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileView {
    /// The open file the VMA maps (for [`FileStore`]).
    pub file: FileId,
    /// The device of its inode.
    pub dev: DevId,
    /// Its inode number (the page cache is per inode).
    pub ino: u64,
    /// `vm_pgoff`: the file page at `start`.
    pub pgoff: u64,
    /// Shared memory (`MAP_SHARED | MAP_ANONYMOUS`, a shmem inode): pages are zero-filled
    /// on first use, never read from a file, end where the object does
    /// ([`FileId::shmem_pages`]), are mapped writable at once
    /// (no write-notify), and fault-around maps only pages already cached.
    pub shmem: bool,
}

/// A SIGBUS delivered for an access (`BUS_ADRERR`: a page wholly past the end of a mapped
/// file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bus {
    /// `si_addr`: the faulting byte address.
    pub addr: VirtAddr,
    /// The MMU fault the kernel handled.
    pub fault: Fault,
}

impl Bus {
    /// `si_code` of this SIGBUS, `BUS_ADRERR` (2).
    pub const BUS_ADRERR: i32 = 2;
}

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Handles a fault on a file page with no mapping.
    pub(super) fn fault_file(
        &mut self,
        addr: u64,
        kind: AccessKind,
        vma: &VmaView,
        fv: &FileView,
        fault: Fault,
        files: &mut dyn FileStore,
    ) -> Result<(), Touch> {
        let oom = Touch::OutOfMemory {
            addr: VirtAddr::new(addr),
        };
        let page = self.page();
        let va = addr & !(page - 1);
        let index = fv.pgoff + (va - vma.start) / page;
        // The pages the file covers: the one holding EOF is whole, the next is SIGBUS.
        let eof_pages = if fv.shmem {
            fv.file.shmem_pages()
        } else {
            files.size(fv.file).map(|s| s.div_ceil(page))
        };
        if eof_pages.is_some_and(|n| index >= n) {
            self.stats.sigbus += 1;
            return Err(Touch::Bus(Bus {
                addr: VirtAddr::new(addr),
                fault,
            }));
        }
        let inode = InodeKey::new(fv.dev, fv.ino);
        let slot = if fv.shmem {
            self.shmem_page(inode, index)
        } else {
            self.cache_page(inode, index, fv.file, files)
        }
        .ok_or(oom)?;
        let shared = vma.flags.contains(VmFlags::VM_SHARED);
        if kind == AccessKind::Write && !shared {
            // do_cow_fault: a private copy, writable and dirty; the cached page stays
            // unmapped.
            let src = self.cache.pages()[slot].pa();
            return self.map_copy(va, src, vma.flags).ok_or(oom);
        }
        let write = kind == AccessKind::Write;
        self.map_cached(va, slot, vma.flags, write, true, fv.shmem)
            .map_err(|_| oom)?;
        if write {
            return Ok(());
        }
        // do_fault_around: the aligned window of fault_around_bytes (64 KiB) around the
        // fault, inside the VMA, the page table and the pages before EOF.
        let window = (64 * 1024 / page).max(1) * page;
        let pmd = self.pmd();
        // The window starts at the aligned block or the VMA's start, whichever is higher,
        // and runs fault_around_bytes from there (do_fault_around's from_pte/to_pte).
        let mut lo = (va & !(window - 1)).max(vma.start);
        let mut hi = (lo + window).min(vma.end).min((va & !(pmd - 1)) + pmd);
        if let Some(n) = eof_pages {
            let last = vma.start + (n - fv.pgoff) * page;
            hi = hi.min(last);
        }
        while lo < hi {
            if lo != va && self.leaf_at(lo).map_err(|_| oom)?.is_none() {
                let index = fv.pgoff + (lo - vma.start) / page;
                let slot = if fv.shmem {
                    // filemap_map_pages maps what the cache holds; shmem reads nothing in.
                    match self.cache.find(inode, index) {
                        Ok(i) => Some(i),
                        Err(_) => {
                            lo += page;
                            continue;
                        }
                    }
                } else {
                    self.cache_page(inode, index, fv.file, files)
                };
                let Some(slot) = slot else {
                    break;
                };
                let young = !self.config.old_prefaulted_ptes;
                self.map_cached(lo, slot, vma.flags, false, young, fv.shmem)
                    .map_err(|_| oom)?;
            }
            lo += page;
        }
        Ok(())
    }

    /// Maps the cached page in `slot` at `va`: writable and dirty for a write to a shared
    /// mapping, else read-only (private) or writable-clean (shared, hardware dirty state).
    fn map_cached(
        &mut self,
        va: u64,
        slot: usize,
        flags: VmFlags,
        write: bool,
        young: bool,
        shmem: bool,
    ) -> Result<(), MapError> {
        let shared = flags.contains(VmFlags::VM_SHARED);
        let writable = shared && flags.contains(VmFlags::VM_WRITE);
        // A file system that tracks dirty pages (write-notify) maps a shared page read-only
        // until it is written; the write fault dirties the folio (wp_page_shared). Shmem
        // tracks none: its page is writable at once, clean until the hardware dirties it.
        let mut attrs = page_attrs(flags, writable && (write || shmem)) | PTE_FILE;
        if writable && shmem && !write {
            attrs |= Attributes::AP_RO;
        }
        if writable && write {
            // do_shared_fault: fault_dirty_shared_page marks the folio dirty.
            attrs |= PTE_DIRTY;
            self.cache.mark_dirty(slot);
        }
        if !young {
            attrs.remove(Attributes::AF);
        }
        let pa = self.cache.pages()[slot].pa();
        self.map(va, pa, self.page(), attrs)?;
        self.cache.mapped(slot);
        Ok(())
    }

    /// Maps at `va` a new anonymous page holding a copy of the page at `src`, writable and
    /// dirty (`wp_page_copy`); returns `None` out of frames.
    pub(super) fn map_copy(&mut self, va: u64, src: PhysAddr, flags: VmFlags) -> Option<()> {
        let order = self.config.granule.page_shift() - 12;
        let new = self.alloc(order)?;
        let page = self.page();
        let mut off = if self.config.data == DataMode::None {
            page
        } else {
            0
        };
        while off < page {
            let mem = self.mmu.memory_mut();
            let ok = mem
                .read_u64(PhysAddr::new(src.as_u64() + off))
                .and_then(|w| {
                    if w == 0 {
                        Ok(())
                    } else {
                        mem.write_u64(PhysAddr::new(new.as_u64() + off), w)
                    }
                })
                .is_ok();
            if !ok {
                // Memory backs every frame (Paging::new checked); a frame that cannot be
                // read goes back, and the fault ends as out of memory.
                return self.frames.free_run(new, order).ok().and(None);
            }
            off += 8;
        }
        if self
            .map(va, new, page, page_attrs(flags, true) | PTE_DIRTY)
            .is_err()
        {
            return self.frames.free_run(new, order).ok().and(None);
        }
        self.stats.anon_pages += 1;
        self.stats.cow += 1;
        Some(())
    }

    /// Replaces the private mapping of a cached page at `leaf` by a private copy (a write
    /// to a `MAP_PRIVATE` file page that a read mapped).
    pub(super) fn cow_file_page(&mut self, leaf: &Leaf, flags: VmFlags) -> Option<()> {
        let va = leaf.va.as_u64();
        let d = leaf.descriptor.bits();
        self.unmap(va, self.page()).ok()?;
        // wp_page_copy drops the old mapping without marking the folio accessed.
        self.cache.unmapped(leaf.pa.as_u64(), pte_dirty(d), false);
        self.map_copy(va, leaf.pa, flags)
    }
}
