//! MAIR_EL1 attribute bytes: the memory type and cacheability a leaf's AttrIndx selects.

/// One MAIR_EL1 attribute byte (`Attr<n>`): Device memory when its high nibble is 0,
/// Normal memory otherwise, with inner (low nibble) and outer (high nibble) cacheability.
///
/// ```
/// use pagesim::arch::MairAttr;
///
/// assert!(MairAttr::new(0x00).is_device()); // Device-nGnRnE
/// assert!(MairAttr::new(0x04).is_device()); // Device-nGnRE
/// let wb = MairAttr::new(0xff); // Normal, inner and outer write-back
/// assert!(!wb.is_device() && wb.is_cacheable());
/// assert!(!MairAttr::new(0x44).is_cacheable()); // Normal non-cacheable
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MairAttr(u8);

/// The kind of Device memory (MAIR `Attr<n>` = `0b0000_dd00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Device-nGnRnE.
    NGnRnE,
    /// Device-nGnRE.
    NGnRE,
    /// Device-nGRE.
    NGRE,
    /// Device-GRE.
    GRE,
}

impl MairAttr {
    /// Wraps an attribute byte (every value has a meaning; none is rejected).
    pub const fn new(byte: u8) -> MairAttr {
        MairAttr(byte)
    }

    /// Returns the attribute byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Returns whether the memory is Device memory (high nibble 0): accesses go to MMIO,
    /// are never cached or merged, and unaligned data accesses fault.
    pub const fn is_device(self) -> bool {
        self.0 & 0xf0 == 0
    }

    /// Returns the kind of Device memory, or `None` for Normal memory.
    pub const fn device_kind(self) -> Option<DeviceKind> {
        if !self.is_device() {
            return None;
        }
        Some(match (self.0 >> 2) & 3 {
            0 => DeviceKind::NGnRnE,
            1 => DeviceKind::NGnRE,
            2 => DeviceKind::NGRE,
            _ => DeviceKind::GRE,
        })
    }

    /// Returns whether Normal memory is cacheable at both the inner and the outer level
    /// (neither nibble is `0b0100`, non-cacheable); false for Device memory.
    pub const fn is_cacheable(self) -> bool {
        !self.is_device() && self.0 & 0x0f != 0x04 && self.0 & 0xf0 != 0x40
    }
}
