//! `madvise` (§8): argument checks, the VMA walk of `madvise_walk_vmas`, the flag-changing
//! advices (split/merge like `mprotect`) and the page-only advices, which are handed to a
//! [`PageOps`].

use super::vma::Vma;
use super::vmflags::VmFlags;

use super::errno::Errno;
use super::mman::*;
use super::ops::{NoPageOps, PageOps};
use super::space::AddressSpace;

impl AddressSpace<'_> {
    /// `madvise(start, len, advice)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown advice, an unaligned start, a length that rounds to
    /// overflow, or an advice the VMA refuses (e.g. `MADV_DONTNEED` on an `mlock`ed VMA,
    /// `MADV_WIPEONFORK` on shared memory, `MADV_POPULATE_*` without the permission);
    /// `ENOMEM` if part of the range is unmapped (the mapped parts are still advised);
    /// `EAGAIN` if a needed split is refused at `map_count >= max_map_count` (madvise
    /// turns the split's `ENOMEM` into `EAGAIN`).
    pub fn madvise(&mut self, start: u64, len: u64, advice: Advice) -> Result<(), Errno> {
        self.madvise_with(start, len, advice, &mut NoPageOps)
    }

    /// [`AddressSpace::madvise`] handing page-level work to `ops`.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::madvise`].
    pub fn madvise_with(
        &mut self,
        start: u64,
        len: u64,
        advice: Advice,
        ops: &mut dyn PageOps,
    ) -> Result<(), Errno> {
        if !self.madvise_behavior_valid(advice) {
            return Err(Errno::EINVAL);
        }
        let p = self.params;
        if !p.is_page_aligned(start) {
            return Err(Errno::EINVAL);
        }
        let len_aligned = p.page_align(len).unwrap_or(0);
        if len != 0 && len_aligned == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.checked_add(len_aligned).ok_or(Errno::EINVAL)?;
        if end == start {
            return Ok(());
        }
        if advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE {
            return self.madvise_populate(start, end, advice == MADV_POPULATE_WRITE, ops);
        }
        // madvise_walk_vmas
        let mut cur = start;
        let mut unmapped = false;
        loop {
            let Some(vma) = self.tree.find_vma(cur).copied() else {
                return Err(Errno::ENOMEM);
            };
            if cur < vma.vm_start {
                unmapped = true;
                cur = vma.vm_start;
                if cur >= end {
                    break;
                }
            }
            let tmp = vma.vm_end.min(end);
            let prev_end = self.madvise_vma_behavior(vma, cur, tmp, advice, ops)?;
            cur = tmp.max(prev_end);
            if cur >= end {
                break;
            }
        }
        if unmapped {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// `madvise_behavior_valid` for this kernel (KSM, THP and `CONFIG_MEMORY_FAILURE`
    /// assumed; `MADV_HWPOISON`/`MADV_SOFT_OFFLINE` are not modelled and rejected).
    fn madvise_behavior_valid(&self, advice: Advice) -> bool {
        match advice {
            MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | MADV_DONTNEED
            | MADV_FREE | MADV_REMOVE | MADV_DONTFORK | MADV_DOFORK | MADV_MERGEABLE
            | MADV_UNMERGEABLE | MADV_HUGEPAGE | MADV_NOHUGEPAGE | MADV_DONTDUMP | MADV_DODUMP
            | MADV_WIPEONFORK | MADV_KEEPONFORK | MADV_COLD | MADV_PAGEOUT | MADV_POPULATE_READ
            | MADV_POPULATE_WRITE | MADV_DONTNEED_LOCKED | MADV_COLLAPSE => true,
            MADV_GUARD_INSTALL | MADV_GUARD_REMOVE => self.params.has_madv_guard(),
            _ => false,
        }
    }

    /// `madvise_vma_behavior` on `[s, e)` of `vma`; returns `prev->vm_end` afterwards.
    fn madvise_vma_behavior(
        &mut self,
        vma: Vma,
        s: u64,
        e: u64,
        advice: Advice,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let f = vma.vm_flags;
        let anon_private = vma.kind.is_anonymous();
        let mut nf = f;
        match advice {
            MADV_REMOVE => {
                if f.contains(VmFlags::VM_LOCKED) || anon_private || vma.kind.is_special() {
                    return Err(Errno::EINVAL);
                }
                if !f.contains(VmFlags::VM_SHARED) {
                    return Err(Errno::EACCES);
                }
                ops.zap(s, e, f);
                return Ok(vma.vm_end);
            }
            MADV_WILLNEED => {
                // madvise_willneed: anonymous memory and shmem are swapped in and the folio
                // batches drained; a file gets vfs_fadvise, which drains nothing.
                if !vma.kind.is_fs_file() {
                    ops.advise(s, e, advice);
                }
                return Ok(vma.vm_end);
            }
            MADV_COLD | MADV_PAGEOUT => {
                if f.intersects(VmFlags::VM_LOCKED | VmFlags::VM_PFNMAP | VmFlags::VM_HUGETLB) {
                    return Err(Errno::EINVAL);
                }
                ops.advise(s, e, advice);
                return Ok(vma.vm_end);
            }
            MADV_DONTNEED | MADV_DONTNEED_LOCKED | MADV_FREE => {
                let mut forbidden = VmFlags::VM_PFNMAP;
                if advice != MADV_DONTNEED_LOCKED {
                    forbidden |= VmFlags::VM_LOCKED;
                }
                if f.intersects(forbidden) {
                    return Err(Errno::EINVAL);
                }
                if advice == MADV_FREE {
                    if !anon_private {
                        return Err(Errno::EINVAL);
                    }
                    ops.advise(s, e, advice);
                } else {
                    ops.zap(s, e, f);
                }
                return Ok(vma.vm_end);
            }
            MADV_COLLAPSE => {
                ops.advise(s, e, advice);
                return Ok(vma.vm_end);
            }
            MADV_GUARD_INSTALL => {
                if f.intersects(VmFlags::VM_SPECIAL | VmFlags::VM_HUGETLB | VmFlags::VM_LOCKED)
                    || vma.kind.is_special()
                {
                    return Err(Errno::EINVAL);
                }
                // 6.18: the sticky VM_MAYBE_GUARD goes on the whole VMA, without a split.
                if !f.contains(VmFlags::VM_MAYBE_GUARD) {
                    self.tree
                        .update(vma.vm_start, |x| x.vm_flags |= VmFlags::VM_MAYBE_GUARD)
                        .map_err(super::space::tree_errno)?;
                }
                ops.zap(s, e, f);
                return Ok(vma.vm_end);
            }
            MADV_GUARD_REMOVE => {
                ops.advise(s, e, advice);
                return Ok(vma.vm_end);
            }
            MADV_NORMAL => nf.remove(VmFlags::VM_RAND_READ | VmFlags::VM_SEQ_READ),
            MADV_SEQUENTIAL => {
                nf.remove(VmFlags::VM_RAND_READ);
                nf |= VmFlags::VM_SEQ_READ;
            }
            MADV_RANDOM => {
                nf.remove(VmFlags::VM_SEQ_READ);
                nf |= VmFlags::VM_RAND_READ;
            }
            MADV_DONTFORK => nf |= VmFlags::VM_DONTCOPY,
            MADV_DOFORK => {
                if f.contains(VmFlags::VM_IO) {
                    return Err(Errno::EINVAL);
                }
                nf.remove(VmFlags::VM_DONTCOPY);
            }
            MADV_WIPEONFORK => {
                if !anon_private || f.contains(VmFlags::VM_SHARED) {
                    return Err(Errno::EINVAL);
                }
                nf |= VmFlags::VM_WIPEONFORK;
            }
            MADV_KEEPONFORK => {
                if f.contains(VmFlags::VM_DROPPABLE) {
                    return Err(Errno::EINVAL);
                }
                nf.remove(VmFlags::VM_WIPEONFORK);
            }
            MADV_DONTDUMP => nf |= VmFlags::VM_DONTDUMP,
            MADV_DODUMP => {
                if f.intersects(VmFlags::VM_SPECIAL) {
                    return Err(Errno::EINVAL);
                }
                nf.remove(VmFlags::VM_DONTDUMP);
            }
            MADV_MERGEABLE => {
                let excluded = VmFlags::VM_SHARED
                    | VmFlags::VM_MAYSHARE
                    | VmFlags::VM_SPECIAL
                    | VmFlags::VM_HUGETLB
                    | VmFlags::VM_DROPPABLE;
                if !f.intersects(excluded) && !vma.kind.is_special() {
                    nf |= VmFlags::VM_MERGEABLE;
                }
            }
            MADV_UNMERGEABLE => nf.remove(VmFlags::VM_MERGEABLE),
            MADV_HUGEPAGE => {
                nf.remove(VmFlags::VM_NOHUGEPAGE);
                nf |= VmFlags::VM_HUGEPAGE;
            }
            MADV_NOHUGEPAGE => {
                nf.remove(VmFlags::VM_HUGEPAGE);
                nf |= VmFlags::VM_NOHUGEPAGE;
            }
            _ => return Err(Errno::EINVAL),
        }
        // madvise_update_vma
        if nf == f {
            return Ok(vma.vm_end);
        }
        let r = self
            .vma_modify_flags(vma, s, e, nf, Errno::EAGAIN)
            .map_err(|e| if e == Errno::ENOMEM { Errno::EAGAIN } else { e })?;
        if matches!(advice, MADV_HUGEPAGE | MADV_NOHUGEPAGE | MADV_UNMERGEABLE) {
            ops.advise(s, e, advice);
        }
        Ok(r)
    }

    /// `madvise_populate`: fault in `[start, end)` VMA by VMA; a hole gives `ENOMEM`, a
    /// VMA without the needed permission (or `VM_IO`/`VM_PFNMAP`) `EINVAL`. Since 6.10 the
    /// first hole ends the call; before, populate went through `madvise_walk_vmas`, which
    /// steps over holes and returns `ENOMEM` at the end unless a VMA failed first (observed
    /// on arm64 6.1).
    fn madvise_populate(
        &mut self,
        start: u64,
        end: u64,
        write: bool,
        ops: &mut dyn PageOps,
    ) -> Result<(), Errno> {
        let walk = self.params.version < super::KernelVersion::V6_12;
        let mut hole = false;
        let mut cur = start;
        while cur < end {
            let vma = match self.tree.vma_lookup(cur) {
                Some(v) => *v,
                None if walk => match self.tree.find_vma_intersection(cur, end) {
                    Some(v) => {
                        hole = true;
                        cur = v.vm_start;
                        *v
                    }
                    None => return Err(Errno::ENOMEM),
                },
                None => return Err(Errno::ENOMEM),
            };
            let f = vma.vm_flags;
            let need = if write {
                VmFlags::VM_WRITE
            } else {
                VmFlags::VM_READ
            };
            if f.intersects(VmFlags::VM_IO | VmFlags::VM_PFNMAP) || !f.contains(need) {
                return Err(Errno::EINVAL);
            }
            let e = vma.vm_end.min(end);
            if write && vma.kind.is_anonymous() && !f.contains(VmFlags::VM_SHARED) {
                self.anon_vma_prepare(cur)?;
            }
            ops.populate(cur, e, write);
            cur = e;
        }
        if hole {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }
}
