//! The stage-1 translation table walk, with the checks in the architecture's order
//! (spec §4.1).

use super::access::{Access, AtOp};
use super::cpu::Compat;
use super::descriptor::{Attributes, Descriptor, TableAttributes};
use super::fault::{Fault, FaultKind};
use super::granule::Level;
use super::mair::MairAttr;
use super::perms::Permissions;
use super::regime::{sctlr, Half, Regime, WalkParams};
use crate::addr::{PhysAddr, VirtAddr};
use crate::phys::{MemoryError, PhysMemory};

mod fast;
mod slot;

pub(crate) use slot::{resume_at, walk_tables_slot, LeafSlot};

/// How many times a hardware descriptor update may lose a compare-and-swap race before the
/// walker gives up with an unsupported-atomic-update fault (real hardware would retry
/// forever; a simulator must terminate).
pub const MAX_UPDATE_RETRIES: u32 = 64;

const AF: u64 = Attributes::AF.bits();
const AP_RO: u64 = Attributes::AP_RO.bits();
const DBM: u64 = Attributes::DBM.bits();

/// PAR_EL1 fields of a successful translation.
mod par {
    /// ATTR, bits \[63:56\].
    pub const ATTR_SHIFT: u32 = 56;
    /// Bit 11, RES1.
    pub const RES1: u64 = 1 << 11;
    /// NS, bit 9.
    pub const NS_SHIFT: u32 = 9;
    /// SH, bits \[8:7\].
    pub const SH_SHIFT: u32 = 7;
}

/// A hardware update of a leaf descriptor (access flag set, or dirty state recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DescriptorUpdate {
    /// Where the descriptor lives.
    pub pa: PhysAddr,
    /// Its value before the update.
    pub old: u64,
    /// Its value after the update.
    pub new: u64,
}

/// A successful translation: the output address and everything a TLB entry may cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Translation {
    /// The virtual address translated, as issued.
    pub va: VirtAddr,
    /// The physical address.
    pub pa: PhysAddr,
    /// The level of the leaf (`None` with the MMU off).
    pub level: Option<Level>,
    /// log2 of the bytes the leaf maps (page or block size).
    pub size_log2: u8,
    /// The MAIR_EL1 attribute byte selected by AttrIndx.
    pub attr: u8,
    /// Shareability: the leaf's SH field, or TCR.SHx when DS = 1.
    pub sh: u8,
    /// The ASID current at the time of the walk.
    pub asid: u16,
    /// The permissions the leaf grants (before PAN).
    pub perms: Permissions,
    /// Whether the leaf is writable-clean (DBM with AP\[2\] = 1 under HA/HD): a TLB must not
    /// grant writes from this translation, so that a write walks again and marks it dirty.
    pub writable_clean: bool,
    /// The leaf descriptor, as left in memory after any update.
    pub descriptor: Descriptor,
    /// Where the leaf descriptor lives (0 with the MMU off).
    pub descriptor_pa: PhysAddr,
    /// The hardware update the walk made, if any.
    pub update: Option<DescriptorUpdate>,
}

impl Translation {
    /// Returns the memory attributes the leaf selects (MAIR_EL1 `Attr<AttrIndx>`).
    #[inline]
    pub const fn mair_attr(&self) -> MairAttr {
        MairAttr::new(self.attr)
    }

    /// Returns AttrIndx of the leaf (0 with the MMU off).
    #[inline]
    pub const fn attr_index(&self) -> u8 {
        ((self.descriptor.bits() >> 2) & 7) as u8
    }

    /// Returns whether the leaf is global (nG = 0); non-global translations belong to
    /// [`Self::asid`]. The MMU-off flat mapping is global.
    #[inline]
    pub const fn global(&self) -> bool {
        self.level.is_none() || !self.descriptor.not_global()
    }

    /// Returns the Contiguous hint.
    #[inline]
    pub const fn contiguous(&self) -> bool {
        self.descriptor.contiguous()
    }

    /// Returns the BTI guarded-page bit (GP).
    #[inline]
    pub const fn guarded(&self) -> bool {
        self.descriptor.bits() & Attributes::GP.bits() != 0
    }

