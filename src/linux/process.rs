//! A Linux process on the simulated MMU: the VMA-level address space and the demand-paged
//! translation tables kept in sync, with the calls returning errno results, accesses ending
//! in a physical address or SIGSEGV, and maps/smaps text with real residency.

use core::fmt;

use arrayvec::ArrayVec;

use super::mm::errno::Errno;
use super::mm::file::OpenFile;
use super::mm::fork_copies_pages;
use super::mm::maps_text::SmapsCounters;
use super::mm::mman::{self, Advice, MapFlags, Prot};
use super::mm::mremap::MremapFlags;
use super::mm::ops::PageOps;
use super::mm::space::AddressSpace;
use super::mm::vma::Vma;
use super::mm::vma::{DevId, FileId, VmaKind, VmaName};
use super::mm::vmflags::VmFlags;
use super::paging::{
    FileStore, FileView, InodeKey, NoFiles, Paging, PagingInvariant, Tables, Touch, VmaView,
};
use crate::addr::VirtAddr;
use crate::arch::{AccessKind, Attributes};
use crate::mmu::MapError;
use crate::phys::PhysMemory;

/// Applies the page-level consequences of VMA changes to the page tables; population is
/// deferred until the call returns (it needs the new VMAs).
struct TableSync<'p, 'f, M: PhysMemory, const N: usize> {
    paging: &'p mut Paging<'f, M, N>,
    /// The process's list of ranges to populate after the call (kept in the process: a
    /// list moved out of every call is a copy of the whole array, on every call).
    populate: &'p mut Populate,
    error: Option<MapError>,
}

