//! One virtual memory area (`struct vm_area_struct`) and the kernel's merge predicate
//! (`is_mergeable_vma`, `can_vma_merge_before/after`, `is_mergeable_anon_vma`, mm/vma.c).

use core::fmt;

use arrayvec::ArrayString;

use super::vmflags::VmFlags;

/// Capacity in bytes of a [`VmaName`] (file paths, `[anon:NAME]` names, special names).
pub const VMA_NAME_CAP: usize = 256;

/// A bounded inline string holding a VMA's name as `/proc/PID/maps` prints it.
pub type VmaName = ArrayString<VMA_NAME_CAP>;

/// Builds a [`VmaName`] from `s`.
///
/// # Errors
///
/// Returns [`VmaError::NameTooLong`] if `s` is longer than [`VMA_NAME_CAP`] bytes.
pub fn vma_name(s: &str) -> Result<VmaName, VmaError> {
    ArrayString::from(s).map_err(|_| VmaError::NameTooLong { len: s.len() })
}

/// Identity of an `anon_vma` (the reverse-map root shared by split pieces and merges).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnonVmaId(pub u64);

/// Identity of an open file description (`struct file *`): two mappings of the same
/// inode merge only when they come from the same open. `FileId(0)` stands for "the file
/// the maps line names" and is what imported VMAs get (one open per inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

impl FileId {
    /// Returns the id of a shmem object (`MAP_SHARED | MAP_ANONYMOUS`) of `pages` pages:
    /// such an object has no open file of a [`crate::linux::paging::FileStore`], and its id
    /// holds its size (`i_size`, which an access past after an mremap grow finds as
    /// SIGBUS). `FileId(0)`, an imported mapping's, has no known size.
    pub fn shmem_of_pages(pages: u64) -> FileId {
        FileId(u32::try_from(pages).unwrap_or(u32::MAX).max(1))
    }

    /// Returns the size in pages of the shmem object with this id (`None` for 0).
    pub const fn shmem_pages(self) -> Option<u64> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0 as u64)
        }
    }
}

/// A device number as maps prints it (`MAJOR:MINOR`, hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DevId {
    /// `MAJOR(dev)`.
    pub major: u32,
    /// `MINOR(dev)`.
    pub minor: u32,
}

/// The device of the kernel's internal shmem mount (`shm_mnt`), which backs shared
/// anonymous memory: its VMAs are files there, but not files of a file system.
pub const SHMEM_DEV: DevId = DevId { major: 0, minor: 1 };

/// What backs a VMA and how `/proc/PID/maps` names it.
///
/// `Anonymous`, `AnonNamed`, `Heap` and `Stack` are all private anonymous memory: the
/// kernel derives `[heap]` and `[stack]` from `start_brk`/`brk` and `start_stack` at read
/// time (§9, §10), so the layer that owns those values must relabel VMAs after every
/// operation that moves them. For merging these four count as "no file".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmaKind {
    /// Private anonymous memory without a name (the line ends in a space).
    Anonymous,
    /// Anonymous memory named with `PR_SET_VMA_ANON_NAME`, shown as `[anon:NAME]`.
    AnonNamed(VmaName),
    /// Anonymous memory shown as `[heap]`.
    Heap,
    /// Anonymous memory shown as `[stack]`.
    Stack,
    /// The vDSO text, `[vdso]` (special mapping: never merges or splits).
    Vdso,
    /// The vDSO data page(s), `[vvar]` (special).
    Vvar,
    /// The x86 vclock pages, `[vvar_vclock]` (special).
    VvarVclock,
    /// The x86 gate area `[vsyscall]`, outside the VMA tree (special).
    Vsyscall,
    /// Another special mapping named by `vm_ops->name` (`[uprobes]`, `[sigpage]`, ...);
    /// the name includes the brackets.
    Special(VmaName),
    /// A file (or shmem) mapping; `path` is the text maps prints (escaped, with
    /// ` (deleted)` if so), the offset is `vm_pgoff << PAGE_SHIFT`.
    File {
        /// Device of the inode.
        dev: DevId,
        /// Inode number.
        ino: u64,
        /// Path as printed.
        path: VmaName,
        /// The open file the mapping came from.
        file: FileId,
    },
}

