//! The EL1&0 stage-1 translation regime, decoded once from the raw system registers.

use core::fmt;

use super::cpu::{pa_bits_of, Cpu, TxszPolicy};
use super::granule::{Granule, Level};

/// The raw values of the system registers that control EL1&0 stage-1 translation.
///
/// Every `u64` is accepted: reserved encodings decode as the architecture (or QEMU, where
/// the architecture leaves a choice) behaves; [`Regime::try_new`] rejects them instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Registers {
    /// TCR_EL1.
    pub tcr: u64,
    /// SCTLR_EL1.
    pub sctlr: u64,
    /// TTBR0_EL1.
    pub ttbr0: u64,
    /// TTBR1_EL1.
    pub ttbr1: u64,
    /// MAIR_EL1.
    pub mair: u64,
}

/// TCR_EL1 field positions.
pub mod tcr {
    /// T0SZ, bits \[5:0\].
    pub const T0SZ_SHIFT: u32 = 0;
    /// EPD0, bit 7.
    pub const EPD0: u64 = 1 << 7;
    /// IRGN0, bits \[9:8\]: inner cacheability of TTBR0 walks.
    pub const IRGN0_SHIFT: u32 = 8;
    /// ORGN0, bits \[11:10\]: outer cacheability of TTBR0 walks.
    pub const ORGN0_SHIFT: u32 = 10;
    /// Normal write-back read/write-allocate, the IRGN/ORGN value Linux programs.
    pub const RGN_WBWA: u64 = 0b01;
    /// Inner Shareable, the SH value Linux programs.
    pub const SH_INNER: u64 = 0b11;
    /// SH0, bits \[13:12\].
    pub const SH0_SHIFT: u32 = 12;
    /// TG0, bits \[15:14\].
    pub const TG0_SHIFT: u32 = 14;
    /// T1SZ, bits \[21:16\].
    pub const T1SZ_SHIFT: u32 = 16;
    /// A1, bit 22: the ASID comes from TTBR1.
    pub const A1: u64 = 1 << 22;
    /// EPD1, bit 23.
    pub const EPD1: u64 = 1 << 23;
    /// SH1, bits \[29:28\].
    pub const SH1_SHIFT: u32 = 28;
    /// TG1, bits \[31:30\].
    pub const TG1_SHIFT: u32 = 30;
    /// IPS, bits \[34:32\].
    pub const IPS_SHIFT: u32 = 32;
    /// AS, bit 36: 16-bit ASIDs.
    pub const AS: u64 = 1 << 36;
    /// TBI0, bit 37.
    pub const TBI0: u64 = 1 << 37;
    /// TBI1, bit 38.
    pub const TBI1: u64 = 1 << 38;
    /// HA, bit 39.
    pub const HA: u64 = 1 << 39;
    /// HD, bit 40.
    pub const HD: u64 = 1 << 40;
    /// HPD0, bit 41.
    pub const HPD0: u64 = 1 << 41;
    /// HPD1, bit 42.
    pub const HPD1: u64 = 1 << 42;
    /// TBID0, bit 51.
    pub const TBID0: u64 = 1 << 51;
    /// TBID1, bit 52.
    pub const TBID1: u64 = 1 << 52;
    /// E0PD0, bit 55.
    pub const E0PD0: u64 = 1 << 55;
    /// E0PD1, bit 56.
    pub const E0PD1: u64 = 1 << 56;
    /// DS, bit 59 (FEAT_LPA2).
    pub const DS: u64 = 1 << 59;
}

/// SCTLR_EL1 bits that change translation.
pub mod sctlr {
    /// M, bit 0: stage-1 MMU enable.
    pub const M: u64 = 1;
    /// I, bit 12: instruction cacheability with the MMU off.
    pub const I: u64 = 1 << 12;
    /// WXN, bit 19.
    pub const WXN: u64 = 1 << 19;
    /// SPAN, bit 23.
    pub const SPAN: u64 = 1 << 23;
    /// EE, bit 25: big-endian table walks.
    pub const EE: u64 = 1 << 25;
    /// EPAN, bit 57 (FEAT_PAN3).
    pub const EPAN: u64 = 1 << 57;
}

