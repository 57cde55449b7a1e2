//! Bounded VMA storage in caller-provided memory, ordered by address, with the kernel's
//! free-area search (`unmapped_area_topdown` / `unmapped_area`, mm/vma.c, §1.5).
//!
//! The tree is a B+ tree with up to 16 entries per node, like the kernel's maple tree.
//! Each caller-provided [`VmaSlot`] holds one VMA and room for one node; nodes and VMAs
//! link to each other by `u32` slot index, and a VMA never moves while it is in the tree.
//! A leaf's entries are VMAs, each with its end and the free gap just below it (from the
//! previous VMA's end, or from 0 for the first VMA); an inner node's entries are its
//! children, each with the highest end and the largest gap under it, as the maple tree's
//! pivots and gap slots. A tree of 65,000 VMAs is 5 or 6 levels deep. Lookups, insertion,
//! removal, splitting and the gap searches are O(log n); nothing allocates, and no
//! operation panics. An operation that fails returns a typed error and leaves the tree
//! unchanged.
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
mod node;
mod validate;

pub(crate) use locate::Located;
use node::{Node, FANOUT};

const NIL: u32 = u32::MAX;

/// The most levels a path can have: with at least `FANOUT / 2` entries in every node but
/// the root, 2^32 VMAs need 12 levels (32 with the unit tests' 4-entry nodes).
const MAX_DEPTH: usize = if cfg!(test) { 40 } else { 16 };

/// The nodes a descent passed, each with the entry it took (at the leaf: the position).
type Path = ArrayVec<(u32, u32), MAX_DEPTH>;

/// One storage cell of a [`VmaTree`]: a VMA and room for one node of the tree.
///
/// Create the backing array with [`VmaSlot::EMPTY`], e.g. `[VmaSlot::EMPTY; 1024]` or
/// `vec![VmaSlot::EMPTY; 65536]` under `std`. A tree of `n` slots holds `n` VMAs: it never
/// has more nodes than VMAs (one, the root, when it is empty).
// The node leads the slot: a descent reads its first three cache lines only.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct VmaSlot {
    node: Node,
    next_free: u32,
    vma: Vma,
}

#[cfg(not(test))]
const _: () = assert!(core::mem::size_of::<VmaSlot>() == 11 * 64);

const EMPTY_VMA: Vma = Vma {
    vm_start: 0,
    vm_end: 0,
    vm_flags: VmFlags::empty(),
    vm_pgoff: 0,
    anon_vma: None,
    anon_vma_fork_child: false,
    kind: VmaKind::Anonymous,
};