impl VmaKind {
    /// Returns whether this is private anonymous memory (no `vm_file`).
    pub const fn is_anonymous(&self) -> bool {
        matches!(
            self,
            VmaKind::Anonymous | VmaKind::AnonNamed(_) | VmaKind::Heap | VmaKind::Stack
        )
    }

    /// Returns whether this is a special mapping (`vm_ops` with a name; never merges).
    pub const fn is_special(&self) -> bool {
        matches!(
            self,
            VmaKind::Vdso
                | VmaKind::Vvar
                | VmaKind::VvarVclock
                | VmaKind::Vsyscall
                | VmaKind::Special(_)
        )
    }

    /// Returns whether maps prints a name for this kind.
    pub const fn has_name(&self) -> bool {
        !matches!(self, VmaKind::Anonymous)
    }

    /// Writes the name maps prints (nothing for [`VmaKind::Anonymous`]).
    ///
    /// # Errors
    ///
    /// Returns the writer's error.
    pub fn write_name<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        match self {
            VmaKind::Anonymous => Ok(()),
            VmaKind::AnonNamed(n) => {
                w.write_str("[anon:")?;
                w.write_str(n)?;
                w.write_char(']')
            }
            VmaKind::Heap => w.write_str("[heap]"),
            VmaKind::Stack => w.write_str("[stack]"),
            VmaKind::Vdso => w.write_str("[vdso]"),
            VmaKind::Vvar => w.write_str("[vvar]"),
            VmaKind::VvarVclock => w.write_str("[vvar_vclock]"),
            VmaKind::Vsyscall => w.write_str("[vsyscall]"),
            VmaKind::Special(n) => w.write_str(n),
            VmaKind::File { path, .. } => w.write_str(path),
        }
    }

    /// Returns the device maps prints (`00:00` unless file-backed).
    pub const fn dev(&self) -> DevId {
        match self {
            VmaKind::File { dev, .. } => *dev,
            _ => DevId { major: 0, minor: 0 },
        }
    }

    /// Returns whether this is a file of a file system (not anonymous memory, a special
    /// mapping, or shmem).
    pub fn is_fs_file(&self) -> bool {
        matches!(self, VmaKind::File { dev, .. } if *dev != SHMEM_DEV)
    }

    /// Returns the open file behind a file mapping.
    pub const fn file(&self) -> Option<FileId> {
        match self {
            VmaKind::File { file, .. } => Some(*file),
            _ => None,
        }
    }

    /// Returns the inode maps prints (`0` unless file-backed).
    pub const fn ino(&self) -> u64 {
        match self {
            VmaKind::File { ino, .. } => *ino,
            _ => 0,
        }
    }

    /// Returns whether two kinds have the same `vm_file` and anon name (merge rule 3).
    fn same_backing(&self, other: &VmaKind) -> bool {
        match (self, other) {
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
            (VmaKind::AnonNamed(a), VmaKind::AnonNamed(b)) => a == b,
            (VmaKind::AnonNamed(_), _) | (_, VmaKind::AnonNamed(_)) => false,
            (a, b) => a.is_anonymous() && b.is_anonymous(),
        }
    }
}

/// A virtual memory area `[vm_start, vm_end)`.
///
/// `repr(C)` keeps the bounds first, so a tree slot's hot fields share a cache line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Vma {
    /// First byte (page aligned).
    pub vm_start: u64,
    /// One past the last byte (page aligned, `> vm_start`).
    pub vm_end: u64,
    /// All `VM_*` bits, hidden ones included.
    pub vm_flags: VmFlags,
    /// Offset in pages: into the file, or `vm_start >> PAGE_SHIFT` for anonymous memory
    /// that never went through `mremap`.
    pub vm_pgoff: u64,
    /// The `anon_vma`, once one was prepared (first write fault, population, growth).
    pub anon_vma: Option<AnonVmaId>,
    /// Whether the `anon_vma_chain` has more than one entry (the VMA was inherited by
    /// `fork` with an `anon_vma`), which blocks some merges (§4.1 rule 6, §4.3).
    pub anon_vma_fork_child: bool,
    /// Backing and maps name.
    pub kind: VmaKind,
}

