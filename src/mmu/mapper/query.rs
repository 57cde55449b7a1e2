//! Reading the tables: lookups, per-level counts and leaf iteration.

use super::*;

impl Mapper {
    /// Looks up the leaf mapping `va` (no permission checks).
    ///
    /// # Errors
    /// [`MapError::Memory`] if a table cannot be read.
    pub fn lookup<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        va: VirtAddr,
    ) -> Result<Option<Leaf>, MapError> {
        let v = va.as_u64();
        let (lo, hi) = self.format.va_range();
        if v < lo || v > hi {
            return Ok(None);
        }
        // The root entry on its own: where it is invalid (no table was ever made under
        // it, or the tables were freed), the lookup ends before the walk is set up.
        let level = self.format.start_level().get();
        let idx = (v >> self.format.shift(level)) & self.format.index_mask(level);
        let desc = Self::read(mem, self.root.as_u64(), idx)?;
        if desc & VALID == 0 {
            return Ok(None);
        }
        self.lookup_walk(mem, v, desc)
    }

    /// [`Mapper::lookup`]'s walk of `v` (inside the half) on from `root_desc`, the valid
    /// root entry it read.
    #[inline(never)]
    fn lookup_walk<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        v: u64,
        root_desc: u64,
    ) -> Result<Option<Leaf>, MapError> {
        let index = |level: i8| (v >> self.format.shift(level)) & self.format.index_mask(level);
        let mut table = self.root.as_u64();
        let mut level = self.format.start_level().get();
        let mut desc = root_desc;
        loop {
            if desc & VALID == 0
                || (desc & TABLE == 0 && (level == 3 || !self.format.block_ok(level)))
            {
                return Ok(None);
            }
            if desc & TABLE != 0 && level < 3 {
                table = self.next_table(desc);
                level += 1;
                desc = Self::read(mem, table, index(level))?;
                continue;
            }
            let shift = self.format.shift(level);
            let base = self.next_table(desc) & !((1u64 << shift) - 1);
            return Ok(Some(Leaf {
                va: VirtAddr::new(v & !((1u64 << shift) - 1)),
                size_log2: shift as u8,
                level: Level::new(level).unwrap_or(Level::L3),
                descriptor: Descriptor(desc),
                pa: PhysAddr::new(base),
                descriptor_pa: PhysAddr::new(table + index(level) * 8),
            }));
        }
    }

    /// Counts the tables of each level (index `level + 1`, so index 0 is level -1).
    ///
    /// # Errors
    /// [`MapError::Memory`] if a table cannot be read.
    pub fn tables_per_level<M: PhysMemory + ?Sized>(&self, mem: &M) -> Result<[u64; 5], MapError> {
        let mut counts = [0u64; 5];
        let start = self.format.start_level().get();
        self.count_rec(mem, self.root.as_u64(), start, &mut counts)?;
        Ok(counts)
    }

    /// Returns the raw descriptor at `level` on the path to `va`, or `None` when the path
    /// stops (at an invalid entry or a block) above that level.
    ///
    /// # Errors
    /// [`MapError::Memory`] if a table cannot be read.
    pub fn descriptor_at<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        va: VirtAddr,
        level: Level,
    ) -> Result<Option<Descriptor>, MapError> {
        let v = va.as_u64();
        let (lo, hi) = self.format.va_range();
        if v < lo || v > hi || level < self.format.start_level() {
            return Ok(None);
        }
        let mut table = self.root.as_u64();
        let mut l = self.format.start_level().get();
        loop {
            let idx = (v >> self.format.shift(l)) & self.format.index_mask(l);
            let desc = Self::read(mem, table, idx)?;
            if l == level.get() {
                return Ok(Some(Descriptor(desc)));
            }
            if desc & 3 != 3 {
                return Ok(None);
            }
            table = self.next_table(desc);
            l += 1;
        }
    }

    /// Calls `f` for every valid leaf overlapping `[va, va + len)`, in address order; `f`
    /// returns `false` to stop.
    ///
    /// # Errors
    /// [`MapError`] for an out-of-range request or an unreadable table.
    pub fn for_each_leaf<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        va: VirtAddr,
        len: u64,
        mut f: impl FnMut(&Leaf) -> bool,
    ) -> Result<(), MapError> {
        if len == 0 {
            return Ok(());
        }
        let (lo, hi) = self.format.va_range();
        let start = va.as_u64().max(lo);
        let last = va.as_u64().saturating_add(len - 1).min(hi);
        if start > last {
            return Ok(());
        }
        self.leaves_rec(
            mem,
            self.root.as_u64(),
            self.format.start_level().get(),
            start,
            last,
            &mut f,
        )
        .map(|_| ())
    }
}
