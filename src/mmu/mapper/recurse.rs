//! The recursions over a VA range that map, unmap, re-protect and list leaves, level by level.

use super::*;

impl Mapper {
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
        let shift = self.format.shift(level);
        let size = 1u64 << shift;
        let mask = self.format.index_mask(level);
        let mut a = start;
        loop {
            let e_start = a & !(size - 1);
            let e_last = e_start | (size - 1);
            let sub_last = last.min(e_last);
            let idx = (a >> shift) & mask;
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
            let whole = a == e_start && sub_last == e_last;
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
            if sub_last == last {
                return Ok(());
            }
            a = sub_last + 1;
        }
    }

    /// Unmaps `[start, last]` below `table`; returns whether the table is now empty.
    pub(super) fn unmap_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        table: u64,
        level: i8,
        start: u64,
        last: u64,
    ) -> Result<bool, MapError> {
        let shift = self.format.shift(level);
        let size = 1u64 << shift;
        let mask = self.format.index_mask(level);
        let mut a = start;
        let mut cleared = false;
        loop {
            let e_start = a & !(size - 1);
            let e_last = e_start | (size - 1);
            let sub_last = last.min(e_last);
            let idx = (a >> shift) & mask;
            let slot = PhysAddr::new(table + idx * 8);
            let desc = cx.mem.read_u64(slot)?;
            let whole = a == e_start && sub_last == e_last;
            if desc & VALID != 0 {
                let is_table = desc & TABLE != 0 && level < 3;
                if !is_table && whole {
                    cx.mem.write_u64(slot, 0)?;
                    cx.flush
                        .add(e_start, size, desc & Attributes::NG.bits() == 0);
                    cleared = true;
                } else {
                    let child = if is_table {
                        self.next_table(desc)
                    } else {
                        self.split(cx, table, idx, level, e_start, desc)?
                    };
                    if self.unmap_rec(cx, child, level + 1, a, sub_last)? {
                        cx.mem.write_u64(slot, 0)?;
                        self.free_table(cx.frames, child)?;
                        cleared = true;
                    }
                }
            }
            if sub_last == last {
                break;
            }
            a = sub_last + 1;
        }
        if (!cleared && !cx.prune_all) || table == self.root.as_u64() {
            return Ok(false);
        }
        self.table_is_empty(cx.mem, table, level)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn protect_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        table: u64,
        level: i8,
        start: u64,
        last: u64,
        set: u64,
        clear: u64,
    ) -> Result<(), MapError> {
        let shift = self.format.shift(level);
        let size = 1u64 << shift;
        let mask = self.format.index_mask(level);
        let mut a = start;
        loop {
            let e_start = a & !(size - 1);
            let e_last = e_start | (size - 1);
            let sub_last = last.min(e_last);
            let idx = (a >> shift) & mask;
            let slot = PhysAddr::new(table + idx * 8);
            let desc = cx.mem.read_u64(slot)?;
            let whole = a == e_start && sub_last == e_last;
            if desc & VALID != 0 {
                let is_table = desc & TABLE != 0 && level < 3;
                if !is_table && whole {
                    let new = (desc & !clear) | set;
                    if new != desc {
                        cx.mem.write_u64(slot, new)?;
                        cx.flush.add(
                            e_start,
                            size,
                            desc & Attributes::NG.bits() == 0 || new & Attributes::NG.bits() == 0,
                        );
                    }
                } else {
                    let child = if is_table {
                        self.next_table(desc)
                    } else {
                        self.split(cx, table, idx, level, e_start, desc)?
                    };
                    self.protect_rec(cx, child, level + 1, a, sub_last, set, clear)?;
                }
            }
            if sub_last == last {
                return Ok(());
            }
            a = sub_last + 1;
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
        let shift = self.format.shift(level);
        let size = 1u64 << shift;
        let mask = self.format.index_mask(level);
        let mut a = start;
        loop {
            let e_start = a & !(size - 1);
            let e_last = e_start | (size - 1);
            let sub_last = last.min(e_last);
            let idx = (a >> shift) & mask;
            let desc = Self::read(mem, table, idx)?;
            if desc & VALID != 0 {
                if desc & TABLE != 0 && level < 3 {
                    if !self.leaves_rec(mem, self.next_table(desc), level + 1, a, sub_last, f)? {
                        return Ok(false);
                    }
                } else if level == 3 || self.format.block_ok(level) {
                    let leaf = Leaf {
                        va: VirtAddr::new(e_start),
                        size_log2: shift as u8,
                        level: Level::new(level).unwrap_or(Level::L3),
                        descriptor: Descriptor(desc),
                        pa: PhysAddr::new(self.next_table(desc) & !(size - 1)),
                        descriptor_pa: PhysAddr::new(table + idx * 8),
                    };
                    if !f(&leaf) {
                        return Ok(false);
                    }
                }
            }
            if sub_last == last {
                return Ok(true);
            }
            a = sub_last + 1;
        }
    }
}
