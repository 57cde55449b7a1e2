//! Typed virtual and physical addresses.

use core::fmt;

/// Returned by [`PhysAddr::try_new`] for a value with bits set above bit 51.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysAddrOutOfRange(pub u64);

impl core::error::Error for PhysAddrOutOfRange {}

impl fmt::Display for PhysAddrOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "physical address {:#x} is above the 52-bit maximum",
            self.0
        )
    }
}

/// A 64-bit AArch64 virtual address, tag byte included.
///
/// Every `u64` is a valid virtual address: whether its top bits select TTBR1, are a tag
/// (TBI) or make the access fault is decided by the translation regime, not here.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// Creates a virtual address from its raw 64-bit value.
    #[inline]
    pub const fn new(addr: u64) -> Self {
        VirtAddr(addr)
    }

    /// Returns the raw 64-bit value.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Returns bit 55, which selects TTBR1 (1) or TTBR0 (0) in the EL1&0 regime.
    #[inline]
    pub const fn select_bit(self) -> bool {
        (self.0 >> 55) & 1 == 1
    }

    /// Rounds down to a multiple of `align` (a power of two).
    #[inline]
    pub const fn align_down(self, align: u64) -> Self {
        VirtAddr(self.0 & !(align.wrapping_sub(1)))
    }

    /// Returns whether the address is a multiple of `align` (a power of two).
    #[inline]
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & align.wrapping_sub(1) == 0
    }

    /// Adds `rhs`, returning `None` on overflow.
    #[inline]
    pub const fn checked_add(self, rhs: u64) -> Option<Self> {
        match self.0.checked_add(rhs) {
            Some(v) => Some(VirtAddr(v)),
            None => None,
        }
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl From<u64> for VirtAddr {
    fn from(v: u64) -> Self {
        VirtAddr(v)
    }
}

/// A physical (output) address of at most 52 bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// The largest number of physical address bits the architecture defines (FEAT_LPA/LPA2).
    pub const MAX_BITS: u32 = 52;

    /// Creates a physical address, keeping bits \[51:0\] and dropping any above.
    ///
    /// Use [`PhysAddr::try_new`] to reject out-of-range values instead.
    #[inline]
    pub const fn new(addr: u64) -> Self {
        PhysAddr(addr & ((1 << Self::MAX_BITS) - 1))
    }

    /// Creates a physical address from a value the caller knows fits in 52 bits.
    #[inline(always)]
    pub(crate) const fn from_bits_52(addr: u64) -> Self {
        PhysAddr(addr)
    }

    /// Creates a physical address.
    ///
    /// # Errors
    /// [`PhysAddrOutOfRange`] if any bit above bit 51 is set.
    #[inline]
    pub const fn try_new(addr: u64) -> Result<Self, PhysAddrOutOfRange> {
        if addr >> Self::MAX_BITS != 0 {
            Err(PhysAddrOutOfRange(addr))
        } else {
            Ok(PhysAddr(addr))
        }
    }

    /// Returns the raw value.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Rounds down to a multiple of `align` (a power of two).
    #[inline]
    pub const fn align_down(self, align: u64) -> Self {
        PhysAddr(self.0 & !(align.wrapping_sub(1)))
    }

    /// Returns whether the address is a multiple of `align` (a power of two).
    #[inline]
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & align.wrapping_sub(1) == 0
    }

    /// Adds `rhs`, returning `None` if the result leaves the 52-bit range.
    #[inline]
    pub const fn checked_add(self, rhs: u64) -> Option<Self> {
        match self.0.checked_add(rhs) {
            Some(v) if v >> Self::MAX_BITS == 0 => Some(PhysAddr(v)),
            _ => None,
        }
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phys_addr_range() {
        assert!(PhysAddr::try_new(1 << 52).is_err());
        assert_eq!(
            PhysAddr::try_new((1 << 52) - 1).unwrap().as_u64(),
            (1 << 52) - 1
        );
        assert_eq!(PhysAddr::new(u64::MAX).as_u64(), (1 << 52) - 1);
        assert_eq!(PhysAddr::new(0xfff).checked_add(u64::MAX), None);
    }

    #[test]
    fn virt_addr_helpers() {
        let va = VirtAddr::new(0xffff_0000_1234_567c);
        assert!(va.select_bit());
        assert_eq!(va.align_down(0x1000).as_u64(), 0xffff_0000_1234_5000);
        assert!(va.is_aligned(4));
        assert!(!va.is_aligned(8));
    }
}
