//! The address space of one process (`struct mm_struct`): the VMA tree plus the layout
//! values the calls need, the shared split/merge machinery (§4.4), the `anon_vma`
//! bookkeeping (§4.2) and maps/smaps rendering (§9, §10, §12).

use core::fmt;

use super::maps_text::{write_maps_line, write_smaps_entry, SmapsCounters};
use super::vma::{AnonVmaId, MergeSource, Vma, VmaKind};
use super::vma_tree::{Located, VmaTree, VmaTreeError};
use super::vmflags::VmFlags;

use super::errno::Errno;
use super::params::{LayoutParams, ThpMode};

/// One process's address space: VMAs in caller-provided [`VmaTree`] storage, the
/// [`LayoutParams`], `mmap_base`, `start_brk`, `brk` and `start_stack`.
///
/// Give the tree at least [`LayoutParams::slots_needed`] slots to reach the kernel's
/// `max_map_count` limit before the simulator's own; when the slots run out first, calls
/// fail with `ENOMEM` like a kernel allocation failure, without changing anything.
#[derive(Debug)]
pub struct AddressSpace<'a> {
    pub(super) tree: VmaTree<'a>,
    pub(super) params: LayoutParams,
    pub(super) mmap_base: u64,
    pub(super) start_brk: u64,
    pub(super) brk: u64,
    pub(super) start_stack: u64,
    pub(super) next_anon_id: u64,
    pub(super) next_shmem_ino: u64,
}

impl<'a> AddressSpace<'a> {
    /// Creates an empty address space over `slots` (all previous content is discarded),
    /// with `mmap_base` from [`LayoutParams::mmap_base`] and `start_brk = brk =
    /// start_stack = 0`.
    pub fn new(slots: &'a mut [super::vma_tree::VmaSlot], params: LayoutParams) -> Self {
        AddressSpace {
            tree: VmaTree::new(slots),
            params,
            mmap_base: params.mmap_base(),
            start_brk: 0,
            brk: 0,
            start_stack: 0,
            next_anon_id: 1,
            next_shmem_ino: 1,
        }
    }

    /// Returns the parameters.
    pub const fn params(&self) -> &LayoutParams {
        &self.params
    }