impl VmaSlot {
    /// An unused slot.
    pub const EMPTY: VmaSlot = VmaSlot {
        node: Node::EMPTY,
        next_free: NIL,
        vma: EMPTY_VMA,
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
    /// The root node (a leaf while the tree is small); `NIL` only without slots.
    root: u32,
    /// Levels from the root to the leaves (1: the root is a leaf).
    height: usize,
    /// The free VMA slots, linked through `next_free`.
    free: u32,
    /// The free node slots, linked through their first child.
    node_free: u32,
    nodes_free: usize,
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
            height: 0,
            free: NIL,
            node_free: NIL,
            nodes_free: 0,
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
        let cap = self.cap;
        for (i, s) in self.slots.iter_mut().take(cap).enumerate() {
            let next = if i + 1 < cap { (i + 1) as u32 } else { NIL };
            *s = VmaSlot::EMPTY;
            s.next_free = next;
            s.node.child[0] = next;
        }
        let first = if cap > 0 { 0 } else { NIL };
        self.free = first;
        self.node_free = first;
        self.nodes_free = cap;
        self.root = self.alloc_node();
        self.height = usize::from(self.root != NIL);
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

    /// Stores `vma` in slot `i`. An unnamed anonymous VMA is written as its fields: the
    /// bytes of a name it does not have are not copied.
    fn put_vma(&mut self, i: u32, vma: Vma) {
        let slot = &mut self.sm(i).vma;
        if matches!(vma.kind, VmaKind::Anonymous) {
            *slot = Vma {
                kind: VmaKind::Anonymous,
                ..vma
            };
        } else {
            *slot = vma;
        }
    }

    /// Returns node `i`.
    fn n(&self, i: u32) -> &Node {
        &self.s(i).node
    }

    fn nm(&mut self, i: u32) -> &mut Node {
        &mut self.sm(i).node
    }

    /// Returns VMA `i`.
    fn v(&self, i: u32) -> &Vma {
        &self.s(i).vma
    }

    /// Takes a node slot and makes it an empty leaf (`NIL` if none is free).
    fn alloc_node(&mut self) -> u32 {
        let i = self.node_free;
        if i == NIL {
            return NIL;
        }
        self.node_free = self.n(i).child[0];
        self.nodes_free -= 1;
        *self.nm(i) = Node::EMPTY;
        i
    }

    /// Gives node slot `i` back.
    fn free_node(&mut self, i: u32) {
        let next = self.node_free;
        let n = self.nm(i);
        *n = Node::EMPTY;
        n.child[0] = next;
        self.node_free = i;
        self.nodes_free += 1;
    }

    /// Returns the first VMA with `vm_end > addr` (the kernel's `find_vma`).
    pub fn find_vma(&self, addr: u64) -> Option<&Vma> {
        let i = self.find_vma_idx(addr);
        (i != NIL).then(|| self.v(i))
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
    #[inline]
    pub(crate) fn vma_lookup_hinted(&mut self, addr: u64) -> Option<&Vma> {
        let (generation, i) = self.hint;
        if generation == self.generation && i != NIL {
            let v = self.v(i);
            if v.vm_start <= addr && addr < v.vm_end {
                return Some(self.v(i));
            }
        }
        self.vma_lookup_hinting(addr)
    }

    /// [`VmaTree::vma_lookup_hinted`] past its hint: looks `addr` up and hints its VMA.
    #[inline(never)]
    fn vma_lookup_hinting(&mut self, addr: u64) -> Option<&Vma> {
        let i = self.find_vma_idx(addr);
        if i == NIL || self.v(i).vm_start > addr {
            return None;
        }
        self.hint = (self.generation, i);
        Some(self.v(i))
    }

    /// Returns the VMA [`VmaTree::vma_lookup_hinted`] would try first, if its hint holds.
    #[cfg(test)]
    pub(crate) fn hint(&self) -> Option<&Vma> {
        let (generation, i) = self.hint;
        (generation == self.generation && i != NIL).then(|| self.v(i))
    }

    /// Returns the first VMA intersecting `[start, end)` (`find_vma_intersection`).
    pub fn find_vma_intersection(&self, start: u64, end: u64) -> Option<&Vma> {
        self.find_vma(start).filter(|v| v.vm_start < end)
    }

    /// Returns `find_vma(addr)` and the VMA before it (the last VMA if there is none
    /// at or above `addr`), like `find_vma_prev`.
    pub fn find_vma_prev(&self, addr: u64) -> (Option<&Vma>, Option<&Vma>) {
        let mut path = Path::new();
        if self.descend(addr, &mut path).is_err() {
            return (None, None);
        }
        let (next, prev) = (self.next_of(&path, 0), self.prev_of(&path));
        (
            (next != NIL).then(|| self.v(next)),
            (prev != NIL).then(|| self.v(prev)),
        )
    }

    /// Returns the VMA whose `vm_start` is exactly `start`.
    pub fn get(&self, start: u64) -> Option<&Vma> {
        self.find_vma(start).filter(|v| v.vm_start == start)
    }

    /// Returns the lowest VMA.
    pub fn first(&self) -> Option<&Vma> {
        let i = self.edge(false);
        (i != NIL).then(|| self.v(i))
    }

    /// Returns the highest VMA.
    pub fn last(&self) -> Option<&Vma> {
        let i = self.edge(true);
        (i != NIL).then(|| self.v(i))
    }

    /// Iterates over all VMAs in ascending address order.
    pub fn iter(&self) -> VmaIter<'_> {
        self.iter_from(0)
    }

    /// Iterates in ascending order starting with `find_vma(addr)`.
    pub fn iter_from(&self, addr: u64) -> VmaIter<'_> {
        let mut stack = Path::new();
        if self.descend(addr, &mut stack).is_err() {
            stack.clear();
        }
        VmaIter {
            slots: self.slots,
            stack,
        }
    }

    /// Returns the VMA of `find_vma(addr)`, `NIL` if none.
    fn find_vma_idx(&self, addr: u64) -> u32 {
        let mut n = self.root;
        for _ in 0..MAX_DEPTH {
            if n == NIL {
                break;
            }
            let node = self.n(n);
            let i = node.find(addr);
            if i >= node.len() {
                // No end above `addr` under this node; the parent's summary said there
                // was one, so this is the root.
                break;
            }
            if node.leaf {
                return node.child[i];
            }
            n = node.child[i];
        }
        NIL
    }

