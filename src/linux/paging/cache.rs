//! The page cache: file pages keyed by (inode, page index), in frames of the allocator,
//! with the mapcount and dirty flag of each page's folio (order-0 folios only, spec
//! `linux-files-mremap-fork.md` §0.4), and the [`FileStore`] that supplies file contents.

use super::*;
use crate::linux::mm::vma::{DevId, FileId, SHMEM_DEV};
use crate::linux::mm::{Errno, OpenFile};

/// Where files come from: the process's view of a file system (host files, byte slices).
pub trait FileStore {
    /// Opens `path` for mapping (read-write where allowed, else read-only), as a new open
    /// file description.
    ///
    /// # Errors
    /// The errno of `open(2)`; `ENOENT` from a store that opens nothing (the default).
    fn open(&mut self, path: &str) -> Result<OpenFile, Errno> {
        let _ = path;
        Err(Errno::ENOENT)
    }

    /// Opens the file an imported mapping names (`path` as maps printed it), if it is the
    /// inode the import saw (`dev`, `ino`); the same inode gives the same open each time.
    /// The default opens nothing: imported file mappings then read zeros and have no end.
    fn resolve(&mut self, dev: DevId, ino: u64, path: &str) -> Option<FileId> {
        let _ = (dev, ino, path);
        None
    }

    /// Returns the size in bytes of the file open as `file`, or `None` when the store does
    /// not know the file (an imported mapping): the mapping is then backed to its end and
    /// reads zeros.
    fn size(&self, file: FileId) -> Option<u64>;

    /// Fills `buf` with the bytes of `file` at `offset`, zeros past its end.
    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]);
}

/// A [`FileStore`] that knows no file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoFiles;

impl FileStore for NoFiles {
    fn size(&self, _: FileId) -> Option<u64> {
        None
    }

    fn read(&mut self, _: FileId, _: u64, buf: &mut [u8]) {
        buf.fill(0);
    }
}

/// The inode a page-cache page belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeKey {
    /// `MAJOR(s_dev)`.
    pub major: u32,
    /// `MINOR(s_dev)`.
    pub minor: u32,
    /// Inode number.
    pub ino: u64,
}

impl InodeKey {
    /// Returns the key of inode `ino` on `dev`.
    pub const fn new(dev: DevId, ino: u64) -> Self {
        InodeKey {
            major: dev.major,
            minor: dev.minor,
            ino,
        }
    }
}

/// One page of the page cache (one slot of its storage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedPage {
    inode: InodeKey,
    index: u64,
    pa: u64,
    mapcount: u32,
    dirty: bool,
    referenced: bool,
    active: bool,
}

impl CachedPage {
    /// An unused slot, for initialising storage.
    pub const EMPTY: CachedPage = CachedPage {
        inode: InodeKey {
            major: 0,
            minor: 0,
            ino: 0,
        },
        index: 0,
        pa: 0,
        mapcount: 0,
        dirty: false,
        referenced: false,
        active: false,
    };

    /// Returns how the page's device sorts against the shmem device (the cache keeps the
    /// shmem pages as one run in that order).
    #[inline]
    fn against_shmem(&self) -> core::cmp::Ordering {
        (self.inode.major, self.inode.minor).cmp(&(SHMEM_DEV.major, SHMEM_DEV.minor))
    }

    /// Returns the inode.
    pub const fn inode(&self) -> InodeKey {
        self.inode
    }

    /// Returns the page index in the file.
    pub const fn index(&self) -> u64 {
        self.index
    }

    /// Returns the frame holding the page.
    pub const fn pa(&self) -> PhysAddr {
        PhysAddr::new_truncate(self.pa)
    }

    /// Returns how many page-table entries map the page.
    pub const fn mapcount(&self) -> u32 {
        self.mapcount
    }

    /// Returns whether the folio is dirty (written through a shared mapping since it was
    /// read or cleaned).
    pub const fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Returns whether the folio is `PG_referenced` (smaps then counts every mapping of it
    /// as Referenced, whatever the access flag of the mapping says).
    pub const fn is_referenced(&self) -> bool {
        self.referenced
    }

    /// Returns whether the folio is on (or on its way to) the active LRU list.
    pub const fn is_active(&self) -> bool {
        self.active
    }

    /// `folio_mark_accessed()` of the classic LRU: the first mark sets `PG_referenced`;
    /// the next activates the folio and clears it; an active folio is referenced again
    /// by the mark after that and then stays so.
    fn mark_accessed(&mut self) {
        if !self.referenced {
            self.referenced = true;
        } else if !self.active {
            self.active = true;
            self.referenced = false;
        }
    }
}

/// The pages of the cache, sorted by (inode, index), in caller storage.
pub(super) struct PageCache<'f> {
    slots: &'f mut [CachedPage],
    len: usize,
}

