//! Sparse RAM for large, mostly empty physical address spaces (std only).

use std::collections::BTreeMap;

use super::{MemoryError, PhysMemory};
use crate::addr::PhysAddr;

/// RAM over `[base, base + size)` that stores only non-zero 64-bit words; every other word
/// in range reads as zero, and accesses outside the range are external aborts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseMemory {
    base: u64,
    size: u64,
    words: BTreeMap<u64, u64>,
}

impl SparseMemory {
    /// Creates zeroed RAM of `size` bytes at `base`.
    pub fn new(base: PhysAddr, size: u64) -> Self {
        SparseMemory {
            base: base.as_u64(),
            size,
            words: BTreeMap::new(),
        }
    }

    /// Returns whether `pa` (8-byte aligned word) lies in RAM.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        let a = pa.as_u64();
        a >= self.base && a - self.base < self.size && self.size - (a - self.base) >= 8
    }

    /// Returns the non-zero words, in address order.
    pub fn words(&self) -> impl Iterator<Item = (PhysAddr, u64)> + '_ {
        self.words.iter().map(|(&a, &v)| (PhysAddr::new(a), v))
    }

    fn check(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        if self.contains(pa) {
            Ok(pa.as_u64() & !7)
        } else {
            Err(MemoryError::ExternalAbort { pa })
        }
    }
}

impl PhysMemory for SparseMemory {
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        let a = self.check(pa)?;
        Ok(self.words.get(&a).copied().unwrap_or(0))
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        let a = self.check(pa)?;
        if value == 0 {
            self.words.remove(&a);
        } else {
            self.words.insert(a, value);
        }
        Ok(())
    }

    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        if len == 0 {
            return Ok(());
        }
        let start = self.check(pa)?;
        let last = pa
            .checked_add(len - 8)
            .ok_or(MemoryError::ExternalAbort { pa })?;
        self.check(last)?;
        let keys: std::vec::Vec<u64> = self
            .words
            .range(start..start + len)
            .map(|(&k, _)| k)
            .collect();
        for k in keys {
            self.words.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_reads_zero_and_aborts_outside() {
        let mut m = SparseMemory::new(PhysAddr::new(0x4000_0000), 0x4000_0000);
        assert_eq!(m.read_u64(PhysAddr::new(0x4000_0000)), Ok(0));
        assert!(m.read_u64(PhysAddr::new(0x8000_0000)).is_err());
        assert!(m.read_u64(PhysAddr::new(0x3fff_fff8)).is_err());
        m.write_u64(PhysAddr::new(0x7fff_fff8), 5).unwrap();
        assert_eq!(m.words().count(), 1);
        m.zero(PhysAddr::new(0x7fff_f000), 0x1000).unwrap();
        assert_eq!(m.words().count(), 0);
    }
}
