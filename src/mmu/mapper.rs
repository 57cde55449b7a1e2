//! A table mapper: maps, unmaps and re-protects VA ranges in one regime half's translation
//! tables inside simulated physical memory, allocating and freeing table frames.

use core::fmt;

use arrayvec::ArrayVec;

use super::flush::Flush;
use super::frames::FrameError;
use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{Attributes, Descriptor, DescriptorFormat, Granule, Level, Regime};
use crate::phys::{MemoryError, PhysMemory};

/// Where table frames come from: any frame allocator.
pub trait FrameSource {
    /// Allocates a naturally aligned run of `2^order` 4 KiB frames. Returns its address and
    /// whether it is already known to read as zero; `None` when memory is exhausted.
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)>;

    /// Returns a run obtained from [`FrameSource::allocate`]; `zeroed` says it reads as
    /// zero.
    ///
    /// # Errors
    /// [`FrameError`] when the run was not allocated from this source (nothing changes).
    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError>;

    /// Returns about how many runs of `2^order` frames can still be allocated. The mapper
    /// refuses early when fewer are available than it needs, and rolls back cleanly when an
    /// allocation fails anyway (fragmentation, or an estimate that was too high).
    fn available(&self, order: u32) -> u64;
}

impl FrameSource for super::frames::FrameAllocator<'_> {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        let mut dirty = false;
        let pa = self.alloc_run_zeroed(order, |_, _| dirty = true).ok()?;
        Some((pa, !dirty))
    }

    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError> {
        if zeroed {
            self.free_run_zeroed(pa, order)
        } else {
            self.free_run(pa, order)
        }
    }

    fn available(&self, order: u32) -> u64 {
        (self.free_frames() >> order.min(63)) as u64
    }
}

/// Returned by a [`Mapper`] operation that could not be carried out. The tables are exactly
/// as before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapError {
    /// An address or length is not a multiple of the page size.
    Unaligned {
        /// The offending value.
        addr: u64,
    },
    /// The range leaves the half's VA range (or wraps around).
    OutOfRange {
        /// The offending virtual address.
        va: VirtAddr,
    },
    /// The physical range exceeds the output address size.
    OutputOutOfRange {
        /// The offending physical address.
        pa: u64,
    },
    /// A page in the range is already mapped.
    AlreadyMapped {
        /// The first mapped address found.
        va: VirtAddr,
    },
    /// No frame for a translation table.
    OutOfFrames {
        /// The address whose mapping needed the table.
        va: VirtAddr,
    },
    /// Physical memory refused an access to a table.
    Memory(MemoryError),
    /// The frame source refused to take back a table frame (it did not hand it out).
    Frames(FrameError),
    /// The attributes include bits the mapper owns (valid, type, output address).
    InvalidAttributes {
        /// The offending bits.
        bits: u64,
    },
    /// The table format is not one the architecture defines.
    InvalidFormat,
}

impl core::error::Error for MapError {}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::Unaligned { addr } => write!(f, "{addr:#x} is not page aligned"),
            MapError::OutOfRange { va } => write!(f, "{:#x} is outside the VA range", va.as_u64()),
            MapError::OutputOutOfRange { pa } => {
                write!(f, "{pa:#x} exceeds the output address size")
            }
            MapError::AlreadyMapped { va } => write!(f, "{:#x} is already mapped", va.as_u64()),
            MapError::OutOfFrames { va } => {
                write!(f, "no frame for a table to map {:#x}", va.as_u64())
            }
            MapError::Memory(e) => write!(f, "table access failed: {e}"),
            MapError::Frames(e) => write!(f, "table frame not returned: {e}"),
            MapError::InvalidAttributes { bits } => {
                write!(f, "attribute bits {bits:#x} are not allowed")
            }
            MapError::InvalidFormat => f.write_str("invalid table format"),
        }
    }
}

impl From<FrameError> for MapError {
    fn from(e: FrameError) -> Self {
        MapError::Frames(e)
    }
}

impl From<MemoryError> for MapError {
    fn from(e: MemoryError) -> Self {
        MapError::Memory(e)
    }
}