    /// Returns whether the output is Non-secure: always, in the Non-secure EL1&0 regime.
    #[inline]
    pub const fn ns(&self) -> bool {
        true
    }

    /// Returns the PAR_EL1 value an AT instruction reports for this translation:
    /// PA\[51:12\], NS, SH (0b10 for Device and Normal non-cacheable memory), ATTR, and bit 11.
    pub const fn par(&self) -> u64 {
        let sh = if self.attr & 0xf0 == 0 || self.attr == 0x44 || self.attr == 0x40 {
            2
        } else {
            self.sh as u64
        };
        (self.pa.as_u64() & 0x000f_ffff_ffff_f000)
            | ((self.attr as u64) << par::ATTR_SHIFT)
            | par::RES1
            | ((self.ns() as u64) << par::NS_SHIFT)
            | (sh << par::SH_SHIFT)
    }

    /// Returns the size in bytes of the page or block the leaf maps.
    #[inline]
    pub const fn size(&self) -> u64 {
        1 << self.size_log2
    }
}

/// The result of an AT instruction: PAR_EL1 and the descriptor update the walk made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AtResult {
    /// The PAR_EL1 value.
    pub par: u64,
    /// The hardware update of the leaf descriptor, if any.
    pub update: Option<DescriptorUpdate>,
}

/// Runs an AT instruction: translates `va` as `op` checks it and reports PAR_EL1.
///
/// A synchronous External abort on the walk is reported in PAR_EL1 (F = 1, FST = 0x14 + level)
/// rather than taken as an exception.
pub fn at<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    op: AtOp,
    va: VirtAddr,
) -> AtResult {
    match walk(regime, mem, va, op.access()) {
        Ok(t) => AtResult {
            par: t.par(),
            update: t.update,
        },
        Err(f) => AtResult {
            par: f.par(),
            update: None,
        },
    }
}

/// Translates `va` for `access` through the tables in `mem`, as the hardware would with an
/// empty TLB: range checks, the walk, access flag, alignment, permissions, and the hardware
/// access-flag and dirty-state updates (written to `mem` with compare-and-swap).
///
/// # Errors
/// The [`Fault`] the access takes. Faults are ordinary results, not failures of the
/// simulator; every input gives either a translation or a fault.
#[inline(always)]
pub fn walk<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    // As in `walk_pa`: one test picks the lower half inside its data range.
    if va.as_u64() & regime.half(false).fast.lower_data_range == 0 {
        walk_half::<M, false>(regime, mem, va, access)
    } else if va.select_bit() {
        walk_upper(regime, mem, va, access)
    } else {
        walk_checked(regime, mem, va, access)
    }
}

/// [`walk`] for the upper half, out of line.
#[inline(never)]
fn walk_upper<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    walk_half::<M, true>(regime, mem, va, access)
}

/// [`walk`] in the half `UPPER`: the common case, else the full walk (a lower-half `va`
/// inside the half's data range, as [`fast::leaf`] needs).
#[inline(always)]
fn walk_half<M: PhysMemory + ?Sized, const UPPER: bool>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    match fast::leaf::<M, UPPER>(regime, mem, va, access) {
        Some(l) => Ok(fast::translation(
            regime,
            regime.half(UPPER),
            va,
            access,
            &l,
        )),
        None => walk_checked(regime, mem, va, access),
    }
}

/// Walks in full: the MMU-off translation, the checks before any lookup, then the tables.
#[inline(never)]
fn walk_checked<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    if !regime.mmu_enabled() {
        return mmu_off(regime, va, access);
    }
    let half = check_va(regime, va, access)?;
    walk_tables(regime, half, mem, va, access)
}

/// Runs the checks made before any TLB lookup (spec §4.1 steps 1–3): TxSZ range, the VA
/// range of the selected half, and E0PD. Returns the selected half.
///
/// # Errors
/// A level-0 Translation fault.
#[inline(always)]
pub(crate) fn check_va(regime: &Regime, va: VirtAddr, access: Access) -> Result<&Half, Fault> {
    let upper = va.select_bit();
    let h = regime.half(upper);
    let mask = if access.is_fetch() {
        h.fast.va_check_fetch
    } else {
        h.fast.va_check_data
    };
    let expect = if upper { mask } else { 0 };
    if va.as_u64() & mask != expect || h.fast.deny & (1 | ((access.is_el0() as u8) << 1)) != 0 {
        return Err(Fault::new(FaultKind::Translation, Level::L0, va, access));
    }
    Ok(h)
}

