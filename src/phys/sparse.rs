//! Sparse RAM for large, mostly empty physical address spaces (std only).

use std::boxed::Box;
use std::collections::BTreeMap;

use super::{MemoryError, PhysMemory};
use crate::addr::PhysAddr;

/// RAM over `[base, base + size)` that stores only the 4 KiB pages holding a non-zero
/// word; every other word in range reads as zero, and accesses outside the range are
/// external aborts. Zeroing a whole page drops it, so a simulated machine far larger than
/// the host costs only the pages written (page tables, in a study without data).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseMemory {
    base: u64,
    size: u64,
    pages: BTreeMap<u64, Box<[u64; 512]>>,
}

impl SparseMemory {
    /// Creates zeroed RAM of `size` bytes at `base`.
    pub fn new(base: PhysAddr, size: u64) -> Self {
        SparseMemory {
            base: base.as_u64(),
            size,
            pages: BTreeMap::new(),
        }
    }

    /// Returns whether `pa` (8-byte aligned word) lies in RAM.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        let a = pa.as_u64();
        a >= self.base && a - self.base < self.size && self.size - (a - self.base) >= 8
    }

    /// Returns the non-zero words, in address order.
    pub fn words(&self) -> impl Iterator<Item = (PhysAddr, u64)> + '_ {
        self.pages.iter().flat_map(|(&page, words)| {
            words
                .iter()
                .enumerate()
                .filter(|(_, &w)| w != 0)
                .map(move |(i, &w)| (PhysAddr::new(page + 8 * i as u64), w))
        })
    }

    /// Returns how many 4 KiB pages are stored.
    pub fn stored_pages(&self) -> usize {
        self.pages.len()
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
        Ok(self
            .pages
            .get(&(a & !0xfff))
            .map_or(0, |p| p[((a & 0xfff) >> 3) as usize]))
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        let a = self.check(pa)?;
        let page = a & !0xfff;
        let i = ((a & 0xfff) >> 3) as usize;
        match self.pages.get_mut(&page) {
            Some(p) => p[i] = value,
            None if value == 0 => {}
            None => {
                let mut p = Box::new([0u64; 512]);
                p[i] = value;
                self.pages.insert(page, p);
            }
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
        let end = start + len;
        let mut a = start;
        while a < end {
            let page = a & !0xfff;
            let next = (page + 0x1000).min(end);
            if a == page && next == page + 0x1000 {
                self.pages.remove(&page);
            } else if let Some(p) = self.pages.get_mut(&page) {
                for w in ((a & 0xfff) >> 3)..(((next - 1) & 0xfff) >> 3) + 1 {
                    p[w as usize] = 0;
                }
            }
            a = next;
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
