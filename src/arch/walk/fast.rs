//! The common case of [`walk`](super::walk) and [`walk_pa`](super::walk_pa): the MMU on, a
//! 4 KiB straight-line walk through memory that is one run of words, a data access that
//! passes the checks before any lookup, and a leaf that needs no fault or hardware update.
//!
//! It is sufficient, not necessary: whatever it does not take (`None`) is walked again in
//! full, which decides it. It only reads memory, and only memories with a
//! [`WordView`](crate::phys::WordView), whose reads nothing observes; a memory that
//! watches its reads (a tracing wrapper) has no view, and every walk through it is the
//! full one, one read per level.

use super::{leaf_permissions, straight_descent, Translation, AF, AP_RO};
use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::access::Access;
use crate::arch::descriptor::{Attributes, Descriptor};
use crate::arch::granule::Level;
use crate::arch::regime::{Half, Regime};
use crate::phys::PhysMemory;

/// A leaf [`leaf`] accepted.
pub(super) struct FastLeaf {
    raw: u64,
    /// The half's output-address bits.
    oa_mask: u64,
    desc_pa: PhysAddr,
    level: usize,
    tattrs: u64,
}

/// The bytes below a leaf's output address at each level of the 4 KiB granule, from a
/// table indexed by the level, so that the output address is two operations on the
/// descriptor.
const SIZE_MASK_4K: [u64; 4] = [(1 << 39) - 1, (1 << 30) - 1, (1 << 21) - 1, (1 << 12) - 1];

/// Walks the common case for `va`, an address in half `UPPER`; a lower-half `va` must be
/// inside the half's data range (`va & lower_data_range == 0`).
///
/// The leaf is judged by one mask test: valid, the page or block type its level calls
/// for, AF set, an output address that fits, and the bits [`data_leaf_check`] asks for;
/// a table with an APTable bit set is not followed.
#[inline(always)]
pub(super) fn leaf<M: PhysMemory + ?Sized, const UPPER: bool>(
    regime: &Regime,
    mem: &M,
    va: VirtAddr,
    access: Access,
) -> Option<FastLeaf> {
    let (leaf_mask, leaf_expect) = data_leaf_check(access, regime.epan())?;
    let h = regime.half(UPPER);
    let p = &h.fast;
    let v = va.as_u64();
    // In the lower half the caller has found the VA inside the data range (with
    // `lower_data_range`, the one test that also picks the half).
    let range = p.va_check_data;
    let in_range = !UPPER || v & range == range;
    let aligned = v & (access.size() as u64 - 1) == 0;
    if p.pa_fast_deny & (1 | ((access.is_el0() as u8) << 1)) != 0 || !in_range || !aligned {
        return None;
    }
    let view = mem.word_view()?;
    let read = super::ViewEntries(view);
    // A table with an APTable bit set stops the descent here, as a leaf candidate this
    // path refuses: nothing then needs the tables' attributes but `translation`.
    let table_check = super::table_check(p) | p.table_ap_mask;
    // Start level 0 (a 48-bit input range) is the common one: its own copy of the descent
    // tests no levels.
    let start = h.start_level.get();
    let (raw, desc_pa, c) = if start == 0 {
        straight_descent::<12>(h, 0, va, table_check, read)
    } else {
        straight_descent::<12>(h, start, va, table_check, read)
    }
    .ok()?;
    let level = c.level as usize & 3;
    let mask = leaf_mask | p.oa_low_mask & p.oa_over_mask | 3;
    // Valid (bit 0) and, in bit 1, a page at level 3 or a block above it. A page is the
    // common case, tested on its own: its level is always a leaf level, and each exit of
    // the descent then knows which test follows it.
    let ok = if level == 3 {
        raw & mask == leaf_expect | 3
    } else {
        raw & mask == leaf_expect | 1 && (p.leaf_levels >> level) & 1 != 0
    };
    if !ok {
        return None;
    }
    Some(FastLeaf {
        raw,
        oa_mask: p.oa_low_mask,
        desc_pa,
        level,
        tattrs: c.tattrs,
    })
}

/// Returns the physical address of `va` in the leaf `l`.
#[inline(always)]
pub(super) fn pa(va: VirtAddr, l: &FastLeaf) -> PhysAddr {
    // The mask of a 4 KiB granule half holds no bits below 12: a page's address needs no
    // more than it.
    debug_assert_eq!(l.oa_mask & 0xfff, 0);
    if l.level == 3 {
        return PhysAddr::from_bits_52((l.raw & l.oa_mask) | (va.as_u64() & 0xfff));
    }
    let size_mask = SIZE_MASK_4K[l.level];
    PhysAddr::from_bits_52((l.raw & l.oa_mask & !size_mask) | (va.as_u64() & size_mask))
}

/// Decodes the leaf `l`, found in half `h`, into [`walk`](super::walk)'s [`Translation`].
#[inline(always)]
pub(super) fn translation(
    regime: &Regime,
    h: &Half,
    va: VirtAddr,
    access: Access,
    l: &FastLeaf,
) -> Translation {
    let (dbm, perms) = leaf_permissions(regime, h, access, l.raw, l.tattrs);
    Translation {
        va,
        pa: pa(va, l),
        level: Level::new(l.level as i8),
        size_log2: (12 + 9 * (3 - l.level)) as u8,
        attr: regime.mair_attr(((l.raw >> 2) & 7) as u8),
        sh: if h.ds { h.sh } else { ((l.raw >> 8) & 3) as u8 },
        asid: regime.asid(),
        perms,
        writable_clean: dbm && l.raw & AP_RO != 0,
        descriptor: Descriptor(l.raw),
        descriptor_pa: l.desc_pa,
        update: None,
    }
}

/// Returns the leaf bits that decide a data access in the common case, and the values
/// they must hold: AF set, AP\[1\] (EL0 access) for EL0, AP\[2\] clear (writable, no
/// dirty-state update pending) for writes, and for EL1 under PAN AP\[1\] clear (and UXN
/// set with EPAN). `None` for instruction fetches.
#[inline(always)]
const fn data_leaf_check(access: Access, epan: bool) -> Option<(u64, u64)> {
    if access.is_fetch() {
        return None;
    }
    const AP_EL0: u64 = Attributes::AP_EL0.bits();
    const UXN: u64 = Attributes::UXN.bits();
    let mut mask = AF;
    let mut expect = AF;
    if access.is_write() {
        mask |= AP_RO;
    }
    if access.is_el0() {
        mask |= AP_EL0;
        expect |= AP_EL0;
    } else if access.pan() {
        mask |= AP_EL0;
        if epan {
            mask |= UXN;
            expect |= UXN;
        }
    }
    Some((mask, expect))
}
