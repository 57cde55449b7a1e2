//! Translation granules and lookup levels.

use core::fmt;

/// A translation granule: the page size and table size of a regime half.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granule {
    /// 4 KiB pages, 512-entry tables.
    K4,
    /// 16 KiB pages, 2048-entry tables.
    K16,
    /// 64 KiB pages, 8192-entry tables.
    K64,
}

impl Granule {
    /// Returns log2 of the page size: 12, 14 or 16.
    #[inline]
    pub const fn page_shift(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }

    /// Returns the page size in bytes.
    #[inline]
    pub const fn page_size(self) -> u64 {
        1 << self.page_shift()
    }

    /// Returns the number of VA bits resolved per level (the stride): 9, 11 or 13.
    #[inline]
    pub const fn stride(self) -> u32 {
        self.page_shift() - 3
    }

    /// Returns log2 of the bytes one entry maps at `level`: `page_shift + stride * (3 - level)`.
    #[inline]
    pub const fn level_shift(self, level: Level) -> u32 {
        self.page_shift() + self.stride() * (3 - level.0 as i32) as u32
    }

    /// Returns the number of entries in a full (non-start) table.
    #[inline]
    pub const fn entries(self) -> u64 {
        1 << self.stride()
    }

    /// Returns whether a block descriptor is architecturally permitted at `level`.
    ///
    /// `ds` is the effective TCR.DS (FEAT_LPA2); `pa_max_52` says the CPU implements a
    /// 52-bit physical address space (`AArch64.PAMax() == 52`), which makes level-1 blocks
    /// legal with the 64 KiB granule (`AArch64.BlockDescSupported`).
    #[inline]
    pub const fn block_allowed(self, level: Level, ds: bool, pa_max_52: bool) -> bool {
        match (self, level.0) {
            (Granule::K4, 1) | (Granule::K4, 2) => true,
            (Granule::K4, 0) => ds,
            (Granule::K16, 2) => true,
            (Granule::K16, 1) => ds,
            (Granule::K64, 2) => true,
            (Granule::K64, 1) => pa_max_52,
            _ => false,
        }
    }

    /// Returns the number of entries in a Contiguous group at `level`, or `None` where the
    /// architecture defines no group.
    pub const fn contiguous_entries(self, level: Level) -> Option<u32> {
        match (self, level.0) {
            (Granule::K4, 1..=3) => Some(16),
            (Granule::K16, 3) => Some(128),
            (Granule::K16, 2) => Some(32),
            (Granule::K64, 2..=3) => Some(32),
            _ => None,
        }
    }

    /// Decodes a TCR_EL1.TG0 field (00 = 4K, 01 = 64K, 10 = 16K); 11 is reserved.
    #[inline]
    pub const fn from_tg0(tg0: u64) -> Option<Granule> {
        match tg0 & 3 {
            0 => Some(Granule::K4),
            1 => Some(Granule::K64),
            2 => Some(Granule::K16),
            _ => None,
        }
    }

    /// Decodes a TCR_EL1.TG1 field (01 = 16K, 10 = 4K, 11 = 64K); 00 is reserved.
    #[inline]
    pub const fn from_tg1(tg1: u64) -> Option<Granule> {
        match tg1 & 3 {
            1 => Some(Granule::K16),
            2 => Some(Granule::K4),
            3 => Some(Granule::K64),
            _ => None,
        }
    }

    /// Returns the TG0 encoding of this granule.
    pub const fn tg0(self) -> u64 {
        match self {
            Granule::K4 => 0,
            Granule::K64 => 1,
            Granule::K16 => 2,
        }
    }

    /// Returns the TG1 encoding of this granule.
    pub const fn tg1(self) -> u64 {
        match self {
            Granule::K16 => 1,
            Granule::K4 => 2,
            Granule::K64 => 3,
        }
    }

    /// Returns the start level of a stage-1 walk over `input_bits` of VA.
    #[inline]
    pub const fn start_level(self, input_bits: u32) -> Level {
        Level((4 - (input_bits as i32 - 4) / self.stride() as i32) as i8)
    }
}

impl fmt::Display for Granule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Granule::K4 => "4KiB",
            Granule::K16 => "16KiB",
            Granule::K64 => "64KiB",
        })
    }
}

/// A translation table lookup level, -1 (FEAT_LPA2 only) to 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Level(i8);

impl Level {
    /// Level -1, used by 52-bit 4 KiB walks (FEAT_LPA2).
    pub const MINUS_1: Level = Level(-1);
    /// Level 0.
    pub const L0: Level = Level(0);
    /// Level 1.
    pub const L1: Level = Level(1);
    /// Level 2.
    pub const L2: Level = Level(2);
    /// Level 3, the page level.
    pub const L3: Level = Level(3);

    /// Creates a level, or `None` outside -1..=3.
    #[inline]
    pub const fn new(level: i8) -> Option<Level> {
        if level >= -1 && level <= 3 {
            Some(Level(level))
        } else {
            None
        }
    }

    /// Returns the level as a signed number.
    #[inline]
    pub const fn get(self) -> i8 {
        self.0
    }

    /// Returns the next (deeper) level, or `None` after level 3.
    #[inline]
    pub const fn next(self) -> Option<Level> {
        if self.0 < 3 {
            Some(Level(self.0 + 1))
        } else {
            None
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_levels_match_spec_table() {
        let cases = [
            (Granule::K4, 25, 2),
            (Granule::K4, 30, 2),
            (Granule::K4, 32, 1),
            (Granule::K4, 39, 1),
            (Granule::K4, 40, 0),
            (Granule::K4, 48, 0),
            (Granule::K4, 52, -1),
            (Granule::K16, 36, 2),
            (Granule::K16, 39, 1),
            (Granule::K16, 47, 1),
            (Granule::K16, 48, 0),
            (Granule::K16, 52, 0),
            (Granule::K64, 39, 2),
            (Granule::K64, 42, 2),
            (Granule::K64, 43, 1),
            (Granule::K64, 52, 1),
        ];
        for (g, bits, lvl) in cases {
            assert_eq!(g.start_level(bits).get(), lvl, "{g} {bits}");
        }
    }

    #[test]
    fn level_shifts() {
        assert_eq!(Granule::K4.level_shift(Level::MINUS_1), 48);
        assert_eq!(Granule::K4.level_shift(Level::L2), 21);
        assert_eq!(Granule::K16.level_shift(Level::L0), 47);
        assert_eq!(Granule::K64.level_shift(Level::L1), 42);
    }

    #[test]
    fn tg_encodings_round_trip() {
        for g in [Granule::K4, Granule::K16, Granule::K64] {
            assert_eq!(Granule::from_tg0(g.tg0()), Some(g));
            assert_eq!(Granule::from_tg1(g.tg1()), Some(g));
        }
        assert_eq!(Granule::from_tg0(3), None);
        assert_eq!(Granule::from_tg1(0), None);
    }
}