/// Translates `va` for `access` like [`walk`], returning only the physical address: the
/// same checks, faults and hardware updates, without assembling a [`Translation`] on the
/// common path (the counterpart of a `translate_addr`).
///
/// # Errors
/// The [`Fault`] the access takes.
///
/// # Example
///
/// ```
/// use pagesim::arch::{walk, walk_pa, Access, Cpu, El, FaultKind, Regime, Registers};
/// use pagesim::phys::{PhysMemory, SliceMemory};
/// use pagesim::{PhysAddr, VirtAddr};
///
/// let mut ram = vec![0u8; 0x4000];
/// let mut mem = SliceMemory::new(PhysAddr::new(0x4000_0000), &mut ram);
/// mem.write_u64(PhysAddr::new(0x4000_0000), 0x4000_1003)?; // L0[0] -> L1
/// mem.write_u64(PhysAddr::new(0x4000_1000), 0x4000_2003)?; // L1[0] -> L2
/// mem.write_u64(PhysAddr::new(0x4000_2000), 0x4000_3003)?; // L2[0] -> L3
/// mem.write_u64(PhysAddr::new(0x4000_3008), 0x8800_1743)?; // L3[1]: page, EL0 RW, AF
/// let regs = Registers { tcr: 0x5_8010_0010, sctlr: 1, ttbr0: 0x4000_0000, ttbr1: 0, mair: 0xff };
/// let regime = Regime::try_new(regs, Cpu::MAX)?;
///
/// let va = VirtAddr::new(0x1abc);
/// let read = Access::read(El::El0);
/// assert_eq!(walk_pa(&regime, &mut mem, va, read), Ok(PhysAddr::new(0x8800_1abc)));
/// assert_eq!(walk_pa(&regime, &mut mem, va, read), walk(&regime, &mut mem, va, read).map(|t| t.pa));
/// // The same faults as `walk`: nothing is mapped at L3[0].
/// let f = walk_pa(&regime, &mut mem, VirtAddr::new(0x0), read).unwrap_err();
/// assert_eq!((f.kind, f.level.map(|l| l.get())), (FaultKind::Translation, Some(3)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline(always)]
pub fn walk_pa<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<PhysAddr, Fault> {
    // Each half's constants sit at a fixed place: a branch picks the half, so that no
    // load on the walk's dependent chain waits for the VA to choose it. The lower half's
    // common case is inline; the upper half's takes a call. The calls return the address
    // in registers and leave a fault in `fault`, so that the address never goes through
    // memory on its way to the caller.
    let mut fault = None;
    // One test picks the lower half and finds the VA inside its data range; anything
    // else, the upper half included, takes a call.
    let pa = if va.as_u64() & regime.half(false).fast.lower_data_range == 0 {
        walk_pa_half::<M, false>(regime, mem, va, access, &mut fault)
    } else if va.select_bit() {
        walk_pa_upper(regime, mem, va, access, &mut fault)
    } else {
        walk_pa_slow(regime, mem, va, access, &mut fault)
    };
    match (pa, fault) {
        (Some(pa), _) => Ok(pa),
        (None, Some(f)) => Err(f),
        // Not reached: the walk that returns no address leaves its fault.
        (None, None) => Err(Fault::new(FaultKind::Translation, Level::L0, va, access)),
    }
}

/// [`walk_pa`] for the upper half, out of line.
#[inline(never)]
fn walk_pa_upper<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    fault: &mut Option<Fault>,
) -> Option<PhysAddr> {
    walk_pa_half::<M, true>(regime, mem, va, access, fault)
}

/// [`walk_pa`] in the half `UPPER`: the common case, else the full walk (a lower-half
/// `va` inside the half's data range, as [`fast::leaf`] needs).
#[inline(always)]
fn walk_pa_half<M: PhysMemory + ?Sized, const UPPER: bool>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    fault: &mut Option<Fault>,
) -> Option<PhysAddr> {
    match fast::leaf::<M, UPPER>(regime, mem, va, access) {
        Some(l) => Some(fast::pa(va, &l)),
        None => walk_pa_slow(regime, mem, va, access, fault),
    }
}

