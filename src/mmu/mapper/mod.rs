//! A table mapper: maps, unmaps and re-protects VA ranges in one regime half's translation
//! tables inside simulated physical memory, allocating and freeing table frames.

use core::fmt;

use arrayvec::ArrayVec;

use super::flush::Flush;
use super::frames::FrameError;
use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{Attributes, Descriptor, DescriptorFormat, Granule, Level, Regime};
use crate::phys::{MemoryError, PhysMemory};

mod copy;
mod error;
mod format;
mod ptdump;
mod query;
mod recurse;
use recurse::Modify;
mod split;
#[cfg(test)]
mod tests;

pub use copy::CopyLeaf;
pub use error::{FrameSource, MapError};
pub use format::{Lpa2, TableFormat, VaRange};

/// One leaf found by [`Mapper::for_each_leaf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// First VA the leaf maps.
    pub va: VirtAddr,
    /// log2 of its size (as [`crate::arch::Translation::size_log2`]).
    pub size_log2: u8,
    /// Its level.
    pub level: Level,
    /// The descriptor.
    pub descriptor: Descriptor,
    /// The output address of its first byte.
    pub pa: PhysAddr,
    /// Where the descriptor lives.
    pub descriptor_pa: PhysAddr,
}

impl Leaf {
    /// Returns the number of bytes the leaf maps.
    #[inline]
    pub const fn size(&self) -> u64 {
        1 << self.size_log2
    }
}

/// Builds and edits one half's translation tables.
///
/// # Example
///
/// A 2 MiB block and a page mapped, looked up, re-protected and unmapped, with the frames
/// its tables took coming back:
///
/// ```
/// use pagesim::arch::{Attributes, Granule};
/// use pagesim::mmu::{Contents, FrameAllocator, Lpa2, Mapper, TableFormat, VaRange};
/// use pagesim::phys::SliceMemory;
/// use pagesim::{PhysAddr, VirtAddr};
///
/// let base = PhysAddr::new(0x4000_0000);
/// let mut ram = vec![0u8; 1 << 20];
/// let mut mem = SliceMemory::new(base, &mut ram);
/// let mut words = vec![0u64; FrameAllocator::storage_words(256)];
/// let mut frames = FrameAllocator::new(base, 1 << 20, &mut words, Contents::Zeroed)?;
/// let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48)?;
/// let mut m = Mapper::new(format, &mut mem, &mut frames)?;
/// let free = frames.free_frames();
///
/// let rw = Attributes::AF | Attributes::AP_EL0;
/// // Not live yet, so no TLB can hold these translations.
/// m.map(&mut mem, &mut frames, VirtAddr::new(0x20_0000), PhysAddr::new(0x8020_0000), 2 << 20, rw)?
///     .ignore();
/// m.map(&mut mem, &mut frames, VirtAddr::new(0x40_0000), PhysAddr::new(0x9000_0000), 0x1000, rw)?
///     .ignore();
/// let block = m.lookup(&mem, VirtAddr::new(0x21_2345))?.unwrap();
/// assert_eq!((block.size(), block.pa), (2 << 20, PhysAddr::new(0x8020_0000)));
///
/// // Read-only, then gone; the Flush records say what a live TLB would need invalidated.
/// let flush = m.protect(&mut mem, &mut frames, VirtAddr::new(0x40_0000), 0x1000, Attributes::AP_RO, Attributes::empty())?;
/// assert!(!flush.is_empty());
/// m.unmap(&mut mem, &mut frames, VirtAddr::new(0x20_0000), 4 << 20)?.ignore();
/// assert!(m.lookup(&mem, VirtAddr::new(0x40_0000))?.is_none());
/// assert_eq!(frames.free_frames(), free, "the tables' frames are back");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapper {
    format: TableFormat,
    root: PhysAddr,
    blocks: bool,
    asid: u16,
    tables: u64,
}

/// The valid bit of a descriptor.
const VALID: u64 = Attributes::VALID.bits();
/// Bit 1: a table (levels 0-2) or a page (level 3), else a block.
const TABLE: u64 = Attributes::TABLE_OR_PAGE.bits();
/// With FEAT_LPA2 descriptors, bits \[9:8\] hold OA\[51:50\] (the SH field's place).
const LPA2_OA_HIGH: u64 = Attributes::SH0.bits() | Attributes::SH1.bits();
/// The descriptor bits the mapper owns: valid and type.
const OWNED_BITS: u64 = VALID | TABLE;