/// Returned by [`Regime::try_new`] for a register value that uses a reserved or
/// unimplemented encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegimeError {
    /// TG0 or TG1 holds a reserved value (`half` is 0 or 1).
    ReservedGranule {
        /// The VA range half: 0 for TTBR0, 1 for TTBR1.
        half: u8,
        /// The raw TGx field.
        tg: u8,
    },
    /// T0SZ or T1SZ is outside the implemented range.
    TxszOutOfRange {
        /// The VA range half: 0 for TTBR0, 1 for TTBR1.
        half: u8,
        /// The raw TxSZ field.
        txsz: u8,
    },
    /// TCR_EL1.IPS is the reserved value 0b111.
    ReservedIps,
}

impl core::error::Error for RegimeError {}

impl fmt::Display for RegimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegimeError::ReservedGranule { half, tg } => {
                write!(f, "TCR_EL1.TG{half} = {tg:#b} is reserved")
            }
            RegimeError::TxszOutOfRange { half, txsz } => {
                write!(
                    f,
                    "TCR_EL1.T{half}SZ = {txsz} is outside the implemented range"
                )
            }
            RegimeError::ReservedIps => f.write_str("TCR_EL1.IPS = 0b111 is reserved"),
        }
    }
}

/// The decoded parameters of one VA range half (TTBR0 or TTBR1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Half {
    /// The granule (reserved encodings become 4 KiB, as QEMU does).
    pub granule: Granule,
    /// TxSZ after the [`TxszPolicy`] (the raw value when it faults).
    pub txsz: u8,
    /// Whether TxSZ is outside the implemented range and every access faults.
    pub txsz_out_of_range: bool,
    /// EPDx: a TLB miss faults.
    pub epd: bool,
    /// E0PDx (when implemented): EL0 accesses fault.
    pub e0pd: bool,
    /// TBIx: the top byte is ignored.
    pub tbi: bool,
    /// TBIDx (when implemented): TBI applies to data accesses only.
    pub tbid: bool,
    /// HPDx (when implemented): hierarchical permissions are disabled.
    pub hpd: bool,
    /// SHx, the shareability of walks (and of leaves when DS=1).
    pub sh: u8,
    /// The effective DS (52-bit VA/OA with LPA2 for this granule).
    pub ds: bool,
    /// Start level of a walk.
    pub start_level: Level,
    /// Base address of the start table (RES0 and CnP bits masked off).
    pub table_base: u64,
    /// Whether the TTBR base address exceeds the output address size.
    pub base_too_large: bool,
    pub(crate) fast: WalkParams,
}

