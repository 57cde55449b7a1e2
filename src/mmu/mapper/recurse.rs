//! The recursions over a VA range that map, unmap, re-protect and list leaves, level by level.

use super::*;

/// What [`Mapper::modify_rec`] does to the leaves of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Modify {
    /// Remove them (and the tables that become empty).
    Unmap,
    /// Set and clear attribute bits in place.
    Protect {
        /// Bits to set.
        set: u64,
        /// Bits to clear.
        clear: u64,
    },
}

/// One entry of a table that a range `[start, last]` visits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    /// Its index in the table.
    pub idx: u64,
    /// The first address of the range inside the entry.
    pub a: u64,
    /// The last address of the range inside the entry.
    pub last: u64,
    /// The first address the entry translates.
    pub start: u64,
    /// The bytes it translates.
    pub size: u64,
    /// Whether the range covers the entry whole.
    pub whole: bool,
}

/// The entries of one table a range visits, in order: the one shape every range operation
/// of the mapper (map, unmap, protect, leaf iteration) walks a level with.
pub(super) struct Entries {
    shift: u32,
    mask: u64,
    a: u64,
    last: u64,
    done: bool,
}

impl Iterator for Entries {
    type Item = Entry;

    #[inline]
    fn next(&mut self) -> Option<Entry> {
        if self.done {
            return None;
        }
        let size = 1u64 << self.shift;
        let start = self.a & !(size - 1);
        let end = start | (size - 1);
        let last = self.last.min(end);
        let e = Entry {
            idx: (self.a >> self.shift) & self.mask,
            a: self.a,
            last,
            start,
            size,
            whole: self.a == start && last == end,
        };
        if last == self.last {
            self.done = true;
        } else {
            self.a = last + 1;
        }
        Some(e)
    }
}

impl Mapper {
    /// Returns the entries of a level-`level` table that `[start, last]` visits.
    #[inline]
    pub(super) fn entries(&self, level: i8, start: u64, last: u64) -> Entries {
        Entries {
            shift: self.format.shift(level),
            mask: self.format.index_mask(level),
            a: start,
            last,
            done: false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn map_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        table: Option<u64>,
        level: i8,
        start: u64,
        last: u64,
        pa_start: u64,
        bits: u64,
    ) -> Result<(), MapError> {
        for Entry {
            idx,
            a,
            last: sub_last,
            size,
            whole,
            ..
        } in self.entries(level, start, last)
        {
            let pa = pa_start + (a - start);
            let desc = match table {
                Some(t) => Self::read(cx.mem, t, idx)?,
                None => 0,
            };
            let valid = desc & VALID != 0;
            let is_table = valid && desc & TABLE != 0 && level < 3;
            if valid && !is_table {
                return Err(MapError::AlreadyMapped {
                    va: VirtAddr::new(a),
                });
            }
            if level == 3
                || (!valid
                    && whole
                    && self.blocks
                    && self.format.block_ok(level)
                    && pa & (size - 1) == 0)
            {
                if !cx.plan {
                    let t = table.unwrap_or(0);
                    cx.mem
                        .write_u64(PhysAddr::new(t + idx * 8), self.leaf_desc(level, pa, bits))?;
                }
            } else {
                let child = if is_table {
                    Some(self.next_table(desc))
                } else if cx.plan {
                    cx.tables_needed += 1;
                    None
                } else {
                    let t = table.unwrap_or(0);
                    let new = self.alloc_table(cx, a)?;
                    cx.mem
                        .write_u64(PhysAddr::new(t + idx * 8), self.table_desc(new))?;
                    Some(new)
                };
                self.map_rec(cx, child, level + 1, a, sub_last, pa, bits)?;
            }
        }
        Ok(())
    }

    /// Unmaps `[start, last]` below `table`, or changes the attributes of its leaves
    /// (`op`), splitting blocks the range covers in part; returns whether an unmap left the
    /// table empty (it is then pruned by the caller).
    pub(super) fn modify_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        table: u64,
        level: i8,
        start: u64,
        last: u64,
        op: Modify,
    ) -> Result<bool, MapError> {
        let mut cleared = false;
        if level == 3 {
            // A page table: every entry the range visits is a whole page. Above, entries
            // are tables, blocks, or blocks the range covers in part.
            cleared = self.modify_pages(cx, table, start, last, op)?;
            let shift = self.format.shift(3);
            if op == Modify::Unmap && ((last - start) >> shift) == self.format.index_mask(3) {
                // The unmap visited every entry, so the table is empty: no need to read
                // it all again.
                return Ok((cleared || cx.prune_all) && table != self.root.as_u64());
            }
        } else {
            for Entry {
                idx,
                a,
                last: sub_last,
                start: e_start,
                size,
                whole,
            } in self.entries(level, start, last)
            {
                let slot = PhysAddr::new(table + idx * 8);
                let desc = cx.mem.read_u64(slot)?;
                if desc & VALID == 0 {
                    continue;
                }
                let is_table = desc & TABLE != 0;
                if !is_table && whole {
                    let leaf = self.format.block_ok(level);
                    cleared |= self.modify_leaf(cx, op, level, e_start, size, desc, slot, leaf)?;
                    continue;
                }
                let child = if is_table {
                    self.next_table(desc)
                } else {
                    self.split(cx, table, idx, level, e_start, desc)?
                };
                if self.modify_rec(cx, child, level + 1, a, sub_last, op)? {
                    cx.mem.write_u64(slot, 0)?;
                    self.free_table(cx.frames, child)?;
                    cleared = true;
                }
            }
        }
        if op != Modify::Unmap || (!cleared && !cx.prune_all) || table == self.root.as_u64() {
            return Ok(false);
        }
        self.table_is_empty(cx.mem, table, level)
    }

