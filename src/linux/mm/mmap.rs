//! `mmap` of anonymous memory (§1, §2): argument checks in the kernel's order
//! (`ksys_mmap_pgoff`, `do_mmap`), address selection (`__get_unmapped_area`,
//! `generic_get_unmapped_area_topdown`, the x86 variants, `__thp_get_unmapped_area`) and
//! `mmap_region` (replacement, merge, insertion).

use super::vma::{vma_name, MergeSource, Vma, VmaKind};
use super::vma_tree::{Located, VmUnmappedAreaInfo};
use super::vmflags::VmFlags;

use super::errno::Errno;
use super::file::{file_vm_flags, OpenFile};
use super::mman::*;
use super::ops::{NoPageOps, PageOps};
use super::params::Arch;
use super::space::{tree_errno, AddressSpace};

impl AddressSpace<'_> {
    /// `mmap(addr, len, prot, flags, -1, 0)` of anonymous memory; returns the address.
    ///
    /// # Errors
    ///
    /// The kernel's errno, in its precedence (§2.1): `EBADF` without `MAP_ANONYMOUS`,
    /// `EINVAL` for `len == 0`, an unaligned fixed address or a bad mapping type,
    /// `ENOMEM` for length overflow, `len > TASK_SIZE`, no free area or
    /// `map_count > max_map_count`, `EPERM` below `mmap_min_addr`, `EEXIST` for an
    /// occupied `MAP_FIXED_NOREPLACE` range.
    pub fn mmap(&mut self, addr: u64, len: u64, prot: Prot, flags: MapFlags) -> Result<u64, Errno> {
        self.mmap_with(addr, len, prot, flags, 0, &mut NoPageOps)
    }

    /// [`AddressSpace::mmap`] with a file offset (ignored for anonymous memory once page
    /// aligned) and a [`PageOps`] receiver for replaced and populated ranges.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::mmap`]; an unaligned `offset` gives `EINVAL` first.
    pub fn mmap_with(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        offset: u64,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        // sys_mmap: offset_in_page(off) -> EINVAL (arm64 and x86_64).
        if !self.params.is_page_aligned(offset) {
            return Err(Errno::EINVAL);
        }
        // ksys_mmap_pgoff: without MAP_ANONYMOUS the fd (-1) is looked up first.
        if !flags.intersects(MAP_ANONYMOUS) {
            return Err(Errno::EBADF);
        }
        if flags.intersects(MAP_HUGETLB) {
            // hugetlbfs is not modelled: no pool, the reservation fails.
            return Err(Errno::ENOMEM);
        }
        self.do_mmap(addr, len, prot, flags, None, ops)
    }

    /// `do_mmap`: anonymous memory when `file` is `None`, else the open file at page
    /// offset `pgoff`.
    pub(super) fn do_mmap(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        mut flags: MapFlags,
        file: Option<(&OpenFile, u64)>,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let p = self.params;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        if flags.intersects(MAP_FIXED_NOREPLACE) {
            flags |= MAP_FIXED;
        }
        let fixed = flags.intersects(MAP_FIXED);
        let addr = if fixed {
            addr
        } else {
            self.round_hint_to_min(addr)
        };
        let len = p.page_align(len).ok_or(Errno::ENOMEM)?;
        let pgoff = file.map_or(0, |(_, pgoff)| pgoff);
        if pgoff.checked_add(len >> p.page_shift).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        if self.tree.len() > p.max_map_count {
            return Err(Errno::ENOMEM);
        }
        let mut vm_flags = self.calc_vm_prot_bits(prot)
            | self.calc_vm_flag_bits(flags, file.is_some())
            | VmFlags::VM_MAYREAD
            | VmFlags::VM_MAYWRITE
            | VmFlags::VM_MAYEXEC;
        let shared = flags & MAP_TYPE == MAP_SHARED;
        // Where the free-area search found the address, so that the new VMA goes in
        // without a second descent.
        let mut at = Located::new();
        let addr = match file {
            Some((_, pgoff)) => self.file_get_unmapped_area(addr, len, pgoff, flags)?,
            None => self.get_unmapped_area(addr, len, flags, shared, &mut at)?,
        };
        let end = addr + len;
        if flags.intersects(MAP_FIXED_NOREPLACE)
            && self.tree.find_vma_intersection(addr, end).is_some()
        {
            return Err(Errno::EEXIST);
        }
        if let Some((f, pgoff)) = file {
            vm_flags = file_vm_flags(f, pgoff, len, prot, flags, vm_flags)?;
            if flags.intersects(MAP_NORESERVE) && !p.overcommit_never {
                vm_flags |= VmFlags::VM_NORESERVE;
            }
            self.mmap_region_file(addr, len, vm_flags, f, pgoff, fixed, ops)?;
            if vm_flags.contains(VmFlags::VM_LOCKED)
                || flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE
            {
                self.mm_populate(addr, end, ops);
            }
            return Ok(addr);
        }
        // MAP_LOCKED: the process may mlock (root); mlock limits are not modelled.
        match flags & MAP_TYPE {
            MAP_SHARED => {
                if vm_flags.intersects(VmFlags::VM_GROWSDOWN) {
                    return Err(Errno::EINVAL);
                }
                vm_flags |= VmFlags::VM_SHARED | VmFlags::VM_MAYSHARE;
            }
            MAP_DROPPABLE if p.has_map_droppable() => {
                if flags.intersects(MAP_LOCKED) || vm_flags.intersects(VmFlags::VM_GROWSDOWN) {
                    return Err(Errno::EINVAL);
                }
                vm_flags |= VmFlags::VM_DROPPABLE
                    | VmFlags::VM_WIPEONFORK
                    | VmFlags::VM_DONTDUMP
                    | VmFlags::VM_NORESERVE;
            }
            MAP_PRIVATE => {}
            _ => return Err(Errno::EINVAL),
        }
        if flags.intersects(MAP_NORESERVE) && !p.overcommit_never {
            vm_flags |= VmFlags::VM_NORESERVE;
        }
        self.mmap_region(addr, len, vm_flags, shared, fixed, ops, &mut at)?;
        let populate = vm_flags.contains(VmFlags::VM_LOCKED)
            || flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE;
        if populate {
            self.mm_populate(addr, end, ops);
        }
        Ok(addr)
    }

    /// `round_hint_to_min`: round the hint down to a page; a non-zero result below
    /// `mmap_min_addr` becomes `PAGE_ALIGN(mmap_min_addr)`.
    fn round_hint_to_min(&self, hint: u64) -> u64 {
        let p = &self.params;
        let h = hint & !(p.page_size() - 1);
        if h != 0 && h < p.mmap_min_addr {
            return p.page_align(p.mmap_min_addr).unwrap_or(h);
        }
        h
    }

    /// `calc_vm_prot_bits` with arm64's `arch_calc_vm_prot_bits`.
    pub(super) fn calc_vm_prot_bits(&self, prot: Prot) -> VmFlags {
        let mut f = VmFlags::empty();
        if prot.intersects(PROT_READ) {
            f |= VmFlags::VM_READ;
        }
        if prot.intersects(PROT_WRITE) {
            f |= VmFlags::VM_WRITE;
        }
        if prot.intersects(PROT_EXEC) {
            f |= VmFlags::VM_EXEC;
        }
        if self.params.arch == Arch::Arm64 {
            if self.params.cpu_bti && prot.intersects(PROT_BTI) {
                f |= VmFlags::VM_ARM64_BTI;
            }
            if self.params.cpu_mte && prot.intersects(PROT_MTE) {
                f |= VmFlags::VM_MTE;
            }
        }
        f
    }

    /// `calc_vm_flag_bits` (anonymous): `gd`, `lo`, `nh` for `MAP_STACK` (6.7+), and
    /// arm64's `VM_MTE_ALLOWED` on MTE CPUs.
    fn calc_vm_flag_bits(&self, flags: MapFlags, file: bool) -> VmFlags {
        let mut f = VmFlags::empty();
        if flags.intersects(MAP_GROWSDOWN) {
            f |= VmFlags::VM_GROWSDOWN;
        }
        if flags.intersects(MAP_LOCKED) {
            f |= VmFlags::VM_LOCKED;
        }
        if flags.intersects(MAP_STACK) && self.params.map_stack_sets_nohugepage() {
            f |= VmFlags::VM_NOHUGEPAGE;
        }
        // arm64's arch_calc_vm_flag_bits: anonymous (and shmem) memory only.
        if self.params.arch == Arch::Arm64 && self.params.cpu_mte && !file {
            f |= VmFlags::VM_MTE_ALLOWED;
        }
        f
    }

    /// `__get_unmapped_area` for anonymous memory, including the post-checks of §1.2/7;
    /// `at` records where a VMA at the address goes, when the search found that out.
    pub(super) fn get_unmapped_area(
        &self,
        addr: u64,
        len: u64,
        flags: MapFlags,
        shared: bool,
        at: &mut Located,
    ) -> Result<u64, Errno> {
        let p = &self.params;
        if len > p.task_size {
            return Err(Errno::ENOMEM);
        }
        let pmd = p.pmd_size;
        // A MAP_FIXED request at 0 is not a "no hint" request: the generic code hands the
        // fixed address straight back, so it never takes the THP-aligned search.
        let a = if !shared
            && addr == 0
            && !flags.intersects(MAP_FIXED)
            && p.thp_aligned_placement()
            && pmd.is_power_of_two()
            && len.is_multiple_of(pmd)
        {
            self.thp_get_unmapped_area(0, len, 0, flags, at)?
        } else {
            self.arch_get_unmapped_area(addr, len, flags, at)?
        };
        self.check_unmapped_area(a, len)
    }

    /// The checks `__get_unmapped_area` makes of the address found (§1.2/7).
    pub(super) fn check_unmapped_area(&self, a: u64, len: u64) -> Result<u64, Errno> {
        let p = &self.params;
        if a > p.task_size - len {
            return Err(Errno::ENOMEM);
        }
        if !p.is_page_aligned(a) {
            return Err(Errno::EINVAL);
        }
        if a < p.dac_mmap_min_addr && !p.cap_sys_rawio {
            return Err(Errno::EPERM);
        }
        Ok(a)
    }

    /// `thp_get_unmapped_area_vmflags` → `__thp_get_unmapped_area` (§1.6) for a mapping at
    /// byte offset `off` of its object (0 for anonymous memory), with the fallback to the
    /// plain search.
    pub(super) fn thp_get_unmapped_area(
        &self,
        addr: u64,
        len: u64,
        off: u64,
        flags: MapFlags,
        at: &mut Located,
    ) -> Result<u64, Errno> {
        match self.thp_aligned_area(addr, len, off, flags, at) {
            Some(a) => Ok(a),
            None => self.arch_get_unmapped_area(addr, len, flags, at),
        }
    }

    /// `__thp_get_unmapped_area`: a search for `len` plus one PMD, then the address in it
    /// congruent to `off` modulo the PMD size; `None` where the kernel returns 0.
    fn thp_aligned_area(
        &self,
        addr: u64,
        len: u64,
        off: u64,
        flags: MapFlags,
        at: &mut Located,
    ) -> Option<u64> {
        let pmd = self.params.pmd_size;
        let off_end = off.checked_add(len)?;
        let off_align = off.checked_next_multiple_of(pmd)?;
        if off_end <= off_align || off_end - off_align < pmd {
            return None;
        }
        let len_pad = len.checked_add(pmd)?;
        off.checked_add(len_pad)?;
        // Before 6.7 a hint is not tried first (the padded search starts from no hint).
        let v2 = self.params.thp_aligned_placement();
        let ret = self
            .arch_get_unmapped_area(if v2 { addr } else { 0 }, len_pad, flags, at)
            .ok()?;
        if v2 && ret == addr {
            return Some(addr);
        }
        let off_sub = off.wrapping_sub(ret) & (pmd - 1);
        if v2 && self.topdown() && off_sub == 0 {
            return Some(ret + pmd);
        }
        Some(ret + off_sub)
    }

    /// The architecture's `get_unmapped_area` (top-down or bottom-up, with the hint).
    fn arch_get_unmapped_area(
        &self,
        addr: u64,
        len: u64,
        flags: MapFlags,
        at: &mut Located,
    ) -> Result<u64, Errno> {
        match self.params.arch {
            Arch::Arm64 => self.generic_get_unmapped_area(addr, len, flags, at),
            Arch::X86_64 => self.x86_get_unmapped_area(addr, len, flags, at),
        }
    }

    /// `generic_get_unmapped_area_topdown` / `generic_get_unmapped_area` with arm64's
    /// `arch_get_mmap_end`/`arch_get_mmap_base` (the 52-bit window rule, §18.3 item 3).
    fn generic_get_unmapped_area(
        &self,
        addr: u64,
        len: u64,
        flags: MapFlags,
        at: &mut Located,
    ) -> Result<u64, Errno> {
        let p = &self.params;
        let window = p.default_map_window;
        let above = addr > window;
        let mmap_end = if above { p.task_size } else { window };
        if len > mmap_end.saturating_sub(p.mmap_min_addr) {
            return Err(Errno::ENOMEM);
        }
        if flags.intersects(MAP_FIXED) {
            return Ok(addr);
        }
        if addr != 0 {
            let a = p.page_align(addr).ok_or(Errno::ENOMEM)?;
            if mmap_end - len >= a && a >= p.mmap_min_addr && self.hint_fits(a, len) {
                return Ok(a);
            }
        }
        let gp = p.gap_params();
        if self.topdown() {
            let base = if above {
                self.mmap_base.saturating_add(p.task_size - window)
            } else {
                self.mmap_base
            };
            let info = VmUnmappedAreaInfo {
                length: len,
                low_limit: p.page_size(),
                high_limit: base,
                ..Default::default()
            };
            if let Ok(a) = self
                .tree
                .unmapped_area_topdown_at(&info, &gp, Some(&mut *at))
            {
                return Ok(a);
            }
            let info = VmUnmappedAreaInfo {
                length: len,
                low_limit: p.task_unmapped_base(),
                high_limit: mmap_end,
                ..Default::default()
            };
            self.tree
                .unmapped_area_at(&info, &gp, Some(at))
                .map_err(tree_errno)
        } else {
            let info = VmUnmappedAreaInfo {
                length: len,
                low_limit: self.mmap_base,
                high_limit: mmap_end,
                ..Default::default()
            };
            self.tree
                .unmapped_area_at(&info, &gp, Some(at))
                .map_err(tree_errno)
        }
    }

    /// x86_64's `arch_get_unmapped_area_topdown` / `arch_get_unmapped_area` (no LA57
    /// window switching beyond `TASK_SIZE`, no `MAP_32BIT`/`MAP_ABOVE4G`).
    fn x86_get_unmapped_area(
        &self,
        addr: u64,
        len: u64,
        flags: MapFlags,
        at: &mut Located,
    ) -> Result<u64, Errno> {
        let p = &self.params;
        let window = p.default_map_window;
        if len > p.task_size {
            return Err(Errno::ENOMEM);
        }
        if flags.intersects(MAP_FIXED) {
            return Ok(addr);
        }
        let gp = p.gap_params();
        let hint_ok = |a: u64| {
            // mmap_address_hint_valid
            p.task_size - len >= a && (a > window) == (a + len > window)
        };
        if addr != 0 {
            let a = addr & !(p.page_size() - 1);
            if hint_ok(a) && self.hint_fits(a, len) {
                return Ok(a);
            }
        }
        if self.topdown() {
            let mut high = self.mmap_base;
            if addr > window {
                high = high.saturating_add(p.task_size - window);
            }
            let info = VmUnmappedAreaInfo {
                length: len,
                low_limit: p.page_size(),
                high_limit: high,
                ..Default::default()
            };
            if let Ok(a) = self
                .tree
                .unmapped_area_topdown_at(&info, &gp, Some(&mut *at))
            {
                return Ok(a);
            }
        }
        let info = VmUnmappedAreaInfo {
            length: len,
            low_limit: if self.topdown() {
                p.task_unmapped_base()
            } else {
                self.mmap_base
            },
            high_limit: window,
            ..Default::default()
        };
        self.tree
            .unmapped_area_at(&info, &gp, Some(at))
            .map_err(tree_errno)
    }

    /// The hint test against the next VMA: `addr + len <= vm_start_gap(next)`.
    fn hint_fits(&self, a: u64, len: u64) -> bool {
        let Some(end) = a.checked_add(len) else {
            return false;
        };
        match self.tree.find_vma(a) {
            None => true,
            Some(next) => {
                end <= next.vm_start_gap(self.params.stack_guard_gap, self.params.page_size())
            }
        }
    }

    /// `__mmap_region`: unmap what `[addr, addr+len)` overlaps (§2.3 step 1), then merge
    /// with the neighbours or insert a new VMA (at `at`, where that holds `addr`'s place).
    #[allow(clippy::too_many_arguments)]
    fn mmap_region(
        &mut self,
        addr: u64,
        len: u64,
        mut vm_flags: VmFlags,
        shared: bool,
        fixed: bool,
        ops: &mut dyn PageOps,
        at: &mut Located,
    ) -> Result<(), Errno> {
        let end = addr + len;
        vm_flags = self.clear_region(addr, end, vm_flags, fixed, ops)?;
        let ps = self.params.page_shift;
        let new = if shared {
            let ino = self.next_shmem_ino;
            self.next_shmem_ino = ino.wrapping_add(1);
            Vma {
                vm_start: addr,
                vm_end: end,
                vm_flags,
                vm_pgoff: 0,
                anon_vma: None,
                anon_vma_fork_child: false,
                kind: VmaKind::File {
                    dev: super::vma::DevId { major: 0, minor: 1 },
                    ino,
                    path: vma_name("/dev/zero (deleted)").map_err(|_| Errno::ENOMEM)?,
                    // shmem_zero_setup: the object is as large as the mapping.
                    file: super::vma::FileId::shmem_of_pages(len >> ps),
                },
            }
        } else {
            Vma {
                vm_start: addr,
                vm_end: end,
                vm_flags,
                vm_pgoff: addr >> ps,
                anon_vma: None,
                anon_vma_fork_child: false,
                kind: VmaKind::Anonymous,
            }
        };
        self.merge_new_range_at(new, None, at)
    }

    /// The first steps of `mmap_region`: unmaps what a fixed mapping covers and returns
    /// the flags with `VM_ACCOUNT` added where `accountable_mapping` asks for it.
    pub(super) fn clear_region(
        &mut self,
        addr: u64,
        end: u64,
        mut vm_flags: VmFlags,
        fixed: bool,
        ops: &mut dyn PageOps,
    ) -> Result<VmFlags, Errno> {
        // The simulator's storage must hold a hole punch plus the new VMA; check before
        // changing anything.
        if self.free_slots() < 2 {
            return Err(Errno::ENOMEM);
        }
        // accountable_mapping: private writable without MAP_NORESERVE.
        let accountable = (vm_flags
            & (VmFlags::VM_NORESERVE | VmFlags::VM_SHARED | VmFlags::VM_WRITE))
            == VmFlags::VM_WRITE;
        let p = self.params;
        let pages = (end - addr) >> p.page_shift;
        if accountable && p.version >= super::KernelVersion::V6_12 {
            // 6.12's mmap_region charges before it unmaps what the new mapping replaces,
            // less the pages of it that were charged already.
            let mut replaced = 0;
            if fixed {
                let mut at = addr;
                while let Some(v) = self.tree.find_vma_intersection(at, end) {
                    if v.vm_flags.contains(VmFlags::VM_ACCOUNT) {
                        replaced += (v.vm_end.min(end) - v.vm_start.max(addr)) >> p.page_shift;
                    }
                    at = v.vm_end;
                    if at >= end {
                        break;
                    }
                }
            }
            p.vm_enough_memory(pages.saturating_sub(replaced))?;
        }
        // Only a fixed address can overlap: the search returns free ranges.
        if fixed && self.tree.find_vma_intersection(addr, end).is_some() {
            self.do_munmap_range(addr, end, ops)?;
        }
        if accountable {
            if p.version < super::KernelVersion::V6_12 {
                // 6.1 unmaps first and charges the whole length.
                p.vm_enough_memory(pages)?;
            }
            vm_flags |= VmFlags::VM_ACCOUNT;
        }
        Ok(vm_flags)
    }

    /// `vma_merge_new_range` or a new VMA (§4.4, new range).
    pub(super) fn merge_new_range(&mut self, new: Vma) -> Result<(), Errno> {
        self.merge_new_range_avoiding(new, None)
    }

    /// `merge_new_range`, but never merging with the VMA starting at `avoid.0`, nor, when
    /// `avoid.1`, with anything if that VMA is a neighbour (a `MREMAP_DONTUNMAP` copy and
    /// its source VMA on 6.12 and 6.1, see `move_vma`).
    pub(super) fn merge_new_range_avoiding(
        &mut self,
        new: Vma,
        avoid: Option<(u64, bool)>,
    ) -> Result<(), Errno> {
        self.merge_new_range_at(new, avoid, &mut Located::new())
    }

    /// `merge_new_range_avoiding` with `at` the place of `new.vm_start` if a search
    /// recorded it in the tree as it is (else it is located here).
    fn merge_new_range_at(
        &mut self,
        new: Vma,
        avoid: Option<(u64, bool)>,
        at: &mut Located,
    ) -> Result<(), Errno> {
        /// What the merge does, decided while the neighbours are borrowed (a VMA is a few
        /// hundred bytes with its name: they are not copied out of the tree).
        enum Plan {
            Both(u64, u64, u64, VmFlags, Option<super::vma::AnonVmaId>),
            Prev(u64, VmFlags),
            Next(u64, VmFlags),
            Insert,
        }
        let mp = self.params.merge_params();
        // One descent gives both neighbours, and the place the new VMA goes: the range is
        // free, so the first VMA ending above its start begins at or after its end, and
        // the last one before it ends at or below its start.
        self.tree.fresh(at, new.vm_start).map_err(tree_errno)?;
        let plan = {
            let [prv, _, nxt] = self.tree.located(at);
            let mut prev = prv.filter(|p| p.vm_end == new.vm_start);
            let mut next = nxt.filter(|n| n.vm_start == new.vm_end);
            if let Some((start, alone)) = avoid {
                let is = |v: &Option<&Vma>| v.is_some_and(|v| v.vm_start == start);
                if alone && (is(&prev) || is(&next)) {
                    (prev, next) = (None, None);
                }
                prev = prev.filter(|p| p.vm_start != start);
                next = next.filter(|n| n.vm_start != start);
            }
            let ml = prev.is_some_and(|p| Vma::can_merge(p, &new, MergeSource::Right, &mp));
            let mr = next.is_some_and(|n| Vma::can_merge(&new, n, MergeSource::Left, &mp));
            match (prev, next) {
                (Some(p), Some(n)) if ml && mr && Vma::can_merge_both(p, &new, n, &mp) => {
                    let flags = p.merged_flags(n).union(new.vm_flags & VmFlags::VM_STICKY);
                    Plan::Both(
                        p.vm_start,
                        n.vm_start,
                        n.vm_end,
                        flags,
                        p.anon_vma.or(n.anon_vma),
                    )
                }
                // 6.1's mmap_region tries next first and takes prev only if it may join
                // next too (can_vma_merge_after with next's anon_vma): a range between two
                // neighbours with different anon_vmas joins next (observed on arm64 6.1);
                // vma_merge_new_range (6.12) prefers prev.
                (_, Some(n)) if mr && self.params.version < super::KernelVersion::V6_12 => {
                    Plan::Next(n.vm_start, n.merged_flags(&new))
                }
                (Some(p), _) if ml => Plan::Prev(p.vm_start, p.merged_flags(&new)),
                (_, Some(n)) if mr => Plan::Next(n.vm_start, n.merged_flags(&new)),
                _ => Plan::Insert,
            }
        };
        let t = |r: Result<(), super::vma_tree::VmaTreeError>| r.map_err(tree_errno);
        match plan {
            Plan::Both(p_start, n_start, n_end, flags, anon) => {
                t(self.tree.remove(n_start).map(|_| ()))?;
                t(self.tree.update(p_start, |x| {
                    x.vm_end = n_end;
                    x.vm_flags = flags;
                    x.anon_vma = anon;
                }))
            }
            Plan::Prev(p_start, flags) => t(self.tree.update(p_start, |x| {
                x.vm_end = new.vm_end;
                x.vm_flags = flags;
                x.anon_vma = x.anon_vma.or(new.anon_vma);
            })),
            Plan::Next(n_start, flags) => t(self.tree.update(n_start, |x| {
                x.vm_start = new.vm_start;
                x.vm_pgoff = new.vm_pgoff;
                x.vm_flags = flags;
                x.anon_vma = x.anon_vma.or(new.anon_vma);
            })),
            Plan::Insert => t(self.tree.insert_located(new, at)),
        }
    }

    /// `mm_populate`: fault in every accessible VMA part of `[start, end)`; writable
    /// private VMAs are write-faulted and get an `anon_vma`.
    pub(super) fn mm_populate(&mut self, start: u64, end: u64, ops: &mut dyn PageOps) {
        let mut cur = start;
        while cur < end {
            let Some(v) = self.tree.find_vma_intersection(cur, end).copied() else {
                break;
            };
            let s = v.vm_start.max(cur);
            let e = v.vm_end.min(end);
            let f = v.vm_flags;
            if f.intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC)
                && !f.intersects(VmFlags::VM_IO | VmFlags::VM_PFNMAP)
            {
                let write = f & (VmFlags::VM_WRITE | VmFlags::VM_SHARED) == VmFlags::VM_WRITE;
                // The first write fault prepares the anon_vma; if that fails the fault
                // fails, and mm_populate ignores the failure (the mapping stays unpopulated).
                if !(write && v.kind.is_anonymous() && self.anon_vma_prepare(s).is_err()) {
                    ops.populate(s, e, write);
                }
            }
            cur = e;
        }
    }
}