/// Values derived once per register change so that the walk loop does only shifts, masks
/// and loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalkParams {
    /// Bits of the VA that must equal VA\[55\] for data accesses / for fetches.
    pub va_check_data: u64,
    /// `va_check_data` with bit 55: clear in a VA of the lower half inside its data range.
    pub lower_data_range: u64,
    pub va_check_fetch: u64,
    /// Bit shift of the start level and the stride.
    pub start_shift: u32,
    pub stride: u32,
    /// Index masks: the start table and full tables.
    pub start_index_mask: u64,
    pub grain_index_mask: u64,
    /// Output-address bits held in \[47:g\] (or \[49:g\] with DS).
    pub oa_low_mask: u64,
    /// Bits at and above the output address size.
    pub oa_over_mask: u64,
    /// Output-address bits above bit 47: `((raw >> hi_shift) & hi_mask) << hi_pos`
    /// (bits \[9:8\] with DS, \[15:12\] with 64 KiB FEAT_LPA, none otherwise).
    pub hi_shift: u32,
    pub hi_mask: u64,
    pub hi_pos: u32,
    /// Bit (level + 1) set where a block descriptor is permitted.
    pub block_levels: u8,
    /// A level-0 fault every walk takes before reading memory (EPD, TTBR too large).
    pub walk_fault: Option<super::fault::FaultKind>,
    /// The page shift of the granule when walks may take the straight-line path (0 when
    /// they must take the general one: a walk fault, big-endian tables, a start level
    /// below 0, or output-address bits above bit 47).
    pub straight_page_shift: u32,
    /// The VA bits a walk indexes with: `(1 << input_bits) - 1`.
    pub input_mask: u64,
    /// Accesses that fault before any lookup: bit 0 every access (TxSZ out of range),
    /// bit 1 EL0 accesses (E0PD).
    pub deny: u8,
    /// Accesses that may not take `walk_pa`'s common case: bit 0 every access (the MMU
    /// off, TxSZ out of range, or no straight-line 4 KiB walk), bit 1 EL0 accesses (E0PD).
    pub pa_fast_deny: u8,
    /// Bit `level` set where a leaf (page or block) may be found, levels 0 to 3.
    pub leaf_levels: u8,
    /// The table descriptors' APTable bits, \[62:61\], unless HPD disables them.
    pub table_ap_mask: u64,
}

impl Half {
    /// Returns the VA bits that must all equal VA\[55\] for an access to pass the range
    /// check (the interface through which the MMU's TLB keys its entries).
    #[inline]
    pub(crate) const fn va_check(&self, fetch: bool) -> u64 {
        if fetch {
            self.fast.va_check_fetch
        } else {
            self.fast.va_check_data
        }
    }

    /// Returns whether every access from `el0` (or EL1) to this half faults before any TLB
    /// lookup (an out-of-range TxSZ, or E0PD for EL0), so that the TLB must not answer.
    #[inline]
    pub(crate) const fn faults_before_lookup(&self, el0: bool) -> bool {
        self.fast.deny & (1 | ((el0 as u8) << 1)) != 0
    }

    /// Returns the number of VA bits this half translates (64 - TxSZ).
    #[inline]
    pub const fn input_bits(&self) -> u32 {
        64 - self.txsz as u32
    }

    /// Returns the number of entries in the start table.
    #[inline]
    pub const fn start_entries(&self) -> u64 {
        1 << (self.input_bits() - self.granule.level_shift(self.start_level))
    }
}

/// A decoded EL1&0 stage-1 translation regime: what the walker and the TLB need, computed
/// once per register change (like QEMU's `aa64_va_parameters`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regime {
    regs: Registers,
    cpu: Cpu,
    halves: [Half; 2],
    oa_bits: u32,
    ha: bool,
    hd: bool,
    asid: u16,
}

impl Regime {
    /// Decodes the registers as the simulated CPU would; reserved values behave as QEMU
    /// treats them (reserved granule: 4 KiB; out-of-range TxSZ: per [`Cpu::txsz_policy`];
    /// reserved IPS: PARange).
    pub fn new(regs: Registers, cpu: Cpu) -> Regime {
        let t = regs.tcr;
        let ha = cpu.hafdbs && t & tcr::HA != 0;
        let hd = ha && cpu.hdbs && t & tcr::HD != 0;
        let ips = ((t >> tcr::IPS_SHIFT) & 7) as u8;
        let ps = if ips > cpu.parange { cpu.parange } else { ips };
        let ps_bits = pa_bits_of(ps);
        let asid_src = if t & tcr::A1 != 0 {
            regs.ttbr1
        } else {
            regs.ttbr0
        };
        let mut asid = (asid_src >> 48) as u16;
        if t & tcr::AS == 0 {
            asid &= 0xff;
        }
        let h0 = decode_half(&regs, &cpu, 0, ps_bits);
        let h1 = decode_half(&regs, &cpu, 1, ps_bits);
        // The OA size is a per-half property in principle (DS or LPA lift the 48-bit cap);
        // both halves share IPS, so keep the larger and let each half cap itself.
        let oa_bits = ps_bits;
        Regime {
            regs,
            cpu,
            halves: [h0, h1],
            oa_bits,
            ha,
            hd,
            asid,
        }
    }

