//! The implemented features and implementation choices of the simulated processor.

/// Chooses between the architecture's rule and QEMU's where the two differ (spec §9, §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Compat {
    /// The Arm ARM: with HA=HD=1 a DBM leaf counts as writable for every access (so it is
    /// not executable at EL1, nor under WXN), and AT never updates the dirty state.
    #[default]
    Arch,
    /// QEMU's TCG: DBM clears the effective AP\[2\] for stores only, and AT writes update the
    /// dirty state like ordinary stores (QEMU 7.2–9.x).
    Qemu,
}

/// What to do with a TxSZ outside the implemented range (IMPLEMENTATION DEFINED, spec §1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TxszPolicy {
    /// Raise a Translation fault at level 0 (QEMU, and required with FEAT_LVA).
    #[default]
    Fault,
    /// Clamp TxSZ into the implemented range and translate.
    Clamp,
}

/// The features of the simulated PE that change translation, like ID_AA64MMFR*_EL1.
///
/// The default is a v9-class core like QEMU's `-cpu max`: 52-bit physical addresses,
/// FEAT_LPA/LVA/LPA2, FEAT_HAFDBS, FEAT_PAN3, FEAT_E0PD, FEAT_TTST and TBID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpu {
    /// ID_AA64MMFR0_EL1.PARange encoding: 0=32, 1=36, 2=40, 3=42, 4=44, 5=48, 6=52 bits.
    pub parange: u8,
    /// FEAT_LPA2: TCR.DS=1 gives 52-bit VA and OA with 4 KiB and 16 KiB granules.
    pub lpa2: bool,
    /// FEAT_LPA: 52-bit output addresses with the 64 KiB granule.
    pub lpa: bool,
    /// FEAT_LVA: TxSZ down to 12 with the 64 KiB granule.
    pub lva: bool,
    /// FEAT_TTST: TxSZ up to 48 (4K/16K) or 47 (64K).
    pub ttst: bool,
    /// FEAT_HAFDBS access-flag part: TCR.HA is honoured.
    pub hafdbs: bool,
    /// FEAT_HAFDBS dirty part: TCR.HD is honoured.
    pub hdbs: bool,
    /// FEAT_HPDS: TCR.HPDx is honoured.
    pub hpds: bool,
    /// FEAT_PAuth TBIDx: TCR.TBIDx is honoured.
    pub tbid: bool,
    /// FEAT_E0PD: TCR.E0PDx is honoured.
    pub e0pd: bool,
    /// FEAT_PAN3: SCTLR_EL1.EPAN is honoured.
    pub pan3: bool,
    /// Architecture or QEMU behaviour where they differ.
    pub compat: Compat,
    /// Out-of-range TxSZ handling.
    pub txsz_policy: TxszPolicy,
}

impl Cpu {
    /// A core with every feature the walker models (like QEMU's `-cpu max`).
    pub const MAX: Cpu = Cpu {
        parange: 6,
        lpa2: true,
        lpa: true,
        lva: true,
        ttst: true,
        hafdbs: true,
        hdbs: true,
        hpds: true,
        tbid: true,
        e0pd: true,
        pan3: true,
        compat: Compat::Arch,
        txsz_policy: TxszPolicy::Fault,
    };

    /// A plain Armv8.0 core with a 48-bit PA and none of the optional features.
    pub const V8_0: Cpu = Cpu {
        parange: 5,
        lpa2: false,
        lpa: false,
        lva: false,
        ttst: false,
        hafdbs: false,
        hdbs: false,
        hpds: false,
        tbid: false,
        e0pd: false,
        pan3: false,
        compat: Compat::Arch,
        txsz_policy: TxszPolicy::Fault,
    };

    /// Returns this CPU with the given compatibility choice.
    pub const fn with_compat(mut self, compat: Compat) -> Cpu {
        self.compat = compat;
        self
    }

    /// Returns this CPU with the given PARange encoding (values above 6 act as 6).
    pub const fn with_parange(mut self, parange: u8) -> Cpu {
        self.parange = if parange > 6 { 6 } else { parange };
        self
    }

    /// Returns the implemented physical address size in bits (PAMax).
    pub const fn pa_bits(&self) -> u32 {
        pa_bits_of(self.parange)
    }
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu::MAX
    }
}

/// Converts a PARange/IPS encoding to a number of bits; reserved values give 52.
pub(crate) const fn pa_bits_of(enc: u8) -> u32 {
    match enc {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}