    /// Returns the VMA tree (read only; change it through the calls).
    pub const fn tree(&self) -> &VmaTree<'a> {
        &self.tree
    }

    /// Returns `map_count`, the number of VMAs (the x86 `[vsyscall]` gate is not one).
    pub const fn map_count(&self) -> usize {
        self.tree.len()
    }

    /// Returns `mm->mmap_base`.
    pub const fn mmap_base(&self) -> u64 {
        self.mmap_base
    }

    /// Sets `mm->mmap_base` (e.g. the value a process with ASLR on ended up with).
    pub fn set_mmap_base(&mut self, base: u64) {
        self.mmap_base = base;
    }

    /// Returns whether new mappings are searched top-down (`MMF_TOPDOWN`).
    pub const fn topdown(&self) -> bool {
        !self.params.legacy_layout()
    }

    /// Returns `mm->start_brk`.
    pub const fn start_brk(&self) -> u64 {
        self.start_brk
    }

    /// Returns `mm->brk` (the last accepted, possibly unaligned, break).
    pub const fn current_brk(&self) -> u64 {
        self.brk
    }

    /// Sets `mm->start_brk` and `mm->brk` without touching any VMA (for imported states).
    pub fn set_brk_area(&mut self, start_brk: u64, brk: u64) {
        self.start_brk = start_brk;
        self.brk = brk;
    }

    /// Returns `mm->start_stack`.
    pub const fn start_stack(&self) -> u64 {
        self.start_stack
    }

    /// Sets `mm->start_stack` (the address that names `[stack]`).
    pub fn set_start_stack(&mut self, start_stack: u64) {
        self.start_stack = start_stack;
    }

    /// Returns the inode number the next shared anonymous mapping gets.
    pub const fn next_shmem_ino(&self) -> u64 {
        self.next_shmem_ino
    }

    /// Sets the inode number the next shared anonymous mapping's `/dev/zero (deleted)`
    /// file gets (the kernel's shmem inode counter is global).
    pub fn set_next_shmem_ino(&mut self, ino: u64) {
        self.next_shmem_ino = ino;
    }

    /// Drops every VMA (reporting each range to `ops`) and starts the layout afresh for an
    /// `execve` with `rlimit_stack` (and the legacy layout when `compat_layout`, the
    /// `ADDR_COMPAT_LAYOUT` personality): `mmap_base` recomputed, `start_brk = brk =
    /// start_stack = 0` (`exec_mmap` and `setup_new_exec`).
    pub(crate) fn exec_reset(
        &mut self,
        rlimit_stack: u64,
        compat_layout: bool,
        ops: &mut dyn super::ops::PageOps,
    ) {
        self.drop_all(ops);
        self.params.rlimit_stack = rlimit_stack;
        self.params.legacy_va_layout |= compat_layout;
        self.mmap_base = self.params.mmap_base();
        self.start_brk = 0;
        self.brk = 0;
        self.start_stack = 0;
    }

    /// Drops every VMA, reporting each range to `ops` (`exit_mmap`, and exec's
    /// `exec_mmap`).
    pub(crate) fn drop_all(&mut self, ops: &mut dyn super::ops::PageOps) {
        while let Some(v) = self.tree.find_vma_intersection(0, u64::MAX).copied() {
            if self.tree.remove(v.vm_start).is_err() {
                break;
            }
            ops.unmapped(v.vm_start, v.vm_end, v.vm_flags);
        }
    }

    /// Gives back the VMA storage (an exited process's, for the next one).
    pub fn into_slots(self) -> &'a mut [super::vma_tree::VmaSlot] {
        self.tree.into_slots()
    }

    /// Inserts `v` where nothing is mapped, as the kernel inserts the stack and special
    /// mappings (no merge).
    ///
    /// # Errors
    /// `ENOMEM` when the range is taken or the storage is full.
    pub(crate) fn insert_vma(&mut self, v: Vma) -> Result<(), Errno> {
        if self
            .tree
            .find_vma_intersection(v.vm_start, v.vm_end)
            .is_some()
        {
            return Err(Errno::ENOMEM);
        }
        self.tree.insert(v).map_err(tree_errno)
    }

    /// Sets the open file of the file VMA starting at `start` (an imported mapping whose
    /// file was found).
    pub(crate) fn set_file(&mut self, start: u64, id: super::vma::FileId) {
        // The caller found the VMA at `start`: the update cannot miss it.
        let _found = self.tree.update(start, |v| {
            if let VmaKind::File { file, .. } = &mut v.kind {
                *file = id;
            }
        });
    }

    /// Returns a new `anon_vma` identity.
    pub(crate) fn new_anon_vma(&mut self) -> AnonVmaId {
        self.fresh_anon_id()
    }

    /// `get_unmapped_area(NULL, 0, len, 0, 0)`: where a fresh private anonymous mapping of
    /// `len` bytes would go.
    ///
    /// # Errors
    /// `ENOMEM` when nothing fits.
    pub(crate) fn unmapped_area(&self, len: u64) -> Result<u64, Errno> {
        self.get_unmapped_area(0, len, super::mman::MAP_PRIVATE, false, &mut Located::new())
    }

    /// Returns the VMA containing `addr` (`vma_lookup`).
    pub fn vma_lookup(&self, addr: u64) -> Option<&Vma> {
        self.tree.vma_lookup(addr)
    }

    /// Returns the VMA containing `addr`, trying the one the last such lookup found first
    /// (see [`VmaTree::vma_lookup_hinted`]), and whether it is THP-eligible
    /// ([`AddressSpace::thp_eligible`]): for the fault path.
    #[inline]
    pub(crate) fn vma_lookup_hinted(&mut self, addr: u64) -> Option<(&Vma, bool)> {
        let (thp, pmd) = (self.params.thp, self.params.pmd_size);
        let v = self.tree.vma_lookup_hinted(addr)?;
        Some((v, Self::thp_eligible_under(thp, pmd, v)))
    }

    /// Checks the VMA tree's structure (order, no overlaps, counts).
    ///
    /// # Errors
    /// [`VmaTreeError::Corrupted`] when it does not hold.
    pub fn validate(&self) -> Result<(), VmaTreeError> {
        self.tree.validate()
    }

    /// Iterates over the VMAs in ascending order, as stored (anonymous VMAs are stored as
    /// [`VmaKind::Anonymous`]; see [`AddressSpace::display_vma`] for the maps label).
    pub fn iter(&self) -> impl Iterator<Item = &Vma> + '_ {
        self.tree.iter()
    }

    // ----- naming and rendering ---------------------------------------------------------

    /// Returns whether `v` is named `[heap]` (`vma_is_initial_heap`; 6.1's inclusive test).
    pub fn is_heap(&self, v: &Vma) -> bool {
        if self.params.heap_name_inclusive() {
            v.vm_start <= self.brk && v.vm_end >= self.start_brk
        } else {
            v.vm_start < self.brk && v.vm_end > self.start_brk
        }
    }

    /// Returns whether `v` is named `[stack]` (`vma_is_initial_stack`).
    pub fn is_stack(&self, v: &Vma) -> bool {
        v.vm_start <= self.start_stack && v.vm_end >= self.start_stack
    }

    /// Returns `v` with the kind maps shows: `[heap]` and `[stack]` are derived from
    /// `start_brk`/`brk` and `start_stack` for anonymous VMAs, before `[anon:NAME]`.
    pub fn display_vma(&self, v: &Vma) -> Vma {
        let mut d = *v;
        if v.kind.is_anonymous() {
            if self.is_heap(v) {
                d.kind = VmaKind::Heap;
            } else if self.is_stack(v) {
                d.kind = VmaKind::Stack;
            } else if matches!(v.kind, VmaKind::Heap | VmaKind::Stack) {
                d.kind = VmaKind::Anonymous;
            }
        }
        d
    }

    /// Writes `/proc/PID/maps`: every VMA, then the x86 `[vsyscall]` gate line.
    ///
    /// # Errors
    ///
    /// Returns the writer's error.
    pub fn render_maps<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        for v in self.tree.iter() {
            write_maps_line(w, &self.display_vma(v), &self.params.maps)?;
        }
        if self.params.has_vsyscall() {
            write_maps_line(w, &vsyscall_vma(), &self.params.maps)?;
        }
        Ok(())
    }

    /// Writes `/proc/PID/smaps`; `counters` supplies the residency numbers of each VMA
    /// (the page layer's business), `THPeligible` is computed here.
    ///
    /// # Errors
    ///
    /// Returns the writer's error.
    pub fn render_smaps<W: fmt::Write, F: FnMut(&Vma) -> SmapsCounters>(
        &self,
        w: &mut W,
        mut counters: F,
    ) -> fmt::Result {
        for v in self.tree.iter() {
            let mut c = counters(v);
            c.thp_eligible = self.thp_eligible(v);
            write_smaps_entry(w, &self.display_vma(v), &c, &self.params.maps)?;
        }
        if self.params.has_vsyscall() {
            let v = vsyscall_vma();
            write_smaps_entry(w, &v, &counters(&v), &self.params.maps)?;
        }
        Ok(())
    }

    /// Returns smaps' `THPeligible` for `v` (§12, §18.3 item 6): anonymous, no `nh`, `hg`
    /// unless the mode is `always`, and a whole PMD-aligned block inside the VMA, as
    /// `transhuge_vma_suitable(vma, vm_end - HPAGE_PMD_SIZE)` computes it: in wrapping
    /// arithmetic, so a VMA ending below the PMD size counts as eligible (seen on arm64
    /// 16 KiB pages, whose 32 MiB PMD lies above a static binary's heap).
    pub fn thp_eligible(&self, v: &Vma) -> bool {
        Self::thp_eligible_under(self.params.thp, self.params.pmd_size, v)
    }

    /// [`AddressSpace::thp_eligible`] under THP mode `thp` with PMD size `pmd`.
    fn thp_eligible_under(thp: ThpMode, pmd: u64, v: &Vma) -> bool {
        if !v.kind.is_anonymous()
            || v.vm_flags.contains(VmFlags::VM_NOHUGEPAGE)
            || v.vm_flags.intersects(VmFlags::VM_SPECIAL)
        {
            return false;
        }
        let mode_ok = match thp {
            ThpMode::Never => false,
            ThpMode::Madvise => v.vm_flags.contains(VmFlags::VM_HUGEPAGE),
            ThpMode::Always => true,
        };
        if !mode_ok || !pmd.is_power_of_two() {
            return false;
        }
        let haddr = v.vm_end.wrapping_sub(pmd) & !(pmd - 1);
        !(haddr < v.vm_start || haddr.wrapping_add(pmd) > v.vm_end)
    }

    /// Renders maps into a `String`.
    #[cfg(feature = "std")]
    pub fn maps_string(&self) -> std::string::String {
        let mut s = std::string::String::new();
        // fmt::Write for String never returns an error.
        if self.render_maps(&mut s).is_err() {
            s.clear();
        }
        s
    }

    /// Renders smaps into a `String` with all residency counters 0.
    #[cfg(feature = "std")]
    pub fn smaps_string(&self) -> std::string::String {
        let mut s = std::string::String::new();
        // fmt::Write for String never returns an error.
        if self
            .render_smaps(&mut s, |_| SmapsCounters::default())
            .is_err()
        {
            s.clear();
        }
        s
    }

    // ----- anon_vma ---------------------------------------------------------------------

    pub(super) fn fresh_anon_id(&mut self) -> AnonVmaId {
        let id = AnonVmaId(self.next_anon_id);
        self.next_anon_id = self.next_anon_id.wrapping_add(1);
        id
    }

    /// Gives the VMA containing `addr` an `anon_vma` if it has none (`anon_vma_prepare`,
    /// as on a first write fault, population or stack growth), reusing a compatible
    /// neighbour's (`find_mergeable_anon_vma`: next first, then prev); returns it.
    ///
    /// # Errors
    ///
    /// `EFAULT` if no VMA contains `addr`.
    pub fn anon_vma_prepare(&mut self, addr: u64) -> Result<AnonVmaId, Errno> {
        let v = *self.tree.vma_lookup(addr).ok_or(Errno::EFAULT)?;
        if let Some(a) = v.anon_vma {
            return Ok(a);
        }
        let ps = self.params.page_shift;
        let next = self.tree.find_vma(v.vm_end).copied();
        let prev = self.tree.find_vma_prev(v.vm_start).1.copied();
        let reuse = next
            .filter(|n| anon_vma_compatible(&v, n, ps))
            .and_then(reusable)
            .or_else(|| {
                prev.filter(|p| anon_vma_compatible(p, &v, ps))
                    .and_then(reusable)
            });
        let id = match reuse {
            Some(id) => id,
            None => self.fresh_anon_id(),
        };
        self.tree
            .update(v.vm_start, |x| x.anon_vma = Some(id))
            .map_err(tree_errno)?;
        Ok(id)
    }

    /// Simulates a user access at `addr` at the VMA level: a write to a writable private
    /// VMA prepares its `anon_vma` (§4.2); a read changes nothing (zero page).
    ///
    /// # Errors
    ///
    /// `EFAULT` where the kernel would raise SIGSEGV: no VMA (`SEGV_MAPERR`; stack growth
    /// is not modelled here) or missing permission (`SEGV_ACCERR`).
    pub fn touch(&mut self, addr: u64, write: bool) -> Result<(), Errno> {
        let v = *self.tree.vma_lookup(addr).ok_or(Errno::EFAULT)?;
        let f = v.vm_flags;
        if write {
            if !f.contains(VmFlags::VM_WRITE) {
                return Err(Errno::EFAULT);
            }
            if !f.contains(VmFlags::VM_SHARED) && v.kind.is_anonymous() {
                self.anon_vma_prepare(addr)?;
            }
        } else if !f.intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC) {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    // ----- split / merge machinery -------------------------------------------------------

    /// Returns the number of free tree slots.
    pub(super) fn free_slots(&self) -> usize {
        self.tree.capacity() - self.tree.len()
    }

    /// `split_vma`: refuses with `ENOMEM` at `map_count >= max_map_count` (or when the tree
    /// is full) and with `EINVAL` for special mappings.
    pub(super) fn split_checked(&mut self, addr: u64, enomem: Errno) -> Result<(), Errno> {
        if self.tree.len() >= self.params.max_map_count {
            return Err(enomem);
        }
        self.split_unchecked(addr, enomem)
    }

    /// `__split_vma` without the `map_count` check.
    pub(super) fn split_unchecked(&mut self, addr: u64, enomem: Errno) -> Result<(), Errno> {
        match self.tree.split(addr, self.params.page_shift) {
            Ok(()) => Ok(()),
            Err(VmaTreeError::NoSlots) => Err(enomem),
            Err(e) => Err(tree_errno(e)),
        }
    }

    /// Changes `[s, e)` of the VMA `m` to `newflags` with the kernel's merge-or-split
    /// (`vma_modify_flags`, §4.4) and returns the end of the VMA that now holds `[s, e)`.
    /// `enomem` is the error a refused split reports.
    pub(super) fn vma_modify_flags(
        &mut self,
        m: Vma,
        s: u64,
        e: u64,
        newflags: VmFlags,
        enomem: Errno,
    ) -> Result<u64, Errno> {
        let ps = self.params.page_shift;
        let mp = self.params.merge_params();
        let mut mid = m;
        mid.vm_start = s;
        mid.vm_end = e;
        mid.vm_flags = newflags;
        mid.vm_pgoff = m.vm_pgoff.wrapping_add((s - m.vm_start) >> ps);
        let prev = if s == m.vm_start {
            self.tree
                .find_vma_prev(m.vm_start)
                .1
                .copied()
                .filter(|p| p.vm_end == s)
        } else {
            None
        };
        let next = if e == m.vm_end {
            self.tree.get(e).copied()
        } else {
            None
        };
        let ml = prev.is_some_and(|p| Vma::can_merge(&p, &mid, MergeSource::Right, &mp));
        let mut mr = next.is_some_and(|n| Vma::can_merge(&mid, &n, MergeSource::Left, &mp));
        if let (true, true, Some(p), Some(n)) = (ml, mr, prev, next) {
            if let (Some(a), Some(b)) = (p.anon_vma, n.anon_vma) {
                if a != b {
                    mr = false;
                }
            }
        }
        let t = |r: Result<(), VmaTreeError>| r.map_err(tree_errno);
        match (ml, mr, prev, next) {
            (true, true, Some(p), Some(n)) => {
                let flags = p.merged_flags(&mid).union(n.vm_flags & VmFlags::VM_STICKY);
                let anon = p.anon_vma.or(mid.anon_vma).or(n.anon_vma);
                t(self.tree.remove(n.vm_start).map(|_| ()))?;
                t(self.tree.remove(m.vm_start).map(|_| ()))?;
                t(self.tree.update(p.vm_start, |x| {
                    x.vm_end = n.vm_end;
                    x.vm_flags = flags;
                    x.anon_vma = anon;
                }))?;
                Ok(n.vm_end)
            }
            (true, _, Some(p), _) => {
                let flags = p.merged_flags(&mid);
                let anon = p.anon_vma.or(mid.anon_vma);
                if e == m.vm_end {
                    t(self.tree.remove(m.vm_start).map(|_| ()))?;
                } else {
                    t(self.tree.update(m.vm_start, |x| {
                        x.vm_start = e;
                        x.vm_pgoff = m.vm_pgoff.wrapping_add((e - m.vm_start) >> ps);
                    }))?;
                }
                t(self.tree.update(p.vm_start, |x| {
                    x.vm_end = e;
                    x.vm_flags = flags;
                    x.anon_vma = anon;
                }))?;
                Ok(e)
            }
            (false, true, _, Some(n)) => {
                let flags = n.merged_flags(&mid);
                let anon = n.anon_vma.or(mid.anon_vma);
                if s == m.vm_start {
                    t(self.tree.remove(m.vm_start).map(|_| ()))?;
                } else {
                    t(self.tree.update(m.vm_start, |x| x.vm_end = s))?;
                }
                t(self.tree.update(n.vm_start, |x| {
                    x.vm_start = s;
                    x.vm_pgoff = mid.vm_pgoff;
                    x.vm_flags = flags;
                    x.anon_vma = anon;
                }))?;
                Ok(n.vm_end)
            }
            _ => {
                if s > m.vm_start {
                    self.split_checked(s, enomem)?;
                }
                if e < m.vm_end {
                    self.split_checked(e, enomem)?;
                }
                t(self.tree.update(s, |x| x.vm_flags = newflags))?;
                Ok(e)
            }
        }
    }
}

