//! Checking the tree's structure: order, no overlaps, balance, gaps and counts.

use super::*;

impl<'a> VmaTree<'a> {
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
    pub(super) fn validate_rec(
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
