//! One descent shared by a lookup and the change that follows it: [`Located`] records where
//! a VMA starting at a key is, or would be inserted, so that the insert or remove after a
//! neighbour check does not descend again.

use super::node::Entry;
use super::*;

/// Where a VMA starting at `key` is or would go, found by [`VmaTree::locate`]: the path from
/// the root and the neighbours. It stays good until the tree changes; a change in between
/// is detected (by the tree's change count) and the insert or remove then descends again.
/// It is large (the path): pass it by reference.
#[derive(Debug)]
pub(crate) struct Located {
    key: u64,
    generation: u64,
    path: Path,
    /// The end of the VMA before the path's position (0 if none).
    lo: u64,
    /// The VMA at the path's position when it starts below the key (it holds the key),
    /// else `NIL`: the one before the position is found only when asked for
    /// ([`VmaTree::located`]), since it ends at or below the key and no change needs it.
    pred: u32,
    exact: u32,
    succ: u32,
}

impl Located {
    /// Records the place of a free key in the gap below the VMA `succ`, which the gap
    /// search found at the end of `path`, with `lo` the end of the VMA before it. It is
    /// not usable until [`Located::seal`] names the key.
    pub(super) fn set_gap_place(
        &mut self,
        path: impl Iterator<Item = (u32, u32)>,
        lo: u64,
        succ: u32,
    ) {
        self.path.clear();
        for e in path {
            // The gap search's stack is no deeper than a path.
            let _ = self.path.try_push(e);
        }
        self.lo = lo;
        self.pred = NIL;
        self.exact = NIL;
        self.succ = succ;
    }

    /// Makes the place recorded last the place of `key` in the tree as it is now.
    pub(super) fn seal(&mut self, key: u64, generation: u64) {
        self.key = key;
        self.generation = generation;
    }

    /// Makes the record usable for nothing (a change through it descends first).
    pub(super) fn void(&mut self, generation: u64) {
        self.generation = generation.wrapping_sub(1);
    }

    /// Returns whether this is a place of `key` in the tree as it was at `generation`, the
    /// same place a descent to `key` records.
    #[cfg(test)]
    pub(super) fn is_place_of(&self, key: u64, generation: u64, descent: &Located) -> bool {
        self.key == key
            && self.generation == generation
            && self.path == descent.path
            && (self.lo, self.pred, self.exact, self.succ)
                == (descent.lo, descent.pred, descent.exact, descent.succ)
    }

    /// Returns whether a change through this record at `key` would use it as it is in
    /// the tree at `generation`, without descending.
    #[cfg(test)]
    pub(super) fn is_current(&self, key: u64, generation: u64) -> bool {
        self.key == key && self.generation == generation
    }

    /// Returns a record of no place (every change through it descends first).
    pub(crate) fn new() -> Located {
        Located {
            key: 0,
            generation: 0,
            path: Path::new(),
            lo: 0,
            pred: NIL,
            exact: NIL,
            succ: NIL,
        }
    }
}

impl<'a> VmaTree<'a> {
    /// Descends once toward `key`.
    ///
    /// # Errors
    /// [`VmaTreeError::Corrupted`] if the tree is deeper than a balanced tree can be.
    #[cfg(test)]
    pub(crate) fn locate(&self, key: u64) -> Result<Located, VmaTreeError> {
        let mut at = Located::new();
        self.locate_into(key, &mut at)?;
        Ok(at)
    }

    /// Descends once toward `key`, recording where in `at` (which is large: filled in
    /// place, not copied). On an error `at` holds nothing usable, and a change through it
    /// descends again.
    ///
    /// # Errors
    /// [`VmaTreeError::Corrupted`] if the tree is deeper than a balanced tree can be.
    pub(crate) fn locate_into(&self, key: u64, at: &mut Located) -> Result<(), VmaTreeError> {
        // Not this tree's generation until the descent is whole.
        at.void(self.generation);
        let lo = self.descend(key, &mut at.path)?;
        let (mut pred, mut exact, mut succ) = (NIL, NIL, NIL);
        if let Some(&(leaf, pos)) = at.path.last() {
            let node = self.n(leaf);
            let p = pos as usize;
            if p < node.len() {
                let c = node.child[p];
                let start = lo + node.gap[p];
                if start == key {
                    exact = c;
                } else if start < key {
                    pred = c;
                } else {
                    succ = c;
                }
                if start <= key {
                    succ = self.next_of(&at.path, 1);
                }
            }
        }
        at.key = key;
        at.lo = lo;
        at.pred = pred;
        at.exact = exact;
        at.succ = succ;
        at.generation = self.generation;
        Ok(())
    }

    /// Returns the VMAs around `at`: (the last one starting below its key, the one starting
    /// at it, the first one starting above it).
    pub(crate) fn located(&self, at: &Located) -> [Option<&Vma>; 3] {
        let pred = if at.pred == NIL {
            self.prev_of(&at.path)
        } else {
            at.pred
        };
        [pred, at.exact, at.succ].map(|i| (i != NIL).then(|| &self.s(i).vma))
    }