/// Walks in full for [`walk_pa`], leaving a fault in `fault`.
#[inline(never)]
fn walk_pa_slow<M: PhysMemory + ?Sized>(
    regime: &Regime,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    fault: &mut Option<Fault>,
) -> Option<PhysAddr> {
    match walk_checked(regime, mem, va, access) {
        Ok(t) => Some(t.pa),
        Err(f) => {
            *fault = Some(f);
            None
        }
    }
}

/// Walks the tables of `half` after a TLB miss (spec §4.1 steps 5–11).
///
/// The common case (little-endian tables, a valid leaf with its access flag set that needs
/// no hardware update and allows the access) runs inline as straight-line code; anything
/// else is evaluated in full, out of line.
///
/// # Errors
/// The [`Fault`] the access takes.
#[inline(always)]
pub(crate) fn walk_tables<M: PhysMemory + ?Sized>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    match h.fast.straight_page_shift {
        12 => walk_straight::<M, 12>(regime, h, mem, va, access),
        14 => walk_straight_outlined::<M, 14>(regime, h, mem, va, access),
        16 => walk_straight_outlined::<M, 16>(regime, h, mem, va, access),
        _ => walk_general(regime, h, mem, va, access),
    }
}

/// Walks 16 or 64 KiB-granule tables (page shift `PAGE`) on the straight-line path, out of
/// line.
#[inline(never)]
fn walk_straight_outlined<M: PhysMemory + ?Sized, const PAGE: u32>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    walk_straight::<M, PAGE>(regime, h, mem, va, access)
}

/// Follows the tables of `h` (little-endian, granule page shift `PAGE`, start level 0 or
/// below, output addresses in \[47:PAGE\]) for `va` with the levels unrolled and constant
/// shifts, to the first descriptor that is not a table: returns it, its address and the
/// cursor there, or the level of a read that no memory answered; `start` is the start
/// level of `h` (a constant where the caller knows it). A descriptor is followed
/// as a table when its bits in `table_check` are just \[1:0\] (valid, table; with
/// [`table_check`], no output-address bit above the size). `read` reads the entries.
#[inline(always)]
fn straight_descent<const PAGE: u32>(
    h: &Half,
    start: i8,
    va: VirtAddr,
    table_check: u64,
    read: impl ReadEntry,
) -> Result<(u64, PhysAddr, Cursor), i8> {
    let p = &h.fast;
    let stride = PAGE - 3;
    let index_mask = (1u64 << stride) - 1;
    // The start table's index needs no mask of its own once the VA is cut to the input size.
    let v = va.as_u64() & p.input_mask;
    let mut table = h.table_base;
    let mut tattrs = 0u64;
    // The byte offset of the entry for `level` in its table: from the VA alone, so it is
    // ready before the previous level's load returns the table address.
    let offset = |level: u32| {
        let shift = PAGE + stride * (3 - level);
        ((v >> shift) & index_mask) << 3
    };
    // The index never reaches the table's aligned base bits, so `+` is `|`.
    let (level, raw, desc_pa) = 'leaf: {
        for level in 0..3u32 {
            if start <= level as i8 {
                let off = offset(level);
                let raw = read.entry(table, off, level as i8)?;
                if raw & table_check != 3 {
                    break 'leaf (level as i8, raw, PhysAddr::from_bits_52(table + off));
                }
                table = raw & p.oa_low_mask;
                tattrs |= raw;
            }
        }
        let off = offset(3);
        (
            3,
            read.entry(table, off, 3)?,
            PhysAddr::from_bits_52(table + off),
        )
    };
    let c = Cursor {
        level,
        shift: PAGE + stride * (3 - level) as u32,
        index_mask,
        table,
        tattrs,
    };
    Ok((raw, desc_pa, c))
}

/// Returns the bits of a descriptor that make it a table to follow when they are just
/// \[1:0\]: valid, table, and no output-address bit above the size.
#[inline(always)]
fn table_check(p: &WalkParams) -> u64 {
    3 | (p.oa_over_mask & p.oa_low_mask)
}

