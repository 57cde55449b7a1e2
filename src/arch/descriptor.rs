//! VMSAv8-64 translation table descriptors: the raw 64-bit view, attribute bitflags, and a
//! decoded representation.

use bitflags::bitflags;

use super::granule::{Granule, Level};

bitflags! {
    /// Stage-1 block and page descriptor attribute bits (lower and upper attributes).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Attributes: u64 {
        /// Bit 0: valid.
        const VALID = 1 << 0;
        /// Bit 1: table (levels 0–2) or page (level 3); clear for a block.
        const TABLE_OR_PAGE = 1 << 1;
        /// AttrIndx\[0\].
        const ATTR_INDX_0 = 1 << 2;
        /// AttrIndx\[1\].
        const ATTR_INDX_1 = 1 << 3;
        /// AttrIndx\[2\].
        const ATTR_INDX_2 = 1 << 4;
        /// NS (Secure regimes only).
        const NS = 1 << 5;
        /// AP\[1\]: EL0 access.
        const AP_EL0 = 1 << 6;
        /// AP\[2\]: read-only.
        const AP_RO = 1 << 7;
        /// SH\[0\].
        const SH0 = 1 << 8;
        /// SH\[1\].
        const SH1 = 1 << 9;
        /// AF: access flag.
        const AF = 1 << 10;
        /// nG: not global (ASID-tagged).
        const NG = 1 << 11;
        /// GP: BTI guarded page.
        const GP = 1 << 50;
        /// DBM: dirty bit modifier.
        const DBM = 1 << 51;
        /// Contiguous hint.
        const CONTIGUOUS = 1 << 52;
        /// PXN: privileged execute-never.
        const PXN = 1 << 53;
        /// UXN: unprivileged execute-never.
        const UXN = 1 << 54;
        /// Software bit 55.
        const SW0 = 1 << 55;
        /// Software bit 56.
        const SW1 = 1 << 56;
        /// Software bit 57.
        const SW2 = 1 << 57;
        /// Software bit 58.
        const SW3 = 1 << 58;
    }
}

bitflags! {
    /// Hierarchical attributes of a stage-1 table descriptor, bits \[63:59\].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct TableAttributes: u64 {
        /// PXNTable.
        const PXN_TABLE = 1 << 59;
        /// UXNTable.
        const UXN_TABLE = 1 << 60;
        /// APTable\[0\]: no EL0 access below.
        const AP_TABLE_NO_EL0 = 1 << 61;
        /// APTable\[1\]: no write access below.
        const AP_TABLE_RO = 1 << 62;
        /// NSTable (Secure state only).
        const NS_TABLE = 1 << 63;
    }
}

/// How descriptors of one regime half are laid out: the granule and where the high output
/// address bits live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DescriptorFormat {
    /// The translation granule.
    pub granule: Granule,
    /// Effective TCR.DS: OA\[49:48\] in bits \[49:48\], OA\[51:50\] in bits \[9:8\], no SH field.
    pub ds: bool,
    /// The output address size in bits; above 48, the high OA bits are taken from the
    /// descriptor (bits \[9:8\] with DS, bits \[15:12\] with 64 KiB FEAT_LPA).
    pub oa_bits: u32,
    /// The CPU implements a 52-bit physical address space (`AArch64.PAMax() == 52`, FEAT_LPA):
    /// with the 64 KiB granule, level-1 blocks are legal (`AArch64.BlockDescSupported`),
    /// whatever TCR.IPS says (IPS only bounds the output address).
    pub pa_max_52: bool,
}

impl DescriptorFormat {
    /// The common case: 4 KiB granule, 48-bit output addresses.
    pub const K4_48: DescriptorFormat = DescriptorFormat {
        granule: Granule::K4,
        ds: false,
        oa_bits: 48,
        pa_max_52: false,
    };

    /// Returns the mask of the output-address bits held in bits \[49:g\] or \[47:g\].
    #[inline]
    pub const fn low_oa_mask(&self) -> u64 {
        let top = if self.ds { 50 } else { 48 };
        ((1u64 << top) - 1) & !(self.granule.page_size() - 1)
    }

    /// Extracts the (unaligned-for-blocks) output address of a valid descriptor.
    #[inline]
    pub const fn output_address(&self, raw: u64) -> u64 {
        let mut oa = raw & self.low_oa_mask();
        if self.oa_bits > 48 {
            if self.ds {
                oa |= ((raw >> 8) & 3) << 50;
            } else if matches!(self.granule, Granule::K64) {
                oa |= ((raw >> 12) & 0xf) << 48;
            }
        }
        oa
    }

    /// Encodes an output address into descriptor bits (the inverse of
    /// [`DescriptorFormat::output_address`]); bits below the granule are dropped.
    #[inline]
    pub const fn encode_output_address(&self, oa: u64) -> u64 {
        let mut raw = oa & self.low_oa_mask();
        if self.oa_bits > 48 {
            if self.ds {
                raw |= ((oa >> 50) & 3) << 8;
            } else if matches!(self.granule, Granule::K64) {
                raw |= ((oa >> 48) & 0xf) << 12;
            }
        }
        raw
    }
}

/// A raw 64-bit stage-1 descriptor as it sits in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Descriptor(pub u64);

impl Descriptor {
    /// The all-zero invalid descriptor.
    pub const INVALID: Descriptor = Descriptor(0);