    /// Returns the VMA starting at `at`'s key, if any.
    pub(crate) fn located_exact(&self, at: &Located) -> Option<&Vma> {
        (at.exact != NIL).then(|| &self.s(at.exact).vma)
    }

    /// Inserts `vma`, which must not intersect any VMA in the tree, at `at` when `at` was
    /// located at its start and the tree has not changed since (else as
    /// [`VmaTree::insert`]).
    ///
    /// # Errors
    /// As [`VmaTree::insert`].
    pub(crate) fn insert_located(
        &mut self,
        vma: Vma,
        at: &mut Located,
    ) -> Result<(), VmaTreeError> {
        if vma.vm_start >= vma.vm_end {
            return Err(VmaTreeError::InvalidRange {
                start: vma.vm_start,
                end: vma.vm_end,
            });
        }
        self.fresh(at, vma.vm_start)?;
        // Only a VMA holding the start can overlap from below: the one before the
        // position ends at or below it.
        let (pred, exact, succ) = (at.pred, at.exact, at.succ);
        for (i, hit) in [
            (pred, pred != NIL && self.s(pred).vma.vm_end > vma.vm_start),
            (exact, exact != NIL),
            (succ, succ != NIL && self.v(succ).vm_start < vma.vm_end),
        ] {
            if hit {
                let v = &self.s(i).vma;
                return Err(VmaTreeError::Overlap {
                    start: v.vm_start,
                    end: v.vm_end,
                });
            }
        }
        if self.free == NIL || self.nodes_free < self.splits_needed(&at.path) {
            return Err(VmaTreeError::NoSlots);
        }
        self.insert_on(vma, at.lo, succ, &at.path);
        Ok(())
    }

    /// Removes the VMA that starts at the key `at` was located at (descending again if the
    /// tree changed since).
    ///
    /// # Errors
    /// [`VmaTreeError::NotFound`] if no VMA starts there.
    pub(crate) fn remove_located(&mut self, at: &mut Located) -> Result<(), VmaTreeError> {
        let key = at.key;
        self.fresh(at, key)?;
        let idx = at.exact;
        let Some(&(leaf, pos)) = at.path.last() else {
            return Err(VmaTreeError::NotFound { addr: key });
        };
        if idx == NIL {
            return Err(VmaTreeError::NotFound { addr: key });
        }
        let (lo, succ, p) = (at.lo, at.succ, pos as usize);
        self.nm(leaf).remove(p);
        // The successor's gap now starts at the predecessor's end.
        let succ_start = self.v(succ).vm_start;
        let succ_here = p < self.n(leaf).len();
        if succ == NIL {
            self.last_end = lo;
        } else if succ_here {
            self.nm(leaf).gap[p] = succ_start - lo;
        }
        self.fix_underflow(&at.path);
        if succ != NIL && !succ_here {
            self.set_gap(succ_start, succ_start - lo);
        }
        let free = self.free;
        self.sm(idx).next_free = free;
        self.free = idx;
        self.len -= 1;
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// Inserts `vma` at the end of `path` (the descent to its start, with `lo` the end of
    /// the VMA before it), before `succ`. The caller has checked the free slots.
    ///
    /// A descent to a free start ends in its successor's leaf, at the successor's
    /// position, so the successor's new gap is written there. Only a split's upper piece
    /// can land at the end of a leaf with its successor in the next one, and that
    /// successor keeps the gap it had.
    pub(super) fn insert_on(&mut self, vma: Vma, lo: u64, succ: u32, path: &Path) {
        // Every descent ends in a leaf (the root is one in an empty tree): an empty path
        // would drop the VMA unnoticed.
        debug_assert!(!path.is_empty(), "insert_on without a path");
        let Some(&(leaf, pos)) = path.last() else {
            return;
        };
        let idx = self.free;
        self.free = self.s(idx).next_free;
        self.put_vma(idx, vma);
        let p = pos as usize;
        if succ == NIL {
            self.last_end = vma.vm_end;
        } else if p < self.n(leaf).len() {
            self.nm(leaf).gap[p] = self.v(succ).vm_start - vma.vm_end;
        }
        let e = Entry {
            end: vma.vm_end,
            gap: vma.vm_start - lo,
            child: idx,
        };
        self.insert_entry(path, e);
        self.len += 1;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Keeps `at` if it was located at `key` in the tree as it is (by a descent or by the
    /// gap search that found `key`), else locates `key` afresh into it.
    ///
    /// # Errors
    /// As [`VmaTree::locate_into`].
    pub(crate) fn fresh(&self, at: &mut Located, key: u64) -> Result<(), VmaTreeError> {
        if at.generation != self.generation || at.key != key {
            self.locate_into(key, at)?;
        }
        Ok(())
    }
}
