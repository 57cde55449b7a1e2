//! Sparse RAM for large, mostly empty physical address spaces (std only).

use std::collections::BTreeMap;
use std::fmt;
use std::vec;
use std::vec::Vec;

use super::{MemoryError, PhysMemory};
use crate::addr::PhysAddr;

/// One stored 4 KiB page, as words.
type Page = [u64; 512];

/// RAM over `[base, base + size)` that stores only the 4 KiB pages holding a non-zero
/// word; every other word in range reads as zero, and accesses outside the range are
/// external aborts. Zeroing a whole page drops it, so a simulated machine far larger than
/// the host costs only the pages written (page tables, in a study without data).
///
/// Stored pages live in one pool, found through an index with a 32-bit slot number per
/// page of RAM (up to 256 GiB of RAM; a map above): a read is two dependent loads, the
/// index entry and the word. Slot 0 is a page of zeros that absent pages share, so a read
/// takes no branch on whether its page is stored. A dropped page's slot is reused by the
/// next page stored; the pool does not shrink.
#[derive(Clone, Default)]
pub struct SparseMemory {
    base: u64,
    size: u64,
    /// `size - 7` (0 below 8): a word at offset `off` lies in RAM when `off < ends`.
    ends: u64,
    index: Index,
    /// Slot 0 always zero; the others stored pages or free.
    pool: Vec<Page>,
    /// Slots not in use.
    free: Vec<u32>,
    stored: usize,
}

/// The slot of each page of RAM: an array up to [`DENSE_LIMIT`] of RAM, a map above.
#[derive(Clone, Debug)]
enum Index {
    Dense(Vec<u32>),
    Sparse(BTreeMap<u64, u32>),
}

impl Default for Index {
    fn default() -> Self {
        Index::Dense(Vec::new())
    }
}

/// The largest RAM with an array as its index (256 MiB of slot numbers at most, which the
/// host backs only where pages are stored).
const DENSE_LIMIT: u64 = 1 << 38;

impl SparseMemory {
    /// Creates zeroed RAM of `size` bytes at `base`.
    pub fn new(base: PhysAddr, size: u64) -> Self {
        let index = if size <= DENSE_LIMIT {
            Index::Dense(vec![0; size.div_ceil(0x1000) as usize])
        } else {
            Index::Sparse(BTreeMap::new())
        };
        SparseMemory {
            base: base.as_u64(),
            size,
            // Physical addresses stay below 2^56: no offset past 2^63 is ever in range, so
            // a wrapped one (below the base) never passes.
            ends: size.min(1 << 63).saturating_sub(7),
            index,
            pool: vec![[0; 512]],
            free: Vec::new(),
            stored: 0,
        }
    }

    /// Returns whether `pa` (8-byte aligned word) lies in RAM.
    #[inline(always)]
    pub fn contains(&self, pa: PhysAddr) -> bool {
        // One compare: an address below the base wraps to an offset above any size.
        pa.as_u64().wrapping_sub(self.base) < self.ends
    }

    /// Returns the non-zero words, in address order.
    pub fn words(&self) -> impl Iterator<Item = (PhysAddr, u64)> + '_ {
        let pages: std::boxed::Box<dyn Iterator<Item = (u64, u32)> + '_> = match &self.index {
            Index::Dense(v) => std::boxed::Box::new(
                v.iter()
                    .enumerate()
                    .filter(|(_, &s)| s != 0)
                    .map(|(p, &s)| (p as u64, s)),
            ),
            Index::Sparse(m) => std::boxed::Box::new(m.iter().map(|(&p, &s)| (p, s))),
        };
        let base = self.base;
        pages.flat_map(move |(p, s)| {
            let page = base + (p << 12);
            self.pool[s as usize]
                .iter()
                .enumerate()
                .filter(|(_, &w)| w != 0)
                .map(move |(i, &w)| (PhysAddr::new(page + 8 * i as u64), w))
        })
    }

    /// Returns how many 4 KiB pages are stored.
    pub fn stored_pages(&self) -> usize {
        self.stored
    }

    /// Returns the offset of `pa` from the base, checked to be a word in range.
    #[inline(always)]
    fn offset(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        if self.contains(pa) {
            Ok((pa.as_u64() - self.base) & !7)
        } else {
            Err(MemoryError::ExternalAbort { pa })
        }
    }

    /// Returns the slot of the page at `off` (0: not stored).
    #[inline(always)]
    fn slot(&self, off: u64) -> u32 {
        match &self.index {
            Index::Dense(v) => v.get((off >> 12) as usize).copied().unwrap_or(0),
            Index::Sparse(m) => Self::map_slot(m, off),
        }
    }

    /// [`SparseMemory::slot`] above [`DENSE_LIMIT`], out of line so that the map's lookup
    /// does not weigh on the array's, which every walk takes.
    #[cold]
    #[inline(never)]
    fn map_slot(m: &BTreeMap<u64, u32>, off: u64) -> u32 {
        m.get(&(off >> 12)).copied().unwrap_or(0)
    }

    /// Returns the word at `off`, an offset [`SparseMemory::offset`] checked.
    #[inline(always)]
    fn word(&self, off: u64) -> u64 {
        let s = self.slot(off) as usize;
        self.pool
            .get(s)
            .map_or(0, |p| p[((off >> 3) & 511) as usize])
    }

    /// Sets the slot of the page at `off`.
    #[cold]
    fn set_slot(&mut self, off: u64, slot: u32) {
        match &mut self.index {
            Index::Dense(v) => {
                if let Some(e) = v.get_mut((off >> 12) as usize) {
                    *e = slot;
                }
            }
            Index::Sparse(m) => {
                if slot == 0 {
                    m.remove(&(off >> 12));
                } else {
                    m.insert(off >> 12, slot);
                }
            }
        }
    }

    /// Stores a zeroed page at `off` (not stored yet) and returns its slot.
    #[cold]
    fn store(&mut self, off: u64) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => {
                self.pool[s as usize] = [0; 512];
                s
            }
            None => {
                self.pool.push([0; 512]);
                (self.pool.len() - 1) as u32
            }
        };
        self.set_slot(off, slot);
        self.stored += 1;
        slot
    }

    /// Drops the page at `off`, if stored.
    #[inline]
    fn drop_page(&mut self, off: u64) {
        let s = self.slot(off);
        if s != 0 {
            self.release(off, s);
        }
    }

    /// Drops the page at `off`, stored in slot `s`.
    #[cold]
    fn release(&mut self, off: u64, s: u32) {
        self.set_slot(off, 0);
        self.free.push(s);
        self.stored -= 1;
    }

    /// Zeroes `len` bytes from `pa` (at offset `start`), other than one whole page.
    #[inline(never)]
    fn zero_span(&mut self, pa: PhysAddr, start: u64, len: u64) -> Result<(), MemoryError> {
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
            } else {
                let s = self.slot(page) as usize;
                if s != 0 {
                    let words = ((a & 0xfff) >> 3) as usize..=(((next - 1) & 0xfff) >> 3) as usize;
                    self.pool[s][words].fill(0);
                }
            }
            a = next;
        }
        Ok(())
    }
}