/// Which of the two ranges is being created or modified (`src`); the other is the
/// existing neighbour (`tgt`) it would join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeSource {
    /// The left (lower) range is new/modified; the right one is the neighbour `next`.
    Left,
    /// The right (upper) range is new/modified; the left one is the neighbour `prev`.
    Right,
}

/// How `anon_vma`s constrain merges; this changed in 6.16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnonVmaMergeRule {
    /// 6.16 and later (verified on 6.18): a faulted range may join an unfaulted neighbour
    /// unless it is a fork child.
    #[default]
    Since6_16,
    /// 6.15 and earlier (verified on 6.1 and 6.12): a faulted range never joins an
    /// unfaulted neighbour.
    Before6_16,
}

/// Parameters of the merge predicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeParams {
    /// `PAGE_SHIFT` (12 for 4 KiB pages, 14 for 16 KiB).
    pub page_shift: u32,
    /// The kernel generation's `anon_vma` rule.
    pub anon_rule: AnonVmaMergeRule,
}

impl Vma {
    /// Creates a private anonymous VMA with `vm_pgoff = start >> page_shift` and no `anon_vma`.
    ///
    /// # Errors
    ///
    /// Returns [`VmaError::EmptyRange`] if `start >= end`, [`VmaError::Unaligned`] if
    /// either bound is not a multiple of `1 << page_shift` (or `page_shift >= 64`).
    pub fn new_anon(
        start: u64,
        end: u64,
        flags: VmFlags,
        page_shift: u32,
    ) -> Result<Vma, VmaError> {
        let mask = page_mask(page_shift)?;
        if start >= end {
            return Err(VmaError::EmptyRange { start, end });
        }
        if start & mask != 0 || end & mask != 0 {
            return Err(VmaError::Unaligned);
        }
        Ok(Vma {
            vm_start: start,
            vm_end: end,
            vm_flags: flags,
            vm_pgoff: start >> page_shift,
            anon_vma: None,
            anon_vma_fork_child: false,
            kind: VmaKind::Anonymous,
        })
    }

    /// Creates a VMA of `kind` over `[start, end)` with no `anon_vma`, its `vm_pgoff` set
    /// as the kernel sets it: `file_pgoff` for a file, 0 for a special mapping (vDSO,
    /// vvar, …), `start >> page_shift` otherwise. Checks nothing (see [`Vma::new_anon`]).
    pub fn with_kind(
        start: u64,
        end: u64,
        flags: VmFlags,
        kind: VmaKind,
        file_pgoff: u64,
        page_shift: u32,
    ) -> Vma {
        let vm_pgoff = match kind {
            VmaKind::File { .. } => file_pgoff,
            ref k if k.is_special() => 0,
            _ => start.checked_shr(page_shift).unwrap_or(0),
        };
        Vma {
            vm_start: start,
            vm_end: end,
            vm_flags: flags,
            vm_pgoff,
            anon_vma: None,
            anon_vma_fork_child: false,
            kind,
        }
    }

    /// Returns `vm_end - vm_start`.
    pub const fn size(&self) -> u64 {
        self.vm_end.saturating_sub(self.vm_start)
    }

    /// Returns whether `addr` lies in `[vm_start, vm_end)`.
    pub const fn contains(&self, addr: u64) -> bool {
        self.vm_start <= addr && addr < self.vm_end
    }

    /// Returns `vm_start_gap`: the start lowered by the guard gap of a grows-down VMA
    /// (`stack_guard_gap`) or a shadow stack (one page), saturating at 0.
    pub const fn vm_start_gap(&self, stack_guard_gap: u64, page_size: u64) -> u64 {
        let gap = if self.vm_flags.contains(VmFlags::VM_GROWSDOWN) {
            stack_guard_gap
        } else if self.vm_flags.contains(VmFlags::VM_SHADOW_STACK) {
            page_size
        } else {
            0
        };
        self.vm_start.saturating_sub(gap)
    }

    /// Returns `vm_end_gap`: the end (there is no `VM_GROWSUP` on arm64 or x86).
    pub const fn vm_end_gap(&self) -> u64 {
        self.vm_end
    }