/// Which half of the virtual address space a table tree translates: the lower one through
/// TTBR0_EL1, or the upper one (addresses with VA\[55\] set) through TTBR1_EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VaRange {
    /// TTBR0_EL1: addresses from 0 up.
    Lower,
    /// TTBR1_EL1: addresses up to the top of the 64-bit space.
    Upper,
}

/// The descriptor layout of a 4 KiB or 16 KiB granule tree: FEAT_LPA2's 52-bit layout
/// (TCR_EL1.DS = 1), or the standard one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lpa2 {
    /// TCR_EL1.DS = 0: output addresses of up to 48 bits, the SH field in the descriptor.
    Off,
    /// TCR_EL1.DS = 1: OA\[51:50\] in bits \[9:8\], shareability from TCR.
    On,
}

/// The shape of one regime half's tables: granule, VA size, half, LPA2 and output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableFormat {
    granule: Granule,
    input_bits: u32,
    upper: bool,
    ds: bool,
    oa_bits: u32,
}

impl TableFormat {
    /// Creates a format.
    ///
    /// # Errors
    /// [`MapError::InvalidFormat`] for a VA size the granule cannot translate with a
    /// stage-1 walk (or DS with the 64 KiB granule, or an output size outside 32–52 bits).
    pub const fn try_new(
        granule: Granule,
        input_bits: u32,
        range: VaRange,
        lpa2: Lpa2,
        oa_bits: u32,
    ) -> Result<Self, MapError> {
        let upper = matches!(range, VaRange::Upper);
        let ds = matches!(lpa2, Lpa2::On);
        let is64 = matches!(granule, Granule::K64);
        let max = if ds || is64 { 52 } else { 48 };
        let min = if is64 { 17 } else { 16 };
        if input_bits < min
            || input_bits > max
            || (ds && is64)
            || oa_bits < 32
            || oa_bits > 52
            || (oa_bits > 48 && !(ds || is64))
        {
            return Err(MapError::InvalidFormat);
        }
        Ok(TableFormat {
            granule,
            input_bits,
            upper,
            ds,
            oa_bits,
        })
    }

    /// Returns the format of the tables `regime` walks for one half.
    pub fn from_regime(regime: &Regime, range: VaRange) -> Self {
        let upper = matches!(range, VaRange::Upper);
        let h = regime.half(upper);
        TableFormat {
            granule: h.granule,
            input_bits: h.input_bits(),
            upper,
            ds: h.ds,
            oa_bits: regime.oa_bits(upper),
        }
    }

    /// Returns the granule.
    pub const fn granule(&self) -> Granule {
        self.granule
    }

    /// Returns the VA size in bits.
    pub const fn input_bits(&self) -> u32 {
        self.input_bits
    }

    /// Returns whether this is the TTBR1 half.
    pub const fn upper(&self) -> bool {
        self.upper
    }

    /// Returns the start level.
    pub const fn start_level(&self) -> Level {
        self.granule.start_level(self.input_bits)
    }

    /// Returns the first and last VA of the half.
    pub const fn va_range(&self) -> (u64, u64) {
        let span = 1u64 << self.input_bits;
        if self.upper {
            (0u64.wrapping_sub(span), u64::MAX)
        } else {
            (0, span - 1)
        }
    }

    #[inline]
    fn descriptor_format(&self) -> DescriptorFormat {
        DescriptorFormat {
            granule: self.granule,
            ds: self.ds,
            oa_bits: self.oa_bits,
            // The mapper makes 64 KiB level-1 blocks only with a 52-bit output size.
            pa_max_52: self.oa_bits > 48,
        }
    }

    #[inline]
    fn shift(&self, level: i8) -> u32 {
        self.granule.page_shift() + self.granule.stride() * (3 - level as i32) as u32
    }

    #[inline]
    fn index_mask(&self, level: i8) -> u64 {
        let bits = if level == self.start_level().get() {
            self.input_bits - self.shift(level)
        } else {
            self.granule.stride()
        };
        (1u64 << bits) - 1
    }

