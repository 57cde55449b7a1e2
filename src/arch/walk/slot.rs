//! A walk that stops on an invalid entry of a last-level table and can be resumed there:
//! what a page-fault handler that maps the page through that entry needs, so that neither
//! its mapping nor the access it retries reads the tables above again.

use super::{finish_leaf, straight_tables, walk_tables, Cursor, Translation};
use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::access::Access;
use crate::arch::fault::{Fault, FaultKind};
use crate::arch::granule::Level;
use crate::arch::regime::{Half, Regime};
use crate::phys::PhysMemory;

/// Where a walk stopped on an invalid level-3 entry: the entry's address, and the table
/// and the attributes the tables above it contributed.
///
/// It stays true while no table descriptor on the way to that entry changes and the
/// regime does not: writing the entry itself is what it is for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafSlot {
    c: Cursor,
    desc_pa: PhysAddr,
}

impl LeafSlot {
    /// Returns the address of the entry.
    #[inline]
    pub(crate) const fn descriptor_pa(&self) -> PhysAddr {
        self.desc_pa
    }
}

/// Walks the tables of `h` as [`walk_tables`] does; a Translation fault on an invalid
/// level-3 entry of a little-endian straight-line walk also leaves that entry's
/// [`LeafSlot`] in `slot` (every other outcome leaves `slot` alone).
///
/// # Errors
/// The [`Fault`] the access takes.
#[inline]
pub(crate) fn walk_tables_slot<M: PhysMemory + ?Sized>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    slot: &mut Option<LeafSlot>,
) -> Result<Translation, Fault> {
    match h.fast.straight_page_shift {
        12 => walk_straight_slot::<M, 12>(regime, h, mem, va, access, slot),
        14 => walk_straight_slot::<M, 14>(regime, h, mem, va, access, slot),
        16 => walk_straight_slot::<M, 16>(regime, h, mem, va, access, slot),
        _ => walk_tables(regime, h, mem, va, access),
    }
}

/// [`walk_tables_slot`] for the straight-line walk of granule page shift `PAGE`.
#[inline(always)]
fn walk_straight_slot<M: PhysMemory + ?Sized, const PAGE: u32>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    slot: &mut Option<LeafSlot>,
) -> Result<Translation, Fault> {
    let (raw, desc_pa, c) = straight_tables::<M, PAGE>(h, mem, va, access)?;
    if raw & 1 == 0 && c.level == 3 {
        // What `leaf` returns first for an invalid descriptor.
        *slot = Some(LeafSlot { c, desc_pa });
        return Err(Fault::new(FaultKind::Translation, Level::L3, va, access));
    }
    finish_leaf(regime, h, mem, va, access, raw, desc_pa, c)
}

/// Completes the walk of `va` for `access` that stopped at `slot` (from
/// [`walk_tables_slot`] with the same regime, half, `va` and `access`), where the caller
/// has since written `raw`: evaluates the entry as that walk would have, had it then held
/// `raw`. (The caller hands the value over; debug builds read it back.)
///
/// # Errors
/// The [`Fault`] the access takes.
#[inline]
pub(crate) fn resume_at<M: PhysMemory + ?Sized>(
    regime: &Regime,
    h: &Half,
    mem: &mut M,
    va: VirtAddr,
    access: Access,
    slot: &LeafSlot,
    raw: u64,
) -> Result<Translation, Fault> {
    debug_assert_eq!(mem.read_u64(slot.desc_pa).ok(), Some(raw));
    finish_leaf(regime, h, mem, va, access, raw, slot.desc_pa, slot.c)
}
