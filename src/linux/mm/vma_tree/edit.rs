//! Changing the tree: insert, remove, split and update VMAs, keeping the order and the gaps.

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

    /// Removes the VMA that starts at `start` and returns it.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::NotFound`] if no VMA starts there.
    pub fn remove(&mut self, start: u64) -> Result<Vma, VmaTreeError> {
        let mut at = Located::new();
        self.locate_into(start, &mut at)?;
        let Some(&vma) = self.located_exact(&at) else {
            return Err(VmaTreeError::NotFound { addr: start });
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
        let mut path = Path::new();
        self.descend(addr, &mut path)?;
        let (leaf, pos) = *path.last().ok_or(VmaTreeError::NotFound { addr })?;
        let p = pos as usize;
        let node = self.n(leaf);
        if p >= node.len() || self.v(node.child[p]).vm_start > addr {
            return Err(VmaTreeError::NotFound { addr });
        }
        let idx = node.child[p];
        let (lo, hi) = self.v(idx).split_at(addr, page_shift)?;
        // The new piece goes right after the old one, which keeps its place in the leaf.
        if let Some(last) = path.last_mut() {
            last.1 += 1;
        }
        if self.free == NIL || self.nodes_free < self.splits_needed(&path) {
            return Err(VmaTreeError::NoSlots);
        }
        // The gap between lo and hi is 0 and the gap above hi is unchanged; lo's end
        // moves, which the insert's refresh carries up.
        self.put_vma(idx, lo);
        self.nm(leaf).end[p] = lo.vm_end;
        let succ = self.next_of(&path, 0);
        self.insert_on(hi, lo.vm_end, succ, &path);
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
        let mut path = Path::new();
        let lo = self.descend(start, &mut path)?;
        let (leaf, pos) = *path.last().ok_or(VmaTreeError::NotFound { addr: start })?;
        let p = pos as usize;
        let node = self.n(leaf);
        if p >= node.len() || self.v(node.child[p]).vm_start != start {
            return Err(VmaTreeError::NotFound { addr: start });
        }
        let idx = node.child[p];
        let mut new = *self.v(idx);
        f(&mut new);
        if new.vm_start >= new.vm_end {
            return Err(VmaTreeError::InvalidRange {
                start: new.vm_start,
                end: new.vm_end,
            });
        }
        if new.vm_start < lo {
            let v = self.v(self.prev_of(&path));
            return Err(VmaTreeError::Overlap {
                start: v.vm_start,
                end: v.vm_end,
            });
        }
        let succ = self.next_of(&path, 1);
        let succ_start = self.v(succ).vm_start;
        if succ != NIL && new.vm_end > succ_start {
            let v = self.v(succ);
            return Err(VmaTreeError::Overlap {
                start: v.vm_start,
                end: v.vm_end,
            });
        }
        self.generation = self.generation.wrapping_add(1);
        self.put_vma(idx, new);
        let succ_here = p + 1 < self.n(leaf).len();
        let node = self.nm(leaf);
        node.end[p] = new.vm_end;
        node.gap[p] = new.vm_start - lo;
        if succ == NIL {
            self.last_end = new.vm_end;
        } else if succ_here {
            node.gap[p + 1] = succ_start - new.vm_end;
        }
        self.refresh_up(&path, path.len() - 1);
        if succ != NIL && !succ_here {
            self.set_gap(succ_start, succ_start - new.vm_end);
        }
        Ok(())
    }
}