/// How [`straight_descent`] reads a table entry: a method forced inline, where a closure
/// called at four unrolled levels may be left out of line, a call per level.
trait ReadEntry {
    /// Reads the entry `offset` bytes into the table at `table`, or fails with `level`.
    fn entry(&self, table: u64, offset: u64, level: i8) -> Result<u64, i8>;
}

/// Reads descriptors from a memory: through its word view where it has one, else
/// [`PhysMemory::read_entry`].
struct MemoryEntries<'m, M: ?Sized> {
    mem: &'m M,
    view: Option<crate::phys::WordView<'m>>,
}

impl<M: PhysMemory + ?Sized> ReadEntry for MemoryEntries<'_, M> {
    #[inline(always)]
    fn entry(&self, table: u64, offset: u64, level: i8) -> Result<u64, i8> {
        // A read the view does not hold is the memory's to answer (it may hold more).
        match self.view.as_ref().and_then(|w| w.entry(table, offset)) {
            Some(d) => Ok(d),
            None => self
                .mem
                .read_entry(PhysAddr::from_bits_52(table), offset)
                .map_err(|_| level),
        }
    }
}

/// Reads descriptors through a word view alone (what the view does not hold fails).
#[derive(Clone, Copy)]
struct ViewEntries<'m>(crate::phys::WordView<'m>);

impl ReadEntry for ViewEntries<'_> {
    #[inline(always)]
    fn entry(&self, table: u64, offset: u64, level: i8) -> Result<u64, i8> {
        self.0.entry(table, offset).ok_or(level)
    }
}

/// Walks little-endian tables of the granule with page shift `PAGE`, starting at level 0
/// or below, with output addresses in descriptor bits \[47:PAGE\]: the levels unrolled with
/// constant shifts, then the leaf's common case inline (see [`leaf_fast`]).
#[inline(always)]
fn walk_straight<M: PhysMemory + ?Sized, const PAGE: u32>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    let (raw, desc_pa, c) = straight_tables::<M, PAGE>(h, mem, va, access)?;
    finish_leaf(regime, h, mem, va, access, raw, desc_pa, c)
}

/// Follows the tables of `h` for `va` on the straight-line path (see [`straight_descent`])
/// to the leaf candidate: returns it, its address and the cursor there, or the external
/// abort of a read no memory answered.
#[inline(always)]
fn straight_tables<M: PhysMemory + ?Sized, const PAGE: u32>(
    h: &Half,
    mem: &M,
    va: VirtAddr,
    access: Access,
) -> Result<(u64, PhysAddr, Cursor), Fault> {
    straight_descent::<PAGE>(
        h,
        h.start_level.get(),
        va,
        table_check(&h.fast),
        MemoryEntries {
            mem,
            view: mem.word_view(),
        },
    )
    .map_err(|level| cold_fault(FaultKind::ExternalAbortOnWalk, level, va, access))
}

/// Evaluates the little-endian leaf candidate `raw` at `desc_pa`: its common case inline
/// (see [`leaf_fast`]), anything else in full, out of line.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish_leaf<M: PhysMemory + ?Sized>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    raw: u64,
    desc_pa: PhysAddr,
    c: Cursor,
) -> Result<Translation, Fault> {
    match leaf_fast(regime, h, va, access, raw, desc_pa, &c) {
        Some(l) => Ok(translation(regime, h, va, &c, l, None)),
        None => leaf::<M, false>(regime, h, mem, va, access, raw, desc_pa, c),
    }
}

/// Walks with a level-0 walk fault or big-endian tables.
#[inline(never)]
fn walk_general<M: PhysMemory + ?Sized>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    if let Some(kind) = h.fast.walk_fault {
        return Err(Fault::new(kind, Level::L0, va, access));
    }
    if regime.big_endian() {
        walk_impl::<M, true>(regime, h, mem, va, access)
    } else {
        walk_impl::<M, false>(regime, h, mem, va, access)
    }
}

/// Where a walk is: the table being indexed and what the tables above contributed.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    level: i8,
    shift: u32,
    index_mask: u64,
    table: u64,
    tattrs: u64,
}

