//! Bounded VMA storage in caller-provided memory, ordered by address, with the kernel's
//! free-area search (`unmapped_area_topdown` / `unmapped_area`, mm/vma.c, §1.5).
//!
//! The tree is an AVL tree whose nodes live in a caller-provided slab of [`VmaSlot`]s and
//! link to each other by `u32` index. Each node caches the free gap just below its VMA
//! (`gap_before`, from the previous VMA's end, or from 0 for the first VMA) and the
//! largest such gap in its subtree (`max_gap`), like the kernel's old `rb_subtree_gap`
//! and the maple tree's gap slots. Lookups, insertion, removal, splitting and the gap
//! searches are O(log n); nothing allocates, and no operation panics. An operation that
//! fails returns a typed error and leaves the tree unchanged.
//!
//! The free gap above the last VMA runs to the top of the address space; it is treated
//! as ending at `u64::MAX` (the kernel's inclusive `ULONG_MAX`), so search limits should
//! stay at or below `TASK_SIZE`, as they do in the kernel.

use core::cmp::{max, min};
use core::fmt;

use arrayvec::ArrayVec;

use super::vma::{Vma, VmaError, VmaKind};
use super::vmflags::VmFlags;

mod balance;
mod edit;
mod gap;
mod locate;
mod validate;

pub(crate) use locate::Located;

const NIL: u32 = u32::MAX;

/// Upper bound of the AVL height for up to 2^32 nodes (1.44·log2(n+2) < 47).
const MAX_DEPTH: usize = 64;

/// One storage cell of a [`VmaTree`]: a VMA plus the tree links and cached gaps.
///
/// Create the backing array with [`VmaSlot::EMPTY`], e.g. `[VmaSlot::EMPTY; 1024]` or
/// `vec![VmaSlot::EMPTY; 65536]` under `std`.
// `repr(C, align(64))` keeps everything a tree walk reads (links, height, cached gaps and
// the VMA's bounds, which lead `Vma`) in the slot's first cache line. The padding makes a
// slot 7 cache lines, an odd count: at 6, the first lines of slots 32 apart fell in the
// same L1 set, and a descent's nodes evicted each other.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct VmaSlot {
    left: u32,
    right: u32,
    height: u8,
    gap_before: u64,
    max_gap: u64,
    vma: Vma,
    _pad: [u64; 8],
}

const _: () = assert!(core::mem::size_of::<VmaSlot>() == 7 * 64);

impl VmaSlot {
    /// An unused slot.
    pub const EMPTY: VmaSlot = VmaSlot {
        left: NIL,
        right: NIL,
        height: 0,
        gap_before: 0,
        max_gap: 0,
        vma: Vma {
            vm_start: 0,
            vm_end: 0,
            vm_flags: VmFlags::empty(),
            vm_pgoff: 0,
            anon_vma: None,
            anon_vma_fork_child: false,
            kind: VmaKind::Anonymous,
        },
        _pad: [0; 8],
    };
}

impl Default for VmaSlot {
    fn default() -> Self {
        VmaSlot::EMPTY
    }
}

/// Request of a free-area search: the kernel's `struct vm_unmapped_area_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VmUnmappedAreaInfo {
    /// Bytes needed.
    pub length: u64,
    /// Lowest acceptable address (raised to [`GapParams::mmap_min_addr`]).
    pub low_limit: u64,
    /// The area must end at or below this address.
    pub high_limit: u64,
    /// Alignment mask (`PMD_SIZE - 1` style; 0 for none); the search length grows by it.
    pub align_mask: u64,
    /// The returned address is congruent to this offset modulo `align_mask + 1`.
    pub align_offset: u64,
    /// Extra space kept below the area (one page for shadow stacks, otherwise 0).
    pub start_gap: u64,
}

/// Per-mm and boot parameters of the free-area search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapParams {
    /// Effective `mmap_min_addr` (max of the sysctl and `CONFIG_LSM_MMAP_MIN_ADDR`).
    pub mmap_min_addr: u64,
    /// `stack_guard_gap` (256 pages by default).
    pub stack_guard_gap: u64,
    /// `PAGE_SIZE` (the guard gap below a shadow stack).
    pub page_size: u64,
}