    /// Descends from the root toward `key`, taking at each node the first entry whose end
    /// lies above it (the last entry if none does), and records the path. At the leaf the
    /// path ends at the position of `find_vma(key)` (the count if there is none). Returns
    /// the end of the VMA before that position (0 if there is none).
    ///
    /// # Errors
    /// [`VmaTreeError::Corrupted`] if the tree is deeper than it can be.
    fn descend(&self, key: u64, path: &mut Path) -> Result<u64, VmaTreeError> {
        path.clear();
        let mut n = self.root;
        let mut lo = 0;
        while n != NIL {
            let node = self.n(n);
            let len = node.len();
            let mut i = node.find(key);
            if !node.leaf && i == len {
                i = len.checked_sub(1).ok_or(VmaTreeError::Corrupted)?;
            }
            if i > 0 {
                lo = node.end[i - 1];
            }
            path.try_push((n, i as u32))
                .map_err(|_| VmaTreeError::Corrupted)?;
            if node.leaf {
                return Ok(lo);
            }
            n = node.child[i];
        }
        Ok(lo)
    }

    /// Returns the VMA just before the position `path` ends at (`NIL` if none).
    fn prev_of(&self, path: &Path) -> u32 {
        let Some(&(leaf, pos)) = path.last() else {
            return NIL;
        };
        if pos > 0 {
            return self.n(leaf).child[pos as usize - 1];
        }
        let upper = path.len() - 1;
        match path[..upper].iter().rev().find(|&&(_, i)| i > 0) {
            Some(&(n, i)) => self.edge_under(self.n(n).child[i as usize - 1], true),
            None => NIL,
        }
    }

    /// Returns the VMA `ahead` positions after the position `path` ends at, for `ahead`
    /// 0 or 1 (`NIL` if none).
    fn next_of(&self, path: &Path, ahead: u32) -> u32 {
        let Some(&(leaf, pos)) = path.last() else {
            return NIL;
        };
        let node = self.n(leaf);
        let p = (pos + ahead) as usize;
        if p < node.len() {
            return node.child[p];
        }
        if p > node.len() {
            return NIL;
        }
        let upper = path.len() - 1;
        let found = path[..upper]
            .iter()
            .rev()
            .find(|&&(n, i)| (i as usize) + 1 < self.n(n).len());
        match found {
            Some(&(n, i)) => self.edge_under(self.n(n).child[i as usize + 1], false),
            None => NIL,
        }
    }

    /// Returns the lowest (or, with `high`, the highest) VMA under node `n`.
    fn edge_under(&self, mut n: u32, high: bool) -> u32 {
        for _ in 0..MAX_DEPTH {
            let node = self.n(n);
            let len = node.len();
            if len == 0 {
                return NIL;
            }
            let c = node.child[if high { len - 1 } else { 0 }];
            if node.leaf {
                return c;
            }
            n = c;
        }
        NIL
    }

    /// Returns the lowest (or highest) VMA.
    fn edge(&self, high: bool) -> u32 {
        if self.root == NIL {
            return NIL;
        }
        self.edge_under(self.root, high)
    }
}

/// In-order iterator over a [`VmaTree`], see [`VmaTree::iter`].
#[derive(Clone, Debug)]
pub struct VmaIter<'t> {
    slots: &'t [VmaSlot],
    /// The path to the next VMA: each node with the entry taken.
    stack: Path,
}

impl<'t> Iterator for VmaIter<'t> {
    type Item = &'t Vma;

    fn next(&mut self) -> Option<&'t Vma> {
        let slots = self.slots;
        loop {
            let &mut (n, ref mut i) = self.stack.last_mut()?;
            let node = &slots.get(n as usize)?.node;
            let at = *i as usize;
            if at >= node.len() {
                self.stack.pop();
                if let Some(up) = self.stack.last_mut() {
                    up.1 += 1;
                }
                continue;
            }
            let c = node.child[at];
            if node.leaf {
                *i += 1;
                return Some(&slots.get(c as usize)?.vma);
            }
            self.stack.try_push((c, 0)).ok()?;
        }
    }
}

#[cfg(test)]
mod tests;
