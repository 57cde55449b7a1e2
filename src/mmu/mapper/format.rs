//! The shape of one regime half's tables: granule, VA size and range, LPA2 and output size.

use super::*;

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
    pub(super) granule: Granule,
    pub(super) input_bits: u32,
    pub(super) upper: bool,
    pub(super) ds: bool,
    pub(super) oa_bits: u32,
    /// The start level, derived from the granule and input size (a division, so kept).
    pub(super) start: Level,
    /// Derived, for the fault path's page mapping: log2 of the page size.
    pub(super) page_shift: u32,
    /// Derived: the level-3 index mask ([`TableFormat::index_mask`] of level 3).
    pub(super) leaf_index_mask: u64,
    /// Derived: the output-address bits a descriptor holds in place
    /// ([`DescriptorFormat::low_oa_mask`]).
    pub(super) oa_low_mask: u64,
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
        Ok(Self::derive(granule, input_bits, upper, ds, oa_bits))
    }

    /// Builds a format from checked parts, with the values derived from them.
    const fn derive(
        granule: Granule,
        input_bits: u32,
        upper: bool,
        ds: bool,
        oa_bits: u32,
    ) -> Self {
        let start = granule.start_level(input_bits);
        let page_shift = granule.page_shift();
        let l3_bits = if start.get() == 3 {
            input_bits - page_shift
        } else {
            granule.stride()
        };
        let oa_top = if ds { 50 } else { 48 };
        TableFormat {
            granule,
            input_bits,
            upper,
            ds,
            oa_bits,
            start,
            page_shift,
            leaf_index_mask: (1u64 << l3_bits) - 1,
            oa_low_mask: ((1u64 << oa_top) - 1) & !((1u64 << page_shift) - 1),
        }
    }

    /// Encodes an output address into descriptor bits as
    /// [`DescriptorFormat::encode_output_address`] does, through the mask derived once
    /// where the address fits in 48 bits.
    #[inline]
    pub(super) fn encode_output_address(&self, pa: u64) -> u64 {
        if self.oa_bits > 48 {
            return self.descriptor_format().encode_output_address(pa);
        }
        let oa = pa & self.oa_low_mask;
        debug_assert_eq!(oa, self.descriptor_format().encode_output_address(pa));
        oa
    }

    /// Returns the format of the tables `regime` walks for one half.
    pub fn from_regime(regime: &Regime, range: VaRange) -> Self {
        let upper = matches!(range, VaRange::Upper);
        let h = regime.half(upper);
        Self::derive(
            h.granule,
            h.input_bits(),
            upper,
            h.ds,
            regime.oa_bits(upper),
        )
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
        self.start
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
    pub(super) fn descriptor_format(&self) -> DescriptorFormat {
        DescriptorFormat {
            granule: self.granule,
            ds: self.ds,
            oa_bits: self.oa_bits,
            // The mapper makes 64 KiB level-1 blocks only with a 52-bit output size.
            pa_max_52: self.oa_bits > 48,
        }
    }

    #[inline]
    pub(super) fn shift(&self, level: i8) -> u32 {
        self.granule.page_shift() + self.granule.stride() * (3 - level as i32) as u32
    }

    #[inline]
    pub(super) fn index_mask(&self, level: i8) -> u64 {
        let bits = if level == self.start.get() {
            self.input_bits - self.shift(level)
        } else {
            self.granule.stride()
        };
        (1u64 << bits) - 1
    }

    #[inline]
    pub(super) fn block_ok(&self, level: i8) -> bool {
        let lpa = matches!(self.granule, Granule::K64) && self.oa_bits > 48;
        Level::new(level).is_some_and(|l| self.granule.block_allowed(l, self.ds, lpa))
    }

    /// The allocation order of one table frame (a granule).
    #[inline]
    pub(crate) fn table_order(&self) -> u32 {
        self.granule.page_shift() - 12
    }
}