/// Errors of [`VmaTree`] operations. None of them changes the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaTreeError {
    /// Every slot is in use (the caller maps this to `ENOMEM`).
    NoSlots,
    /// `vm_start >= vm_end`.
    InvalidRange {
        /// Offending start.
        start: u64,
        /// Offending end.
        end: u64,
    },
    /// The range intersects an existing VMA.
    Overlap {
        /// Start of the VMA in the way.
        start: u64,
        /// End of the VMA in the way.
        end: u64,
    },
    /// No VMA starts at (for removal/update) or contains (for split) this address.
    NotFound {
        /// The address looked up.
        addr: u64,
    },
    /// The VMA refused the operation (unaligned or out-of-range split, special mapping).
    Vma(VmaError),
    /// The free-area search found no suitable gap (`ENOMEM`).
    NoSpace,
    /// An internal invariant does not hold (reported only by [`VmaTree::validate`]).
    Corrupted,
}

impl From<VmaError> for VmaTreeError {
    fn from(e: VmaError) -> Self {
        VmaTreeError::Vma(e)
    }
}

impl core::error::Error for VmaTreeError {}

impl fmt::Display for VmaTreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmaTreeError::NoSlots => f.write_str("no free VMA slot"),
            VmaTreeError::InvalidRange { start, end } => {
                write!(f, "invalid VMA range {start:#x}-{end:#x}")
            }
            VmaTreeError::Overlap { start, end } => {
                write!(f, "range overlaps the VMA {start:#x}-{end:#x}")
            }
            VmaTreeError::NotFound { addr } => write!(f, "no VMA at {addr:#x}"),
            VmaTreeError::Vma(e) => fmt::Display::fmt(e, f),
            VmaTreeError::NoSpace => f.write_str("no free area large enough"),
            VmaTreeError::Corrupted => f.write_str("VMA tree invariant violated"),
        }
    }
}

/// The VMAs of one address space, sorted and disjoint, in caller-provided slots.
///
/// # Example
///
/// Three VMAs, a lookup, and the kernel's top-down search for a free area below a limit:
///
/// ```
/// use pagesim::linux::mm::vma::Vma;
/// use pagesim::linux::mm::vma_tree::{GapParams, VmUnmappedAreaInfo, VmaSlot, VmaTree};
/// use pagesim::linux::mm::vmflags::VmFlags;
///
/// let mut slots = [VmaSlot::EMPTY; 16];
/// let mut tree = VmaTree::new(&mut slots);
/// let rw = VmFlags::VM_READ | VmFlags::VM_WRITE;
/// for (s, e) in [(0x1000_0000, 0x1000_4000), (0x1000_8000, 0x1001_0000), (0x2000_0000, 0x2000_1000)] {
///     tree.insert(Vma::new_anon(s, e, rw, 12)?)?;
/// }
/// assert_eq!(tree.len(), 3);
/// // find_vma: the first VMA ending above the address.
/// assert_eq!(tree.find_vma(0x1000_5000).map(|v| v.vm_start), Some(0x1000_8000));
///
/// // 0x3000 bytes, ending at or below 0x1001_0000: the highest hole that fits.
/// let info = VmUnmappedAreaInfo {
///     length: 0x3000,
///     low_limit: 0x1000,
///     high_limit: 0x1001_0000,
///     align_mask: 0,
///     align_offset: 0,
///     start_gap: 0,
/// };
/// let gaps = GapParams { mmap_min_addr: 0x1000, stack_guard_gap: 256 << 12, page_size: 4096 };
/// assert_eq!(tree.unmapped_area_topdown(&info, &gaps), Ok(0x1000_5000));
/// tree.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct VmaTree<'a> {
    slots: &'a mut [VmaSlot],
    root: u32,
    free: u32,
    len: usize,
    cap: usize,
    /// End of the highest VMA (0 when empty): start of the trailing gap.
    last_end: u64,
    /// Counts changes, so that a [`Located`] from before one is not used after it.
    generation: u64,
    /// The slot [`VmaTree::vma_lookup_hinted`] found last, and the generation then.
    hint: (u64, u32),
    scratch: VmaSlot,
}