    /// Decodes the registers, rejecting reserved granules, out-of-range TxSZ and the
    /// reserved IPS value.
    ///
    /// # Errors
    /// [`RegimeError`] naming the first offending field.
    pub fn try_new(regs: Registers, cpu: Cpu) -> Result<Regime, RegimeError> {
        let t = regs.tcr;
        if Granule::from_tg0((t >> tcr::TG0_SHIFT) & 3).is_none() {
            return Err(RegimeError::ReservedGranule {
                half: 0,
                tg: ((t >> tcr::TG0_SHIFT) & 3) as u8,
            });
        }
        if Granule::from_tg1((t >> tcr::TG1_SHIFT) & 3).is_none() {
            return Err(RegimeError::ReservedGranule {
                half: 1,
                tg: ((t >> tcr::TG1_SHIFT) & 3) as u8,
            });
        }
        if (t >> tcr::IPS_SHIFT) & 7 == 7 {
            return Err(RegimeError::ReservedIps);
        }
        let r = Regime::new(regs, cpu);
        for (i, h) in r.halves.iter().enumerate() {
            let raw =
                (t >> if i == 0 {
                    tcr::T0SZ_SHIFT
                } else {
                    tcr::T1SZ_SHIFT
                }) & 0x3f;
            let (min, max) = txsz_limits(&cpu, h.granule, h.ds);
            if (raw as u8) < min || (raw as u8) > max {
                return Err(RegimeError::TxszOutOfRange {
                    half: i as u8,
                    txsz: raw as u8,
                });
            }
        }
        Ok(r)
    }

    /// Returns the raw registers this regime was decoded from.
    #[inline]
    pub const fn registers(&self) -> &Registers {
        &self.regs
    }

    /// Returns the CPU model this regime was decoded for.
    #[inline]
    pub const fn cpu(&self) -> &Cpu {
        &self.cpu
    }

    /// Returns the parameters of the TTBR0 (`false`) or TTBR1 (`true`) half.
    #[inline]
    pub const fn half(&self, upper: bool) -> &Half {
        &self.halves[upper as usize]
    }

    /// Returns whether the stage-1 MMU is on (SCTLR_EL1.M).
    #[inline]
    pub const fn mmu_enabled(&self) -> bool {
        self.regs.sctlr & sctlr::M != 0
    }

    /// Returns SCTLR_EL1.WXN.
    #[inline]
    pub const fn wxn(&self) -> bool {
        self.regs.sctlr & sctlr::WXN != 0
    }

    /// Returns the effective SCTLR_EL1.EPAN (FEAT_PAN3).
    #[inline]
    pub const fn epan(&self) -> bool {
        self.cpu.pan3 && self.regs.sctlr & sctlr::EPAN != 0
    }

    /// Returns whether table walks are big-endian (SCTLR_EL1.EE).
    #[inline]
    pub const fn big_endian(&self) -> bool {
        self.regs.sctlr & sctlr::EE != 0
    }

    /// Returns the effective TCR.HA.
    #[inline]
    pub const fn ha(&self) -> bool {
        self.ha
    }

    /// Returns the effective TCR.HD (only with HA).
    #[inline]
    pub const fn hd(&self) -> bool {
        self.hd
    }

    /// Returns the current ASID (from TTBR0 or TTBR1 per TCR.A1, 8 bits unless TCR.AS).
    #[inline]
    pub const fn asid(&self) -> u16 {
        self.asid
    }

