//! `mmap` of a file (spec `linux-files-mremap-fork.md` §A.1–§A.4): the open file as
//! `do_mmap` sees it, the flag rules of its `MAP_SHARED`/`MAP_PRIVATE` switch, the
//! placement of file mappings (`thp_get_unmapped_area`, which ext4 and most file systems
//! use), and the file VMA that `mmap_region` merges or inserts.

use super::errno::Errno;
use super::mman::*;
use super::ops::PageOps;
use super::space::AddressSpace;
use super::vma::{DevId, FileId, Vma, VmaKind, VmaName};
use super::vma_tree::Located;
use super::vmflags::VmFlags;

/// An open file description as `mmap` needs it: which open it is (mappings of two opens
/// of one inode never merge), the inode and the name maps prints, and the access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFile {
    /// The open (`struct file *`); give every `open()` its own.
    pub id: FileId,
    /// The device of the file system (`s_dev`), as maps prints it.
    pub dev: DevId,
    /// The inode number.
    pub ino: u64,
    /// The path as maps prints it.
    pub path: VmaName,
    /// Opened for reading (`FMODE_READ`).
    pub readable: bool,
    /// Opened for writing (`FMODE_WRITE`).
    pub writable: bool,
}

/// `LEGACY_MAP_MASK`: the flags `MAP_SHARED_VALIDATE` accepts on a file without `MAP_SYNC`
/// support.
pub const LEGACY_MAP_MASK: MapFlags = MAP_SHARED
    .union(MAP_PRIVATE)
    .union(MAP_FIXED)
    .union(MAP_ANONYMOUS)
    .union(MAP_DENYWRITE)
    .union(MAP_EXECUTABLE)
    .union(MAP_UNINITIALIZED)
    .union(MAP_GROWSDOWN)
    .union(MAP_LOCKED)
    .union(MAP_NORESERVE)
    .union(MAP_POPULATE)
    .union(MAP_NONBLOCK)
    .union(MAP_STACK)
    .union(MAP_HUGETLB);

/// `MAX_LFS_FILESIZE` on 64-bit kernels.
const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// The file half of `do_mmap` after the address is chosen: `file_mmap_ok`, then the
/// `MAP_SHARED` / `MAP_SHARED_VALIDATE` / `MAP_PRIVATE` switch. Returns the VMA flags.
///
/// # Errors
/// `EOVERFLOW` past the largest file offset; `EOPNOTSUPP` for flags `MAP_SHARED_VALIDATE`
/// does not know; `EACCES` for a shared writable mapping of a file not open for writing,
/// or any mapping of a file not open for reading; `EINVAL` for `MAP_GROWSDOWN` or another
/// mapping type.
pub(super) fn file_vm_flags(
    f: &OpenFile,
    pgoff: u64,
    len: u64,
    prot: Prot,
    flags: MapFlags,
    mut vm_flags: VmFlags,
) -> Result<VmFlags, Errno> {
    // file_mmap_ok for a regular file.
    if len > MAX_LFS_FILESIZE || pgoff > (MAX_LFS_FILESIZE - len) >> 12 {
        return Err(Errno::EOVERFLOW);
    }
    let kind = flags & MAP_TYPE;
    if kind == MAP_SHARED || kind == MAP_SHARED_VALIDATE {
        let checked = if kind == MAP_SHARED {
            flags & LEGACY_MAP_MASK
        } else {
            flags
        };
        if !(checked - LEGACY_MAP_MASK).is_empty() {
            return Err(Errno::EOPNOTSUPP);
        }
        if prot.intersects(PROT_WRITE) && !f.writable {
            return Err(Errno::EACCES);
        }
        vm_flags |= VmFlags::VM_SHARED | VmFlags::VM_MAYSHARE;
        if !f.writable {
            vm_flags.remove(VmFlags::VM_MAYWRITE | VmFlags::VM_SHARED);
        }
    } else if kind != MAP_PRIVATE {
        return Err(Errno::EINVAL);
    }
    if !f.readable {
        return Err(Errno::EACCES);
    }
    if vm_flags.intersects(VmFlags::VM_GROWSDOWN) {
        return Err(Errno::EINVAL);
    }
    Ok(vm_flags)
}

impl AddressSpace<'_> {
    /// `mmap(addr, len, prot, flags, fd, offset)` of the open file `file`; returns the
    /// address. Nothing is read: pages come in on first access.
    ///
    /// # Errors
    ///
    /// The kernel's errno, in its order: `EINVAL` for an unaligned `offset`, a zero
    /// length, `MAP_HUGETLB`, `MAP_GROWSDOWN` or a bad mapping type; `ENOMEM` for length
    /// overflow, no free area or `map_count > max_map_count`; `EOVERFLOW` when the
    /// offset and length pass the largest file offset; `EPERM` below `mmap_min_addr`;
    /// `EEXIST` for an occupied `MAP_FIXED_NOREPLACE` range; `EOPNOTSUPP` and `EACCES` as
    /// the open mode and flags decide (§A.2).
    // The six arguments of mmap(2), with the receiver of page changes.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap_file(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        file: &OpenFile,
        offset: u64,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        if !self.params.is_page_aligned(offset) {
            return Err(Errno::EINVAL);
        }
        if flags.intersects(MAP_HUGETLB) {
            // Not a hugetlbfs file.
            return Err(Errno::EINVAL);
        }
        let pgoff = offset >> self.params.page_shift;
        self.do_mmap(addr, len, prot, flags, Some((file, pgoff)), ops)
    }

    /// `__get_unmapped_area` for a file whose `get_unmapped_area` is
    /// `thp_get_unmapped_area` (ext4, xfs, tmpfs with huge pages off behave alike here).
    pub(super) fn file_get_unmapped_area(
        &self,
        addr: u64,
        len: u64,
        pgoff: u64,
        flags: MapFlags,
    ) -> Result<u64, Errno> {
        let p = &self.params;
        if len > p.task_size {
            return Err(Errno::ENOMEM);
        }
        let off = pgoff.checked_shl(p.page_shift).unwrap_or(u64::MAX);
        let a = self.thp_get_unmapped_area(addr, len, off, flags, &mut Located::new())?;
        self.check_unmapped_area(a, len)
    }

    /// `mmap_region` for a file: replace what a fixed mapping covers, then merge or
    /// insert the file VMA.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mmap_region_file(
        &mut self,
        addr: u64,
        len: u64,
        vm_flags: VmFlags,
        f: &OpenFile,
        pgoff: u64,
        fixed: bool,
        ops: &mut dyn PageOps,
    ) -> Result<(), Errno> {
        let end = addr + len;
        let vm_flags = self.clear_region(addr, end, vm_flags, fixed, ops)?;
        let kind = VmaKind::File {
            dev: f.dev,
            ino: f.ino,
            path: f.path,
            file: f.id,
        };
        self.merge_new_range(Vma::with_kind(
            addr,
            end,
            vm_flags,
            kind,
            pgoff,
            self.params.page_shift,
        ))
    }
}