impl fmt::Debug for SparseMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseMemory")
            .field("base", &format_args!("{:#x}", self.base))
            .field("size", &format_args!("{:#x}", self.size))
            .field("stored_pages", &self.stored)
            .finish()
    }
}

/// Memories are equal when they span the same range with the same contents (however their
/// pages happen to be stored).
impl PartialEq for SparseMemory {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base && self.size == other.size && self.words().eq(other.words())
    }
}

impl Eq for SparseMemory {}

impl PhysMemory for SparseMemory {
    #[inline]
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        Ok(self.word(self.offset(pa)?))
    }

    #[inline]
    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        let off = self.offset(pa)?;
        let mut s = self.slot(off);
        if s == 0 {
            if value == 0 {
                return Ok(());
            }
            s = self.store(off);
        }
        if let Some(p) = self.pool.get_mut(s as usize) {
            p[((off >> 3) & 511) as usize] = value;
        }
        Ok(())
    }

    #[inline]
    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        if len == 0 {
            return Ok(());
        }
        let start = self.offset(pa)?;
        if len == 0x1000 && start & 0xfff == 0 && start + 0xff8 < self.ends {
            // One whole page, the allocator's common case: drop it.
            self.drop_page(start);
            return Ok(());
        }
        self.zero_span(pa, start, len)
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

    /// Checks both indexes against a map of words through writes, partial and whole-page
    /// zeroing, and slot reuse.
    #[test]
    fn matches_a_model_and_reuses_slots() {
        for size in [64 << 20, DENSE_LIMIT + (1 << 30)] {
            let base = 0x4000_0000u64;
            let mut m = SparseMemory::new(PhysAddr::new(base), size);
            let mut model = BTreeMap::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..20_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // 16 pages spread over the range, so pages fill, empty and come back.
                let page = base + (x % 16) * ((size / 16) & !0xfff);
                let pa = page + ((x >> 20) % 512) * 8;
                match i % 7 {
                    0 => {
                        m.zero(PhysAddr::new(page), 0x1000).unwrap();
                        model.retain(|&a, _| a & !0xfff != page);
                    }
                    1 => {
                        let len = ((x >> 40) % 64 + 1) * 8;
                        let len = len.min(page + 0x1000 - pa);
                        m.zero(PhysAddr::new(pa), len).unwrap();
                        model.retain(|&a, _| a < pa || a >= pa + len);
                    }
                    _ => {
                        let v = if i % 5 == 0 { 0 } else { x >> 3 };
                        m.write_u64(PhysAddr::new(pa), v).unwrap();
                        if v == 0 {
                            model.remove(&pa);
                        } else {
                            model.insert(pa, v);
                        }
                    }
                }
                assert_eq!(
                    m.read_u64(PhysAddr::new(pa)),
                    Ok(model.get(&pa).copied().unwrap_or(0))
                );
            }
            let words: Vec<(u64, u64)> = m.words().map(|(a, w)| (a.as_u64(), w)).collect();
            let want: Vec<(u64, u64)> = model.into_iter().collect();
            assert_eq!(words, want);
            assert!(m.stored_pages() <= 16);
            assert!(m.pool.len() <= 17, "dropped pages' slots are reused");
            assert_eq!(m.pool[0], [0; 512], "the shared zero page stays zero");
            assert_eq!(m.clone(), m);
        }
    }
}