impl Cursor {
    /// Starts at the start table of `h`.
    #[inline(always)]
    fn start(h: &Half) -> Cursor {
        Cursor {
            level: h.start_level.get(),
            shift: h.fast.start_shift,
            index_mask: h.fast.start_index_mask,
            table: h.table_base,
            tattrs: 0,
        }
    }

    /// Steps into the next-level table `next` through table descriptor `raw`.
    #[inline(always)]
    fn enter(&mut self, p: &WalkParams, raw: u64, next: u64) {
        self.tattrs |= raw;
        self.table = next;
        self.shift -= p.stride;
        self.index_mask = p.grain_index_mask;
        self.level += 1;
    }
}

#[inline(always)]
fn output_address(p: &WalkParams, raw: u64) -> u64 {
    (raw & p.oa_low_mask) | (((raw >> p.hi_shift) & p.hi_mask) << p.hi_pos)
}

#[inline(always)]
fn load<M: PhysMemory + ?Sized, const BE: bool>(mem: &M, pa: PhysAddr) -> Result<u64, MemoryError> {
    let w = mem.read_u64(pa)?;
    Ok(if BE { w.swap_bytes() } else { w })
}

/// Follows table descriptors from the cursor until a descriptor that is not a valid,
/// in-range table (or level 3 is reached). Returns it and its address.
#[inline(always)]
fn descend<M: PhysMemory + ?Sized, const BE: bool>(
    p: &WalkParams,
    mem: &M,
    v: u64,
    c: &mut Cursor,
) -> Result<(u64, PhysAddr), FaultKind> {
    let table_check = table_check(p);
    let oa_low = p.oa_low_mask;
    let has_hi = p.hi_mask != 0;
    loop {
        let desc_pa = PhysAddr::from_bits_52(c.table | (((v >> c.shift) & c.index_mask) << 3));
        let raw = match load::<M, BE>(mem, desc_pa) {
            Ok(w) => w,
            Err(_) => return Err(FaultKind::ExternalAbortOnWalk),
        };
        if raw & table_check != 3 || c.level == 3 {
            return Ok((raw, desc_pa));
        }
        let next = if has_hi {
            output_address(p, raw)
        } else {
            raw & oa_low
        };
        c.enter(p, raw, next);
    }
}

fn walk_impl<M: PhysMemory + ?Sized, const BE: bool>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
) -> Result<Translation, Fault> {
    let mut c = Cursor::start(h);
    let (raw, desc_pa) = match descend::<M, BE>(&h.fast, mem, va.as_u64(), &mut c) {
        Ok(r) => r,
        Err(kind) => return Err(cold_fault(kind, c.level, va, access)),
    };
    leaf::<M, BE>(regime, h, mem, va, access, raw, desc_pa, c)
}

/// Evaluates the leaf candidate `raw` at `desc_pa` if it allows `access` without a fault
/// or a hardware update; `None` sends the walk to [`leaf`]. Only for walks whose output
/// addresses have no bits above bit 47.
#[inline(always)]
fn leaf_fast(
    regime: &Regime,
    h: &Half,
    va: VirtAddr,
    access: Access,
    raw: u64,
    desc_pa: PhysAddr,
    c: &Cursor,
) -> Option<LeafEval> {
    let p = &h.fast;
    let level = c.level;
    let oa = raw & p.oa_low_mask;
    let leaf_type = raw & 2 != 0 || p.block_levels & (1 << (level + 1)) != 0;
    if raw & (1 | AF) != 1 | AF || !leaf_type || oa & p.oa_over_mask != 0 {
        return None;
    }
    let attr = regime.mair_attr(((raw >> 2) & 7) as u8);
    if attr & 0xf0 == 0
        && !access.is_at()
        && !access.is_fetch()
        && va.as_u64() & (access.size() as u64 - 1) != 0
    {
        return None;
    }
    let (dbm, perms) = leaf_permissions(regime, h, access, raw, c.tattrs);
    if (dbm && access.is_write() && raw & AP_RO != 0) || !perms.allows(&access, regime.epan()) {
        return None;
    }
    Some(LeafEval {
        oa,
        attr,
        perms,
        writable_clean: dbm && raw & AP_RO != 0,
        descriptor: raw,
        descriptor_pa: desc_pa,
    })
}

