//! Copying the leaves of one set of tables into another, table by table, as `fork` copies
//! a process's page tables (`copy_page_range`): the destination's tables are built
//! alongside the source's, never walked from the root for each page.

use super::recurse::Entry;
use super::*;

/// What [`Mapper::copy_from`] does with one leaf of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyLeaf {
    /// The source's new descriptor, written in place (an attribute change that needs no
    /// break-before-make, such as write-protecting), or `None` to leave it.
    pub source: Option<u64>,
    /// The leaf attribute bits of the destination's copy (same output address and size),
    /// or `None` for no copy.
    pub copy: Option<Attributes>,
}

impl Mapper {
    /// Copies the leaves of `src` in `[va, va + len)` into these tables, where nothing is
    /// mapped yet, letting `f` decide for each leaf what the copy's attributes are and
    /// whether the source's descriptor changes. Blocks are copied as blocks. Returns the
    /// invalidation the source's changes need (under the source's ASID).
    ///
    /// # Errors
    /// [`MapError::OutOfFrames`] for a table the copy needs (unlike other operations, what
    /// was copied so far stays); [`MapError::Unaligned`] or [`MapError::OutOfRange`] for a
    /// bad range; [`MapError::InvalidFormat`] for tables of another format;
    /// [`MapError::AlreadyMapped`] where this side already maps something, or where the
    /// range covers a source block only in part; [`MapError::Memory`] for unreadable
    /// tables.
    pub fn copy_from<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        src: &Mapper,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        len: u64,
        mut f: impl FnMut(&Leaf) -> CopyLeaf,
    ) -> Result<Flush, MapError> {
        let mut flush = Flush::new(src.asid);
        if len == 0 {
            return Ok(flush);
        }
        if self.format != src.format {
            return Err(MapError::InvalidFormat);
        }
        let last = self.check_range(va.as_u64(), len)?;
        let level = self.format.start_level().get();
        self.copy_rec(
            src,
            mem,
            frames,
            (src.root.as_u64(), self.root.as_u64()),
            level,
            va.as_u64(),
            last,
            &mut f,
            &mut flush,
        )?;
        Ok(flush)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        src: &Mapper,
        mem: &mut M,
        frames: &mut F,
        (s_table, d_table): (u64, u64),
        level: i8,
        start: u64,
        last: u64,
        f: &mut dyn FnMut(&Leaf) -> CopyLeaf,
        flush: &mut Flush,
    ) -> Result<(), MapError> {
        for Entry {
            idx,
            a,
            last: sub_last,
            start: e_start,
            size,
            whole,
        } in self.entries(level, start, last)
        {
            let desc = Self::read(mem, s_table, idx)?;
            if desc & VALID == 0 {
                continue;
            }
            let d_at = PhysAddr::new(d_table + idx * 8);
            let d_desc = mem.read_u64(d_at)?;
            if desc & TABLE != 0 && level < 3 {
                let next = if d_desc & VALID == 0 {
                    let order = self.format.table_order();
                    let (pa, zeroed) = frames.allocate(order).ok_or(MapError::OutOfFrames {
                        va: VirtAddr::new(a),
                    })?;
                    if !zeroed {
                        if let Err(e) = mem.zero(pa, self.format.granule.page_size()) {
                            frames.release(pa, order, false)?;
                            return Err(e.into());
                        }
                    }
                    self.tables += 1;
                    mem.write_u64(d_at, self.table_desc(pa.as_u64()))?;
                    pa.as_u64()
                } else if d_desc & TABLE != 0 {
                    self.next_table(d_desc)
                } else {
                    return Err(MapError::AlreadyMapped {
                        va: VirtAddr::new(a),
                    });
                };
                self.copy_rec(
                    src,
                    mem,
                    frames,
                    (src.next_table(desc), next),
                    level + 1,
                    a,
                    sub_last,
                    f,
                    flush,
                )?;
            } else if level == 3 || self.format.block_ok(level) {
                if !whole || d_desc & VALID != 0 {
                    return Err(MapError::AlreadyMapped {
                        va: VirtAddr::new(a),
                    });
                }
                let pa = self.next_table(desc) & !(size - 1);
                let leaf = Leaf {
                    va: VirtAddr::new(e_start),
                    size_log2: size.trailing_zeros() as u8,
                    level: Level::new(level).unwrap_or(Level::L3),
                    descriptor: Descriptor(desc),
                    pa: PhysAddr::new(pa),
                    descriptor_pa: PhysAddr::new(s_table + idx * 8),
                };
                let c = f(&leaf);
                if let Some(new) = c.source {
                    if new != desc {
                        mem.write_u64(PhysAddr::new(s_table + idx * 8), new)?;
                        flush.add(e_start, size, desc & Attributes::NG.bits() == 0);
                    }
                }
                if let Some(attrs) = c.copy {
                    let bits = attrs.bits() & !self.owned_attribute_bits();
                    mem.write_u64(d_at, self.leaf_desc(level, pa, bits))?;
                }
            }
        }
        Ok(())
    }
}

impl Mapper {
    /// Frees every table, the start table included, whatever they still map (the frames
    /// the leaves map are the caller's): the end of an address space. Returns how many
    /// table frames went back.
    ///
    /// # Errors
    /// [`MapError::Memory`] for an unreadable table, [`MapError::Frames`] for a frame the
    /// source does not take back (the walk stops there).
    pub fn release_all<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        mut self,
        mem: &mut M,
        frames: &mut F,
    ) -> Result<u64, MapError> {
        let root = self.root.as_u64();
        let level = self.format.start_level().get();
        let before = self.tables;
        self.release_rec(mem, frames, root, level)?;
        Ok(before - self.tables)
    }

    fn release_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        table: u64,
        level: i8,
    ) -> Result<(), MapError> {
        if level < 3 {
            for i in 0..=self.format.index_mask(level) {
                let d = Self::read(mem, table, i)?;
                if d & (VALID | TABLE) == VALID | TABLE {
                    self.release_rec(mem, frames, self.next_table(d), level + 1)?;
                }
            }
        }
        // A table goes back dirty: the allocator zeroes it when it hands it out.
        frames.release(PhysAddr::new(table), self.format.table_order(), false)?;
        self.tables -= 1;
        Ok(())
    }
}
