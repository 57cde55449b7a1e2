//! The stage-1 Direct permission model (spec §3): effective AP, execute-never, WXN, PAN.

use bitflags::bitflags;

use super::access::Access;
use super::descriptor::TableAttributes;

bitflags! {
    /// The permissions a leaf grants, after hierarchical restrictions, DBM and WXN, before
    /// PAN (which depends on PSTATE and is applied per access by [`Permissions::allows`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Permissions: u8 {
        /// EL0 (unprivileged) read.
        const UR = 1 << 0;
        /// EL0 write.
        const UW = 1 << 1;
        /// EL0 execute.
        const UX = 1 << 2;
        /// EL1 (privileged) read.
        const PR = 1 << 3;
        /// EL1 write.
        const PW = 1 << 4;
        /// EL1 execute.
        const PX = 1 << 5;
    }
}

impl Permissions {
    /// Computes the permissions of a leaf descriptor `desc` reached through tables whose
    /// attributes OR to `table` (ignored when `hpd`), with `dbm_writable` saying that
    /// hardware dirty management makes the leaf writable (effective AP\[2\] = 0), and
    /// SCTLR_EL1.WXN = `wxn`. Follows spec §3.4 step by step.
    #[inline(always)]
    pub const fn from_leaf(
        desc: u64,
        table: TableAttributes,
        hpd: bool,
        dbm_writable: bool,
        wxn: bool,
    ) -> Permissions {
        let t = if hpd { 0 } else { table.bits() };
        // Effective AP[1] (EL0 access) and AP[2] (read-only): DBM first, then APTable.
        let ap1 = (desc >> 6) & !(t >> 61) & 1;
        let ap2 = (((desc >> 7) & !(dbm_writable as u64)) | (t >> 62)) & 1;
        let uxn = ((desc >> 54) | (t >> 60)) & 1;
        let pxn = ((desc >> 53) | (t >> 59)) & 1;
        let ur = ap1;
        let uw = ap1 & !ap2 & 1;
        let pw = !ap2 & 1;
        let w = wxn as u64;
        let ux = !uxn & !(uw & w) & 1;
        let px = !(pxn | uw) & !(pw & w) & 1;
        Permissions::from_bits_retain(
            (ur | (uw << 1) | (ux << 2) | (1 << 3) | (pw << 4) | (px << 5)) as u8,
        )
    }

    /// Computes the same as [`Permissions::from_leaf`] by one lookup in a table that
    /// `from_leaf` built at compile time, indexed by the ten inputs it reads: the leaf's
    /// AP\[2:1\], PXN and UXN, the tables' PXNTable, UXNTable and APTable (bits \[62:59\]
    /// of `table`, ignored when `hpd`), `dbm_writable` and `wxn`.
    #[inline(always)]
    pub const fn from_leaf_lookup(
        desc: u64,
        table: TableAttributes,
        hpd: bool,
        dbm_writable: bool,
        wxn: bool,
    ) -> Permissions {
        let t = if hpd { 0 } else { table.bits() };
        let i = ((desc >> 6) & 3)
            | (((desc >> 53) & 3) << 2)
            | (((t >> 59) & 0xf) << 4)
            | ((dbm_writable as u64) << 8)
            | ((wxn as u64) << 9);
        Permissions::from_bits_retain(LEAF_PERMISSIONS[i as usize])
    }

    /// Returns whether these permissions allow `access`, applying PSTATE.PAN (and EPAN,
    /// FEAT_PAN3) to EL1 data accesses.
    #[inline(always)]
    pub const fn allows(self, access: &Access, epan: bool) -> bool {
        let b = self.bits();
        if access.is_el0() {
            let need = match access.kind() {
                super::access::AccessKind::Read => Permissions::UR.bits(),
                super::access::AccessKind::Write => Permissions::UW.bits(),
                super::access::AccessKind::Fetch => Permissions::UX.bits(),
            };
            return b & need != 0;
        }
        match access.kind() {
            super::access::AccessKind::Fetch => b & Permissions::PX.bits() != 0,
            kind => {
                if access.pan() {
                    let mut el0 = Permissions::UR.bits() | Permissions::UW.bits();
                    if epan {
                        el0 |= Permissions::UX.bits();
                    }
                    if b & el0 != 0 {
                        return false;
                    }
                }
                let need = if matches!(kind, super::access::AccessKind::Write) {
                    Permissions::PW.bits()
                } else {
                    Permissions::PR.bits()
                };
                b & need != 0
            }
        }
    }
}