/// Returns whether hardware dirty-state management applies to leaf `raw` (TCR.HD and its
/// DBM bit), and the permissions it grants, with the tables' attributes `tattrs` and DBM
/// making it writable where the compat mode says so (spec §3.4).
#[inline(always)]
fn leaf_permissions(
    regime: &Regime,
    h: &Half,
    access: Access,
    raw: u64,
    tattrs: u64,
) -> (bool, Permissions) {
    let dbm = regime.hd() && raw & DBM != 0;
    let dbm_writable = dbm && (regime.cpu().compat == Compat::Arch || access.is_write());
    let perms = Permissions::from_leaf_lookup(
        raw,
        TableAttributes::from_bits_retain(tattrs & TABLE_ATTR_MASK),
        h.hpd,
        dbm_writable,
        regime.wxn(),
    );
    (dbm, perms)
}

/// What the leaf evaluation found, for [`translation`].
struct LeafEval {
    oa: u64,
    attr: u8,
    perms: Permissions,
    writable_clean: bool,
    descriptor: u64,
    descriptor_pa: PhysAddr,
}

/// Returns the physical address of `va` in the page or block at `oa` mapped by the leaf at
/// the cursor.
#[inline(always)]
fn output_pa(va: VirtAddr, c: &Cursor, oa: u64) -> PhysAddr {
    let size_mask = (1u64 << c.shift) - 1;
    PhysAddr::from_bits_52((oa & !size_mask) | (va.as_u64() & size_mask))
}

/// Assembles the translation of `va` by the leaf at the cursor.
#[inline(always)]
fn translation(
    regime: &Regime,
    h: &Half,
    va: VirtAddr,
    c: &Cursor,
    l: LeafEval,
    update: Option<DescriptorUpdate>,
) -> Translation {
    Translation {
        va,
        pa: output_pa(va, c, l.oa),
        level: Level::new(c.level),
        size_log2: c.shift as u8,
        attr: l.attr,
        sh: if h.ds {
            h.sh
        } else {
            ((l.descriptor >> 8) & 3) as u8
        },
        asid: regime.asid(),
        perms: l.perms,
        writable_clean: l.writable_clean,
        descriptor: Descriptor(l.descriptor),
        descriptor_pa: l.descriptor_pa,
        update,
    }
}