    /// Returns the raw bits.
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Returns bit 0.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 & 1 != 0
    }

    /// Returns bit 1 (table at levels 0–2, page at level 3).
    #[inline]
    pub const fn is_table_or_page(self) -> bool {
        self.0 & 2 != 0
    }

    /// Returns the leaf attribute bits as flags (unknown bits dropped).
    #[inline]
    pub const fn attributes(self) -> Attributes {
        Attributes::from_bits_truncate(self.0)
    }

    /// Returns the table attribute bits \[63:59\].
    #[inline]
    pub const fn table_attributes(self) -> TableAttributes {
        TableAttributes::from_bits_truncate(self.0)
    }

    /// Returns AttrIndx\[2:0\].
    #[inline]
    pub const fn attr_index(self) -> u8 {
        ((self.0 >> 2) & 7) as u8
    }

    /// Returns AP\[2:1\] as a two-bit value.
    #[inline]
    pub const fn ap(self) -> u8 {
        ((self.0 >> 6) & 3) as u8
    }

    /// Returns SH\[1:0\] (meaningless when DS=1, where those bits are OA\[51:50\]).
    #[inline]
    pub const fn sh(self) -> u8 {
        ((self.0 >> 8) & 3) as u8
    }

    /// Returns the access flag.
    #[inline]
    pub const fn af(self) -> bool {
        self.0 & (1 << 10) != 0
    }

    /// Returns nG.
    #[inline]
    pub const fn not_global(self) -> bool {
        self.0 & (1 << 11) != 0
    }

    /// Returns DBM.
    #[inline]
    pub const fn dbm(self) -> bool {
        self.0 & (1 << 51) != 0
    }

    /// Returns the Contiguous bit.
    #[inline]
    pub const fn contiguous(self) -> bool {
        self.0 & (1 << 52) != 0
    }

    /// Returns PXN.
    #[inline]
    pub const fn pxn(self) -> bool {
        self.0 & (1 << 53) != 0
    }

    /// Returns UXN.
    #[inline]
    pub const fn uxn(self) -> bool {
        self.0 & (1 << 54) != 0
    }

    /// Decodes the descriptor as the walker would at `level`; never panics.
    pub const fn decode(self, level: Level, format: DescriptorFormat) -> DecodedDescriptor {
        if !self.is_valid() {
            return DecodedDescriptor::Invalid;
        }
        let oa = format.output_address(self.0);
        if self.is_table_or_page() {
            if level.get() == 3 {
                DecodedDescriptor::Page {
                    output: oa,
                    attributes: self.attributes(),
                }
            } else {
                DecodedDescriptor::Table {
                    next_table: oa,
                    attributes: self.table_attributes(),
                }
            }
        } else {
            // A 52-bit output address implies PAMax = 52.
            let lpa = format.pa_max_52 || format.oa_bits > 48;
            if format.granule.block_allowed(level, format.ds, lpa) {
                let size = 1u64 << format.granule.level_shift(level);
                DecodedDescriptor::Block {
                    output: oa & !(size - 1),
                    attributes: self.attributes(),
                }
            } else {
                DecodedDescriptor::Reserved
            }
        }
    }
}

impl From<u64> for Descriptor {
    fn from(v: u64) -> Self {
        Descriptor(v)
    }
}

/// The meaning of a descriptor at a given level and format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodedDescriptor {
    /// Bit 0 clear: a Translation fault; bits \[63:1\] are free for software.
    Invalid,
    /// A block encoding where blocks are not permitted (or `01` at level 3): a Translation
    /// fault.
    Reserved,
    /// A pointer to the next-level table.
    Table {
        /// The next table's address.
        next_table: u64,
        /// Hierarchical attributes.
        attributes: TableAttributes,
    },
    /// A block mapping (levels 0–2).
    Block {
        /// The block's output address, aligned to the block size.
        output: u64,
        /// Leaf attributes.
        attributes: Attributes,
    },
    /// A page mapping (level 3).
    Page {
        /// The page's output address.
        output: u64,
        /// Leaf attributes.
        attributes: Attributes,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_kinds() {
        let f = DescriptorFormat::K4_48;
        assert_eq!(
            Descriptor(0).decode(Level::L1, f),
            DecodedDescriptor::Invalid
        );
        assert_eq!(
            Descriptor(0x4000_1003).decode(Level::L0, f),
            DecodedDescriptor::Table {
                next_table: 0x4000_1000,
                attributes: TableAttributes::empty()
            }
        );
        assert_eq!(
            Descriptor(0x701).decode(Level::L0, f),
            DecodedDescriptor::Reserved
        );
        assert_eq!(
            Descriptor(0x8000_7701).decode(Level::L3, f),
            DecodedDescriptor::Reserved
        );
        match Descriptor(0x9080_5701).decode(Level::L2, f) {
            DecodedDescriptor::Block { output, .. } => assert_eq!(output, 0x9080_0000),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn high_output_bits() {
        let ds = DescriptorFormat {
            granule: Granule::K4,
            ds: true,
            oa_bits: 52,
            pa_max_52: true,
        };
        let oa = 0xf_abcd_1234_5000u64;
        let raw = ds.encode_output_address(oa);
        assert_eq!(ds.output_address(raw | 3), oa);
        let lpa = DescriptorFormat {
            granule: Granule::K64,
            ds: false,
            oa_bits: 52,
            pa_max_52: true,
        };
        let oa = 0xf_abcd_1234_0000u64;
        assert_eq!(lpa.output_address(lpa.encode_output_address(oa) | 3), oa);
    }

    #[test]
    fn decode_never_panics_on_edges() {
        for raw in [0, 1, 3, u64::MAX, 1 << 63, 0x5555_5555_5555_5555] {
            for lvl in -1..=3 {
                for g in [Granule::K4, Granule::K16, Granule::K64] {
                    for ds in [false, true] {
                        let f = DescriptorFormat {
                            granule: g,
                            ds,
                            oa_bits: 52,
                            pa_max_52: ds,
                        };
                        let _ = Descriptor(raw).decode(Level::new(lvl).unwrap(), f);
                    }
                }
            }
        }
    }
}