impl<'f> PageCache<'f> {
    pub(super) fn new(slots: &'f mut [CachedPage]) -> Self {
        PageCache { slots, len: 0 }
    }

    #[inline]
    pub(super) fn pages(&self) -> &[CachedPage] {
        &self.slots[..self.len]
    }

    /// Returns the slot of (inode, index), or where it would go.
    pub(super) fn find(&self, inode: InodeKey, index: u64) -> Result<usize, usize> {
        self.pages()
            .binary_search_by(|p| (p.inode, p.index).cmp(&(inode, index)))
    }

    /// Returns the slot holding frame `pa`.
    pub(super) fn by_pa(&self, pa: u64) -> Option<usize> {
        self.pages().iter().position(|p| p.pa == pa)
    }

    pub(super) fn is_full(&self) -> bool {
        self.len >= self.slots.len()
    }

    /// Inserts a page at `at` (from [`PageCache::find`]); the caller checked room.
    pub(super) fn insert(&mut self, at: usize, inode: InodeKey, index: u64, pa: u64) {
        self.slots.copy_within(at..self.len, at + 1);
        self.slots[at] = CachedPage {
            inode,
            index,
            pa,
            mapcount: 0,
            dirty: false,
            referenced: false,
            active: false,
        };
        self.len += 1;
    }

    /// Removes the page in slot `i` (the caller frees its frame).
    pub(super) fn remove(&mut self, i: usize) {
        self.slots.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }

    /// Counts one more mapping of the page in slot `i`.
    pub(super) fn mapped(&mut self, i: usize) {
        let p = &mut self.slots[i];
        p.mapcount = p.mapcount.saturating_add(1);
    }

    /// Marks the folio in slot `i` dirty (`folio_mark_dirty`).
    pub(super) fn mark_dirty(&mut self, i: usize) {
        self.slots[i].dirty = true;
    }

    /// Marks the folio in frame `pa` dirty, if cached.
    pub(super) fn mark_dirty_pa(&mut self, pa: u64) {
        if let Some(i) = self.by_pa(pa) {
            self.slots[i].dirty = true;
        }
    }

    /// Returns the page in frame `pa`, if cached.
    pub(super) fn state_of(&self, pa: u64) -> Option<&CachedPage> {
        self.by_pa(pa).map(|i| &self.slots[i])
    }

    /// Marks the folio in frame `pa` accessed (`folio_mark_accessed`), if cached.
    pub(super) fn mark_accessed_pa(&mut self, pa: u64) {
        if let Some(i) = self.by_pa(pa) {
            self.slots[i].mark_accessed();
        }
    }

    /// Deactivates the folio in frame `pa` (MADV_COLD: `folio_clear_referenced`,
    /// `folio_deactivate`), if cached.
    pub(super) fn deactivate_pa(&mut self, pa: u64) {
        if let Some(i) = self.by_pa(pa) {
            self.slots[i].referenced = false;
            self.slots[i].active = false;
        }
    }

