//! Splitting blocks that straddle the edge of a change, with break-before-make.

use super::*;

impl Mapper {
    /// Records in `splits` the blocks that must be split because the range `[va, last]`
    /// covers only part of the block mapping `point` (and of its descendants).
    pub(super) fn splits_at<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        point: u64,
        va: u64,
        last: u64,
        splits: &mut ArrayVec<(i8, u64), 16>,
    ) -> Result<(), MapError> {
        let mut table = self.root.as_u64();
        let mut level = self.format.start_level().get();
        loop {
            let shift = self.format.shift(level);
            let idx = (point >> shift) & self.format.index_mask(level);
            let desc = Self::read(mem, table, idx)?;
            if desc & VALID == 0 || level == 3 {
                return Ok(());
            }
            if desc & TABLE != 0 {
                table = self.next_table(desc);
                level += 1;
                continue;
            }
            // A block: every partly covered entry on the way down to `point` is split.
            let mut l = level;
            while l < 3 {
                let s = self.format.shift(l);
                let start = point & !((1u64 << s) - 1);
                let end = start | ((1u64 << s) - 1);
                if va <= start && last >= end {
                    break;
                }
                if !splits.contains(&(l, start)) && splits.try_push((l, start)).is_err() {
                    // Two chains of at most four splits each: 8 of the 16 places.
                    return Err(MapError::InvalidFormat);
                }
                l += 1;
            }
            return Ok(());
        }
    }

    /// Replaces the block `desc` at `level` (entry `idx` of `table`) with a table of
    /// next-level entries mapping the same range (break-before-make). Returns the new table.
    pub(super) fn split<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        table: u64,
        idx: u64,
        level: i8,
        e_start: u64,
        desc: u64,
    ) -> Result<u64, MapError> {
        let new = self.alloc_table(cx, e_start)?;
        let child_level = level + 1;
        let child_size = 1u64 << self.format.shift(child_level);
        let base = self.next_table(desc) & !((1u64 << self.format.shift(level)) - 1);
        let attrs = self.leaf_attrs_of(desc) & !Attributes::CONTIGUOUS.bits();
        for i in 0..self.format.granule.entries() {
            let d = self.leaf_desc(child_level, base + i * child_size, attrs);
            cx.mem.write_u64(PhysAddr::new(new + i * 8), d)?;
        }
        let slot = PhysAddr::new(table + idx * 8);
        cx.mem.write_u64(slot, 0)?;
        cx.flush.add(
            e_start,
            1u64 << self.format.shift(level),
            desc & Attributes::NG.bits() == 0,
        );
        cx.mem.write_u64(slot, self.table_desc(new))?;
        Ok(new)
    }
}
