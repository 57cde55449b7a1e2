//! Sparse RAM for large, mostly empty physical address spaces (std only).

use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec::Vec;

use super::{MemoryError, PhysMemory};
use crate::addr::PhysAddr;

/// One stored 4 KiB page.
type Page = Box<[u64; 512]>;

/// 512 page slots: the pages of 2 MiB of physical memory.
type Chunk = Box<[Option<Page>; 512]>;

/// RAM over `[base, base + size)` that stores only the 4 KiB pages holding a non-zero
/// word; every other word in range reads as zero, and accesses outside the range are
/// external aborts. Zeroing a whole page drops it, so a simulated machine far larger than
/// the host costs only the pages written (page tables, in a study without data). Pages
/// are found through a two-level index, as a page table finds them: a lookup is two array
/// indexings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseMemory {
    base: u64,
    size: u64,
    chunks: Chunks,
    stored: usize,
}

/// The first level: an array up to 1 TiB of RAM (4 MiB of slots at most), a map above.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Chunks {
    Dense(Vec<Option<Chunk>>),
    Sparse(BTreeMap<u64, Chunk>),
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks::Dense(Vec::new())
    }
}

/// The largest RAM with an array as its first level.
const DENSE_LIMIT: u64 = 1 << 40;

impl SparseMemory {
    /// Creates zeroed RAM of `size` bytes at `base`.
    pub fn new(base: PhysAddr, size: u64) -> Self {
        let chunks = if size <= DENSE_LIMIT {
            Chunks::Dense((0..size.div_ceil(2 << 20)).map(|_| None).collect())
        } else {
            Chunks::Sparse(BTreeMap::new())
        };
        SparseMemory {
            base: base.as_u64(),
            size,
            chunks,
            stored: 0,
        }
    }

    /// Returns whether `pa` (8-byte aligned word) lies in RAM.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        let a = pa.as_u64();
        a >= self.base && a - self.base < self.size && self.size - (a - self.base) >= 8
    }

    /// Returns the non-zero words, in address order.
    pub fn words(&self) -> impl Iterator<Item = (PhysAddr, u64)> + '_ {
        let base = self.base;
        let chunks: Box<dyn Iterator<Item = (u64, &Chunk)> + '_> = match &self.chunks {
            Chunks::Dense(v) => Box::new(
                v.iter()
                    .enumerate()
                    .filter_map(|(c, ch)| ch.as_ref().map(|ch| (c as u64, ch))),
            ),
            Chunks::Sparse(m) => Box::new(m.iter().map(|(&c, ch)| (c, ch))),
        };
        chunks.flat_map(move |(c, ch)| {
            ch.iter()
                .enumerate()
                .filter_map(|(p, pg)| pg.as_ref().map(|pg| (p, pg)))
                .flat_map(move |(p, pg)| {
                    let page = base + (c << 21) + ((p as u64) << 12);
                    pg.iter()
                        .enumerate()
                        .filter(|(_, &w)| w != 0)
                        .map(move |(i, &w)| (PhysAddr::new(page + 8 * i as u64), w))
                })
        })
    }

    /// Returns how many 4 KiB pages are stored.
    pub fn stored_pages(&self) -> usize {
        self.stored
    }

    /// Returns the offset of `pa` from the base, checked to be a word in range.
    #[inline]
    fn offset(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        if self.contains(pa) {
            Ok((pa.as_u64() - self.base) & !7)
        } else {
            Err(MemoryError::ExternalAbort { pa })
        }
    }

    #[inline]
    fn chunk(&self, off: u64) -> Option<&Chunk> {
        match &self.chunks {
            Chunks::Dense(v) => v.get((off >> 21) as usize)?.as_ref(),
            Chunks::Sparse(m) => m.get(&(off >> 21)),
        }
    }

    #[inline]
    fn page(&self, off: u64) -> Option<&Page> {
        self.chunk(off)?[((off >> 12) & 511) as usize].as_ref()
    }

    fn chunk_mut(chunks: &mut Chunks, off: u64, create: bool) -> Option<&mut Chunk> {
        let new = || Box::new([const { None }; 512]);
        match chunks {
            Chunks::Dense(v) => {
                let slot = v.get_mut((off >> 21) as usize)?;
                if slot.is_none() && create {
                    *slot = Some(new());
                }
                slot.as_mut()
            }
            Chunks::Sparse(m) => {
                if create {
                    Some(m.entry(off >> 21).or_insert_with(new))
                } else {
                    m.get_mut(&(off >> 21))
                }
            }
        }
    }

    fn page_mut(&mut self, off: u64, create: bool) -> Option<&mut Page> {
        let chunk = Self::chunk_mut(&mut self.chunks, off, create)?;
        let p = &mut chunk[((off >> 12) & 511) as usize];
        if p.is_none() {
            if !create {
                return None;
            }
            *p = Some(Box::new([0u64; 512]));
            self.stored += 1;
        }
        p.as_mut()
    }

    fn drop_page(&mut self, off: u64) {
        if let Some(ch) = Self::chunk_mut(&mut self.chunks, off, false) {
            if ch[((off >> 12) & 511) as usize].take().is_some() {
                self.stored -= 1;
            }
        }
    }
}

impl PhysMemory for SparseMemory {
    #[inline]
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        let off = self.offset(pa)?;
        Ok(self
            .page(off)
            .map_or(0, |p| p[((off & 0xfff) >> 3) as usize]))
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        let off = self.offset(pa)?;
        if let Some(p) = self.page_mut(off, value != 0) {
            p[((off & 0xfff) >> 3) as usize] = value;
        }
        Ok(())
    }

    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        if len == 0 {
            return Ok(());
        }
        let start = self.offset(pa)?;
        let last = pa
            .checked_add(len - 8)
            .ok_or(MemoryError::ExternalAbort { pa })?;
        self.offset(last)?;
        let end = start + len;
        let mut a = start;
        while a < end {
            let page = a & !0xfff;
            let next = (page + 0x1000).min(end);
            if a == page && next == page + 0x1000 {
                self.drop_page(page);
            } else if let Some(p) = self.page_mut(page, false) {
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