/// [`Permissions::from_leaf`] for every combination of the inputs it reads, indexed as
/// [`Permissions::from_leaf_lookup`] indexes it.
static LEAF_PERMISSIONS: [u8; 1024] = {
    let mut t = [0u8; 1024];
    let mut i = 0;
    while i < 1024 {
        let i64 = i as u64;
        let desc = ((i64 & 3) << 6) | (((i64 >> 2) & 3) << 53);
        let table = TableAttributes::from_bits_retain(((i64 >> 4) & 0xf) << 59);
        t[i] = Permissions::from_leaf(desc, table, false, i & 0x100 != 0, i & 0x200 != 0).bits();
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::access::El;

    fn p(desc: u64) -> Permissions {
        Permissions::from_leaf(desc, TableAttributes::empty(), false, false, false)
    }

    #[test]
    fn lookup_is_from_leaf_for_every_input() {
        // Every combination of the bits either reads, with the other bits of both words
        // set and clear.
        for i in 0u64..1024 {
            for noise in [0u64, !((3 << 6) | (3 << 53))] {
                let desc = noise | ((i & 3) << 6) | (((i >> 2) & 3) << 53);
                let tbits = (noise & !(0xf << 59)) | (((i >> 4) & 0xf) << 59);
                let table = TableAttributes::from_bits_retain(tbits & (0xf << 59));
                for hpd in [false, true] {
                    let (dbm, wxn) = (i & 0x100 != 0, i & 0x200 != 0);
                    assert_eq!(
                        Permissions::from_leaf_lookup(desc, table, hpd, dbm, wxn),
                        Permissions::from_leaf(desc, table, hpd, dbm, wxn),
                        "{i:#x} {noise:#x} {hpd}"
                    );
                }
            }
        }
    }

    #[test]
    fn ap_table() {
        // AP=00: EL1 RW, EL0 none; EL0 may still execute (execute-only).
        let x = p(0x703);
        assert!(x.allows(&Access::write(El::El1), false));
        assert!(!x.allows(&Access::read(El::El0), false));
        assert!(x.allows(&Access::fetch(El::El0), false));
        // AP=01: EL0 writable, so never EL1-executable.
        let x = p(0x743);
        assert!(!x.allows(&Access::fetch(El::El1), false));
        assert!(x.allows(&Access::write(El::El0), false));
        // AP=11 with PAN: EL1 loses data access, keeps fetch.
        let x = p(0x7c3);
        assert!(!x.allows(&Access::read(El::El1).with_pan(true), false));
        assert!(x.allows(&Access::fetch(El::El1).with_pan(true), false));
        // AP=00 with EPAN and EL0-executable: PAN3 blocks EL1 data access.
        let x = p(0x703);
        assert!(x.allows(&Access::read(El::El1).with_pan(true), false));
        assert!(!x.allows(&Access::read(El::El1).with_pan(true), true));
    }

    #[test]
    fn hierarchical_and_wxn() {
        let t = TableAttributes::AP_TABLE_NO_EL0;
        let x = Permissions::from_leaf(0x743, t, false, false, false);
        assert!(!x.allows(&Access::read(El::El0), false));
        assert!(x.allows(&Access::fetch(El::El1), false));
        let x = Permissions::from_leaf(0x743, t, true, false, false);
        assert!(x.allows(&Access::read(El::El0), false));
        // WXN: EL1-writable AP=00 is not EL1-executable.
        let x = Permissions::from_leaf(0x703, TableAttributes::empty(), false, false, true);
        assert!(!x.allows(&Access::fetch(El::El1), false));
    }
}