    /// Returns the output address size of `half` in bits (IPS limited by PARange, capped
    /// at 48 unless DS or 64 KiB FEAT_LPA).
    #[inline]
    pub const fn oa_bits(&self, upper: bool) -> u32 {
        oa_cap(&self.cpu, &self.halves[upper as usize], self.oa_bits)
    }

    /// Returns the MAIR_EL1 attribute byte for `attr_index` (0–7).
    #[inline]
    pub const fn mair_attr(&self, attr_index: u8) -> u8 {
        (self.regs.mair >> (8 * (attr_index as u32 & 7))) as u8
    }
}

const fn oa_cap(cpu: &Cpu, h: &Half, ps_bits: u32) -> u32 {
    let lifted = h.ds || (matches!(h.granule, Granule::K64) && cpu.lpa);
    if !lifted && ps_bits > 48 {
        48
    } else {
        ps_bits
    }
}

/// Returns the (min, max) TxSZ the CPU implements for a granule.
pub(crate) const fn txsz_limits(cpu: &Cpu, g: Granule, ds: bool) -> (u8, u8) {
    let is64 = matches!(g, Granule::K64);
    let min = if ds || (is64 && cpu.lva) { 12 } else { 16 };
    let max = if cpu.ttst {
        if is64 {
            47
        } else {
            48
        }
    } else {
        39
    };
    (min, max)
}

fn decode_half(regs: &Registers, cpu: &Cpu, half: u8, ps_bits: u32) -> Half {
    let t = regs.tcr;
    let (tsz_shift, tg, epd, e0pd, tbi, tbid, hpd, sh_shift, ttbr) = if half == 0 {
        (
            tcr::T0SZ_SHIFT,
            Granule::from_tg0((t >> tcr::TG0_SHIFT) & 3),
            tcr::EPD0,
            tcr::E0PD0,
            tcr::TBI0,
            tcr::TBID0,
            tcr::HPD0,
            tcr::SH0_SHIFT,
            regs.ttbr0,
        )
    } else {
        (
            tcr::T1SZ_SHIFT,
            Granule::from_tg1((t >> tcr::TG1_SHIFT) & 3),
            tcr::EPD1,
            tcr::E0PD1,
            tcr::TBI1,
            tcr::TBID1,
            tcr::HPD1,
            tcr::SH1_SHIFT,
            regs.ttbr1,
        )
    };
    let granule = tg.unwrap_or(Granule::K4);
    let ds = t & tcr::DS != 0 && cpu.lpa2 && !matches!(granule, Granule::K64);
    let raw_tsz = ((t >> tsz_shift) & 0x3f) as u8;
    let (min, max) = txsz_limits(cpu, granule, ds);
    let oob = raw_tsz < min || raw_tsz > max;
    let (txsz, txsz_out_of_range) = match (oob, cpu.txsz_policy) {
        (false, _) => (raw_tsz, false),
        (true, TxszPolicy::Fault) => (raw_tsz.clamp(min, max), true),
        (true, TxszPolicy::Clamp) => (raw_tsz.clamp(min, max), false),
    };
    let input_bits = 64 - txsz as u32;
    let start_level = granule.start_level(input_bits);
    let mut h = Half {
        granule,
        txsz,
        txsz_out_of_range,
        epd: t & epd != 0,
        e0pd: cpu.e0pd && t & e0pd != 0,
        tbi: t & tbi != 0,
        tbid: cpu.tbid && t & tbid != 0,
        hpd: cpu.hpds && t & hpd != 0,
        sh: ((t >> sh_shift) & 3) as u8,
        ds,
        start_level,
        table_base: 0,
        base_too_large: false,
        fast: WalkParams {
            va_check_data: 0,
            lower_data_range: 0,
            va_check_fetch: 0,
            start_shift: 0,
            stride: 0,
            start_index_mask: 0,
            grain_index_mask: 0,
            oa_low_mask: 0,
            oa_over_mask: 0,
            hi_shift: 0,
            hi_mask: 0,
            hi_pos: 0,
            block_levels: 0,
            walk_fault: None,
            straight_page_shift: 0,
            input_mask: 0,
            deny: 0,
            pa_fast_deny: 0,
            leaf_levels: 0,
            table_ap_mask: 0,
        },
    };
    let oa_bits = oa_cap(cpu, &h, ps_bits);
    // TTBR: BADDR[47:1]; with a 52-bit OA, BADDR[51:48] is in TTBR[5:2] (spec §1.6).
    let mut base = ttbr & 0x0000_ffff_ffff_ffff;
    let table_bytes_log2 = input_bits - granule.level_shift(start_level) + 3;
    let mut align_log2 = table_bytes_log2;
    if oa_bits > 48 {
        base |= ((ttbr >> 2) & 0xf) << 48;
        if align_log2 < 6 {
            align_log2 = 6;
        }
    } else if base >> oa_bits != 0 {
        h.base_too_large = true;
    }
    base &= !((1u64 << align_log2) - 1);
    h.table_base = base;
    h.fast = walk_params(&h, oa_bits, cpu.pa_bits() == 52);
    let straight = h.fast.walk_fault.is_none()
        && regs.sctlr & sctlr::EE == 0
        && h.start_level.get() >= 0
        && h.fast.hi_mask == 0;
    h.fast.straight_page_shift = if straight { granule.page_shift() } else { 0 };
    let pa_fast = regs.sctlr & sctlr::M != 0 && h.fast.straight_page_shift == 12;
    h.fast.pa_fast_deny = h.fast.deny | !pa_fast as u8;
    h
}

