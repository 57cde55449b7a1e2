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

/// The operations both address types share: the raw value, alignment and checked
/// arithmetic that stays inside the type's range, and formatting.
macro_rules! address_ops {
    ($t:ident) => {
        impl $t {
            /// Returns the raw 64-bit value.
            #[inline]
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// Rounds down to a multiple of `align` (a power of two).
            #[inline]
            pub const fn align_down(self, align: u64) -> Self {
                $t(self.0 & !(align.wrapping_sub(1)))
            }

            /// Rounds up to a multiple of `align` (a power of two), or `None` if that
            /// leaves the range.
            #[inline]
            pub const fn align_up(self, align: u64) -> Option<Self> {
                match self.0.checked_add(align.wrapping_sub(1)) {
                    Some(v) => $t(v).align_down(align).checked_add(0),
                    None => None,
                }
            }

            /// Returns whether the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & align.wrapping_sub(1) == 0
            }

            /// Adds `rhs`, or `None` if the result leaves the range.
            #[inline]
            pub const fn checked_add(self, rhs: u64) -> Option<Self> {
                match self.0.checked_add(rhs) {
                    Some(v) if Self::in_range(v) => Some($t(v)),
                    _ => None,
                }
            }

            /// Subtracts `rhs`, or `None` below zero.
            #[inline]
            pub const fn checked_sub(self, rhs: u64) -> Option<Self> {
                match self.0.checked_sub(rhs) {
                    Some(v) => Some($t(v)),
                    None => None,
                }
            }

            /// Returns `self - origin` in bytes, or `None` if `origin` lies above `self`.
            #[inline]
            pub const fn checked_offset_from(self, origin: Self) -> Option<u64> {
                self.0.checked_sub(origin.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:#x})"), self.0)
            }
        }

        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
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

    /// Returns bit 55, which selects TTBR1 (1) or TTBR0 (0) in the EL1&0 regime.
    #[inline]
    pub const fn select_bit(self) -> bool {
        (self.0 >> 55) & 1 == 1
    }

    /// Returns whether `v` is a virtual address: every value is.
    #[inline]
    const fn in_range(_v: u64) -> bool {
        true
    }
}

address_ops!(VirtAddr);

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

    /// Creates a physical address from any value, dropping the bits above bit 51 (as the
    /// x86_64 crate's `new_truncate`); [`PhysAddr::new`] does the same.
    #[inline]
    pub const fn new_truncate(addr: u64) -> Self {
        PhysAddr::new(addr)
    }

    /// Returns whether `v` is a physical address: no bit above bit 51 is set.
    #[inline]
    const fn in_range(v: u64) -> bool {
        v >> Self::MAX_BITS == 0
    }
}

address_ops!(PhysAddr);

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
        assert_eq!(PhysAddr::new((1 << 52) - 1).checked_add(1), None);
        assert_eq!(
            PhysAddr::new_truncate(u64::MAX),
            PhysAddr::new((1 << 52) - 1)
        );
        assert_eq!(
            PhysAddr::new(0x1001).align_up(0x1000),
            Some(PhysAddr::new(0x2000))
        );
        assert_eq!(PhysAddr::new((1 << 52) - 1).align_up(0x1000), None);
        assert_eq!(PhysAddr::new(0x10).checked_sub(0x11), None);
        assert_eq!(
            PhysAddr::new(0x3000).checked_offset_from(PhysAddr::new(0x1000)),
            Some(0x2000)
        );
    }

    #[test]
    fn virt_addr_helpers() {
        let va = VirtAddr::new(0xffff_0000_1234_567c);
        assert!(va.select_bit());
        assert_eq!(va.align_down(0x1000).as_u64(), 0xffff_0000_1234_5000);
        assert!(va.is_aligned(4));
        assert!(!va.is_aligned(8));
        assert_eq!(VirtAddr::new(u64::MAX).checked_add(1), None);
        assert_eq!(VirtAddr::new(u64::MAX - 1).align_up(0x1000), None);
        assert_eq!(format!("{:?}", VirtAddr::new(0x10)), "VirtAddr(0x10)");
    }
}