    /// Splits the VMA at `addr` into `[vm_start, addr)` and `[addr, vm_end)` (`__split_vma`):
    /// both keep flags, kind and `anon_vma`; the upper piece's `vm_pgoff` advances.
    ///
    /// # Errors
    ///
    /// Returns [`VmaError::SplitOutside`] unless `vm_start < addr < vm_end`,
    /// [`VmaError::Unaligned`] if `addr` is not page aligned, [`VmaError::Unsplittable`]
    /// for a special mapping.
    pub fn split_at(&self, addr: u64, page_shift: u32) -> Result<(Vma, Vma), VmaError> {
        let mask = page_mask(page_shift)?;
        if !(self.vm_start < addr && addr < self.vm_end) {
            return Err(VmaError::SplitOutside { addr });
        }
        if addr & mask != 0 {
            return Err(VmaError::Unaligned);
        }
        if self.kind.is_special() {
            return Err(VmaError::Unsplittable);
        }
        let mut lo = *self;
        let mut hi = *self;
        lo.vm_end = addr;
        hi.vm_start = addr;
        hi.vm_pgoff = self
            .vm_pgoff
            .wrapping_add((addr - self.vm_start) >> page_shift);
        Ok((lo, hi))
    }

    /// Returns whether `left` and `right` may become one VMA (§4.1 rules 1–6).
    ///
    /// `source` says which of the two is the range being created or changed; its
    /// `anon_vma` is `src`, the other's is `tgt`. A new mmap range has no `anon_vma`.
    pub fn can_merge(left: &Vma, right: &Vma, source: MergeSource, p: &MergeParams) -> bool {
        // 1. adjacency
        if left.vm_end != right.vm_start {
            return false;
        }
        // 2. flags, sticky ones ignored
        if !left.vm_flags.eq_ignoring_sticky(right.vm_flags) {
            return false;
        }
        // 5. VM_SPECIAL and special mappings
        if left.vm_flags.intersects(VmFlags::VM_SPECIAL)
            || right.vm_flags.intersects(VmFlags::VM_SPECIAL)
            || left.kind.is_special()
            || right.kind.is_special()
        {
            return false;
        }
        // 3. same file and anon name
        if !left.kind.same_backing(&right.kind) {
            return false;
        }
        // 4. pgoff continuity
        if p.page_shift >= 64 {
            return false;
        }
        let pages = left.size() >> p.page_shift;
        match left.vm_pgoff.checked_add(pages) {
            Some(v) if v == right.vm_pgoff => {}
            _ => return false,
        }
        // 6. anon_vma compatibility
        let (src, tgt) = match source {
            MergeSource::Left => (left, right),
            MergeSource::Right => (right, left),
        };
        anon_vma_compatible(src, tgt, p.anon_rule)
    }

    /// Returns whether a range `mid` may merge with both `prev` and `next` at once:
    /// both pairwise merges are allowed (with `mid` as the source) and the neighbours'
    /// `anon_vma`s agree unless one is missing (§4.1 rule 6, last bullet).
    pub fn can_merge_both(prev: &Vma, mid: &Vma, next: &Vma, p: &MergeParams) -> bool {
        Vma::can_merge(prev, mid, MergeSource::Right, p)
            && Vma::can_merge(mid, next, MergeSource::Left, p)
            && match (prev.anon_vma, next.anon_vma) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// Returns the flags of the VMA that results from merging `self` with `other`:
    /// equal flags plus the union of the sticky ones.
    pub const fn merged_flags(&self, other: &Vma) -> VmFlags {
        self.vm_flags
            .union(other.vm_flags.intersection(VmFlags::VM_STICKY))
    }
}

fn anon_vma_compatible(src: &Vma, tgt: &Vma, rule: AnonVmaMergeRule) -> bool {
    match (src.anon_vma, tgt.anon_vma) {
        (None, None) => true,
        (Some(_), None) => match rule {
            AnonVmaMergeRule::Since6_16 => !src.anon_vma_fork_child,
            AnonVmaMergeRule::Before6_16 => false,
        },
        (None, Some(_)) => !tgt.anon_vma_fork_child,
        (Some(a), Some(b)) => a == b,
    }
}

fn page_mask(page_shift: u32) -> Result<u64, VmaError> {
    if page_shift >= 64 {
        return Err(VmaError::Unaligned);
    }
    Ok((1u64 << page_shift) - 1)
}

/// Errors of [`Vma`] construction and manipulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaError {
    /// `start >= end`.
    EmptyRange {
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
    },
    /// An address is not a multiple of the page size (or the page shift is invalid).
    Unaligned,
    /// A split address is not strictly inside the VMA.
    SplitOutside {
        /// Requested split address.
        addr: u64,
    },
    /// Special mappings cannot be split.
    Unsplittable,
    /// A name does not fit in [`VMA_NAME_CAP`] bytes.
    NameTooLong {
        /// Length in bytes of the rejected name.
        len: usize,
    },
}

