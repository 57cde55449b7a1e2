//! `munmap` (§3): `do_vmi_munmap` → `vms_gather_munmap_vmas` → removal.

use super::errno::Errno;
use super::ops::{NoPageOps, PageOps};
use super::space::{tree_errno, AddressSpace};
use super::vma_tree::Located;

impl AddressSpace<'_> {
    /// `munmap(addr, len)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned `addr`, `len == 0`, a range beyond `TASK_SIZE` or a
    /// partial unmap of a special mapping; `ENOMEM` for a hole punch at
    /// `map_count >= max_map_count`. Unmapping nothing succeeds.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        self.munmap_with(addr, len, &mut NoPageOps)
    }

    /// [`AddressSpace::munmap`] reporting the removed ranges to `ops`.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::munmap`].
    pub fn munmap_with(&mut self, addr: u64, len: u64, ops: &mut dyn PageOps) -> Result<(), Errno> {
        let p = self.params;
        if !p.is_page_aligned(addr) || addr > p.task_size || len > p.task_size - addr {
            return Err(Errno::EINVAL);
        }
        let len = p.page_align(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        self.do_munmap_range(addr, addr + len, ops)
    }

    /// Removes everything in `[start, end)` (page aligned, non-empty) with the kernel's
    /// split rules (`do_vmi_align_munmap`); used by `munmap`, `MAP_FIXED` and `brk`.
    pub(super) fn do_munmap_range(
        &mut self,
        start: u64,
        end: u64,
        ops: &mut dyn PageOps,
    ) -> Result<(), Errno> {
        /// The fields of a VMA the unmap needs (a VMA with its name is a few hundred bytes:
        /// it is not copied out of the tree).
        #[derive(Clone, Copy)]
        struct Bounds {
            vm_start: u64,
            vm_end: u64,
            vm_pgoff: u64,
            vm_flags: super::vmflags::VmFlags,
            special: bool,
        }
        let bounds = |v: &super::vma::Vma| Bounds {
            vm_start: v.vm_start,
            vm_end: v.vm_end,
            vm_pgoff: v.vm_pgoff,
            vm_flags: v.vm_flags,
            special: v.kind.is_special(),
        };
        let t = |r: Result<(), super::vma_tree::VmaTreeError>| r.map_err(tree_errno);
        // The common case, exactly one whole VMA, found and removed in one descent.
        let mut at = Located::new();
        self.tree.locate_into(start, &mut at).map_err(tree_errno)?;
        if let Some(v) = self.tree.located_exact(&at) {
            if v.vm_end == end {
                let v = bounds(v);
                t(self.tree.remove_located(&mut at))?;
                ops.unmapped(v.vm_start, v.vm_end, v.vm_flags);
                return Ok(());
            }
        }
        let Some(first) = self.tree.find_vma_intersection(start, end).map(bounds) else {
            return Ok(());
        };
        let split_first = start > first.vm_start;
        if split_first {
            if end < first.vm_end && self.tree.len() >= self.params.max_map_count {
                return Err(Errno::ENOMEM);
            }
            if first.special {
                return Err(Errno::EINVAL);
            }
        }
        // The VMA holding end - 1 (if any) is split at `end` when it extends beyond.
        let last = if first.vm_end >= end {
            Some(first).filter(|f| f.vm_end > end)
        } else {
            self.tree
                .find_vma(end - 1)
                .map(bounds)
                .filter(|l| l.vm_start < end && l.vm_end > end)
        };
        let ps = self.params.page_shift;
        if let Some(l) = last {
            if l.special {
                // The kernel has already split the first VMA when it finds this out.
                if split_first {
                    self.split_unchecked(start, Errno::ENOMEM)?;
                }
                return Err(Errno::EINVAL);
            }
            if l.vm_start == first.vm_start && split_first {
                // Hole punch inside one VMA: one new VMA above the hole.
                self.split_unchecked(end, Errno::ENOMEM)?;
                t(self.tree.update(first.vm_start, |x| x.vm_end = start))?;
                ops.unmapped(start, end, first.vm_flags);
                return Ok(());
            }
        }
        if split_first {
            t(self.tree.update(first.vm_start, |x| x.vm_end = start))?;
            ops.unmapped(start, first.vm_end, first.vm_flags);
        }
        if let Some(l) = last {
            t(self.tree.update(l.vm_start, |x| {
                x.vm_start = end;
                x.vm_pgoff = l.vm_pgoff.wrapping_add((end - l.vm_start) >> ps);
            }))?;
        }
        if !split_first && last.is_none() && first.vm_end >= end {
            // The common case: exactly one whole VMA.
            t(self.tree.remove(first.vm_start).map(|_| ()))?;
            ops.unmapped(first.vm_start, first.vm_end, first.vm_flags);
        } else {
            while let Some(v) = self.tree.find_vma_intersection(start, end).map(bounds) {
                t(self.tree.remove(v.vm_start).map(|_| ()))?;
                ops.unmapped(v.vm_start, v.vm_end, v.vm_flags);
            }
        }
        if let Some(l) = last {
            ops.unmapped(l.vm_start.max(start), end, l.vm_flags);
        }
        Ok(())
    }
}