struct Ctx<'a, M: PhysMemory + ?Sized, F: FrameSource + ?Sized> {
    mem: &'a mut M,
    frames: &'a mut F,
    flush: Flush,
    /// Tables still to be found (plan) or allocated (apply).
    tables_needed: u64,
    plan: bool,
    /// Free every empty table met, not only those this call emptied (rolling back a map).
    prune_all: bool,
    /// Frames taken before any change, for block splits.
    reserve: ArrayVec<(PhysAddr, bool), 16>,
    /// Told of each leaf an unmap removes whole, with the frames (see
    /// [`Mapper::unmap_with`]).
    removed: Option<Removed<'a, F>>,
}

/// What [`Mapper::unmap_with`] hands each removed leaf to.
type Removed<'a, F> = &'a mut (dyn FnMut(&Leaf, &mut F) + 'a);

impl Mapper {
    /// Creates empty tables: allocates and zeroes the start table.
    ///
    /// # Errors
    /// [`MapError::OutOfFrames`] without a frame, [`MapError::Memory`] if it cannot be zeroed.
    pub fn new<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        format: TableFormat,
        mem: &mut M,
        frames: &mut F,
    ) -> Result<Mapper, MapError> {
        let order = format.table_order();
        let (root, zeroed) = frames.allocate(order).ok_or(MapError::OutOfFrames {
            va: VirtAddr::new(format.va_range().0),
        })?;
        if !zeroed {
            if let Err(e) = mem.zero(root, format.granule.page_size()) {
                frames.release(root, order, false)?;
                return Err(e.into());
            }
        }
        Ok(Mapper {
            format,
            root,
            blocks: true,
            asid: 0,
            tables: 1,
        })
    }

    /// Adopts existing tables rooted at `root` (the mapper frees only tables it finds empty
    /// after its own changes).
    pub fn from_root(format: TableFormat, root: PhysAddr) -> Mapper {
        Mapper {
            format,
            root,
            blocks: true,
            asid: 0,
            tables: 1,
        }
    }

    /// Chooses whether block mappings are used where alignment and size allow (default on).
    pub fn set_block_mappings(&mut self, on: bool) {
        self.blocks = on;
    }

    /// Sets the ASID that [`Flush`] records name.
    pub fn set_asid(&mut self, asid: u16) {
        self.asid = asid;
    }

    /// Returns the ASID that [`Flush`] records name.
    pub const fn asid(&self) -> u16 {
        self.asid
    }

    /// Returns the start table's address.
    pub const fn root(&self) -> PhysAddr {
        self.root
    }

    /// Returns the table format.
    pub const fn format(&self) -> &TableFormat {
        &self.format
    }

    /// Returns how many table frames the mapper holds (including the root).
    pub const fn table_count(&self) -> u64 {
        self.tables
    }

    /// Returns the TTBR value for these tables with `asid` (BADDR\[51:48\] in bits \[5:2\]
    /// for 52-bit output addresses).
    pub const fn ttbr(&self, asid: u16) -> u64 {
        let r = self.root.as_u64();
        let mut t = (r & 0x0000_ffff_ffff_fffe) | ((asid as u64) << 48);
        if self.format.oa_bits > 48 {
            t = (t & !0x3c) | (((r >> 48) & 0xf) << 2);
        }
        t
    }

    /// Returns the descriptor bits callers may not pass as attributes: valid, type, the
    /// output address (and SH under DS, where it holds OA bits), and everything that is
    /// not a leaf attribute.
    fn owned_attribute_bits(&self) -> u64 {
        let mut owned = OWNED_BITS | !Attributes::all().bits();
        if self.format.ds {
            owned |= LPA2_OA_HIGH;
        }
        owned
    }

    fn check_range(&self, va: u64, len: u64) -> Result<u64, MapError> {
        let page = self.format.granule.page_size();
        if va & (page - 1) != 0 {
            return Err(MapError::Unaligned { addr: va });
        }
        if len & (page - 1) != 0 {
            return Err(MapError::Unaligned { addr: len });
        }
        let (lo, hi) = self.format.va_range();
        let last = va.checked_add(len - 1).ok_or(MapError::OutOfRange {
            va: VirtAddr::new(va),
        })?;
        if va < lo || va > hi {
            return Err(MapError::OutOfRange {
                va: VirtAddr::new(va),
            });
        }
        if last > hi {
            return Err(MapError::OutOfRange {
                va: VirtAddr::new(last),
            });
        }
        Ok(last)
    }

    #[inline]
    fn read<M: PhysMemory + ?Sized>(mem: &M, table: u64, idx: u64) -> Result<u64, MapError> {
        Ok(mem.read_u64(PhysAddr::new(table + idx * 8))?)
    }

    #[inline]
    fn table_desc(&self, next: u64) -> u64 {
        self.format.descriptor_format().encode_output_address(next) | VALID | TABLE
    }

    #[inline]
    fn leaf_desc(&self, level: i8, pa: u64, attrs: u64) -> u64 {
        self.format.encode_output_address(pa)
            | attrs
            | if level == 3 { VALID | TABLE } else { VALID }
    }

    #[inline]
    fn next_table(&self, desc: u64) -> u64 {
        self.format.descriptor_format().output_address(desc)
    }

    fn leaf_attrs_of(&self, desc: u64) -> u64 {
        let mut a = desc & Attributes::all().bits() & !OWNED_BITS;
        if self.format.ds {
            a &= !LPA2_OA_HIGH;
        }
        a
    }

    fn alloc_table<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, M, F>,
        va: u64,
    ) -> Result<u64, MapError> {
        let order = self.format.table_order();
        let (pa, zeroed) = match cx.reserve.pop() {
            Some(f) => f,
            None => cx.frames.allocate(order).ok_or(MapError::OutOfFrames {
                va: VirtAddr::new(va),
            })?,
        };
        if !zeroed {
            if let Err(e) = cx.mem.zero(pa, self.format.granule.page_size()) {
                cx.frames.release(pa, order, false)?;
                return Err(e.into());
            }
        }
        self.tables += 1;
        Ok(pa.as_u64())
    }

    fn free_table<F: FrameSource + ?Sized>(
        &mut self,
        frames: &mut F,
        pa: u64,
    ) -> Result<(), MapError> {
        frames.release(PhysAddr::new(pa), self.format.table_order(), true)?;
        self.tables -= 1;
        Ok(())
    }

    /// Maps `[va, va + len)` to `[pa, pa + len)` with leaf attribute bits `attrs` (AttrIndx,
    /// AP, SH, AF, nG, PXN, UXN, DBM, GP, software bits), using blocks where possible.
    ///
    /// Returns the (empty) invalidation record: only invalid entries are filled, and faulting
    /// translations are never cached, so nothing needs invalidating.
    ///
    /// # Errors
    /// [`MapError`] for unaligned or out-of-range arguments, an already-mapped page, or no
    /// frame for a table; the tables are then unchanged.
    pub fn map<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        pa: PhysAddr,
        len: u64,
        attrs: Attributes,
    ) -> Result<Flush, MapError> {
        let flush = Flush::new(self.asid);
        if len == 0 {
            return Ok(flush);
        }
        let va = va.as_u64();
        let last = self.check_range(va, len)?;
        let pa = pa.as_u64();
        if pa & (self.format.granule.page_size() - 1) != 0 {
            return Err(MapError::Unaligned { addr: pa });
        }
        let pa_last = pa
            .checked_add(len - 1)
            .ok_or(MapError::OutputOutOfRange { pa })?;
        if pa_last >> self.format.oa_bits != 0 {
            return Err(MapError::OutputOutOfRange { pa: pa_last });
        }
        let mut bits = attrs.bits();
        let bad = bits & self.owned_attribute_bits();
        if bad != 0 {
            return Err(MapError::InvalidAttributes { bits: bad });
        }
        bits &= !OWNED_BITS;
        let start = self.format.start_level().get();
        let root = self.root.as_u64();
        // Plan: find conflicts and count the tables needed, writing nothing.
        let mut cx = Ctx {
            mem,
            frames,
            flush,
            tables_needed: 0,
            plan: true,
            prune_all: false,
            reserve: ArrayVec::new(),
            removed: None,
        };
        self.map_rec(&mut cx, Some(root), start, va, last, pa, bits)?;
        let order = self.format.table_order();
        if cx.tables_needed > cx.frames.available(order) {
            return Err(MapError::OutOfFrames {
                va: VirtAddr::new(va),
            });
        }
        cx.plan = false;
        if let Err(e) = self.map_rec(&mut cx, Some(root), start, va, last, pa, bits) {
            // The frame source promised more than it gave: undo what was written.
            let mut undo = Ctx {
                mem: cx.mem,
                frames: cx.frames,
                flush: Flush::new(self.asid),
                tables_needed: 0,
                plan: false,
                prune_all: true,
                reserve: ArrayVec::new(),
                removed: None,
            };
            // The undo removes only entries this call wrote, in tables it allocated; if
            // even that fails, its error says the tables are not as before.
            self.modify_rec(&mut undo, root, start, va, last, Modify::Unmap)?;
            return Err(e);
        }
        Ok(cx.flush)
    }

    /// Maps one page (`len` = the granule's page size) like [`Mapper::map`], on a short path
    /// for the page-fault handler: one walk down, new tables taken before anything is
    /// written.
    ///
    /// # Errors
    /// As [`Mapper::map`].
    pub fn map_page<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        pa: PhysAddr,
        attrs: Attributes,
    ) -> Result<Flush, MapError> {
        let v = va.as_u64();
        let (pa, bits) = self.check_page(v, pa, attrs)?;
        // Walk down as far as tables exist.
        let mut table = self.root.as_u64();
        let mut level = self.format.start_level().get();
        loop {
            let idx = (v >> self.format.shift(level)) & self.format.index_mask(level);
            let d = Self::read(mem, table, idx)?;
            if d & VALID != 0 && (d & TABLE == 0 || level == 3) {
                return Err(MapError::AlreadyMapped { va });
            }
            if level == 3 || d & VALID == 0 {
                break;
            }
            table = self.next_table(d);
            level += 1;
        }
        // Take every missing table first, so that nothing is written unless all exist.
        let order = self.format.table_order();
        let mut new: ArrayVec<u64, 4> = ArrayVec::new();
        for _ in level..3 {
            match frames.allocate(order) {
                Some((t, zeroed)) => {
                    if !zeroed {
                        if let Err(e) = mem.zero(t, self.format.granule.page_size()) {
                            frames.release(t, order, false)?;
                            for &t in &new {
                                frames.release(PhysAddr::new(t), order, true)?;
                            }
                            return Err(e.into());
                        }
                    }
                    new.push(t.as_u64());
                }
                None => {
                    for &t in &new {
                        frames.release(PhysAddr::new(t), order, true)?;
                    }
                    return Err(MapError::OutOfFrames { va });
                }
            }
        }
        for t in new {
            let idx = (v >> self.format.shift(level)) & self.format.index_mask(level);
            mem.write_u64(PhysAddr::new(table + idx * 8), self.table_desc(t))?;
            self.tables += 1;
            table = t;
            level += 1;
        }
        let idx = (v >> self.format.shift(3)) & self.format.index_mask(3);
        mem.write_u64(PhysAddr::new(table + idx * 8), self.leaf_desc(3, pa, bits))?;
        Ok(Flush::new(self.asid))
    }

    /// Maps the page at `va` to `pa` through `slot`, the level-3 entry for `va` in these
    /// tables, which a walk has just found invalid: [`Mapper::map_page`] for a fault
    /// handler that knows where the entry is, reading no table (the walk read the entry,
    /// and a handler changes no table before it maps). The handler's arguments are
    /// [`Mapper::map_page`]'s checked ones (a page-aligned `va` the walk took, a frame, the
    /// kernel's attributes, an entry still invalid): debug builds check them again.
    /// Returns the descriptor written with the record of what to invalidate.
    ///
    /// # Errors
    /// [`MapError::Unaligned`] if `slot` is not the entry of `va`'s index;
    /// [`MapError::Memory`] if it cannot be written.
    #[inline]
    pub(crate) fn map_page_at<M: PhysMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        slot: PhysAddr,
        va: VirtAddr,
        pa: PhysAddr,
        attrs: Attributes,
    ) -> Result<(Flush, u64), MapError> {
        let v = va.as_u64();
        debug_assert_eq!(
            self.check_page(v, pa, attrs),
            Ok((pa.as_u64(), attrs.bits()))
        );
        let (pa, bits) = (pa.as_u64(), attrs.bits());
        let f = &self.format;
        let table_bytes = f.leaf_index_mask << 3 | 7;
        let idx = (v >> f.page_shift) & f.leaf_index_mask;
        let s = slot.as_u64();
        if s & table_bytes != idx << 3 {
            return Err(MapError::Unaligned { addr: s });
        }
        debug_assert!(mem.read_u64(slot).is_ok_and(|d| d & VALID == 0));
        let desc = self.leaf_desc(3, pa, bits);
        mem.write_u64(slot, desc)?;
        Ok((Flush::new(self.asid), desc))
    }

    /// Checks a page mapping's arguments as [`Mapper::map_page`] takes them; returns the
    /// output address and the attribute bits.
    fn check_page(&self, v: u64, pa: PhysAddr, attrs: Attributes) -> Result<(u64, u64), MapError> {
        let page = self.format.granule.page_size();
        self.check_range(v, page)?;
        let pa = pa.as_u64();
        if pa & (page - 1) != 0 {
            return Err(MapError::Unaligned { addr: pa });
        }
        if pa >> self.format.oa_bits != 0 {
            return Err(MapError::OutputOutOfRange { pa });
        }
        let bits = attrs.bits();
        let bad = bits & self.owned_attribute_bits();
        if bad != 0 {
            return Err(MapError::InvalidAttributes { bits: bad });
        }
        Ok((pa, bits))
    }

    /// Unmaps every page in `[va, va + len)` (holes are skipped), splitting blocks that
    /// straddle the edges and freeing tables that become empty. Replacing a block by a table
    /// follows break-before-make.
    ///
    /// # Errors
    /// [`MapError`] for unaligned or out-of-range arguments, or no frame to split a block;
    /// the tables are then unchanged.
    pub fn unmap<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        len: u64,
    ) -> Result<Flush, MapError> {
        self.change(mem, frames, va, len, None, None)
    }

    /// Unmaps `[va, va + len)` like [`Mapper::unmap`], handing each leaf it removes (after
    /// any split at the range's edges) to `removed` with the frame source, so that what the
    /// leaf mapped can be freed in the same pass over the tables.
    ///
    /// # Errors
    /// As [`Mapper::unmap`]; `removed` has then seen nothing.
    pub(crate) fn unmap_with<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        len: u64,
        removed: &mut dyn FnMut(&Leaf, &mut F),
    ) -> Result<Flush, MapError> {
        self.change(mem, frames, va, len, None, Some(removed))
    }

    /// Sets and clears leaf attribute bits on every mapped page of `[va, va + len)`,
    /// splitting straddling blocks. Attribute changes that need no break-before-make (AP,
    /// XN, AF, DBM, software bits) are written in place.
    ///
    /// # Errors
    /// As [`Mapper::unmap`], and [`MapError::InvalidAttributes`] for bits the mapper owns.
    pub fn protect<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        len: u64,
        set: Attributes,
        clear: Attributes,
    ) -> Result<Flush, MapError> {
        let bad = (set.bits() | clear.bits()) & self.owned_attribute_bits();
        if bad != 0 {
            return Err(MapError::InvalidAttributes { bits: bad });
        }
        self.change(mem, frames, va, len, Some((set.bits(), clear.bits())), None)
    }

    fn change<'a, M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &'a mut M,
        frames: &'a mut F,
        va: VirtAddr,
        len: u64,
        protect: Option<(u64, u64)>,
        removed: Option<Removed<'a, F>>,
    ) -> Result<Flush, MapError> {
        if len == 0 {
            return Ok(Flush::new(self.asid));
        }
        let va = va.as_u64();
        let last = self.check_range(va, len)?;
        let start = self.format.start_level().get();
        let root = self.root.as_u64();
        // Count the blocks to split (at most one chain per end) before touching anything.
        let mut splits: ArrayVec<(i8, u64), 16> = ArrayVec::new();
        for point in [va, last] {
            self.splits_at(mem, point, va, last, &mut splits)?;
        }
        // Take the frames for the splits now, so that nothing can fail half-way.
        let order = self.format.table_order();
        let mut reserve = ArrayVec::new();
        for _ in 0..splits.len() {
            match frames.allocate(order) {
                Some(f) => reserve.push(f),
                None => {
                    for (pa, z) in reserve {
                        frames.release(pa, order, z)?;
                    }
                    return Err(MapError::OutOfFrames {
                        va: VirtAddr::new(va),
                    });
                }
            }
        }
        let mut cx = Ctx {
            mem,
            frames,
            flush: Flush::new(self.asid),
            tables_needed: 0,
            plan: false,
            prune_all: false,
            reserve,
            removed,
        };
        let result = match protect {
            None => self.modify_rec(&mut cx, root, start, va, last, Modify::Unmap),
            Some((set, clear)) => self.modify_rec(
                &mut cx,
                root,
                start,
                va,
                last,
                Modify::Protect { set, clear },
            ),
        };
        for (pa, z) in cx.reserve.drain(..) {
            cx.frames.release(pa, order, z)?;
        }
        result?;
        Ok(cx.flush)
    }
}