/// `reusable_anon_vma`: the neighbour's `anon_vma` unless it is a fork child.
fn reusable(v: Vma) -> Option<AnonVmaId> {
    if v.anon_vma_fork_child {
        None
    } else {
        v.anon_vma
    }
}

/// `anon_vma_compatible(a, b)`: adjacent, same backing (anonymous, or the same file: a
/// private file mapping's COW pages share an `anon_vma` across mprotect splits), flags
/// equal except R/W/X and the sticky ones, linear `pgoff`.
fn anon_vma_compatible(a: &Vma, b: &Vma, page_shift: u32) -> bool {
    let ignore = VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC | VmFlags::VM_STICKY;
    a.vm_end == b.vm_start
        && same_backing(&a.kind, &b.kind)
        && (a.vm_flags ^ b.vm_flags).difference(ignore).is_empty()
        && a.vm_pgoff
            .wrapping_add((b.vm_start - a.vm_start) >> page_shift)
            == b.vm_pgoff
}

/// `a->vm_file == b->vm_file`: both anonymous (with the same name), or both the same open
/// file.
fn same_backing(a: &VmaKind, b: &VmaKind) -> bool {
    match (a, b) {
        (
            VmaKind::File {
                dev: d1,
                ino: i1,
                file: f1,
                ..
            },
            VmaKind::File {
                dev: d2,
                ino: i2,
                file: f2,
                ..
            },
        ) => d1 == d2 && i1 == i2 && f1 == f2,
        _ => a.is_anonymous() && b.is_anonymous() && same_anon_name(a, b),
    }
}

fn same_anon_name(a: &VmaKind, b: &VmaKind) -> bool {
    match (a, b) {
        (VmaKind::AnonNamed(x), VmaKind::AnonNamed(y)) => x == y,
        (VmaKind::AnonNamed(_), _) | (_, VmaKind::AnonNamed(_)) => false,
        _ => true,
    }
}

/// Maps a tree error that should not happen after the caller's checks to an errno.
pub(super) fn tree_errno(e: VmaTreeError) -> Errno {
    match e {
        VmaTreeError::NoSlots | VmaTreeError::NoSpace => Errno::ENOMEM,
        VmaTreeError::Vma(super::vma::VmaError::Unsplittable) => Errno::EINVAL,
        _ => Errno::EINVAL,
    }
}

/// The x86 `[vsyscall]` gate VMA (outside the tree).
pub(super) fn vsyscall_vma() -> Vma {
    Vma {
        vm_start: 0xffff_ffff_ff60_0000,
        vm_end: 0xffff_ffff_ff60_1000,
        vm_flags: VmFlags::VM_EXEC,
        vm_pgoff: 0,
        anon_vma: None,
        anon_vma_fork_child: false,
        kind: VmaKind::Vsyscall,
    }
}