impl<M: PhysMemory, const N: usize> TableSync<'_, '_, M, N> {
    fn note(&mut self, r: Result<(), MapError>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

impl<M: PhysMemory, const N: usize> PageOps for TableSync<'_, '_, M, N> {
    fn unmapped(&mut self, start: u64, end: u64, flags: VmFlags) {
        if self.paging.config().unmap_drains {
            // unmap_region: lru_add_drain() before the zap.
            let r = self.paging.lru_add_drain();
            self.note(r);
        }
        let recency = !flags.intersects(self.paging.config().no_recency);
        let r = self.paging.zap_recency(start, end, recency);
        self.note(r);
    }

    fn moved(&mut self, old: u64, new: u64, len: u64) {
        let r = self.paging.move_range(old, new, len);
        self.note(r);
    }

    fn protection_changed(&mut self, start: u64, end: u64, new_flags: VmFlags) {
        let r = self.paging.change_protection(start, end, new_flags);
        self.note(r);
    }

    fn zap(&mut self, start: u64, end: u64, flags: VmFlags) {
        if self.paging.config().unmap_drains {
            // zap_page_range_single: lru_add_drain() before the zap.
            let r = self.paging.lru_add_drain();
            self.note(r);
        }
        let recency = !flags.intersects(self.paging.config().no_recency);
        let r = self.paging.zap_recency(start, end, recency);
        self.note(r);
    }

    fn populate(&mut self, start: u64, end: u64, write: bool) {
        if self.populate.try_push((start, end, write)).is_err() {
            // More ranges than one call produces in practice: merge into the last.
            if let Some(last) = self.populate.last_mut() {
                last.1 = last.1.max(end);
                last.2 |= write;
            }
        }
    }

    fn advise(&mut self, start: u64, end: u64, advice: Advice) {
        if advice == mman::MADV_FREE {
            let r = self.paging.mark_clean(start, end);
            self.note(r);
        } else if advice == mman::MADV_COLD {
            let r = self.paging.deactivate(start, end);
            self.note(r);
        } else if advice == mman::MADV_PAGEOUT || advice == mman::MADV_WILLNEED {
            // Both run after lru_add_drain(); reclaim itself is not modelled.
            let r = self.paging.lru_add_drain();
            self.note(r);
        }
    }
}

/// Returns whether a VMA of `space` maps the shmem inode `inode`.
pub(crate) fn references_shmem(space: &AddressSpace<'_>, inode: InodeKey) -> bool {
    space.iter().any(|v| {
        matches!(v.kind, VmaKind::File { dev, ino, .. }
            if dev.major == inode.major && dev.minor == inode.minor && ino == inode.ino)
    })
}

/// Returns the page-cache view of a file or shmem VMA (`None` for anonymous memory).
fn file_view(v: &Vma) -> Option<FileView> {
    match v.kind {
        VmaKind::File { dev, ino, file, .. } => Some(FileView {
            file,
            dev,
            ino,
            pgoff: v.vm_pgoff,
            shmem: !v.kind.is_fs_file(),
        }),
        _ => None,
    }
}

/// The ranges a call asked to populate: `(start, end, write)`.
type Populate = ArrayVec<(u64, u64, bool), 8>;

/// A process: address space plus demand-paged tables on the simulated MMU.
///
/// # Example
///
/// The seed notes' 100 MiB anonymous mapping on an arm64 6.1 process: one `rw-p` line in
/// maps, frames only on first touch, and a NULL store ending in SIGSEGV.
///
/// ```
/// use pagesim::arch::AccessKind;
/// use pagesim::linux::mm::vma_tree::VmaSlot;
/// use pagesim::linux::mm::{mman, AddressSpace, LayoutParams};
/// use pagesim::linux::paging::{Paging, PagingConfig, SegvCode, Touch};
/// use pagesim::linux::process::Process;
/// use pagesim::mmu::{Contents, FrameAllocator};
/// use pagesim::phys::SliceMemory;
/// use pagesim::{PhysAddr, VirtAddr};
///
/// let params = LayoutParams::arm64_6_1();
/// let mut slots = [VmaSlot::EMPTY; 64];
/// let space = AddressSpace::fresh_process(&mut slots, params, "/home/user/main")?;
/// let mut ram = vec![0u8; 16 << 20];
/// let mut words = vec![0u64; FrameAllocator::storage_words(4096)];
/// let base = PhysAddr::new(0x4000_0000);
/// let frames = FrameAllocator::new(base, 16 << 20, &mut words, Contents::Zeroed)?;
/// let paging = Paging::new(PagingConfig::for_layout(&params), SliceMemory::new(base, &mut ram), frames)?;
/// let mut p: Process<'_, '_, _, 64> = Process::new(space, paging);
///
/// let rw = mman::PROT_READ | mman::PROT_WRITE;
/// let a = p.mmap(0, 100 << 20, rw, mman::MAP_PRIVATE | mman::MAP_ANONYMOUS)?;
/// let mut maps = String::new();
/// p.write_maps(&mut maps)?;
/// assert!(maps.contains(&format!("{a:x}-{:x} rw-p 00000000 00:00 0 \n", a + (100 << 20))));
/// assert_eq!(p.paging().residency(a, a + (100 << 20))?.rss, 0); // nothing touched yet
///
/// assert!(matches!(p.access(VirtAddr::new(a + 0x1234), AccessKind::Write), Touch::Done(_)));
/// assert_eq!(p.paging().residency(a, a + (100 << 20))?.rss, 4096);
///
/// match p.access(VirtAddr::new(0), AccessKind::Write) {
///     Touch::Segv(s) => assert_eq!(s.code, SegvCode::MapErr),
///     t => panic!("{t:?}"),
/// }
/// p.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Process<'a, 'f, M: PhysMemory, const N: usize> {
    space: AddressSpace<'a>,
    paging: Paging<'f, M, N>,
    files: Files<'a>,
    /// Other processes share the machine (a [`crate::linux::system::System`] frees the
    /// shmem objects they all let go of).
    in_system: bool,
    /// What the current call asked to populate (see [`TableSync`]).
    pending: Populate,
}

/// The process's [`FileStore`], if it was given one.
struct Files<'a>(Option<&'a mut dyn FileStore>);

impl fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Files(..)"
        } else {
            "NoFiles"
        })
    }
}

impl<'a, 'f, M: PhysMemory, const N: usize> Process<'a, 'f, M, N> {
    /// Joins an address space and (empty) paging into a process.
    pub fn new(space: AddressSpace<'a>, paging: Paging<'f, M, N>) -> Self {
        Process {
            space,
            paging,
            files: Files(None),
            in_system: false,
            pending: ArrayVec::new(),
        }
    }

