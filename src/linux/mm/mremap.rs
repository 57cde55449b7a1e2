//! `mremap` (spec `linux-files-mremap-fork.md` §B, mm/mremap.c): argument checks in the
//! kernel's order, shrinking, growing in place (`vma_expandable`, `vma_merge_extend`), and
//! moving (`mremap_to`, `move_vma`, `copy_vma`): the page tables move with the range
//! ([`PageOps::moved`]), nothing is copied.

use super::errno::Errno;
use super::mman::*;
use super::ops::PageOps;
use super::params::KernelVersion;
use super::space::{tree_errno, AddressSpace};
use super::vma::{MergeSource, Vma};
use super::vma_tree::Located;
use super::vmflags::VmFlags;

bitflags::bitflags! {
    /// The `flags` of `mremap(2)`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MremapFlags: u32 {
        /// `MREMAP_MAYMOVE`: the mapping may move.
        const MAYMOVE = 1;
        /// `MREMAP_FIXED`: move to `new_addr`, replacing what is there.
        const FIXED = 2;
        /// `MREMAP_DONTUNMAP`: leave the old mapping in place, without its pages.
        const DONTUNMAP = 4;
        // Unknown bits are kept, so that the call can refuse them.
        const _ = !0;
    }
}

/// `MREMAP_MAYMOVE`.
pub const MREMAP_MAYMOVE: MremapFlags = MremapFlags::MAYMOVE;
/// `MREMAP_FIXED`.
pub const MREMAP_FIXED: MremapFlags = MremapFlags::FIXED;
/// `MREMAP_DONTUNMAP`.
pub const MREMAP_DONTUNMAP: MremapFlags = MremapFlags::DONTUNMAP;

