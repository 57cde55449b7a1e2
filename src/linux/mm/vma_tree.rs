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

const NIL: u32 = u32::MAX;
/// Upper bound of the AVL height for up to 2^32 nodes (1.44·log2(n+2) < 47).
const MAX_DEPTH: usize = 64;

/// One storage cell of a [`VmaTree`]: a VMA plus the tree links and cached gaps.
///
/// Create the backing array with [`VmaSlot::EMPTY`], e.g. `[VmaSlot::EMPTY; 1024]` or
/// `vec![VmaSlot::EMPTY; 65536]` under `std`.
// `repr(C, align(64))` keeps everything a tree walk reads (links, height, cached gaps and
// the VMA's bounds, which lead `Vma`) in the slot's first cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct VmaSlot {
    left: u32,
    right: u32,
    height: u8,
    gap_before: u64,
    max_gap: u64,
    vma: Vma,
}

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
#[derive(Debug)]
pub struct VmaTree<'a> {
    slots: &'a mut [VmaSlot],
    root: u32,
    free: u32,
    len: usize,
    cap: usize,
    /// End of the highest VMA (0 when empty): start of the trailing gap.
    last_end: u64,
    scratch: VmaSlot,
}

impl<'a> VmaTree<'a> {
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

    // ----- slot accessors -------------------------------------------------------------

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

    // ----- lookups -------------------------------------------------------------------

    /// Returns the first VMA with `vm_end > addr` (the kernel's `find_vma`).
    pub fn find_vma(&self, addr: u64) -> Option<&Vma> {
        let i = self.find_vma_idx(addr);
        (i != NIL).then(|| &self.s(i).vma)
    }

    /// Returns the VMA containing `addr` (`vma_lookup`).
    pub fn vma_lookup(&self, addr: u64) -> Option<&Vma> {
        self.find_vma(addr).filter(|v| v.vm_start <= addr)
    }

    /// Returns the first VMA intersecting `[start, end)` (`find_vma_intersection`).
    pub fn find_vma_intersection(&self, start: u64, end: u64) -> Option<&Vma> {
        self.find_vma(start).filter(|v| v.vm_start < end)
    }

