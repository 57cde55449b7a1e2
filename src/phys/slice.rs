//! RAM backed by a caller-provided byte slice.

use super::{MemoryError, PhysMemory, WordView};
use crate::addr::PhysAddr;

/// RAM backed by a caller-provided byte slice, starting at a base physical address.
///
/// Accesses outside `[base, base + len)` are external aborts.
#[derive(Debug)]
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a mut [u8],
}

impl<'a> SliceMemory<'a> {
    /// Creates RAM at `base` backed by `bytes`.
    pub fn new(base: PhysAddr, bytes: &'a mut [u8]) -> Self {
        SliceMemory {
            base: base.as_u64(),
            bytes,
        }
    }

    /// Returns the base physical address.
    pub fn base(&self) -> PhysAddr {
        PhysAddr::new(self.base)
    }

    /// Returns the size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Returns whether the memory is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Returns the backing bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// Returns the backing bytes, mutably.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
    }

    /// Returns the little-endian word at byte offset `off`, if it lies inside: one compare
    /// against the length (a walk hoists the length's own test), after which the slice's
    /// checks hold by construction and fold away.
    #[inline(always)]
    fn word_at(&self, off: usize) -> Option<u64> {
        let len = self.bytes.len();
        if len >= 8 && off <= len - 8 {
            let w = self
                .bytes
                .get(off..off + 8)
                .and_then(|s| <&[u8; 8]>::try_from(s).ok())?;
            return Some(u64::from_le_bytes(*w));
        }
        None
    }

    #[inline]
    fn offset(&self, pa: PhysAddr, len: u64) -> Result<usize, MemoryError> {
        let off = pa.as_u64().wrapping_sub(self.base);
        if pa.as_u64() < self.base || off > self.len() || self.len() - off < len {
            return Err(MemoryError::ExternalAbort { pa });
        }
        Ok(off as usize)
    }
}

impl PhysMemory for SliceMemory<'_> {
    #[inline]
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        let off = pa.as_u64().wrapping_sub(self.base) as usize;
        self.word_at(off).ok_or(MemoryError::ExternalAbort { pa })
    }

    #[inline]
    fn read_entry(&self, table: PhysAddr, offset: u64) -> Result<u64, MemoryError> {
        // The base comes off the offset first: the table address is added last.
        let off = table.as_u64().wrapping_add(offset.wrapping_sub(self.base)) as usize;
        self.word_at(off).ok_or(MemoryError::ExternalAbort {
            pa: PhysAddr::from_bits_52(table.as_u64().wrapping_add(offset)),
        })
    }

    #[inline(always)]
    fn word_view(&self) -> Option<WordView<'_>> {
        Some(WordView::new(self.base, self.bytes))
    }

    #[inline]
    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        let off = self.offset(pa, 8)?;
        self.bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        let off = self.offset(pa, len)?;
        self.bytes[off..off + len as usize].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_memory_bounds() {
        let mut buf = [0u8; 64];
        let mut m = SliceMemory::new(PhysAddr::new(0x1000), &mut buf);
        m.write_u64(PhysAddr::new(0x1038), 0x1122_3344_5566_7788)
            .unwrap();
        assert_eq!(m.read_u64(PhysAddr::new(0x1038)), Ok(0x1122_3344_5566_7788));
        assert_eq!(m.bytes()[56], 0x88);
        for bad in [0x0, 0xff8, 0x1039, 0x1040, u64::MAX >> 12] {
            assert!(m.read_u64(PhysAddr::new(bad)).is_err(), "{bad:#x}");
        }
        assert_eq!(
            m.compare_exchange_u64(PhysAddr::new(0x1038), 1, 2),
            Ok(Err(0x1122_3344_5566_7788))
        );
        assert_eq!(
            m.compare_exchange_u64(PhysAddr::new(0x1038), 0x1122_3344_5566_7788, 2),
            Ok(Ok(()))
        );
        m.zero(PhysAddr::new(0x1000), 64).unwrap();
        assert!(m.bytes().iter().all(|&b| b == 0));
        assert!(m.zero(PhysAddr::new(0x1008), 64).is_err());
    }

    /// A memory that only has `read_u64`, so `read_entry` takes the trait's default.
    struct Plain<'a>(SliceMemory<'a>);

    impl PhysMemory for Plain<'_> {
        fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
            self.0.read_u64(pa)
        }
        fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
            self.0.write_u64(pa, value)
        }
    }

    #[test]
    fn read_entry_is_read_u64_at_the_sum() {
        let mut buf: [u8; 64] = core::array::from_fn(|i| (i as u8).wrapping_mul(7));
        let mut copy = buf;
        let m = SliceMemory::new(PhysAddr::new(0x4000), &mut buf);
        let plain = Plain(SliceMemory::new(PhysAddr::new(0x4000), &mut copy));
        for table in [0u64, 0x3fc0, 0x4000, 0x4020, 0x4040, 0xffff_ffff_f000] {
            for off in (0..0x60).step_by(8) {
                let want = m.read_u64(PhysAddr::new(table + off));
                assert_eq!(m.read_entry(PhysAddr::new(table), off), want);
                assert_eq!(plain.read_entry(PhysAddr::new(table), off), want);
            }
        }
    }
}