impl AddressSpace<'_> {
    /// `mremap(addr, old_len, new_len, flags, new_addr)`; returns the address of the
    /// mapping now. Pages move with their page-table entries through `ops`.
    ///
    /// # Errors
    ///
    /// The kernel's errno in its order (§B.1): `EINVAL` for unknown flags, `FIXED` or
    /// `DONTUNMAP` without `MAYMOVE`, `DONTUNMAP` with a new length, an unaligned address,
    /// a zero or too large new length, a bad or overlapping fixed target, or `old_len == 0`
    /// of private memory; `EFAULT` when `addr` is unmapped or the old range leaves its VMA;
    /// `ENOMEM` when the mapping cannot grow in place and may not move, when no area is
    /// free, or near `max_map_count`.
    pub fn mremap_with(
        &mut self,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: MremapFlags,
        new_addr: u64,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let p = self.params;
        if !(flags - (MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)).is_empty() {
            return Err(Errno::EINVAL);
        }
        let maymove = flags.contains(MREMAP_MAYMOVE);
        let fixed = flags.contains(MREMAP_FIXED);
        let dontunmap = flags.contains(MREMAP_DONTUNMAP);
        if (fixed || dontunmap) && !maymove {
            return Err(Errno::EINVAL);
        }
        if dontunmap && old_len != new_len {
            return Err(Errno::EINVAL);
        }
        if !p.is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        let old_len = p.page_align(old_len).ok_or(Errno::EINVAL)?;
        let new_len = p.page_align(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 || new_len > p.task_size {
            return Err(Errno::EINVAL);
        }
        let fixed_or_dontunmap = fixed || dontunmap;
        if fixed_or_dontunmap {
            // check_mremap_params: the checks of a specific new address.
            if !p.is_page_aligned(new_addr) {
                return Err(Errno::EINVAL);
            }
            if addr.saturating_add(old_len) > new_addr && new_addr.saturating_add(new_len) > addr {
                return Err(Errno::EINVAL);
            }
            if new_addr > p.task_size - new_len {
                return Err(Errno::EINVAL);
            }
        }
        if self.free_slots() < 4 {
            // The simulator's storage: a move can split two VMAs and add one.
            return Err(Errno::ENOMEM);
        }
        let vma = *self.vma_lookup(addr).ok_or(Errno::EFAULT)?;
        // Before 6.17 a move to a specific address unmaps the target (and a shrink's tail)
        // first and checks the old range afterwards (`mremap_to` → `vma_to_resize`); 6.17
        // checks first and lets a move without resize span several VMAs.
        let checks_late = p.version < KernelVersion::V6_18;
        if fixed && old_len == new_len && !checks_late {
            return self.remap_move(addr, old_len, new_addr, dontunmap, ops);
        }
        let shrink = old_len > new_len;
        let will_map_new = fixed_or_dontunmap || new_len > old_len;
        if will_map_new && !(fixed_or_dontunmap && checks_late) {
            self.check_prep_vma(&vma, addr, old_len, new_len, dontunmap)?;
        }
        if fixed_or_dontunmap {
            return self.mremap_to(&vma, addr, old_len, new_addr, new_len, flags, ops);
        }
        if shrink {
            // The tail goes, mapped or not.
            self.unmap_tail(addr + new_len, addr, old_len, ops)?;
        }
        if old_len >= new_len {
            return Ok(addr);
        }
        if old_len == vma.vm_end - addr && self.vma_expandable(&vma, new_len - old_len) {
            if vma.vm_flags.contains(VmFlags::VM_ACCOUNT) {
                p.vm_enough_memory((new_len - old_len) >> p.page_shift)?;
            }
            self.vma_merge_extend(&vma, addr + new_len)?;
            return Ok(addr);
        }
        if !maymove {
            return Err(Errno::ENOMEM);
        }
        let pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> p.page_shift);
        let target = self.remap_area(&vma, 0, new_len, pgoff, false)?;
        self.move_vma(&vma, addr, old_len, new_len, target, false, ops)
    }

    /// `remap_move` (Linux 6.17+): a fixed move without resizing may span several VMAs
    /// (and the gaps between them, which stay gaps): each VMA part moves on its own to the
    /// same distance from the previous one.
    fn remap_move(
        &mut self,
        start: u64,
        len: u64,
        new_addr: u64,
        dontunmap: bool,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let end = start + len;
        let flags = MREMAP_MAYMOVE
            | MREMAP_FIXED
            | if dontunmap {
                MREMAP_DONTUNMAP
            } else {
                MremapFlags::empty()
            };
        let mut target = new_addr;
        let mut cursor = start;
        let mut last_end: Option<u64> = None;
        let mut res = Err(Errno::EFAULT);
        while cursor < end {
            let Some(vma) = self.tree.find_vma_intersection(cursor, end).copied() else {
                break;
            };
            if last_end.is_none() && start < vma.vm_start {
                // No gap at the start of the range.
                return Err(Errno::EFAULT);
            }
            let a = vma.vm_start.max(start);
            let plen = end.min(vma.vm_end) - a;
            let offset = last_end.map_or(0, |l| vma.vm_start.saturating_sub(l));
            let multi = !vma
                .vm_flags
                .intersects(VmFlags::VM_DONTEXPAND | VmFlags::VM_PFNMAP);
            if !multi && (last_end.is_some() || vma.vm_end < end) {
                return Err(Errno::EFAULT);
            }
            last_end = Some(vma.vm_end);
            cursor = end.min(vma.vm_end);
            self.check_prep_vma(&vma, a, plen, plen, dontunmap)?;
            let r = self.mremap_to(&vma, a, plen, target + offset, plen, flags, ops)?;
            if res.is_err() {
                res = Ok(r);
            }
            target = r + plen;
        }
        res
    }

    /// `check_prep_vma`: the checks of a resize or move of `[addr, addr + old_len)` in
    /// `vma`.
    fn check_prep_vma(
        &self,
        vma: &Vma,
        addr: u64,
        old_len: u64,
        new_len: u64,
        dontunmap: bool,
    ) -> Result<(), Errno> {
        let special = vma
            .vm_flags
            .intersects(VmFlags::VM_DONTEXPAND | VmFlags::VM_PFNMAP);
        if old_len == 0
            && !vma
                .vm_flags
                .intersects(VmFlags::VM_SHARED | VmFlags::VM_MAYSHARE)
        {
            return Err(Errno::EINVAL);
        }
        if dontunmap && special {
            return Err(Errno::EINVAL);
        }
        // The range being unmapped by a shrink may cross VMA boundaries.
        let kept = old_len.min(new_len);
        if kept > vma.vm_end - addr {
            return Err(Errno::EFAULT);
        }
        if new_len > old_len {
            let pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> self.params.page_shift);
            if pgoff
                .checked_add(new_len >> self.params.page_shift)
                .is_none()
            {
                return Err(Errno::EINVAL);
            }
            if special {
                return Err(Errno::EFAULT);
            }
        }
        Ok(())
    }

    /// `mremap_to`: a move to a fixed address or with `MREMAP_DONTUNMAP`, after the
    /// checks.
    #[allow(clippy::too_many_arguments)]
    fn mremap_to(
        &mut self,
        vma: &Vma,
        addr: u64,
        mut old_len: u64,
        new_addr: u64,
        new_len: u64,
        flags: MremapFlags,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let p = self.params;
        let fixed = flags.contains(MREMAP_FIXED);
        if self.tree.len() + 2 >= p.max_map_count.saturating_sub(3) {
            return Err(Errno::ENOMEM);
        }
        if fixed {
            self.do_munmap_range(new_addr, new_addr + new_len, ops)?;
        }
        if old_len > new_len {
            self.unmap_tail(addr + new_len, addr, old_len, ops)?;
            old_len = new_len;
        }
        // The unmaps above never touch [addr, addr + old_len): look the VMA up again
        // all the same, its neighbours may have changed.
        let vma = self.vma_lookup(addr).copied().unwrap_or(*vma);
        if p.version < KernelVersion::V6_18 {
            // vma_to_resize, after the unmaps.
            self.check_prep_vma(
                &vma,
                addr,
                old_len,
                new_len,
                flags.contains(MREMAP_DONTUNMAP),
            )?;
        }
        let pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> p.page_shift);
        let target = self.remap_area(&vma, new_addr, new_len, pgoff, fixed)?;
        let dontunmap = flags.contains(MREMAP_DONTUNMAP);
        self.move_vma(&vma, addr, old_len, new_len, target, dontunmap, ops)
    }

    /// Unmaps `[start, addr + old_len)`, the tail a shrink drops, with `do_vmi_munmap`'s
    /// range check (`EINVAL` past `TASK_SIZE`).
    fn unmap_tail(
        &mut self,
        start: u64,
        addr: u64,
        old_len: u64,
        ops: &mut dyn PageOps,
    ) -> Result<(), Errno> {
        match addr.checked_add(old_len) {
            Some(end) if end <= self.params.task_size => self.do_munmap_range(start, end, ops),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `vma_expandable`: nothing in `[vm_end, vm_end + delta)` and the end inside the task.
    fn vma_expandable(&self, vma: &Vma, delta: u64) -> bool {
        match vma.vm_end.checked_add(delta) {
            Some(end) => {
                end <= self.params.task_size
                    && self.tree.find_vma_intersection(vma.vm_end, end).is_none()
            }
            None => false,
        }
    }

    /// `vma_merge_extend`: grows `vma` to `end`, merging with the next VMA when it then
    /// touches one it may merge with.
    fn vma_merge_extend(&mut self, vma: &Vma, end: u64) -> Result<(), Errno> {
        let mp = self.params.merge_params();
        let mut grown = *vma;
        grown.vm_end = end;
        let t = |r: Result<(), super::vma_tree::VmaTreeError>| r.map_err(tree_errno);
        let next = self
            .tree
            .find_vma(end)
            .copied()
            .filter(|n| n.vm_start == end);
        match next {
            Some(n) if Vma::can_merge(&grown, &n, MergeSource::Left, &mp) => {
                let flags = grown.merged_flags(&n);
                let anon = grown.anon_vma.or(n.anon_vma);
                t(self.tree.remove(n.vm_start).map(|_| ()))?;
                t(self.tree.update(vma.vm_start, |x| {
                    x.vm_end = n.vm_end;
                    x.vm_flags = flags;
                    x.anon_vma = anon;
                }))
            }
            _ => t(self.tree.update(vma.vm_start, |x| x.vm_end = end)),
        }
    }

    /// The area a move goes to: `get_unmapped_area` as a fresh mapping of the VMA's file
    /// (or anonymous memory) at page offset `pgoff` would get, or `new_addr` when fixed.
    fn remap_area(
        &self,
        vma: &Vma,
        new_addr: u64,
        new_len: u64,
        pgoff: u64,
        fixed: bool,
    ) -> Result<u64, Errno> {
        let mut flags = if vma.vm_flags.contains(VmFlags::VM_MAYSHARE) {
            MAP_SHARED
        } else {
            MAP_PRIVATE
        };
        if fixed {
            flags |= MAP_FIXED;
        }
        if vma.kind.is_fs_file() {
            self.file_get_unmapped_area(new_addr, new_len, pgoff, flags)
        } else {
            let shared = flags.contains(MAP_SHARED);
            self.get_unmapped_area(new_addr, new_len, flags, shared, &mut Located::new())
        }
    }

    /// `move_vma`: a copy of the VMA over `[new_addr, new_addr + new_len)` (merged with
    /// its neighbours as `copy_vma` merges), the page tables of the old range moved to it,
    /// then the old range unmapped (or, with `MREMAP_DONTUNMAP`, left without pages).
    #[allow(clippy::too_many_arguments)]
    fn move_vma(
        &mut self,
        vma: &Vma,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        new_addr: u64,
        dontunmap: bool,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let p = self.params;
        if self.tree.len() >= p.max_map_count.saturating_sub(3) {
            return Err(Errno::ENOMEM);
        }
        if vma.vm_flags.contains(VmFlags::VM_ACCOUNT) {
            // The charge of what the move adds: the growth, or all of it when the old
            // mapping stays.
            let to_account = if dontunmap {
                new_len
            } else {
                new_len.saturating_sub(old_len)
            };
            p.vm_enough_memory(to_account >> p.page_shift)?;
        }
        let mut new = *vma;
        new.vm_start = new_addr;
        new.vm_end = new_addr + new_len;
        new.vm_pgoff = vma.vm_pgoff + ((old_addr - vma.vm_start) >> p.page_shift);
        // A MREMAP_DONTUNMAP copy merges less before 6.18 (observed on arm64; see
        // docs/kernel-disagreements.md): on 6.12 it never merges with the VMA it was copied
        // from (a plain move does, and unmaps the old range after); on 6.1 it merges with
        // nothing when that VMA is one of its neighbours.
        let avoid = match p.version {
            _ if !dontunmap => None,
            KernelVersion::V6_1 => Some((vma.vm_start, true)),
            KernelVersion::V6_12 => Some((vma.vm_start, false)),
            _ => None,
        };
        if vma.kind.is_anonymous() && vma.anon_vma.is_none() {
            // copy_vma: an anonymous VMA never faulted takes the new address as its pgoff,
            // so that it merges like a new mapping.
            new.vm_pgoff = new_addr >> p.page_shift;
        }
        self.merge_new_range_avoiding(new, avoid)?;
        ops.moved(old_addr, new_addr, old_len);
        if dontunmap {
            let whole = vma.vm_start == old_addr && vma.vm_end == old_addr + old_len;
            let t = |r: Result<(), super::vma_tree::VmaTreeError>| r.map_err(tree_errno);
            if let Some(old) = self.vma_lookup(old_addr).copied() {
                t(self.tree.update(old.vm_start, |x| {
                    x.vm_flags
                        .remove(VmFlags::VM_LOCKED | VmFlags::VM_LOCKONFAULT);
                    if whole {
                        // unlink_anon_vmas: the old VMA is as if never faulted.
                        x.anon_vma = None;
                    }
                }))?;
            }
            return Ok(new_addr);
        }
        self.do_munmap_range(old_addr, old_addr + old_len, ops)?;
        Ok(new_addr)
    }
}