    #[inline]
    fn block_ok(&self, level: i8) -> bool {
        let lpa = matches!(self.granule, Granule::K64) && self.oa_bits > 48;
        Level::new(level).is_some_and(|l| self.granule.block_allowed(l, self.ds, lpa))
    }

    /// The allocation order of one table frame (a granule).
    #[inline]
    fn table_order(&self) -> u32 {
        self.granule.page_shift() - 12
    }
}

/// One leaf found by [`Mapper::for_each_leaf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// First VA the leaf maps.
    pub va: VirtAddr,
    /// log2 of its size.
    pub size_log2: u32,
    /// Its level.
    pub level: Level,
    /// The descriptor.
    pub descriptor: Descriptor,
    /// The output address of its first byte.
    pub pa: PhysAddr,
    /// Where the descriptor lives.
    pub descriptor_pa: PhysAddr,
}

/// Builds and edits one half's translation tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapper {
    format: TableFormat,
    root: PhysAddr,
    blocks: bool,
    asid: u16,
    tables: u64,
}

const OWNED_BITS: u64 = 3;

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
}

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
            owned |= 3 << 8;
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

    fn read<M: PhysMemory + ?Sized>(mem: &M, table: u64, idx: u64) -> Result<u64, MapError> {
        Ok(mem.read_u64(PhysAddr::new(table + idx * 8))?)
    }

    fn table_desc(&self, next: u64) -> u64 {
        self.format.descriptor_format().encode_output_address(next) | 3
    }

    fn leaf_desc(&self, level: i8, pa: u64, attrs: u64) -> u64 {
        self.format.descriptor_format().encode_output_address(pa)
            | attrs
            | if level == 3 { 3 } else { 1 }
    }

    fn next_table(&self, desc: u64) -> u64 {
        self.format.descriptor_format().output_address(desc)
    }

    fn leaf_attrs_of(&self, desc: u64) -> u64 {
        let mut a = desc & Attributes::all().bits() & !OWNED_BITS;
        if self.format.ds {
            a &= !(3 << 8);
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
            };
            // The undo removes only entries this call wrote, in tables it allocated; if
            // even that fails, its error says the tables are not as before.
            self.unmap_rec(&mut undo, root, start, va, last)?;
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
        let page = self.format.granule.page_size();
        let v = va.as_u64();
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
        // Walk down as far as tables exist.
        let mut table = self.root.as_u64();
        let mut level = self.format.start_level().get();
        loop {
            let idx = (v >> self.format.shift(level)) & self.format.index_mask(level);
            let d = Self::read(mem, table, idx)?;
            if d & 1 != 0 && (d & 2 == 0 || level == 3) {
                return Err(MapError::AlreadyMapped { va });
            }
            if level == 3 || d & 1 == 0 {
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

    #[allow(clippy::too_many_arguments)]
    fn map_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
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
            let valid = desc & 1 != 0;
            let is_table = valid && desc & 2 != 0 && level < 3;
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
        self.change(mem, frames, va, len, None)
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
        self.change(mem, frames, va, len, Some((set.bits(), clear.bits())))
    }

    fn change<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
        &mut self,
        mem: &mut M,
        frames: &mut F,
        va: VirtAddr,
        len: u64,
        protect: Option<(u64, u64)>,
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
        };
        let result = match protect {
            None => self.unmap_rec(&mut cx, root, start, va, last).map(|_| ()),
            Some((set, clear)) => self.protect_rec(&mut cx, root, start, va, last, set, clear),
        };
        for (pa, z) in cx.reserve.drain(..) {
            cx.frames.release(pa, order, z)?;
        }
        result?;
        Ok(cx.flush)
    }

    /// Records in `splits` the blocks that must be split because the range `[va, last]`
    /// covers only part of the block mapping `point` (and of its descendants).
    fn splits_at<M: PhysMemory + ?Sized>(
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
            if desc & 1 == 0 || level == 3 {
                return Ok(());
            }
            if desc & 2 != 0 {
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
    fn split<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
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
            desc & (1 << 11) == 0,
        );
        cx.mem.write_u64(slot, self.table_desc(new))?;
        Ok(new)
    }

    fn table_is_empty<M: PhysMemory + ?Sized>(
        &self,
        mem: &M,
        table: u64,
        level: i8,
    ) -> Result<bool, MapError> {
        let n = self.format.index_mask(level) + 1;
        for i in 0..n {
            if Self::read(mem, table, i)? & 1 != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Unmaps `[start, last]` below `table`; returns whether the table is now empty.
    fn unmap_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
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
            if desc & 1 != 0 {
                let is_table = desc & 2 != 0 && level < 3;
                if !is_table && whole {
                    cx.mem.write_u64(slot, 0)?;
                    cx.flush.add(e_start, size, desc & (1 << 11) == 0);
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
    fn protect_rec<M: PhysMemory + ?Sized, F: FrameSource + ?Sized>(
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
            if desc & 1 != 0 {
                let is_table = desc & 2 != 0 && level < 3;
                if !is_table && whole {
                    let new = (desc & !clear) | set;
                    if new != desc {
                        cx.mem.write_u64(slot, new)?;
                        cx.flush
                            .add(e_start, size, desc & (1 << 11) == 0 || new & (1 << 11) == 0);
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
        let mut table = self.root.as_u64();
        let mut level = self.format.start_level().get();
        loop {
            let shift = self.format.shift(level);
            let idx = (v >> shift) & self.format.index_mask(level);
            let desc = Self::read(mem, table, idx)?;
            if desc & 1 == 0 || (desc & 2 == 0 && (level == 3 || !self.format.block_ok(level))) {
                return Ok(None);
            }
            if desc & 2 != 0 && level < 3 {
                table = self.next_table(desc);
                level += 1;
                continue;
            }
            let base = self.next_table(desc) & !((1u64 << shift) - 1);
            return Ok(Some(Leaf {
                va: VirtAddr::new(v & !((1u64 << shift) - 1)),
                size_log2: shift,
                level: Level::new(level).unwrap_or(Level::L3),
                descriptor: Descriptor(desc),
                pa: PhysAddr::new(base),
                descriptor_pa: PhysAddr::new(table + idx * 8),
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

    fn count_rec<M: PhysMemory + ?Sized>(
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
            if d & 3 == 3 {
                self.count_rec(mem, self.next_table(d), level + 1, counts)?;
            }
        }
        Ok(())
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

    fn leaves_rec<M: PhysMemory + ?Sized>(
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
            if desc & 1 != 0 {
                if desc & 2 != 0 && level < 3 {
                    if !self.leaves_rec(mem, self.next_table(desc), level + 1, a, sub_last, f)? {
                        return Ok(false);
                    }
                } else if level == 3 || self.format.block_ok(level) {
                    let leaf = Leaf {
                        va: VirtAddr::new(e_start),
                        size_log2: shift,
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

    /// Writes a dump of the half's mappings in the style of the Linux arm64 kernel's
    /// `/sys/kernel/debug/kernel_page_tables`: one line per run of leaves with the same
    /// level and attributes, `0xSTART-0xEND   SIZE LEVEL attributes…`. `mair` names the
    /// memory types.
    ///
    /// # Errors
    /// [`fmt::Error`] from `w`; tables that cannot be read end the dump with a note line.
    pub fn ptdump<M: PhysMemory + ?Sized, W: fmt::Write>(
        &self,
        mem: &M,
        mair: u64,
        w: &mut W,
    ) -> fmt::Result {
        let (lo, hi) = self.format.va_range();
        writeln!(
            w,
            "---[ {} ]---",
            if self.format.upper {
                "TTBR1 half"
            } else {
                "TTBR0 half"
            }
        )?;
        let five_level = self.format.start_level().get() < 0;
        let mut run: Option<(u64, u64, i8, u64)> = None; // start, end (exclusive), level, attrs
        let mut out = Ok(());
        let prot_mask = Attributes::all().bits();
        let emit = |w: &mut W, r: (u64, u64, i8, u64)| -> fmt::Result {
            ptdump_line(w, r, five_level, mair)
        };
        let res = self.for_each_leaf(mem, VirtAddr::new(lo), hi - lo + 1, |leaf| {
            let start = leaf.va.as_u64();
            let end = start.wrapping_add(1u64 << leaf.size_log2);
            let attrs =
                leaf.descriptor.bits() & prot_mask & !(if self.format.ds { 3 << 8 } else { 0 });
            let lvl = leaf.level.get();
            match run {
                Some((s, e, l, a)) if e == start && l == lvl && a == attrs => {
                    run = Some((s, end, l, a))
                }
                Some(r) => {
                    if let Err(e) = emit(w, r) {
                        out = Err(e);
                        return false;
                    }
                    run = Some((start, end, lvl, attrs));
                }
                None => run = Some((start, end, lvl, attrs)),
            }
            true
        });
        out?;
        if let Some(r) = run {
            ptdump_line(w, r, five_level, mair)?;
        }
        if let Err(e) = res {
            writeln!(w, "(dump stopped: {e})")?;
        }
        Ok(())
    }
}

fn ptdump_line<W: fmt::Write>(
    w: &mut W,
    (start, end, level, attrs): (u64, u64, i8, u64),
    five_level: bool,
    mair: u64,
) -> fmt::Result {
    let mut delta = end.wrapping_sub(start) >> 10;
    let units = ['K', 'M', 'G', 'T', 'P', 'E'];
    let mut u = 0;
    while delta & 1023 == 0 && delta != 0 && u + 1 < units.len() {
        delta >>= 10;
        u += 1;
    }
    let name = match (level, five_level) {
        (3, _) => "PTE",
        (2, _) => "PMD",
        (1, _) => "PUD",
        (0, true) => "P4D",
        _ => "PGD",
    };
    write!(
        w,
        "0x{start:016x}-0x{end:016x}   {delta:9}{} {name}",
        units[u]
    )?;
    let b = |bit: u32| attrs & (1u64 << bit) != 0;
    let fields: [(bool, &str, &str); 11] = [
        (b(0), " ", "F"),
        (b(6), "USR", "   "),
        (b(7), "ro", "RW"),
        (b(53), "NX", "x "),
        (attrs & (3 << 8) == 3 << 8, "SHD", "   "),
        (b(10), "AF", "  "),
        (b(11), "NG", "  "),
        (b(52), "CON", "   "),
        (b(1), "   ", "BLK"),
        (b(54), "UXN", "   "),
        (b(50), "GP", "  "),
    ];
    for (on, set, clear) in fields {
        write!(w, " {}", if on { set } else { clear })?;
    }
    let attr = (mair >> (8 * ((attrs >> 2) & 7))) as u8;
    let mem = match attr {
        0x00 => "DEVICE/nGnRnE",
        0x04 => "DEVICE/nGnRE",
        0x08 => "DEVICE/nGRE",
        0x0c => "DEVICE/GRE",
        0x44 => "MEM/NORMAL-NC",
        0xf0 => "MEM/NORMAL-TAGGED",
        0xff => "MEM/NORMAL",
        _ => "MEM/OTHER",
    };
    writeln!(w, " {mem}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::SliceMemory;
    use std::string::String;
    use std::vec::Vec;

    struct Frames(Vec<u64>);

    impl FrameSource for Frames {
        fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
            assert_eq!(order, 0);
            self.0.pop().map(|p| (PhysAddr::new(p), false))
        }
        fn release(&mut self, pa: PhysAddr, _: u32, _: bool) -> Result<(), FrameError> {
            self.0.push(pa.as_u64());
            Ok(())
        }
        fn available(&self, _: u32) -> u64 {
            self.0.len() as u64
        }
    }

    const BASE: u64 = 0x4000_0000;

    fn setup(ram: &mut [u8]) -> (SliceMemory<'_>, Frames, Mapper) {
        let mut mem = SliceMemory::new(PhysAddr::new(BASE), ram);
        let mut frames = Frames((0..64).rev().map(|i| BASE + i * 4096).collect());
        let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48).unwrap();
        let m = Mapper::new(format, &mut mem, &mut frames).unwrap();
        (mem, frames, m)
    }

    const RW: Attributes = Attributes::AF.union(Attributes::SH0).union(Attributes::SH1);

    #[test]
    fn blocks_where_aligned_pages_elsewhere() {
        let mut ram = vec![0u8; 64 * 4096];
        let (mut mem, mut frames, mut m) = setup(&mut ram);
        // 2 MiB + 8 KiB at a 2 MiB-aligned VA and PA: one L2 block and two L3 pages.
        let _ = m
            .map(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x20_0000),
                PhysAddr::new(0x8020_0000),
                0x20_2000,
                RW,
            )
            .unwrap();
        let mut leaves = Vec::new();
        m.for_each_leaf(&mem, VirtAddr::new(0), 1 << 30, |l| {
            leaves.push((l.va.as_u64(), l.level.get(), l.pa.as_u64()));
            true
        })
        .unwrap();
        assert_eq!(
            leaves,
            [
                (0x20_0000, 2, 0x8020_0000),
                (0x40_0000, 3, 0x8040_0000),
                (0x40_1000, 3, 0x8040_1000)
            ]
        );
        // L0, L1, L2 tables, plus one L3 table.
        assert_eq!(m.table_count(), 4);
        let mut out = String::new();
        m.ptdump(&mem, 0xff, &mut out).unwrap();
        assert_eq!(
            out,
            "---[ TTBR0 half ]---\n\
             0x0000000000200000-0x0000000000400000           2M PMD       RW x  SHD AF        BLK        MEM/NORMAL\n\
             0x0000000000400000-0x0000000000402000           8K PTE       RW x  SHD AF                   MEM/NORMAL\n"
        );
    }

    #[test]
    fn errors_leave_tables_unchanged() {
        let mut ram = vec![0u8; 64 * 4096];
        let (mut mem, mut frames, mut m) = setup(&mut ram);
        let _ = m
            .map(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x1000),
                PhysAddr::new(0x9000_0000),
                0x1000,
                RW,
            )
            .unwrap();
        let before = mem.bytes().to_vec();
        let cases = [
            (
                0x1001,
                0x9000_0000,
                0x1000,
                MapError::Unaligned { addr: 0x1001 },
            ),
            (
                0x2000,
                0x9000_0000,
                0x1001,
                MapError::Unaligned { addr: 0x1001 },
            ),
            (
                0x2000,
                0x9000_0800,
                0x1000,
                MapError::Unaligned { addr: 0x9000_0800 },
            ),
            (
                0x0,
                0x9000_0000,
                0x2000,
                MapError::AlreadyMapped {
                    va: VirtAddr::new(0x1000),
                },
            ),
            (
                0xffff_ffff_f000,
                0x9000_0000,
                0x2000,
                MapError::OutOfRange {
                    va: VirtAddr::new(0x1_0000_0000_0fff),
                },
            ),
            (
                0x1_0000_0000_0000,
                0x9000_0000,
                0x1000,
                MapError::OutOfRange {
                    va: VirtAddr::new(0x1_0000_0000_0000),
                },
            ),
            (
                0x2000,
                0xffff_ffff_f000,
                0x2000,
                MapError::OutputOutOfRange {
                    pa: 0x1_0000_0000_0fff,
                },
            ),
            (
                u64::MAX - 0xfff,
                0,
                0x2000,
                MapError::OutOfRange {
                    va: VirtAddr::new(u64::MAX - 0xfff),
                },
            ),
        ];
        for (va, pa, len, want) in cases {
            let got = m.map(
                &mut mem,
                &mut frames,
                VirtAddr::new(va),
                PhysAddr::new(pa),
                len,
                RW,
            );
            assert_eq!(got, Err(want), "map({va:#x}, {pa:#x}, {len:#x})");
            assert!(mem.bytes() == before.as_slice());
        }
        assert_eq!(
            m.map(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x2000),
                PhysAddr::new(0x9000_0000),
                0x1000,
                Attributes::VALID
            ),
            Err(MapError::InvalidAttributes { bits: 1 })
        );
        // No frames left: a map that needs new tables fails cleanly.
        let mut empty = Frames(Vec::new());
        assert_eq!(
            m.map(
                &mut mem,
                &mut empty,
                VirtAddr::new(0x4000_0000),
                PhysAddr::new(0x9000_0000),
                0x1000,
                RW
            ),
            Err(MapError::OutOfFrames {
                va: VirtAddr::new(0x4000_0000)
            })
        );
        assert!(mem.bytes() == before.as_slice());
    }

    #[test]
    fn partial_unmap_of_a_block_splits_with_break_before_make() {
        let mut ram = vec![0u8; 64 * 4096];
        let (mut mem, mut frames, mut m) = setup(&mut ram);
        let _ = m
            .map(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x20_0000),
                PhysAddr::new(0x8020_0000),
                0x20_0000,
                RW | Attributes::NG,
            )
            .unwrap();
        m.set_asid(7);
        let flush = m
            .unmap(&mut mem, &mut frames, VirtAddr::new(0x20_1000), 0x1000)
            .unwrap();
        // The whole block was invalidated (break-before-make), then the page itself.
        assert_eq!(flush.ranges(), Some(&[(0x20_0000, 0x20_0000)][..]));
        assert!(!flush.touches_global());
        assert!(flush
            .ops()
            .all(|op| matches!(op, crate::mmu::Tlbi::Rvae1 { asid: 7, .. })));
        assert!(m.lookup(&mem, VirtAddr::new(0x20_1000)).unwrap().is_none());
        let l = m.lookup(&mem, VirtAddr::new(0x20_2000)).unwrap().unwrap();
        assert_eq!((l.level.get(), l.pa.as_u64()), (3, 0x8020_2000));
        // Unmapping the rest frees the L3 table (and the L2, L1 tables with it).
        let _ = m
            .unmap(&mut mem, &mut frames, VirtAddr::new(0), 1 << 30)
            .unwrap();
        assert_eq!(m.table_count(), 1);
        assert_eq!(frames.0.len(), 63);
    }

    #[test]
    fn protect_changes_only_attribute_bits() {
        let mut ram = vec![0u8; 64 * 4096];
        let (mut mem, mut frames, mut m) = setup(&mut ram);
        let _ = m
            .map(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x1000),
                PhysAddr::new(0x9000_0000),
                0x3000,
                RW,
            )
            .unwrap();
        let f = m
            .protect(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x2000),
                0x1000,
                Attributes::AP_RO | Attributes::UXN,
                Attributes::empty(),
            )
            .unwrap();
        assert_eq!(f.ranges(), Some(&[(0x2000, 0x1000)][..]));
        let d = m
            .lookup(&mem, VirtAddr::new(0x2000))
            .unwrap()
            .unwrap()
            .descriptor;
        assert_eq!(
            d.bits(),
            0x9000_1000 | RW.bits() | Attributes::AP_RO.bits() | Attributes::UXN.bits() | 3
        );
        let d1 = m
            .lookup(&mem, VirtAddr::new(0x1000))
            .unwrap()
            .unwrap()
            .descriptor;
        assert_eq!(d1.bits(), 0x9000_0000 | RW.bits() | 3);
        assert_eq!(
            m.protect(
                &mut mem,
                &mut frames,
                VirtAddr::new(0x2000),
                0x1000,
                Attributes::TABLE_OR_PAGE,
                Attributes::empty()
            ),
            Err(MapError::InvalidAttributes { bits: 2 })
        );
    }

    #[test]
    fn ttbr_encodes_asid_and_52_bit_base() {
        let f = TableFormat::try_new(Granule::K64, 52, VaRange::Lower, Lpa2::Off, 52).unwrap();
        let m = Mapper::from_root(f, PhysAddr::new(0x000f_0000_1234_0000));
        assert_eq!(m.ttbr(5), (5 << 48) | 0x1234_0000 | (0xf << 2));
        assert!(TableFormat::try_new(Granule::K4, 52, VaRange::Lower, Lpa2::Off, 48).is_err());
        assert!(TableFormat::try_new(Granule::K64, 48, VaRange::Lower, Lpa2::On, 48).is_err());
    }
}