    /// Drops one mapping of the page in frame `pa`. As `zap_present_ptes` does for a folio
    /// that is not anonymous, a dirty PTE dirties the folio (`folio_mark_dirty`) and a
    /// young one marks it accessed when the mapping has recency (`accessed`: the PTE's
    /// access flag, unless the VMA is `VM_SEQ_READ` or, since 6.4, `VM_RAND_READ`).
    pub(super) fn unmapped(&mut self, pa: u64, pte_dirty: bool, accessed: bool) {
        if let Some(i) = self.by_pa(pa) {
            let p = &mut self.slots[i];
            p.mapcount = p.mapcount.saturating_sub(1);
            p.dirty |= pte_dirty;
            if accessed {
                p.mark_accessed();
            }
        }
    }
}

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Gives the page cache `storage`, one slot per file page it can hold. Without it
    /// (the default) a file fault finds no room and ends as [`Touch::OutOfMemory`].
    /// Pages already cached stay; they must fit.
    ///
    /// # Errors
    /// [`PagingError::OutOfFrames`] when `storage` cannot hold the pages cached now.
    pub fn set_page_cache(&mut self, storage: &'f mut [CachedPage]) -> Result<(), PagingError> {
        if storage.len() < self.cache.len {
            return Err(PagingError::OutOfFrames);
        }
        storage[..self.cache.len].copy_from_slice(self.cache.pages());
        let len = self.cache.len;
        self.cache = PageCache {
            slots: storage,
            len,
        };
        Ok(())
    }

    /// Returns the pages of the page cache, sorted by inode and index.
    pub fn cached_pages(&self) -> &[CachedPage] {
        self.cache.pages()
    }

    /// Returns the cache slot of page `index` of the shmem `inode`, a new zero-filled page
    /// if it is not cached yet (`shmem_get_folio`).
    pub(super) fn shmem_page(&mut self, inode: InodeKey, index: u64) -> Option<usize> {
        let at = match self.cache.find(inode, index) {
            Ok(i) => return Some(i),
            Err(at) => at,
        };
        if self.cache.is_full() {
            return None;
        }
        let pa = self.alloc(self.config.granule.page_shift() - 12)?;
        self.cache.insert(at, inode, index, pa.as_u64());
        Some(at)
    }

    /// Frees the cached pages of shmem inodes that nothing maps and `referenced` says no
    /// VMA refers to any more (the shmem object died with its last mapping).
    pub fn evict_shmem(&mut self, referenced: impl FnMut(InodeKey) -> bool) {
        // The cache is sorted by inode, and so by device first: when its first page sorts
        // after the shmem device, 0:1, it holds no shmem pages. That is the common case
        // (every mmap and munmap of a process asks), as 0:1 sorts before every other
        // device a kernel gives a file.
        if self
            .cache
            .pages()
            .first()
            .is_none_or(|p| p.against_shmem().is_gt())
        {
            return;
        }
        self.evict_shmem_run(referenced);
    }

    /// Frees what [`Paging::evict_shmem`] frees, from the run of shmem pages, found by
    /// binary search.
    #[inline(never)]
    fn evict_shmem_run(&mut self, mut referenced: impl FnMut(InodeKey) -> bool) {
        let pages = self.cache.pages();
        let start = pages.partition_point(|p| p.against_shmem().is_lt());
        let mut end = start + pages[start..].partition_point(|p| p.against_shmem().is_eq());
        if !pages[start..end].iter().any(|p| p.mapcount == 0) {
            return;
        }
        let order = self.config.granule.page_shift() - 12;
        let mut i = start;
        while i < end {
            let p = self.cache.pages()[i];
            if p.mapcount() == 0 && !referenced(p.inode()) {
                self.cache.remove(i);
                end -= 1;
                let _ = self.frames.free_run(p.pa(), order);
            } else {
                i += 1;
            }
        }
    }

    /// Frees the unmapped cached pages `first..end` of `inode` (a hole punched in a shmem
    /// object: `MADV_REMOVE`, after the caller zapped this process's mappings).
    pub fn punch_hole(&mut self, inode: InodeKey, first: u64, end: u64) {
        let order = self.config.granule.page_shift() - 12;
        let mut i = match self.cache.find(inode, first) {
            Ok(i) | Err(i) => i,
        };
        while i < self.cache.pages().len() {
            let p = self.cache.pages()[i];
            if p.inode() != inode || p.index() >= end {
                break;
            }
            if p.mapcount() == 0 {
                self.cache.remove(i);
                let _ = self.frames.free_run(p.pa(), order);
            } else {
                i += 1;
            }
        }
    }

    /// Returns whether the cached page in frame `pa` is a shmem page.
    pub(super) fn is_shmem_pa(&self, pa: u64) -> bool {
        self.cache
            .by_pa(pa)
            .is_some_and(|i| self.cache.pages()[i].against_shmem().is_eq())
    }

    /// Returns whether page `index` of `inode` is cached (what mincore reports for a page
    /// not mapped).
    pub fn is_cached(&self, inode: InodeKey, index: u64) -> bool {
        self.cache.find(inode, index).is_ok()
    }

    /// Returns the cache slot of page `index` of `inode`, reading it from `files` (as
    /// `file`) into a new frame if it is not cached yet.
    pub(super) fn cache_page(
        &mut self,
        inode: InodeKey,
        index: u64,
        file: FileId,
        files: &mut dyn FileStore,
    ) -> Option<usize> {
        let at = match self.cache.find(inode, index) {
            Ok(i) => return Some(i),
            Err(at) => at,
        };
        if self.cache.is_full() {
            return None;
        }
        let order = self.config.granule.page_shift() - 12;
        let pa = self.alloc(order)?;
        let page = self.page();
        let mut buf = [0u8; 512];
        let mut off = if self.config.data == DataMode::None {
            page
        } else {
            0
        };
        while off < page {
            files.read(file, index * page + off, &mut buf);
            if buf.iter().any(|&b| b != 0) {
                // The frame is zeroed: only data needs writing.
                for (i, w) in buf.chunks_exact(8).enumerate() {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(w);
                    let at = PhysAddr::new(pa.as_u64() + off + 8 * i as u64);
                    if self
                        .mmu
                        .memory_mut()
                        .write_u64(at, u64::from_le_bytes(word))
                        .is_err()
                    {
                        let _ = self.frames.free_run(pa, order);
                        return None;
                    }
                }
            }
            off += buf.len() as u64;
        }
        self.cache.insert(at, inode, index, pa.as_u64());
        Some(at)
    }
}
