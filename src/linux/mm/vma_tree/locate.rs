//! One descent shared by a lookup and the change that follows it: [`Located`] records where
//! a VMA starting at a key is, or would be inserted, so that the insert or remove after a
//! neighbour check does not descend again.

use super::balance::Path;
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
    pred: u32,
    exact: u32,
    succ: u32,
}

impl Located {
    /// Returns a record of no place (every change through it descends first).
    pub(crate) fn new() -> Located {
        Located {
            key: 0,
            generation: 0,
            path: Path::new(),
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
        at.generation = self.generation.wrapping_sub(1);
        at.path.clear();
        let (pred, exact, succ) = self.descend(key, &mut at.path)?;
        at.key = key;
        at.pred = pred;
        at.exact = exact;
        at.succ = succ;
        at.generation = self.generation;
        Ok(())
    }

    /// Returns the VMAs around `at`: (the last one starting below its key, the one starting
    /// at it, the first one starting above it).
    pub(crate) fn located(&self, at: &Located) -> [Option<&Vma>; 3] {
        [at.pred, at.exact, at.succ].map(|i| (i != NIL).then(|| &self.s(i).vma))
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
        let (pred, exact, succ) = (at.pred, at.exact, at.succ);
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
        self.insert_on(vma, pred, succ, &mut at.path);
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
        if idx == NIL {
            return Err(VmaTreeError::NotFound { addr: key });
        }
        let pred_end = if at.pred == NIL {
            0
        } else {
            self.s(at.pred).vma.vm_end
        };
        // The successor is on the path above, or replaces the removed node, or is the
        // left spine of a lone right child; all three are refreshed.
        let succ = at.succ;
        if succ != NIL {
            let s_start = self.start(succ);
            self.sm(succ).gap_before = s_start - pred_end;
        } else {
            self.last_end = pred_end;
        }
        let replacement = self.unlink(idx);
        self.climb(&mut at.path, replacement, succ);
        let free = self.free;
        let slot = self.sm(idx);
        slot.left = free;
        slot.right = NIL;
        slot.height = 0;
        self.free = idx;
        self.len -= 1;
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// Keeps `at` if it was located at `key` in the tree as it is, else locates `key`
    /// afresh into it.
    fn fresh(&self, at: &mut Located, key: u64) -> Result<(), VmaTreeError> {
        if at.generation != self.generation || at.key != key {
            self.locate_into(key, at)?;
        }
        Ok(())
    }
}