impl<'a> VmaTree<'a> {
    /// Gives back the storage (for another tree: the VMAs in it are dropped).
    pub fn into_slots(self) -> &'a mut [VmaSlot] {
        self.slots
    }

    /// Creates an empty tree using `slots` as storage (at most `u32::MAX - 1` are used).
    pub fn new(slots: &'a mut [VmaSlot]) -> Self {
        let cap = min(slots.len(), (u32::MAX - 1) as usize);
        let mut tree = VmaTree {
            slots,
            root: NIL,
            free: NIL,
            len: 0,
            cap,
            last_end: 0,
            generation: 0,
            hint: (0, NIL),
            scratch: VmaSlot::EMPTY,
        };
        tree.clear();
        tree
    }

    /// Removes every VMA.
    pub fn clear(&mut self) {
        for (i, s) in self.slots.iter_mut().take(self.cap).enumerate() {
            *s = VmaSlot::EMPTY;
            s.left = if i + 1 < self.cap {
                (i + 1) as u32
            } else {
                NIL
            };
        }
        self.free = if self.cap > 0 { 0 } else { NIL };
        self.root = NIL;
        self.len = 0;
        self.last_end = 0;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Returns the number of VMAs (the kernel's `map_count`).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Returns whether the tree holds no VMA.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the number of slots, i.e. the most VMAs the tree can hold.
    pub const fn capacity(&self) -> usize {
        self.cap
    }

    // Out-of-range indices cannot occur while the invariants hold; should they ever,
    // reads see an empty slot and writes go to a scratch slot instead of panicking.
    fn s(&self, i: u32) -> &VmaSlot {
        self.slots.get(i as usize).unwrap_or(&VmaSlot::EMPTY)
    }

    fn sm(&mut self, i: u32) -> &mut VmaSlot {
        match self.slots.get_mut(i as usize) {
            Some(s) => s,
            None => &mut self.scratch,
        }
    }

    fn h(&self, i: u32) -> u8 {
        if i == NIL {
            0
        } else {
            self.s(i).height
        }
    }

    fn start(&self, i: u32) -> u64 {
        self.s(i).vma.vm_start
    }

    /// Returns the first VMA with `vm_end > addr` (the kernel's `find_vma`).
    pub fn find_vma(&self, addr: u64) -> Option<&Vma> {
        let i = self.find_vma_idx(addr);
        (i != NIL).then(|| &self.s(i).vma)
    }

    /// Returns the VMA containing `addr` (`vma_lookup`).
    pub fn vma_lookup(&self, addr: u64) -> Option<&Vma> {
        self.find_vma(addr).filter(|v| v.vm_start <= addr)
    }

    /// Returns the VMA containing `addr` like [`VmaTree::vma_lookup`], trying the VMA the
    /// last such lookup found first, as the kernel's per-thread `vmacache` did: faults
    /// come in runs over one VMA. The hint holds while the tree has not changed since (no
    /// slot was freed); a VMA edited in place is checked by its bounds, which no other
    /// VMA shares.
    pub(crate) fn vma_lookup_hinted(&mut self, addr: u64) -> Option<&Vma> {
        let (generation, i) = self.hint;
        if generation == self.generation && i != NIL {
            let v = &self.s(i).vma;
            if v.vm_start <= addr && addr < v.vm_end {
                return Some(&self.s(i).vma);
            }
        }
        let i = self.find_vma_idx(addr);
        if i == NIL || self.s(i).vma.vm_start > addr {
            return None;
        }
        self.hint = (self.generation, i);
        Some(&self.s(i).vma)
    }

    /// Returns the VMA [`VmaTree::vma_lookup_hinted`] would try first, if its hint holds.
    #[cfg(test)]
    pub(crate) fn hint(&self) -> Option<&Vma> {
        let (generation, i) = self.hint;
        (generation == self.generation && i != NIL).then(|| &self.s(i).vma)
    }

    /// Returns the first VMA intersecting `[start, end)` (`find_vma_intersection`).
    pub fn find_vma_intersection(&self, start: u64, end: u64) -> Option<&Vma> {
        self.find_vma(start).filter(|v| v.vm_start < end)
    }

    /// Returns `find_vma(addr)` and the VMA before it (the last VMA if there is none
    /// at or above `addr`), like `find_vma_prev`.
    pub fn find_vma_prev(&self, addr: u64) -> (Option<&Vma>, Option<&Vma>) {
        // One descent: the VMAs ending at or below `addr` are those before `find_vma`'s,
        // and the last of them is the last node the descent leaves to its right.
        let mut n = self.root;
        let (mut next, mut prev) = (NIL, NIL);
        while n != NIL {
            if self.s(n).vma.vm_end > addr {
                next = n;
                n = self.s(n).left;
            } else {
                prev = n;
                n = self.s(n).right;
            }
        }
        (
            (next != NIL).then(|| &self.s(next).vma),
            (prev != NIL).then(|| &self.s(prev).vma),
        )
    }

    /// Returns the VMA whose `vm_start` is exactly `start`.
    pub fn get(&self, start: u64) -> Option<&Vma> {
        let i = self.exact(start);
        (i != NIL).then(|| &self.s(i).vma)
    }

    /// Returns the lowest VMA.
    pub fn first(&self) -> Option<&Vma> {
        let mut n = self.root;
        if n == NIL {
            return None;
        }
        while self.s(n).left != NIL {
            n = self.s(n).left;
        }
        Some(&self.s(n).vma)
    }

    /// Returns the highest VMA.
    pub fn last(&self) -> Option<&Vma> {
        let i = self.last_idx();
        (i != NIL).then(|| &self.s(i).vma)
    }

    /// Iterates over all VMAs in ascending address order.
    pub fn iter(&self) -> VmaIter<'_> {
        self.iter_from(0)
    }

    /// Iterates in ascending order starting with `find_vma(addr)`.
    pub fn iter_from(&self, addr: u64) -> VmaIter<'_> {
        let mut stack = ArrayVec::new();
        let mut n = self.root;
        while n != NIL {
            if self.s(n).vma.vm_end > addr {
                if stack.try_push(n).is_err() {
                    break;
                }
                n = self.s(n).left;
            } else {
                n = self.s(n).right;
            }
        }
        VmaIter {
            slots: self.slots,
            stack,
        }
    }

    fn find_vma_idx(&self, addr: u64) -> u32 {
        let mut n = self.root;
        let mut best = NIL;
        while n != NIL {
            if self.s(n).vma.vm_end > addr {
                best = n;
                n = self.s(n).left;
            } else {
                n = self.s(n).right;
            }
        }
        best
    }

    fn exact(&self, start: u64) -> u32 {
        let mut n = self.root;
        while n != NIL {
            let k = self.start(n);
            if start < k {
                n = self.s(n).left;
            } else if start > k {
                n = self.s(n).right;
            } else {
                return n;
            }
        }
        NIL
    }

    /// Last node with `vm_start < key`.
    fn last_below(&self, key: u64) -> u32 {
        let mut n = self.root;
        let mut best = NIL;
        while n != NIL {
            if self.start(n) < key {
                best = n;
                n = self.s(n).right;
            } else {
                n = self.s(n).left;
            }
        }
        best
    }

    /// First node with `vm_start > key`.
    fn first_above(&self, key: u64) -> u32 {
        let mut n = self.root;
        let mut best = NIL;
        while n != NIL {
            if self.start(n) > key {
                best = n;
                n = self.s(n).left;
            } else {
                n = self.s(n).right;
            }
        }
        best
    }

    fn last_idx(&self) -> u32 {
        let mut n = self.root;
        if n == NIL {
            return NIL;
        }
        while self.s(n).right != NIL {
            n = self.s(n).right;
        }
        n
    }
}

/// In-order iterator over a [`VmaTree`], see [`VmaTree::iter`].
#[derive(Clone, Debug)]
pub struct VmaIter<'t> {
    slots: &'t [VmaSlot],
    stack: ArrayVec<u32, MAX_DEPTH>,
}

impl<'t> Iterator for VmaIter<'t> {
    type Item = &'t Vma;

    fn next(&mut self) -> Option<&'t Vma> {
        let slots = self.slots;
        let n = self.stack.pop()?;
        let node = slots.get(n as usize)?;
        let mut c = node.right;
        while c != NIL {
            if self.stack.try_push(c).is_err() {
                break;
            }
            c = slots.get(c as usize).map_or(NIL, |s| s.left);
        }
        Some(&node.vma)
    }
}

#[cfg(test)]
mod tests;