/// Evaluates the leaf candidate `raw` at `desc_pa` in full (spec §4.1 steps 6–11): its
/// type, output address, access flag, alignment and permissions, then the hardware update
/// by compare-and-swap, re-evaluating whatever a lost race left there.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn leaf<M: PhysMemory + ?Sized, const BE: bool>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    mut raw: u64,
    mut desc_pa: PhysAddr,
    mut c: Cursor,
) -> Result<Translation, Fault> {
    let p = &h.fast;
    let v = va.as_u64();
    let fault = |kind, level: i8| Err(cold_fault(kind, level, va, access));
    let mut retries = 0;
    loop {
        let level = c.level;
        // A leaf candidate: block, page, an invalid or reserved encoding, or a table whose
        // address is too large.
        if raw & 1 == 0 || (raw & 2 == 0 && p.block_levels & (1 << (level + 1)) == 0) {
            return fault(FaultKind::Translation, level);
        }
        let oa = output_address(p, raw);
        if oa & p.oa_over_mask != 0 {
            return fault(FaultKind::AddressSize, level);
        }
        let ha = regime.ha();
        if raw & AF == 0 && !ha {
            return fault(FaultKind::AccessFlag, level);
        }
        let attr = regime.mair_attr(((raw >> 2) & 7) as u8);
        if attr & 0xf0 == 0
            && !access.is_at()
            && !access.is_fetch()
            && v & (access.size() as u64 - 1) != 0
        {
            return Err(Fault {
                kind: FaultKind::Alignment,
                level: None,
                va,
                access,
            });
        }
        let compat = regime.cpu().compat;
        let (dbm, perms) = leaf_permissions(regime, h, access, raw, c.tattrs);
        if !perms.allows(&access, regime.epan()) {
            return fault(FaultKind::Permission, level);
        }
        let mut new = raw | if ha { AF } else { 0 };
        if dbm && access.is_write() && (!access.is_at() || compat == Compat::Qemu) {
            new &= !AP_RO;
        }
        let mut update = None;
        if new != raw {
            let (cur, nv) = if BE {
                (raw.swap_bytes(), new.swap_bytes())
            } else {
                (raw, new)
            };
            match mem.compare_exchange_u64(desc_pa, cur, nv) {
                Ok(Ok(())) => {
                    update = Some(DescriptorUpdate {
                        pa: desc_pa,
                        old: raw,
                        new,
                    })
                }
                Ok(Err(actual)) => {
                    retries += 1;
                    if retries > MAX_UPDATE_RETRIES {
                        return fault(FaultKind::UnsupportedAtomicUpdate, level);
                    }
                    // Re-evaluate the value found, from the descriptor check on (§4.1
                    // step 11); it may even have become a table.
                    raw = if BE { actual.swap_bytes() } else { actual };
                    if raw & 3 == 3 && level < 3 {
                        let next = output_address(p, raw);
                        if next & p.oa_over_mask != 0 {
                            return fault(FaultKind::AddressSize, level);
                        }
                        c.enter(p, raw, next);
                        (raw, desc_pa) = match descend::<M, BE>(p, mem, v, &mut c) {
                            Ok(r) => r,
                            Err(kind) => return fault(kind, c.level),
                        };
                    }
                    continue;
                }
                Err(MemoryError::AtomicUnsupported { .. }) => {
                    return fault(FaultKind::UnsupportedAtomicUpdate, level)
                }
                Err(MemoryError::ExternalAbort { .. }) => {
                    return fault(FaultKind::ExternalAbortOnWalk, level)
                }
            }
        }
        return Ok(translation(
            regime,
            h,
            va,
            &c,
            LeafEval {
                oa,
                attr,
                perms,
                writable_clean: dbm && new & AP_RO != 0,
                descriptor: new,
                descriptor_pa: desc_pa,
            },
            update,
        ));
    }
}

/// Builds a fault out of line, so that the success path does not prepare one.
#[cold]
#[inline(never)]
fn cold_fault(kind: FaultKind, level: i8, va: VirtAddr, access: Access) -> Fault {
    Fault {
        kind,
        level: Level::new(level),
        va,
        access,
    }
}

/// The hierarchical attribute bits of table descriptors, \[62:59\] (NSTable is ignored in
/// Non-secure state).
const TABLE_ATTR_MASK: u64 = 0xf << 59;

/// Translates with the stage-1 MMU off (spec §1.2): a flat mapping with a range check,
/// Device memory for data and Normal memory for instruction fetches.
#[inline(never)]
fn mmu_off(regime: &Regime, va: VirtAddr, access: Access) -> Result<Translation, Fault> {
    let h = regime.half(va.select_bit());
    let tbi = h.tbi && !(access.is_fetch() && h.tbid);
    let top = if tbi { 55 } else { 63 };
    let pamax = regime.cpu().pa_bits();
    let field = (va.as_u64() >> pamax) & ((1u64 << (top + 1 - pamax)) - 1);
    if field != 0 {
        return Err(Fault::new(FaultKind::AddressSize, Level::L0, va, access));
    }
    let attr = if access.is_fetch() {
        if regime.registers().sctlr & sctlr::I != 0 {
            0xee
        } else {
            0x44
        }
    } else {
        0x00
    };
    if !access.is_at() && !access.is_fetch() && va.as_u64() & (access.size() as u64 - 1) != 0 {
        return Err(Fault {
            kind: FaultKind::Alignment,
            level: None,
            va,
            access,
        });
    }
    Ok(Translation {
        va,
        pa: PhysAddr::new(va.as_u64()),
        level: None,
        size_log2: 12,
        attr,
        sh: 2,
        asid: regime.asid(),
        perms: Permissions::all(),
        writable_clean: false,
        descriptor: Descriptor::INVALID,
        descriptor_pa: PhysAddr::new(0),
        update: None,
    })
}