    /// Returns the address space, for the layers that build one (exec).
    pub(crate) fn space_mut(&mut self) -> &mut AddressSpace<'a> {
        &mut self.space
    }

    /// Gives the paging one map count per frame (see [`Paging::set_share_counts`]), which
    /// a [`crate::linux::system::System`] needs to fork.
    ///
    /// # Errors
    /// [`crate::linux::paging::PagingError::OutOfFrames`] for too little storage.
    pub fn set_share_counts(
        &mut self,
        storage: &'f mut [u16],
    ) -> Result<(), crate::linux::paging::PagingError> {
        self.paging.set_share_counts(storage)
    }

    /// Frees the pages of shmem objects no VMA of this process (nor, as `elsewhere` says,
    /// of another) refers to any more.
    pub(crate) fn evict_shmem(&mut self, mut elsewhere: impl FnMut(InodeKey) -> bool) {
        let space = &self.space;
        self.paging
            .evict_shmem(|inode| references_shmem(space, inode) || elsewhere(inode));
    }

    /// Marks the process as one of several on its machine.
    pub(crate) fn join_system(&mut self) {
        self.in_system = true;
    }

    /// Returns the paging (the machine), for the layer that runs several processes.
    pub(crate) fn paging_mut(&mut self) -> &mut Paging<'f, M, N> {
        &mut self.paging
    }

    /// Makes `space` and `tables` (another process's) the running ones, and leaves the
    /// ones that ran in them.
    pub(crate) fn swap_mm(&mut self, space: &mut AddressSpace<'a>, tables: &mut Tables) {
        core::mem::swap(&mut self.space, space);
        self.paging.swap_tables(tables);
    }

    /// Copies into the child's `tables` the page-table entries `fork` copies (see
    /// [`fork_copies_pages`]).
    pub(crate) fn fork_tables(&mut self, child: &mut Tables) -> Result<(), MapError> {
        for v in self.space.iter() {
            if fork_copies_pages(v) {
                self.paging
                    .fork_range(child, v.vm_start, v.vm_end, v.vm_flags)?;
            }
        }
        Ok(())
    }

    /// Drops every mapping as `exit_mmap` does: the folio batches drain, then every VMA
    /// goes with its pages (pages other processes map stay theirs).
    pub(crate) fn exit_mmap(&mut self) -> Result<(), Errno> {
        self.paging.lru_add_drain().map_err(|_| Errno::ENOMEM)?;
        self.sync_call(|space, ops| {
            space.drop_all(ops);
            Ok(())
        })
    }

    /// Runs a VMA-level change with the page tables kept in step.
    pub(crate) fn sync_call(
        &mut self,
        call: impl FnOnce(&mut AddressSpace<'a>, &mut dyn PageOps) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        self.with_sync(false, call)?
    }

    /// Writes `data` into simulated physical memory at `pa` (word by word, reading the
    /// words it covers in part).
    pub(crate) fn write_phys(
        &mut self,
        pa: u64,
        data: &[u8],
    ) -> Result<(), crate::phys::MemoryError> {
        if self.paging.config().data == super::paging::DataMode::None {
            return Ok(());
        }
        let mem = self.paging.memory_mut();
        let mut i = 0usize;
        while i < data.len() {
            let a = pa + i as u64;
            let word = a & !7;
            let lo = (a - word) as usize;
            let n = (8 - lo).min(data.len() - i);
            let wpa = crate::addr::PhysAddr::new(word);
            let mut bytes = if n == 8 {
                [0u8; 8]
            } else {
                mem.read_u64(wpa)?.to_le_bytes()
            };
            bytes[lo..lo + n].copy_from_slice(&data[i..i + n]);
            mem.write_u64(wpa, u64::from_le_bytes(bytes))?;
            i += n;
        }
        Ok(())
    }

    /// Gives the process the store its file mappings read from (see [`FileStore`]);
    /// without one, file pages read zeros and no file has an end. Imported file VMAs are
    /// given the files their maps lines name, where the store finds the same inode.
    pub fn set_files(&mut self, files: &'a mut dyn FileStore) {
        // Imported file VMAs (no open file of their own) get the file their maps line
        // names, where the store finds that inode (see FileStore::resolve).
        let mut pending: ArrayVec<(u64, DevId, u64, VmaName), 64> = ArrayVec::new();
        let mut start = 0;
        loop {
            pending.clear();
            for v in self.space.iter().filter(|v| v.vm_start >= start) {
                if let VmaKind::File {
                    dev,
                    ino,
                    path,
                    file: FileId(0),
                } = v.kind
                {
                    if v.kind.is_fs_file()
                        && pending.try_push((v.vm_start, dev, ino, path)).is_err()
                    {
                        break;
                    }
                }
            }
            let Some(&(last, ..)) = pending.last() else {
                break;
            };
            for (s, dev, ino, path) in &pending {
                let shown = path
                    .as_str()
                    .strip_suffix(" (deleted)")
                    .unwrap_or(path.as_str());
                if let Some(id) = files.resolve(*dev, *ino, shown) {
                    self.space.set_file(*s, id);
                }
            }
            start = last + 1;
        }
        self.files = Files(Some(files));
    }

    /// Opens `path` through the process's [`FileStore`] for [`Process::mmap_file`].
    ///
    /// # Errors
    /// The store's errno; `ENOENT` without a store.
    pub fn open(&mut self, path: &str) -> Result<OpenFile, Errno> {
        match &mut self.files.0 {
            Some(f) => f.open(path),
            None => Err(Errno::ENOENT),
        }
    }

    /// Gives the page cache its storage (see [`Paging::set_page_cache`]).
    ///
    /// # Errors
    /// [`super::paging::PagingError`] when `storage` cannot hold the pages cached now.
    pub fn set_page_cache(
        &mut self,
        storage: &'f mut [super::paging::CachedPage],
    ) -> Result<(), super::paging::PagingError> {
        self.paging.set_page_cache(storage)
    }

    /// Returns the address space.
    pub fn space(&self) -> &AddressSpace<'a> {
        &self.space
    }

    /// Returns the paging state (MMU, tables, frames, counters).
    pub fn paging(&self) -> &Paging<'f, M, N> {
        &self.paging
    }

    /// Runs one address-space call with a [`TableSync`] that keeps the page tables in step,
    /// then faults in what it asked to populate. Returns the call's result, or `ENOMEM`
    /// when the page tables could not be brought in line with the VMAs. That cannot happen
    /// by construction (splits use the deposited tables, and [`Paging::new`] checked that
    /// memory backs every frame), and `tests/exhaustion.rs` holds every call to it with no
    /// frame left; but if it ever does, the caller hears of it.
    pub(crate) fn with_sync<R>(
        &mut self,
        populate_errors: bool,
        call: impl FnOnce(&mut AddressSpace<'a>, &mut dyn PageOps) -> R,
    ) -> Result<R, Errno> {
        self.pending.clear();
        let mut s = TableSync {
            paging: &mut self.paging,
            populate: &mut self.pending,
            error: None,
        };
        let r = call(&mut self.space, &mut s);
        if s.error.is_some() {
            return Err(Errno::ENOMEM);
        }
        if !self.in_system {
            self.evict_shmem(|_| false);
        }
        for i in 0..self.pending.len() {
            let (start, end, write) = self.pending[i];
            let p = self.populate(start, end, write, true);
            // MAP_POPULATE (mm_populate) ignores failures, as the kernel does; the
            // MADV_POPULATE_* advices report them.
            if populate_errors {
                p?;
            }
        }
        Ok(r)
    }

    /// Faults in `[start, end)` like MAP_POPULATE / MADV_POPULATE_*: write faults on
    /// writable private mappings, read faults elsewhere; inaccessible pages are skipped.
    ///
    /// # Errors
    /// `ENOMEM` when a page could not be had; `EFAULT` at a file page past the end of its
    /// file.
    fn populate(
        &mut self,
        start: u64,
        end: u64,
        write: bool,
        drain_first: bool,
    ) -> Result<(), Errno> {
        let page = self.paging.config().granule.page_size();
        let mut drained = !drain_first;
        let mut a = start;
        while a < end {
            let kind = match self.space.vma_lookup(a) {
                Some(v) if write && v.vm_flags.contains(VmFlags::VM_WRITE) => AccessKind::Write,
                Some(v)
                    if v.vm_flags
                        .intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC) =>
                {
                    AccessKind::Read
                }
                _ => {
                    a += page;
                    continue;
                }
            };
            if !drained {
                // MAP_POPULATE's get_user_pages on an accessible VMA drains the folio
                // batches first (observed: a PROT_NONE MAP_POPULATE does not);
                // MADV_POPULATE_* drains after (see Process::madvise).
                drained = true;
                self.paging.lru_add_drain().map_err(|_| Errno::ENOMEM)?;
            }
            match self.gup_touch(VirtAddr::new(a), kind) {
                Touch::OutOfMemory { .. } => return Err(Errno::ENOMEM),
                // A file page past the end of the file: get_user_pages fails with EFAULT.
                Touch::Bus(_) => return Err(Errno::EFAULT),
                _ => {}
            }
            a += page;
        }
        Ok(())
    }

    /// Splits blocks that straddle a VMA boundary at `start` or `end`, as the kernel
    /// splits a huge PMD when it splits a VMA.
    ///
    /// # Errors
    /// `ENOMEM` if a split could not be made (not expected: it uses the deposited table).
    fn split_blocks_at_boundaries(&mut self, start: u64, end: u64) -> Result<(), Errno> {
        for a in [start, end] {
            if self.space.vma_lookup(a).is_some_and(|v| v.vm_start == a) {
                self.paging.split_block_at(a).map_err(|_| Errno::ENOMEM)?;
            }
        }
        Ok(())
    }

    /// `mmap` of anonymous memory; MAP_POPULATE faults the range in.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn mmap(&mut self, addr: u64, len: u64, prot: Prot, flags: MapFlags) -> Result<u64, Errno> {
        self.with_sync(false, |space, ops| {
            space.mmap_with(addr, len, prot, flags, 0, ops)
        })?
    }

    /// `mmap` of the open file `file` at byte `offset`; MAP_POPULATE faults the range in.
    ///
    /// # Errors
    /// The kernel's errno for the call (see [`AddressSpace::mmap_file`]).
    pub fn mmap_file(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        file: &OpenFile,
        offset: u64,
    ) -> Result<u64, Errno> {
        self.with_sync(false, |space, ops| {
            space.mmap_file(addr, len, prot, flags, file, offset, ops)
        })?
    }

    /// `mremap`: returns the mapping's address now; its pages move with their page-table
    /// entries.
    ///
    /// # Errors
    /// The kernel's errno for the call (see [`AddressSpace::mremap_with`]); `ENOMEM` also
    /// when too few frames are free for the tables a move needs (checked before anything
    /// changes).
    pub fn mremap(
        &mut self,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: MremapFlags,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        let need =
            self.paging.move_tables_needed(old_len.min(new_len)) + self.paging.deposited_tables();
        if (self.paging.frames().free_frames() as u64) < need {
            return Err(Errno::ENOMEM);
        }
        self.with_sync(false, |space, ops| {
            space.mremap_with(addr, old_len, new_len, flags, new_addr, ops)
        })?
    }

    /// `munmap`.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        let r = self.with_sync(false, |space, ops| space.munmap_with(addr, len, ops))?;
        if r.is_err() {
            // A munmap refused at a special mapping leaves the first VMA split (as the
            // kernel does): a THP across the new boundary is split with it.
            self.split_blocks_at_boundaries(addr, addr)?;
        }
        r
    }

    /// `mprotect`.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        let r = self.with_sync(false, |space, ops| {
            space.mprotect_with(addr, len, prot, ops)
        })?;
        let page = self.paging.config().granule.page_size();
        self.split_blocks_at_boundaries(
            addr,
            addr.saturating_add(len).saturating_add(page - 1) & !(page - 1),
        )?;
        r
    }

    /// `madvise`.
    ///
    /// # Errors
    /// The kernel's errno for the call.
    pub fn madvise(&mut self, addr: u64, len: u64, advice: Advice) -> Result<(), Errno> {
        let populate = advice == mman::MADV_POPULATE_READ || advice == mman::MADV_POPULATE_WRITE;
        // The VMA flags change first; the population that MADV_POPULATE_* asks for comes
        // after the boundary splits.
        self.pending.clear();
        let mut s = TableSync {
            paging: &mut self.paging,
            populate: &mut self.pending,
            error: None,
        };
        let r = self.space.madvise_with(addr, len, advice, &mut s);
        if s.error.is_some() {
            return Err(Errno::ENOMEM);
        }
        let page = self.paging.config().granule.page_size();
        self.split_blocks_at_boundaries(
            addr,
            addr.saturating_add(len).saturating_add(page - 1) & !(page - 1),
        )?;
        let mut populated = Ok(());
        for i in 0..self.pending.len() {
            let (start, end, write) = self.pending[i];
            populated = self.populate(start, end, write, false);
            if populated.is_err() {
                break;
            }
        }
        if populate {
            // Observed on 6.18: MADV_POPULATE_* drains the folio batches even when it
            // fails, after touching the pages: a lazy-free page it touches ends neither
            // referenced (the move clears PG_referenced) nor lazy-free if written.
            self.paging.lru_add_drain().map_err(|_| Errno::ENOMEM)?;
        }
        populated?;
        if advice == mman::MADV_REMOVE && r.is_ok() {
            self.punch_shmem(addr, addr.saturating_add(len));
        }
        r
    }

    /// Punches the hole `MADV_REMOVE` makes in the shmem objects `[start, end)` maps: their
    /// pages there are freed (the next access finds a new zero-filled page). Pages that
    /// another process still maps stay (the kernel would unmap them there too).
    fn punch_shmem(&mut self, start: u64, end: u64) {
        let page = self.paging.config().granule.page_size();
        let mut a = start;
        while a < end {
            let Some(v) = self.space.vma_lookup(a) else {
                a = self
                    .space
                    .tree()
                    .find_vma(a)
                    .map_or(end, |v| v.vm_start.max(a + page));
                continue;
            };
            let (s, e) = (a.max(v.vm_start), end.min(v.vm_end));
            if let Some(fv) = file_view(v).filter(|f| f.shmem) {
                let first = fv.pgoff + (s - v.vm_start) / page;
                let last = fv.pgoff + (e - v.vm_start).div_ceil(page);
                self.paging
                    .punch_hole(InodeKey::new(fv.dev, fv.ino), first, last);
            }
            a = v.vm_end;
        }
    }

    /// `brk`: returns the new (or unchanged) break.
    ///
    /// # Errors
    /// `ENOMEM` only when the page tables could not be brought in line with the VMAs (see
    /// [`Process::mmap`]); a refused brk is not an error, it returns the old break.
    pub fn brk(&mut self, addr: u64) -> Result<u64, Errno> {
        self.with_sync(false, |space, ops| space.brk_with(addr, ops))
    }

    /// `mincore`: writes one byte per page of `[addr, addr + len)` into `out` (1 where a
    /// page is mapped, the shared zero page included, or where a file mapping's page is in
    /// the page cache) and returns how many were written.
    ///
    /// # Errors
    /// `EINVAL` for an unaligned `addr`; `ENOMEM` when the range wraps or any page of it
    /// (`len` rounded up) lies outside every VMA; `EFAULT` when `out` is too short.
    pub fn mincore(&self, addr: u64, len: u64, out: &mut [u8]) -> Result<usize, Errno> {
        let page = self.paging.config().granule.page_size();
        if !addr.is_multiple_of(page) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let end = addr
            .checked_add(len)
            .and_then(|e| e.checked_add(page - 1))
            .map(|e| e & !(page - 1))
            .ok_or(Errno::ENOMEM)?;
        let mut a = addr;
        while a < end {
            match self.space.vma_lookup(a) {
                Some(v) => a = v.vm_end,
                None => return Err(Errno::ENOMEM),
            }
        }
        let pages = ((end - addr) / page) as usize;
        if out.len() < pages {
            return Err(Errno::EFAULT);
        }
        let n = self
            .paging
            .mincore(addr, end - addr, out)
            .map_err(|_| Errno::ENOMEM)?;
        // A file page not mapped here is reported from the page cache (mincore_page): the
        // model keeps every page before the end of the file cached, as fault-around does;
        // a shmem page is cached once something touched it, until its object dies.
        let mut a = addr;
        while a < end {
            let Some(v) = self.space.vma_lookup(a) else {
                break;
            };
            let v_end = v.vm_end.min(end);
            if let Some(fv) = file_view(v) {
                let size = self.files.0.as_ref().and_then(|f| f.size(fv.file));
                let inode = InodeKey::new(fv.dev, fv.ino);
                while a < v_end {
                    let index = fv.pgoff + (a - v.vm_start) / page;
                    let cached = if fv.shmem {
                        self.paging.is_cached(inode, index)
                    } else {
                        size.is_none_or(|s| index < s.div_ceil(page))
                    };
                    if cached {
                        out[((a - addr) / page) as usize] = 1;
                    }
                    a += page;
                }
            }
            a = v_end;
        }
        Ok(n)
    }

    /// Performs one user access through the MMU, taking page faults as the kernel does.
    pub fn access(&mut self, va: VirtAddr, kind: AccessKind) -> Touch {
        self.touch(va, kind, false)
    }

    /// Touches a page as get_user_pages does for population (see [`Paging::gup_touch`]).
    fn gup_touch(&mut self, va: VirtAddr, kind: AccessKind) -> Touch {
        self.touch(va, kind, true)
    }

    fn touch(&mut self, va: VirtAddr, kind: AccessKind, gup: bool) -> Touch {
        let space = &mut self.space;
        let before = *self.paging.stats();
        // Whether the VMA the handler was last given is private and has no anon_vma yet.
        let mut needs_anon_vma = false;
        // Called only when the access faults. A fault below a grows-down VMA grows it first
        // (expand_stack); if that is refused, the access finds no VMA and gets SEGV_MAPERR.
        let mut find = |a: u64| {
            let found = match space.vma_lookup_hinted(a) {
                Some(found) => Some(found),
                None => {
                    // The kernel ignores a refused expansion here too: the lookup fails.
                    let _refused = space.expand_stack(a).is_err();
                    space.vma_lookup_hinted(a)
                }
            };
            needs_anon_vma = false;
            let (v, thp) = found?;
            needs_anon_vma = v.anon_vma.is_none() && !v.vm_flags.contains(VmFlags::VM_SHARED);
            Some(VmaView {
                start: v.vm_start,
                end: v.vm_end,
                flags: v.vm_flags,
                thp: thp && v.kind.file().is_none(),
                file: file_view(v),
            })
        };
        let mut none = NoFiles;
        let files: &mut dyn FileStore = match &mut self.files.0 {
            Some(f) => *f,
            None => &mut none,
        };
        let t = if gup {
            self.paging.gup_touch(va, kind, &mut find, files)
        } else {
            self.paging.access(va, kind, &mut find, files)
        };
        let after = self.paging.stats();
        if needs_anon_vma && (after.anon_pages != before.anon_pages || after.thp != before.thp) {
            // A private page was allocated: the VMA gets its anon_vma (which decides merges).
            // Shared anonymous (shmem) pages are page cache, with no anon_vma. The VMA is
            // the one the handler was given last: nothing changes the VMAs after that.
            let addr = va.as_u64() & 0x00ff_ffff_ffff_ffff;
            if self.space.anon_vma_prepare(addr).is_err() {
                // The fault's anon_vma_prepare failed: VM_FAULT_OOM.
                return Touch::OutOfMemory { addr: va };
            }
        }
        t
    }

    /// Walks the tables for an EL0 access without the TLB or fault handling, recording
    /// the descriptor read at each level.
    pub fn paging_trace(
        &mut self,
        va: VirtAddr,
        kind: AccessKind,
    ) -> (
        Result<crate::arch::Translation, crate::arch::Fault>,
        ArrayVec<(crate::addr::PhysAddr, u64), 5>,
    ) {
        self.paging.trace(va, kind)
    }

    /// Returns the smaps counters of a VMA from the page tables.
    ///
    /// # Errors
    /// [`MapError`] if the tables cannot be read.
    pub fn counters(
        &self,
        start: u64,
        end: u64,
        flags: VmFlags,
        thp_eligible: bool,
    ) -> Result<SmapsCounters, MapError> {
        let r = self.paging.residency(start, end)?;
        let kb = |b: u64| b >> 10;
        // Shared anonymous memory (shmem) is not Anonymous; nor are page-cache pages.
        let anon = !flags.contains(VmFlags::VM_SHARED);
        Ok(SmapsCounters {
            rss: kb(r.rss),
            pss: kb(r.pss()),
            pss_dirty: kb(r.pss_dirty()),
            shared_clean: kb(r.shared_clean),
            shared_dirty: kb(r.shared_dirty),
            private_clean: kb(r.private_clean),
            private_dirty: kb(r.private_dirty),
            referenced: kb(r.referenced),
            anonymous: if anon { kb(r.anonymous) } else { 0 },
            lazy_free: if anon { kb(r.lazy_free) } else { 0 },
            anon_huge_pages: kb(r.anon_huge),
            locked: if flags.contains(VmFlags::VM_LOCKED) {
                kb(r.rss)
            } else {
                0
            },
            thp_eligible,
            ..SmapsCounters::default()
        })
    }

    /// Checks that VMAs and page tables agree: the VMA tree is sound, every leaf lies
    /// inside one VMA whose flags allow what the leaf grants (write, EL0 access, execute),
    /// and the paging invariants of [`Paging::validate`] hold. Property tests and fuzz
    /// targets call it after every step. In a [`crate::linux::system::System`] the frames
    /// are accounted over every process, which only
    /// [`crate::linux::system::System::validate`] sees: here the VMAs and leaves are checked.
    ///
    /// # Errors
    /// [`Invariant`] naming the first thing that does not hold.
    pub fn validate(&self) -> Result<(), Invariant> {
        if self.in_system {
            return self.validate_mappings();
        }
        self.validate_with([])
    }

    /// Checks what [`Process::validate`] checks, with the frames also mapped by the
    /// tables of processes not running (`others`) accounted for.
    ///
    /// # Errors
    /// [`Invariant`] naming the first thing that does not hold.
    pub fn validate_with<'t>(
        &self,
        others: impl IntoIterator<Item = &'t Tables>,
    ) -> Result<(), Invariant> {
        self.validate_mappings()?;
        self.paging.validate_with(others).map_err(Invariant::Paging)
    }

    /// Checks the VMA tree, and that every leaf lies in a VMA that allows what the leaf
    /// allows.
    pub(crate) fn validate_mappings(&self) -> Result<(), Invariant> {
        self.space.validate().map_err(|_| Invariant::VmaTree)?;
        let mut bad = None;
        let user = 1u64 << self.paging.config().va_bits;
        self.paging
            .mapper()
            .for_each_leaf(self.paging.mmu().memory(), VirtAddr::new(0), user, |l| {
                let start = l.va.as_u64();
                let end = start + (1u64 << l.size_log2);
                let d = l.descriptor.bits();
                let ok = match self.space.vma_lookup(start) {
                    Some(v) if v.vm_end >= end => {
                        let f = v.vm_flags;
                        let writable =
                            d & Attributes::AP_RO.bits() == 0 || d & Attributes::DBM.bits() != 0;
                        let el0 = d & Attributes::AP_EL0.bits() != 0;
                        let exec = d & Attributes::UXN.bits() == 0;
                        (!writable || f.contains(VmFlags::VM_WRITE))
                            && (!el0
                                || f.intersects(
                                    VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC,
                                ))
                            && (!exec || f.contains(VmFlags::VM_EXEC))
                    }
                    _ => false,
                };
                if !ok {
                    bad = Some(Invariant::Leaf {
                        va: l.va,
                        descriptor: d,
                    });
                }
                ok
            })
            .map_err(|e| Invariant::Paging(PagingInvariant::Tables(e)))?;
        bad.map_or(Ok(()), Err)
    }

    /// Writes /proc/PID/maps into `w`, byte for byte as the kernel prints it.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write_maps<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        self.space.render_maps(w)
    }

    /// Writes /proc/PID/smaps into `w`, with residency from the page tables.
    ///
    /// # Errors
    /// [`SmapsError::Format`] for the writer's error; [`SmapsError::Tables`] if the page
    /// tables cannot be read (not expected: see [`Paging::new`]).
    pub fn write_smaps<W: fmt::Write>(&self, w: &mut W) -> Result<(), SmapsError> {
        let mut tables = Ok(());
        let written = self.space.render_smaps(w, |v| {
            match self.counters(v.vm_start, v.vm_end, v.vm_flags, self.space.thp_eligible(v)) {
                Ok(c) => c,
                Err(e) => {
                    tables = Err(e);
                    SmapsCounters::default()
                }
            }
        });
        tables.map_err(SmapsError::Tables)?;
        written.map_err(|_| SmapsError::Format)
    }

    /// Returns /proc/PID/maps.
    #[cfg(feature = "std")]
    pub fn maps_string(&self) -> std::string::String {
        self.space.maps_string()
    }

    /// Returns /proc/PID/smaps with residency from the page tables.
    ///
    /// # Errors
    /// [`MapError`] if the page tables cannot be read (not expected: see [`Paging::new`]).
    #[cfg(feature = "std")]
    pub fn smaps_string(&self) -> Result<std::string::String, MapError> {
        let mut s = std::string::String::new();
        match self.write_smaps(&mut s) {
            Ok(()) => Ok(s),
            Err(SmapsError::Tables(e)) => Err(e),
            // Writing to a String never fails.
            Err(SmapsError::Format) => Ok(s),
        }
    }
}

/// A process invariant that does not hold (see [`Process::validate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// The VMA tree is corrupted.
    VmaTree,
    /// A paging invariant.
    Paging(PagingInvariant),
    /// A leaf outside every VMA, or granting more than its VMA allows.
    Leaf {
        /// The leaf's first address.
        va: VirtAddr,
        /// Its descriptor.
        descriptor: u64,
    },
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invariant::VmaTree => f.write_str("the VMA tree is corrupted"),
            Invariant::Paging(p) => write!(f, "{p}"),
            Invariant::Leaf { va, descriptor } => write!(
                f,
                "leaf at {:#x} ({descriptor:#x}) is outside a VMA that allows it",
                va.as_u64()
            ),
        }
    }
}

impl core::error::Error for Invariant {}

/// Returned when smaps cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmapsError {
    /// The writer failed.
    Format,
    /// The page tables could not be read.
    Tables(MapError),
}

impl fmt::Display for SmapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmapsError::Format => f.write_str("the writer failed"),
            SmapsError::Tables(e) => write!(f, "page tables: {e}"),
        }
    }
}

impl core::error::Error for SmapsError {}
