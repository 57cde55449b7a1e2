//! The gap search: `vm_unmapped_area` top-down and bottom-up over the augmented tree.

use super::*;

pub(super) fn search_length(info: &VmUnmappedAreaInfo) -> Result<u64, VmaTreeError> {
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
pub(super) fn usable(gs: u64, ge: u64, low: u64, high: u64) -> u64 {
    min(ge, high).saturating_sub(max(gs, low))
}

impl<'a> VmaTree<'a> {
    /// Returns `(gap_start, gap_end, upper_vma)` of the trailing gap above the last VMA.
    pub(super) fn trailing_gap(&self) -> (u64, u64, u32) {
        // The tree keeps the last VMA's end: no descent of the right spine.
        (self.last_end, u64::MAX, NIL)
    }

    /// Returns the highest (`top`) or lowest free gap in the tree whose part inside
    /// `[low, high)` holds `len` bytes, as `(gs, ge, vma above it)`: a walk of the entries
    /// in address order (reversed for `top`) that enters no child whose largest gap is too
    /// small or whose gaps all lie outside `[low, high)`. The gaps under an entry lie
    /// between the end before it and its own end. Where it finds one, `at` (if given)
    /// records the place of the keys in the gap (the path it took), for the caller to seal.
    pub(super) fn gap_find(
        &self,
        low: u64,
        high: u64,
        len: u64,
        top: bool,
        at: Option<&mut Located>,
    ) -> Option<(u64, u64, u32)> {
        if self.root == NIL {
            return None;
        }
        // Each node on the way down: the entries still to try, as the next one's index
        // (top: one past it), and the end before its first entry.
        let mut stack: ArrayVec<(u32, usize, u64), MAX_DEPTH> = ArrayVec::new();
        let mut found = None;
        stack
            .try_push((self.root, self.first_entry(self.root, low, high, top), 0))
            .ok()?;
        while let Some(frame) = stack.last_mut() {
            let (n, next, lo) = *frame;
            let node = self.n(n);
            let i = if top {
                if next == 0 {
                    stack.pop();
                    continue;
                }
                frame.1 -= 1;
                next - 1
            } else {
                if next >= node.len() {
                    stack.pop();
                    continue;
                }
                frame.1 += 1;
                next
            };
            let e = node.entry(i);
            let elo = if i > 0 { node.end[i - 1] } else { lo };
            if e.gap < len || e.end <= low || elo >= high {
                continue;
            }
            if node.leaf {
                let (gs, ge) = (elo, elo + e.gap);
                if usable(gs, ge, low, high) >= len {
                    found = Some((gs, ge, e.child));
                    break;
                }
                continue;
            }
            let first = self.first_entry(e.child, low, high, top);
            // Deeper than the tree can be: it is corrupt; no gap.
            stack.try_push((e.child, first, elo)).ok()?;
        }
        if let (Some((gs, _, child)), Some(at)) = (found, at) {
            // The entry each node's walk is at: top-down one below the index it kept,
            // bottom-up one past it.
            let path = stack
                .iter()
                .map(|&(n, next, _)| (n, if top { next } else { next - 1 } as u32));
            at.set_gap_place(path, gs, child);
        }
        found
    }

    /// Returns where [`VmaTree::gap_find`] starts in node `n`: bottom-up, at the first
    /// entry ending above `low`; top-down, one past the first entry ending at or above
    /// `high` (the gaps under every later entry lie above it).
    fn first_entry(&self, n: u32, low: u64, high: u64, top: bool) -> usize {
        let node = self.n(n);
        if top {
            min(node.find(high.saturating_sub(1)) + 1, node.len())
        } else {
            node.find(low)
        }
    }

    /// Returns the highest free gap `[gs, ge)` whose part inside `[low, high)` holds
    /// `len` bytes (`mas_empty_area_rev`), as `(gs, ge)`.
    pub fn highest_gap(&self, low: u64, high: u64, len: u64) -> Option<(u64, u64)> {
        self.highest_gap_idx(low, high, len, None)
            .map(|(s, e, _)| (s, e))
    }

    /// Returns the lowest free gap `[gs, ge)` whose part inside `[low, high)` holds
    /// `len` bytes (`mas_empty_area`), as `(gs, ge)`.
    pub fn lowest_gap(&self, low: u64, high: u64, len: u64) -> Option<(u64, u64)> {
        self.lowest_gap_idx(low, high, len, None)
            .map(|(s, e, _)| (s, e))
    }

    /// [`VmaTree::highest_gap`] with the VMA above the gap (`NIL` for the trailing gap),
    /// and, for a gap below a VMA, its place recorded in `at` (see [`VmaTree::gap_find`]).
    pub(super) fn highest_gap_idx(
        &self,
        low: u64,
        high: u64,
        len: u64,
        at: Option<&mut Located>,
    ) -> Option<(u64, u64, u32)> {
        if len == 0 || low >= high {
            return None;
        }
        let t = self.trailing_gap();
        if usable(t.0, t.1, low, high) >= len {
            return Some(t);
        }
        self.gap_find(low, high, len, true, at)
    }

    /// [`VmaTree::lowest_gap`] as [`VmaTree::highest_gap_idx`] is to `highest_gap`.
    pub(super) fn lowest_gap_idx(
        &self,
        low: u64,
        high: u64,
        len: u64,
        at: Option<&mut Located>,
    ) -> Option<(u64, u64, u32)> {
        if len == 0 || low >= high {
            return None;
        }
        if let Some(x) = self.gap_find(low, high, len, false, at) {
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
        self.unmapped_area_topdown_at(info, p, None)
    }

    /// [`VmaTree::unmapped_area_topdown`], recording in `at` (if given) the place of a
    /// VMA starting at the address found, so that inserting it does not descend again;
    /// where the area is above the last VMA, `at` records no place.
    ///
    /// # Errors
    ///
    /// As [`VmaTree::unmapped_area_topdown`].
    #[inline]
    pub(crate) fn unmapped_area_topdown_at(
        &self,
        info: &VmUnmappedAreaInfo,
        p: &GapParams,
        mut at: Option<&mut Located>,
    ) -> Result<u64, VmaTreeError> {
        if let Some(at) = at.as_deref_mut() {
            at.void(self.generation);
        }
        let length = search_length(info)?;
        let low = max(info.low_limit, p.mmap_min_addr);
        let mut high = info.high_limit;
        loop {
            let (_gs, ge, nxt) = self
                .highest_gap_idx(low, high, length, at.as_deref_mut())
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
            self.seal_gap_place(at, nxt, gap);
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
        self.unmapped_area_at(info, p, None)
    }

    /// [`VmaTree::unmapped_area`], recording the place found in `at` as
    /// [`VmaTree::unmapped_area_topdown_at`] does.
    ///
    /// # Errors
    ///
    /// As [`VmaTree::unmapped_area`].
    #[inline]
    pub(crate) fn unmapped_area_at(
        &self,
        info: &VmUnmappedAreaInfo,
        p: &GapParams,
        mut at: Option<&mut Located>,
    ) -> Result<u64, VmaTreeError> {
        if let Some(at) = at.as_deref_mut() {
            at.void(self.generation);
        }
        let length = search_length(info)?;
        let mut low = max(info.low_limit, p.mmap_min_addr);
        let high = info.high_limit;
        loop {
            let (gs, _ge, nxt) = self
                .lowest_gap_idx(low, high, length, at.as_deref_mut())
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
            self.seal_gap_place(at, nxt, gap);
            return Ok(gap);
        }
    }

    /// Makes the place the last gap search recorded in `at` that of `key`, an address in
    /// the gap below VMA `above`; a gap above the last VMA (`above` is `NIL`) recorded
    /// none, and `at` stays void.
    fn seal_gap_place(&self, at: Option<&mut Located>, above: u32, key: u64) {
        if let Some(at) = at {
            if above != NIL {
                at.seal(key, self.generation);
            }
        }
    }
}