impl core::error::Error for VmaError {}

impl fmt::Display for VmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmaError::EmptyRange { start, end } => {
                write!(f, "empty VMA range {start:#x}-{end:#x}")
            }
            VmaError::Unaligned => f.write_str("address not page aligned"),
            VmaError::SplitOutside { addr } => {
                write!(f, "split address {addr:#x} not strictly inside the VMA")
            }
            VmaError::Unsplittable => f.write_str("special mappings cannot be split"),
            VmaError::NameTooLong { len } => {
                write!(f, "VMA name of {len} bytes exceeds {VMA_NAME_CAP}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: MergeParams = MergeParams {
        page_shift: 12,
        anon_rule: AnonVmaMergeRule::Since6_16,
    };
    const OLD: MergeParams = MergeParams {
        page_shift: 12,
        anon_rule: AnonVmaMergeRule::Before6_16,
    };
    const RW: VmFlags = VmFlags::VM_DATA_FLAGS_NON_EXEC.union(VmFlags::VM_ACCOUNT);

    fn anon(start: u64, end: u64) -> Vma {
        Vma::new_anon(start, end, RW, 12).unwrap()
    }

    #[test]
    fn adjacency_and_flags() {
        let a = anon(0x1000, 0x2000);
        let b = anon(0x2000, 0x3000);
        assert!(Vma::can_merge(&a, &b, MergeSource::Right, &P));
        let gap = anon(0x3000, 0x4000);
        assert!(!Vma::can_merge(&a, &gap, MergeSource::Right, &P));
        // S6: ac vs nr
        let mut nr = b;
        nr.vm_flags = VmFlags::VM_DATA_FLAGS_NON_EXEC | VmFlags::VM_NORESERVE;
        assert!(!Vma::can_merge(&a, &nr, MergeSource::Right, &P));
        // S8: gd
        let mut gd = b;
        gd.vm_flags |= VmFlags::VM_GROWSDOWN;
        assert!(!Vma::can_merge(&a, &gd, MergeSource::Right, &P));
        // sticky gu merges and is kept
        let mut gu = b;
        gu.vm_flags |= VmFlags::VM_MAYBE_GUARD;
        assert!(Vma::can_merge(&a, &gu, MergeSource::Right, &P));
        assert!(a.merged_flags(&gu).contains(VmFlags::VM_MAYBE_GUARD));
        // hidden VM_MTE_ALLOWED blocks (§18.3 item 8)
        let mut heap = a;
        heap.kind = VmaKind::Heap;
        heap.vm_flags |= VmFlags::VM_MTE_ALLOWED;
        assert!(!Vma::can_merge(&heap, &b, MergeSource::Right, &P));
        heap.vm_flags = RW;
        assert!(Vma::can_merge(&heap, &b, MergeSource::Right, &P));
    }

    #[test]
    fn pgoff_and_kinds() {
        let a = anon(0x1000, 0x2000);
        let mut b = anon(0x2000, 0x3000);
        b.vm_pgoff += 1;
        assert!(!Vma::can_merge(&a, &b, MergeSource::Right, &P));
        let mut v = anon(0x2000, 0x3000);
        v.kind = VmaKind::Vdso;
        assert!(!Vma::can_merge(&a, &v, MergeSource::Right, &P));
        let mut n1 = a;
        n1.kind = VmaKind::AnonNamed(vma_name("x").unwrap());
        let mut n2 = anon(0x2000, 0x3000);
        n2.kind = VmaKind::AnonNamed(vma_name("x").unwrap());
        assert!(Vma::can_merge(&n1, &n2, MergeSource::Right, &P));
        n2.kind = VmaKind::AnonNamed(vma_name("y").unwrap());
        assert!(!Vma::can_merge(&n1, &n2, MergeSource::Right, &P));
        assert!(!Vma::can_merge(
            &n1,
            &anon(0x2000, 0x3000),
            MergeSource::Right,
            &P
        ));
    }

    #[test]
    fn anon_vma_rules() {
        let mut faulted = anon(0x1000, 0x2000);
        faulted.anon_vma = Some(AnonVmaId(1));
        let clean = anon(0x2000, 0x3000);
        // new/unfaulted range next to a faulted neighbour: ok on all kernels
        assert!(Vma::can_merge(&faulted, &clean, MergeSource::Right, &P));
        assert!(Vma::can_merge(&faulted, &clean, MergeSource::Right, &OLD));
        // faulted range into unfaulted neighbour: 6.16+ only (A4)
        assert!(Vma::can_merge(&faulted, &clean, MergeSource::Left, &P));
        assert!(!Vma::can_merge(&faulted, &clean, MergeSource::Left, &OLD));
        // fork child
        let mut child = faulted;
        child.anon_vma_fork_child = true;
        assert!(!Vma::can_merge(&child, &clean, MergeSource::Right, &P));
        assert!(!Vma::can_merge(&child, &clean, MergeSource::Left, &P));
        // both faulted: identical anon_vma only (TV12)
        let mut other = clean;
        other.anon_vma = Some(AnonVmaId(2));
        assert!(!Vma::can_merge(&faulted, &other, MergeSource::Right, &P));
        other.anon_vma = Some(AnonVmaId(1));
        assert!(Vma::can_merge(&faulted, &other, MergeSource::Right, &P));
        // three-way: prev and next with different anon_vmas (TV12 left-only merge)
        let mut next = anon(0x3000, 0x4000);
        next.anon_vma = Some(AnonVmaId(9));
        let mid = anon(0x2000, 0x3000);
        assert!(!Vma::can_merge_both(&faulted, &mid, &next, &P));
        next.anon_vma = Some(AnonVmaId(1));
        assert!(Vma::can_merge_both(&faulted, &mid, &next, &P));
    }

    #[test]
    fn split() {
        let mut a = anon(0x1000, 0x4000);
        a.anon_vma = Some(AnonVmaId(3));
        let (lo, hi) = a.split_at(0x2000, 12).unwrap();
        assert_eq!(
            (lo.vm_start, lo.vm_end, hi.vm_start, hi.vm_end),
            (0x1000, 0x2000, 0x2000, 0x4000)
        );
        assert_eq!(hi.vm_pgoff, 2);
        assert_eq!(hi.anon_vma, Some(AnonVmaId(3)));
        assert!(Vma::can_merge(&lo, &hi, MergeSource::Left, &P));
        assert_eq!(
            a.split_at(0x1000, 12),
            Err(VmaError::SplitOutside { addr: 0x1000 })
        );
        assert_eq!(a.split_at(0x2800, 12), Err(VmaError::Unaligned));
        let mut v = a;
        v.kind = VmaKind::Vvar;
        assert_eq!(v.split_at(0x2000, 12), Err(VmaError::Unsplittable));
        assert_eq!(
            Vma::new_anon(0, 0, RW, 12),
            Err(VmaError::EmptyRange { start: 0, end: 0 })
        );
        assert_eq!(Vma::new_anon(0, 0x1000, RW, 64), Err(VmaError::Unaligned));
    }

    #[test]
    fn names() {
        let long = [b'a'; VMA_NAME_CAP + 1];
        let s = core::str::from_utf8(&long).unwrap();
        assert_eq!(
            vma_name(s),
            Err(VmaError::NameTooLong {
                len: VMA_NAME_CAP + 1
            })
        );
        assert!(vma_name(&s[..VMA_NAME_CAP]).is_ok());
        let g = Vma {
            vm_flags: VmFlags::VM_GROWSDOWN,
            ..anon(0x10_0000, 0x20_0000)
        };
        assert_eq!(g.vm_start_gap(0x10_0000, 0x1000), 0);
        assert_eq!(g.vm_start_gap(0x20_0000, 0x1000), 0);
        assert_eq!(anon(0x5000, 0x6000).vm_start_gap(0x10_0000, 0x1000), 0x5000);
    }
}