/// `pa_max_52`: `AArch64.PAMax() == 52`, which alone decides whether 64 KiB level-1
/// blocks are legal.
fn walk_params(h: &Half, oa_bits: u32, pa_max_52: bool) -> WalkParams {
    let g = h.granule;
    let input_bits = h.input_bits();
    let range = |top: u32| {
        let top_mask = if top == 63 {
            u64::MAX
        } else {
            (1u64 << (top + 1)) - 1
        };
        top_mask & !((1u64 << input_bits) - 1)
    };
    let data_top = if h.tbi { 55 } else { 63 };
    let fetch_top = if h.tbi && !h.tbid { 55 } else { 63 };
    let start_shift = g.level_shift(h.start_level);
    let lpa = matches!(g, Granule::K64) && oa_bits > 48;
    let mut block_levels = 0u8;
    for l in -1i8..=3 {
        if let Some(level) = Level::new(l) {
            if g.block_allowed(level, h.ds, pa_max_52) {
                block_levels |= 1 << (l + 1);
            }
        }
    }
    let top = if h.ds { 50 } else { 48 };
    let (hi_shift, hi_mask, hi_pos) = if oa_bits > 48 && h.ds {
        (8, 3, 50)
    } else if oa_bits > 48 && lpa {
        (12, 0xf, 48)
    } else {
        (0, 0, 0)
    };
    WalkParams {
        va_check_data: range(data_top),
        lower_data_range: range(data_top) | 1 << 55,
        va_check_fetch: range(fetch_top),
        start_shift,
        stride: g.stride(),
        start_index_mask: (1u64 << (input_bits - start_shift)) - 1,
        grain_index_mask: (1u64 << g.stride()) - 1,
        oa_low_mask: ((1u64 << top) - 1) & !(g.page_size() - 1),
        oa_over_mask: if oa_bits >= 64 {
            0
        } else {
            !((1u64 << oa_bits) - 1)
        },
        hi_shift,
        hi_mask,
        hi_pos,
        block_levels,
        walk_fault: if h.epd {
            Some(super::fault::FaultKind::Translation)
        } else if h.base_too_large {
            Some(super::fault::FaultKind::AddressSize)
        } else {
            None
        },
        straight_page_shift: 0,
        input_mask: (1u64 << input_bits) - 1,
        deny: h.txsz_out_of_range as u8 | ((h.e0pd as u8) << 1),
        pa_fast_deny: 0,
        leaf_levels: (block_levels >> 1) | (1 << 3),
        table_ap_mask: if h.hpd { 0 } else { 3 << 61 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_TCR: u64 = 0x0000_0005_8010_0010;

    #[test]
    fn decodes_fixture() {
        let regs = Registers {
            tcr: FIXTURE_TCR,
            sctlr: 1,
            ttbr0: 0x4000_0000,
            ttbr1: 0x4010_0000,
            mair: 0xff,
        };
        let r = Regime::try_new(regs, Cpu::MAX).unwrap();
        assert!(r.mmu_enabled());
        assert_eq!(r.half(false).granule, Granule::K4);
        assert_eq!(r.half(true).granule, Granule::K4);
        assert_eq!(r.half(false).start_level, Level::L0);
        assert_eq!(r.half(false).start_entries(), 512);
        assert_eq!(r.oa_bits(false), 48);
        assert_eq!(r.half(true).table_base, 0x4010_0000);
    }

    #[test]
    fn asid_selection_and_size() {
        let mut regs = Registers {
            tcr: FIXTURE_TCR,
            ttbr0: 0x1234 << 48,
            ttbr1: 0x5678 << 48,
            ..Default::default()
        };
        assert_eq!(Regime::new(regs, Cpu::MAX).asid(), 0x34);
        regs.tcr |= tcr::AS;
        assert_eq!(Regime::new(regs, Cpu::MAX).asid(), 0x1234);
        regs.tcr |= tcr::A1;
        assert_eq!(Regime::new(regs, Cpu::MAX).asid(), 0x5678);
    }

    #[test]
    fn try_new_rejects_reserved() {
        let regs = Registers {
            tcr: FIXTURE_TCR | (3 << tcr::TG0_SHIFT),
            ..Default::default()
        };
        assert_eq!(
            Regime::try_new(regs, Cpu::MAX),
            Err(RegimeError::ReservedGranule { half: 0, tg: 3 })
        );
        let regs = Registers {
            tcr: (FIXTURE_TCR & !0x3f) | 8,
            ..Default::default()
        };
        assert_eq!(
            Regime::try_new(regs, Cpu::MAX),
            Err(RegimeError::TxszOutOfRange { half: 0, txsz: 8 })
        );
        let regs = Registers {
            tcr: FIXTURE_TCR | (7 << tcr::IPS_SHIFT),
            ..Default::default()
        };
        assert_eq!(
            Regime::try_new(regs, Cpu::MAX),
            Err(RegimeError::ReservedIps)
        );
        // The lenient decoder accepts every value.
        for tcr in [u64::MAX, 0, 0x3f3f] {
            let _ = Regime::new(
                Registers {
                    tcr,
                    ..Default::default()
                },
                Cpu::MAX,
            );
        }
    }

    #[test]
    fn lpa2_geometry() {
        // 4K, DS=1, T0SZ=12: 52-bit VA, level -1 start with 16 entries.
        let regs = Registers {
            tcr: tcr::DS
                | 12
                | (16 << tcr::T1SZ_SHIFT)
                | (2 << tcr::TG1_SHIFT)
                | (6 << tcr::IPS_SHIFT),
            ttbr0: 0x4000_0000 | (0x3 << 2),
            ..Default::default()
        };
        let r = Regime::try_new(regs, Cpu::MAX).unwrap();
        let h = r.half(false);
        assert!(h.ds);
        assert_eq!(h.start_level, Level::MINUS_1);
        assert_eq!(h.start_entries(), 16);
        assert_eq!(r.oa_bits(false), 52);
        assert_eq!(h.table_base, 0x3_0000_4000_0000);
        // Without LPA2 the same TCR is out of range.
        assert!(Regime::try_new(regs, Cpu::V8_0).is_err());
    }
}
