//! `brk` (§9): `SYSCALL_DEFINE1(brk)` and `do_brk_flags`.

use super::vma::{MergeSource, Vma, VmaKind};
use super::vma_tree::Located;
use super::vmflags::VmFlags;

use super::ops::{NoPageOps, PageOps};
use super::params::Arch;
use super::space::AddressSpace;

impl AddressSpace<'_> {
    /// `brk(newbrk)`: returns the new break on success and the old one on any failure,
    /// like the system call (it never returns an errno). `brk(0)` reads the break.
    pub fn brk(&mut self, newbrk: u64) -> u64 {
        self.brk_with(newbrk, &mut NoPageOps)
    }

    /// [`AddressSpace::brk`] reporting removed ranges to `ops`.
    pub fn brk_with(&mut self, brk: u64, ops: &mut dyn PageOps) -> u64 {
        let p = self.params;
        let origbrk = self.brk;
        if brk < self.start_brk {
            return origbrk;
        }
        let (Some(newbrk), Some(oldbrk)) = (p.page_align(brk), p.page_align(self.brk)) else {
            return origbrk;
        };
        if oldbrk == newbrk {
            self.brk = brk;
            return brk;
        }
        if brk <= self.brk {
            // Shrink: the first VMA in [newbrk, oldbrk) must exist.
            match self.tree.find_vma_intersection(newbrk, oldbrk) {
                Some(_) => {}
                None => return origbrk,
            }
            self.brk = brk;
            if self.do_munmap_range(newbrk, oldbrk, ops).is_err() {
                self.brk = origbrk;
                return origbrk;
            }
            return brk;
        }
        // Grow: one free page (or the guard gap of a grows-down VMA) must remain above.
        let Some(limit) = newbrk.checked_add(p.page_size()) else {
            return origbrk;
        };
        if let Some(next) = self.tree.find_vma(oldbrk) {
            let sg = next.vm_start_gap(p.stack_guard_gap, p.page_size());
            if next.vm_start < limit.saturating_add(p.stack_guard_gap) && limit > sg {
                return origbrk;
            }
        }
        // check_brk_limits: get_unmapped_area(NULL, oldbrk, len, 0, MAP_FIXED) (the range
        // must lie in the user address space, above mmap_min_addr).
        let fixed = super::mman::MAP_FIXED | super::mman::MAP_PRIVATE;
        if self
            .get_unmapped_area(oldbrk, newbrk - oldbrk, fixed, false, &mut Located::new())
            .is_err()
        {
            return origbrk;
        }
        if self.do_brk_flags(oldbrk, newbrk).is_err() {
            return origbrk;
        }
        self.brk = brk;
        brk
    }

    /// `do_brk_flags`: extend the VMA ending at `addr` that starts at or above `start_brk`
    /// (`vma_prev_limit`), or create a new `rd wr mr mw me ac` VMA.
    fn do_brk_flags(&mut self, addr: u64, end: u64) -> Result<(), super::errno::Errno> {
        use super::errno::Errno;
        let p = self.params;
        if self.tree.len() > p.max_map_count || self.free_slots() < 1 {
            return Err(Errno::ENOMEM);
        }
        p.vm_enough_memory((end - addr) >> p.page_shift)?;
        let mut flags = VmFlags::VM_DATA_FLAGS_NON_EXEC | VmFlags::VM_ACCOUNT;
        if p.arch == Arch::Arm64 && p.config_arm64_mte {
            flags |= VmFlags::VM_MTE_ALLOWED;
        }
        let new = Vma {
            vm_start: addr,
            vm_end: end,
            vm_flags: flags,
            vm_pgoff: addr >> p.page_shift,
            anon_vma: None,
            anon_vma_fork_child: false,
            kind: VmaKind::Anonymous,
        };
        let prev = self
            .tree
            .find_vma_prev(addr)
            .1
            .copied()
            .filter(|v| v.vm_start >= self.start_brk && v.vm_end == addr);
        if let Some(v) = prev {
            if Vma::can_merge(&v, &new, MergeSource::Right, &p.merge_params()) {
                let merged = v.merged_flags(&new);
                return self
                    .tree
                    .update(v.vm_start, |x| {
                        x.vm_end = end;
                        x.vm_flags = merged;
                    })
                    .map_err(super::space::tree_errno);
            }
        }
        self.tree.insert(new).map_err(super::space::tree_errno)
    }
}