    /// Returns `find_vma(addr)` and the VMA before it (the last VMA if there is none
    /// at or above `addr`), like `find_vma_prev`.
    pub fn find_vma_prev(&self, addr: u64) -> (Option<&Vma>, Option<&Vma>) {
        let i = self.find_vma_idx(addr);
        let key = if i == NIL { None } else { Some(self.start(i)) };
        let p = match key {
            Some(k) => self.last_below(k),
            None => self.last_idx(),
        };
        (
            (i != NIL).then(|| &self.s(i).vma),
            (p != NIL).then(|| &self.s(p).vma),
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

    /// Returns (last node with `vm_start < key`, node with `vm_start == key`, first node
    /// with `vm_start > key`) in one descent.
    fn neighbours(&self, key: u64) -> (u32, u32, u32) {
        let mut n = self.root;
        let (mut pred, mut succ) = (NIL, NIL);
        while n != NIL {
            let k = self.start(n);
            if key < k {
                succ = n;
                n = self.s(n).left;
            } else if key > k {
                pred = n;
                n = self.s(n).right;
            } else {
                let mut l = self.s(n).left;
                if l != NIL {
                    while self.s(l).right != NIL {
                        l = self.s(l).right;
                    }
                    pred = l;
                }
                let mut r = self.s(n).right;
                if r != NIL {
                    while self.s(r).left != NIL {
                        r = self.s(r).left;
                    }
                    succ = r;
                }
                return (pred, n, succ);
            }
        }
        (pred, NIL, succ)
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

    // ----- mutation ------------------------------------------------------------------

    /// Inserts `vma`, which must not intersect any VMA in the tree.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::InvalidRange`] if `vm_start >= vm_end`, [`VmaTreeError::Overlap`]
    /// if it intersects a VMA, [`VmaTreeError::NoSlots`] if the tree is full.
    pub fn insert(&mut self, vma: Vma) -> Result<(), VmaTreeError> {
        if vma.vm_start >= vma.vm_end {
            return Err(VmaTreeError::InvalidRange {
                start: vma.vm_start,
                end: vma.vm_end,
            });
        }
        let (pred, exact, succ) = self.neighbours(vma.vm_start);
        for (i, hit) in [
            (pred, pred != NIL && self.s(pred).vma.vm_end > vma.vm_start),
            (exact, exact != NIL),
            (succ, succ != NIL && self.start(succ) < vma.vm_end),
        ] {
            if hit {
                let v = &self.s(i).vma;
                return Err(VmaTreeError::Overlap {
                    start: v.vm_start,
                    end: v.vm_end,
                });
            }
        }
        if self.free == NIL {
            return Err(VmaTreeError::NoSlots);
        }
        self.insert_at(vma, pred, succ);
        Ok(())
    }

    /// Inserts `vma` between `pred` and `succ` (its neighbours, already checked).
    fn insert_at(&mut self, vma: Vma, pred: u32, succ: u32) {
        let idx = self.free;
        self.free = self.s(idx).left;
        let pred_end = if pred == NIL {
            0
        } else {
            self.s(pred).vma.vm_end
        };
        let gap = vma.vm_start - pred_end;
        let slot = self.sm(idx);
        slot.left = NIL;
        slot.right = NIL;
        slot.height = 1;
        slot.gap_before = gap;
        slot.max_gap = gap;
        slot.vma = vma;
        // The in-order successor of a new leaf is one of its ancestors, so setting its gap
        // first lets the rebalancing on the way up refresh every cached maximum.
        if succ != NIL {
            let s_start = self.start(succ);
            self.sm(succ).gap_before = s_start - vma.vm_end;
        } else {
            self.last_end = vma.vm_end;
        }
        self.root = self.insert_rec(self.root, idx, vma.vm_start);
        self.len += 1;
    }

    /// Removes the VMA that starts at `start` and returns it.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NotFound`] if no VMA starts there.
    pub fn remove(&mut self, start: u64) -> Result<Vma, VmaTreeError> {
        let (pred, idx, succ) = self.neighbours(start);
        if idx == NIL {
            return Err(VmaTreeError::NotFound { addr: start });
        }
        let vma = self.s(idx).vma;
        let pred_end = if pred == NIL {
            0
        } else {
            self.s(pred).vma.vm_end
        };
        // The successor is on the removal path, or replaces the removed node, or is the
        // left spine of a lone right child; `remove_rec` refreshes all three.
        if succ != NIL {
            let s_start = self.start(succ);
            self.sm(succ).gap_before = s_start - pred_end;
        } else {
            self.last_end = pred_end;
        }
        self.root = self.remove_rec(self.root, start);
        let free = self.free;
        let slot = self.sm(idx);
        slot.left = free;
        slot.right = NIL;
        slot.height = 0;
        self.free = idx;
        self.len -= 1;
        Ok(vma)
    }

    /// Splits the VMA containing `addr` into `[vm_start, addr)` and `[addr, vm_end)`
    /// (see [`Vma::split_at`]); this needs one free slot.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NotFound`] if no VMA contains `addr`, [`VmaTreeError::Vma`] if the
    /// VMA refuses the split, [`VmaTreeError::NoSlots`] if the tree is full.
    pub fn split(&mut self, addr: u64, page_shift: u32) -> Result<(), VmaTreeError> {
        let idx = self.find_vma_idx(addr);
        if idx == NIL || self.start(idx) > addr {
            return Err(VmaTreeError::NotFound { addr });
        }
        let (lo, hi) = self.s(idx).vma.split_at(addr, page_shift)?;
        if self.free == NIL {
            return Err(VmaTreeError::NoSlots);
        }
        // Shrinking the end keeps the key; the gap between lo and hi is 0 and the gap
        // above hi is unchanged, so only the new node needs gap bookkeeping.
        let succ = self.first_above(lo.vm_start);
        self.sm(idx).vma = lo;
        self.insert_at(hi, idx, succ);
        Ok(())
    }

    /// Changes the VMA that starts at `start` through `f`, which may also move its bounds
    /// as long as it stays non-empty and clear of its neighbours (expand, shrink, merge).
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NotFound`] if no VMA starts at `start`; [`VmaTreeError::InvalidRange`]
    /// or [`VmaTreeError::Overlap`] if the changed bounds are invalid (nothing is changed).
    pub fn update<F: FnOnce(&mut Vma)>(&mut self, start: u64, f: F) -> Result<(), VmaTreeError> {
        let idx = self.exact(start);
        if idx == NIL {
            return Err(VmaTreeError::NotFound { addr: start });
        }
        let mut new = self.s(idx).vma;
        f(&mut new);
        if new.vm_start >= new.vm_end {
            return Err(VmaTreeError::InvalidRange {
                start: new.vm_start,
                end: new.vm_end,
            });
        }
        let pred = self.last_below(start);
        let succ = self.first_above(start);
        let pred_end = if pred == NIL {
            0
        } else {
            self.s(pred).vma.vm_end
        };
        if pred != NIL && new.vm_start < pred_end {
            let p = &self.s(pred).vma;
            return Err(VmaTreeError::Overlap {
                start: p.vm_start,
                end: p.vm_end,
            });
        }
        if succ != NIL && new.vm_end > self.start(succ) {
            let s = &self.s(succ).vma;
            return Err(VmaTreeError::Overlap {
                start: s.vm_start,
                end: s.vm_end,
            });
        }
        let slot = self.sm(idx);
        slot.vma = new;
        slot.gap_before = new.vm_start - pred_end;
        self.fix_path(new.vm_start);
        if succ != NIL {
            let s_start = self.start(succ);
            self.sm(succ).gap_before = s_start - new.vm_end;
            self.fix_path(s_start);
        } else {
            self.last_end = new.vm_end;
        }
        Ok(())
    }

    // ----- AVL internals ------------------------------------------------------------

    /// Returns (height, max_gap) of subtree `i` (0, 0 for none).
    fn hg(&self, i: u32) -> (u8, u64) {
        match self.slots.get(i as usize) {
            Some(s) => (s.height, s.max_gap),
            None => (0, 0),
        }
    }

    fn update_node(&mut self, n: u32) {
        let (l, r, gap) = {
            let s = self.s(n);
            (s.left, s.right, s.gap_before)
        };
        let (hl, gl) = self.hg(l);
        let (hr, gr) = self.hg(r);
        let s = self.sm(n);
        s.height = 1 + max(hl, hr);
        s.max_gap = max(gap, max(gl, gr));
    }

    fn rotate_right(&mut self, n: u32) -> u32 {
        let l = self.s(n).left;
        let lr = self.s(l).right;
        self.sm(n).left = lr;
        self.sm(l).right = n;
        self.update_node(n);
        self.update_node(l);
        l
    }

    fn rotate_left(&mut self, n: u32) -> u32 {
        let r = self.s(n).right;
        let rl = self.s(r).left;
        self.sm(n).right = rl;
        self.sm(r).left = n;
        self.update_node(n);
        self.update_node(r);
        r
    }

    fn rebalance(&mut self, n: u32) -> u32 {
        let (l, r, gap) = {
            let s = self.s(n);
            (s.left, s.right, s.gap_before)
        };
        let (hl, gl) = self.hg(l);
        let (hr, gr) = self.hg(r);
        {
            let s = self.sm(n);
            s.height = 1 + max(hl, hr);
            s.max_gap = max(gap, max(gl, gr));
        }
        if hl > hr + 1 {
            if self.h(self.s(l).left) < self.h(self.s(l).right) {
                let nl = self.rotate_left(l);
                self.sm(n).left = nl;
            }
            self.rotate_right(n)
        } else if hr > hl + 1 {
            if self.h(self.s(r).right) < self.h(self.s(r).left) {
                let nr = self.rotate_right(r);
                self.sm(n).right = nr;
            }
            self.rotate_left(n)
        } else {
            n
        }
    }

    fn insert_rec(&mut self, n: u32, new: u32, key: u64) -> u32 {
        if n == NIL {
            return new;
        }
        if key < self.start(n) {
            let l = self.insert_rec(self.s(n).left, new, key);
            self.sm(n).left = l;
        } else {
            let r = self.insert_rec(self.s(n).right, new, key);
            self.sm(n).right = r;
        }
        self.rebalance(n)
    }

    fn remove_rec(&mut self, n: u32, key: u64) -> u32 {
        if n == NIL {
            return NIL;
        }
        let k = self.start(n);
        if key < k {
            let l = self.remove_rec(self.s(n).left, key);
            self.sm(n).left = l;
        } else if key > k {
            let r = self.remove_rec(self.s(n).right, key);
            self.sm(n).right = r;
        } else {
            let (l, r) = (self.s(n).left, self.s(n).right);
            if l == NIL {
                self.fix_left_spine(r);
                return r;
            }
            if r == NIL {
                return l;
            }
            let (r2, m) = self.remove_min(r);
            self.sm(m).left = l;
            self.sm(m).right = r2;
            return self.rebalance(m);
        }
        self.rebalance(n)
    }

    /// Detaches the minimum of subtree `n`; returns (new subtree root, detached node).
    fn remove_min(&mut self, n: u32) -> (u32, u32) {
        let l = self.s(n).left;
        if l == NIL {
            return (self.s(n).right, n);
        }
        let (nl, m) = self.remove_min(l);
        self.sm(n).left = nl;
        (self.rebalance(n), m)
    }

    /// Recomputes the cached gaps along the left spine of subtree `n` (bottom-up).
    fn fix_left_spine(&mut self, n: u32) {
        let mut path: ArrayVec<u32, MAX_DEPTH> = ArrayVec::new();
        let mut c = n;
        while c != NIL && path.try_push(c).is_ok() {
            c = self.s(c).left;
        }
        while let Some(c) = path.pop() {
            self.update_node(c);
        }
    }

    /// Recomputes the cached gaps on the path from the root to the node keyed `key`.
    fn fix_path(&mut self, key: u64) {
        let mut path: ArrayVec<u32, MAX_DEPTH> = ArrayVec::new();
        let mut n = self.root;
        while n != NIL {
            if path.try_push(n).is_err() {
                break;
            }
            let k = self.start(n);
            n = if key < k {
                self.s(n).left
            } else if key > k {
                self.s(n).right
            } else {
                NIL
            };
        }
        while let Some(n) = path.pop() {
            self.update_node(n);
        }
    }

    // ----- gap search ----------------------------------------------------------------

    /// Returns `(gap_start, gap_end, upper_vma)` of the trailing gap above the last VMA.
    fn trailing_gap(&self) -> (u64, u64, u32) {
        let last = self.last_idx();
        let gs = if last == NIL {
            0
        } else {
            self.s(last).vma.vm_end
        };
        (gs, u64::MAX, NIL)
    }

    fn highest_rec(&self, n: u32, low: u64, high: u64, len: u64) -> Option<(u64, u64, u32)> {
        if n == NIL || self.s(n).max_gap < len {
            return None;
        }
        let ge = self.start(n);
        let gs = ge - self.s(n).gap_before;
        // Gaps in the right subtree start at or above this VMA's end (> ge).
        if ge < high {
            if let Some(x) = self.highest_rec(self.s(n).right, low, high, len) {
                return Some(x);
            }
        }
        if usable(gs, ge, low, high) >= len {
            return Some((gs, ge, n));
        }
        // Gaps in the left subtree end at or below gs.
        if gs > low {
            return self.highest_rec(self.s(n).left, low, high, len);
        }
        None
    }

    fn lowest_rec(&self, n: u32, low: u64, high: u64, len: u64) -> Option<(u64, u64, u32)> {
        if n == NIL || self.s(n).max_gap < len {
            return None;
        }
        let ge = self.start(n);
        let gs = ge - self.s(n).gap_before;
        if gs > low {
            if let Some(x) = self.lowest_rec(self.s(n).left, low, high, len) {
                return Some(x);
            }
        }
        if usable(gs, ge, low, high) >= len {
            return Some((gs, ge, n));
        }
        if ge < high {
            return self.lowest_rec(self.s(n).right, low, high, len);
        }
        None
    }

    /// Returns the highest free gap `[gs, ge)` whose part inside `[low, high)` holds
    /// `len` bytes (`mas_empty_area_rev`), as `(gs, ge)`.
    pub fn highest_gap(&self, low: u64, high: u64, len: u64) -> Option<(u64, u64)> {
        self.highest_gap_idx(low, high, len).map(|(s, e, _)| (s, e))
    }

    /// Returns the lowest free gap `[gs, ge)` whose part inside `[low, high)` holds
    /// `len` bytes (`mas_empty_area`), as `(gs, ge)`.
    pub fn lowest_gap(&self, low: u64, high: u64, len: u64) -> Option<(u64, u64)> {
        self.lowest_gap_idx(low, high, len).map(|(s, e, _)| (s, e))
    }

    fn highest_gap_idx(&self, low: u64, high: u64, len: u64) -> Option<(u64, u64, u32)> {
        if len == 0 || low >= high {
            return None;
        }
        let t = self.trailing_gap();
        if usable(t.0, t.1, low, high) >= len {
            return Some(t);
        }
        self.highest_rec(self.root, low, high, len)
    }

    fn lowest_gap_idx(&self, low: u64, high: u64, len: u64) -> Option<(u64, u64, u32)> {
        if len == 0 || low >= high {
            return None;
        }
        if let Some(x) = self.lowest_rec(self.root, low, high, len) {
            return Some(x);
        }
        let t = self.trailing_gap();
        (usable(t.0, t.1, low, high) >= len).then_some(t)
    }

    /// Finds the highest free area for `info` (`unmapped_area_topdown`): the top of the
    /// highest gap that fits, aligned down, retried below the guard gap of a grows-down
    /// (or shadow-stack) VMA directly above.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NoSpace`] when nothing fits (`ENOMEM`).
    pub fn unmapped_area_topdown(
        &self,
        info: &VmUnmappedAreaInfo,
        p: &GapParams,
    ) -> Result<u64, VmaTreeError> {
        let length = search_length(info)?;
        let low = max(info.low_limit, p.mmap_min_addr);
        let mut high = info.high_limit;
        loop {
            let (_gs, ge, nxt) = self
                .highest_gap_idx(low, high, length)
                .ok_or(VmaTreeError::NoSpace)?;
            let gap_end = min(ge, high);
            let mut gap = gap_end - info.length;
            gap -= gap.wrapping_sub(info.align_offset) & info.align_mask;
            if nxt != NIL {
                let v = &self.s(nxt).vma;
                if v.vm_flags.intersects(VmFlags::VM_STARTGAP_FLAGS) {
                    let sg = v.vm_start_gap(p.stack_guard_gap, p.page_size);
                    if sg < gap_end {
                        high = sg;
                        continue;
                    }
                }
            }
            // The kernel's other branch checks vm_end_gap(prev) > gap, which only a
            // VM_GROWSUP prev can satisfy; neither arm64 nor x86 has VM_GROWSUP.
            return Ok(gap);
        }
    }

    /// Finds the lowest free area for `info` (`unmapped_area`): the bottom of the lowest
    /// gap that fits, plus `start_gap`, aligned up; retried above a grows-down VMA whose
    /// guard gap the area would enter.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NoSpace`] when nothing fits (`ENOMEM`).
    pub fn unmapped_area(
        &self,
        info: &VmUnmappedAreaInfo,
        p: &GapParams,
    ) -> Result<u64, VmaTreeError> {
        let length = search_length(info)?;
        let mut low = max(info.low_limit, p.mmap_min_addr);
        let high = info.high_limit;
        loop {
            let (gs, _ge, nxt) = self
                .lowest_gap_idx(low, high, length)
                .ok_or(VmaTreeError::NoSpace)?;
            let mut gap = max(gs, low).wrapping_add(info.start_gap);
            gap = gap.wrapping_add(info.align_offset.wrapping_sub(gap) & info.align_mask);
            if nxt != NIL {
                let v = &self.s(nxt).vma;
                if v.vm_flags.intersects(VmFlags::VM_STARTGAP_FLAGS) {
                    let sg = v.vm_start_gap(p.stack_guard_gap, p.page_size);
                    // vm_start_gap(tmp) < gap + length - 1, without overflow
                    if u128::from(sg) + 1 < u128::from(gap) + u128::from(length) {
                        low = v.vm_end;
                        continue;
                    }
                }
            }
            return Ok(gap);
        }
    }

    // ----- checking ------------------------------------------------------------------

    /// Checks every invariant: order, disjointness, cached gaps and heights, AVL balance,
    /// the count and the free list. O(n); meant for tests and debug assertions.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::Corrupted`] if any invariant fails.
    pub fn validate(&self) -> Result<(), VmaTreeError> {
        let mut prev_end: Option<u64> = None;
        let mut count = 0usize;
        self.validate_rec(self.root, &mut prev_end, &mut count, 0)?;
        if count != self.len || prev_end.unwrap_or(0) != self.last_end {
            return Err(VmaTreeError::Corrupted);
        }
        let mut free = 0usize;
        let mut f = self.free;
        while f != NIL {
            free += 1;
            if free > self.cap {
                return Err(VmaTreeError::Corrupted);
            }
            f = self.s(f).left;
        }
        if free + self.len != self.cap {
            return Err(VmaTreeError::Corrupted);
        }
        Ok(())
    }

    /// Returns (height, max_gap) of subtree `n` after checking it.
    fn validate_rec(
        &self,
        n: u32,
        prev_end: &mut Option<u64>,
        count: &mut usize,
        depth: usize,
    ) -> Result<(u8, u64), VmaTreeError> {
        if n == NIL {
            return Ok((0, 0));
        }
        if depth > MAX_DEPTH || n as usize >= self.cap {
            return Err(VmaTreeError::Corrupted);
        }
        let s = self.s(n);
        let (hl, gl) = self.validate_rec(s.left, prev_end, count, depth + 1)?;
        let v = &s.vma;
        if v.vm_start >= v.vm_end {
            return Err(VmaTreeError::Corrupted);
        }
        let pe = prev_end.unwrap_or(0);
        if v.vm_start < pe || s.gap_before != v.vm_start - pe {
            return Err(VmaTreeError::Corrupted);
        }
        *prev_end = Some(v.vm_end);
        *count += 1;
        let (hr, gr) = self.validate_rec(s.right, prev_end, count, depth + 1)?;
        let height = 1 + max(hl, hr);
        let mg = max(s.gap_before, max(gl, gr));
        if s.height != height || s.max_gap != mg || hl.abs_diff(hr) > 1 {
            return Err(VmaTreeError::Corrupted);
        }
        Ok((height, mg))
    }
}

fn search_length(info: &VmUnmappedAreaInfo) -> Result<u64, VmaTreeError> {
    let length = info
        .length
        .checked_add(info.align_mask)
        .and_then(|l| l.checked_add(info.start_gap))
        .ok_or(VmaTreeError::NoSpace)?;
    if info.length == 0 {
        return Err(VmaTreeError::NoSpace);
    }
    Ok(length)
}

/// Bytes of the gap `[gs, ge)` that lie inside `[low, high)`.
fn usable(gs: u64, ge: u64, low: u64, high: u64) -> u64 {
    min(ge, high).saturating_sub(max(gs, low))
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
