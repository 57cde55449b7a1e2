//! Changing the tree: insert, remove, split and update VMAs, keeping the order and the gaps.

use super::balance::Path;
use super::locate::Located;
use super::*;

impl<'a> VmaTree<'a> {
    /// Inserts `vma`, which must not intersect any VMA in the tree.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::InvalidRange`] if `vm_start >= vm_end`, [`VmaTreeError::Overlap`]
    /// if it intersects a VMA, [`VmaTreeError::NoSlots`] if the tree is full.
    pub fn insert(&mut self, vma: Vma) -> Result<(), VmaTreeError> {
        let mut at = Located::new();
        self.locate_into(vma.vm_start, &mut at)?;
        self.insert_located(vma, &mut at)
    }

    /// Inserts `vma` between `pred` and `succ` (its neighbours, already checked).
    pub(super) fn insert_at(&mut self, vma: Vma, pred: u32, succ: u32) -> Result<(), VmaTreeError> {
        let mut path = Path::new();
        self.descend(vma.vm_start, &mut path)?;
        self.insert_on(vma, pred, succ, &mut path);
        Ok(())
    }

    /// Inserts `vma` as a new leaf at the end of `path` (the descent to its key), between
    /// `pred` and `succ`.
    pub(super) fn insert_on(&mut self, vma: Vma, pred: u32, succ: u32, path: &mut Path) {
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
        // The in-order successor of a new leaf is one of its ancestors: the climb back up
        // refreshes it, and every cached maximum that changes.
        if succ != NIL {
            let s_start = self.start(succ);
            self.sm(succ).gap_before = s_start - vma.vm_end;
        } else {
            self.last_end = vma.vm_end;
        }
        self.climb(path, idx, succ);
        self.len += 1;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Removes the VMA that starts at `start` and returns it.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NotFound`] if no VMA starts there.
    pub fn remove(&mut self, start: u64) -> Result<Vma, VmaTreeError> {
        let mut at = Located::new();
        self.locate_into(start, &mut at)?;
        let vma = match self.located(&at) {
            [_, Some(v), _] => *v,
            _ => return Err(VmaTreeError::NotFound { addr: start }),
        };
        self.remove_located(&mut at)?;
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
        self.generation = self.generation.wrapping_add(1);
        self.sm(idx).vma = lo;
        self.insert_at(hi, idx, succ)
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
        self.generation = self.generation.wrapping_add(1);
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
}