    /// Applies `op` to the pages of `[start, last]` in the level-3 table `table` (the range
    /// lies in it, page-aligned): [`Mapper::modify_rec`]'s loop for a page table, where no
    /// entry is a table or a part. Returns whether an unmap cleared an entry.
    fn modify_pages<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        table: u64,
        start: u64,
        last: u64,
        op: Modify,
    ) -> Result<bool, MapError> {
        let shift = self.format.shift(3);
        let size = 1u64 << shift;
        let first = (start >> shift) & self.format.index_mask(3);
        let count = ((last - start) >> shift) + 1;
        let mut cleared = false;
        for i in 0..count {
            let slot = PhysAddr::new(table + (first + i) * 8);
            let desc = cx.mem.read_u64(slot)?;
            if desc & VALID == 0 {
                continue;
            }
            let e_start = start + (i << shift);
            cleared |= self.modify_leaf(cx, op, 3, e_start, size, desc, slot, true)?;
        }
        Ok(cleared)
    }

    /// Applies `op` to the valid leaf `desc` at `slot` (a level-`level` entry translating
    /// `size` bytes from `start`, which the range covers whole): writes what it becomes,
    /// records the invalidation, and hands an unmapped leaf to the caller's `removed`
    /// (when `report`: an entry the architecture reads as a leaf). Returns whether the
    /// entry is now clear.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn modify_leaf<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &self,
        cx: &mut Ctx<'_, M, F>,
        op: Modify,
        level: i8,
        start: u64,
        size: u64,
        desc: u64,
        slot: PhysAddr,
        report: bool,
    ) -> Result<bool, MapError> {
        let ng = Attributes::NG.bits();
        let new = match op {
            Modify::Unmap => 0,
            Modify::Protect { set, clear } => (desc & !clear) | set,
        };
        if new != desc {
            cx.mem.write_u64(slot, new)?;
            let global = desc & ng == 0 || (new & VALID != 0 && new & ng == 0);
            cx.flush.add(start, size, global);
        }
        if let (Modify::Unmap, Some(f)) = (op, cx.removed.as_mut()) {
            if report {
                f(&self.leaf(level, start, size, desc, slot), cx.frames);
            }
        }
        Ok(new == 0)
    }

    /// Returns the leaf `desc` at `slot`, a level-`level` entry translating `size` bytes
    /// from `start`.
    #[inline]
    fn leaf(&self, level: i8, start: u64, size: u64, desc: u64, slot: PhysAddr) -> Leaf {
        Leaf {
            va: VirtAddr::new(start),
            size_log2: size.trailing_zeros() as u8,
            level: Level::new(level).unwrap_or(Level::L3),
            descriptor: Descriptor(desc),
            pa: PhysAddr::new(self.next_table(desc) & !(size - 1)),
            descriptor_pa: slot,
        }
    }

    pub(super) fn table_is_empty<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        table: u64,
        level: i8,
    ) -> Result<bool, MapError> {
        let n = self.format.index_mask(level) + 1;
        for i in 0..n {
            if Self::read(mem, table, i)? & VALID != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) fn count_rec<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        table: u64,
        level: i8,
        counts: &mut [u64; 5],
    ) -> Result<(), MapError> {
        counts[(level + 1) as usize] += 1;
        if level == 3 {
            return Ok(());
        }
        for i in 0..=self.format.index_mask(level) {
            let d = Self::read(mem, table, i)?;
            if d & (VALID | TABLE) == VALID | TABLE {
                self.count_rec(mem, self.next_table(d), level + 1, counts)?;
            }
        }
        Ok(())
    }

    pub(super) fn leaves_rec<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        table: u64,
        level: i8,
        start: u64,
        last: u64,
        f: &mut dyn FnMut(&Leaf) -> bool,
    ) -> Result<bool, MapError> {
        for Entry {
            idx,
            a,
            last: sub_last,
            start: e_start,
            size,
            ..
        } in self.entries(level, start, last)
        {
            let desc = Self::read(mem, table, idx)?;
            if desc & VALID != 0 {
                if desc & TABLE != 0 && level < 3 {
                    if !self.leaves_rec(mem, self.next_table(desc), level + 1, a, sub_last, f)? {
                        return Ok(false);
                    }
                } else if level == 3 || self.format.block_ok(level) {
                    let leaf =
                        self.leaf(level, e_start, size, desc, PhysAddr::new(table + idx * 8));
                    if !f(&leaf) {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }
}
