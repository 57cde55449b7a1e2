//! The record of TLB invalidations a change to live translation tables requires.

use arrayvec::ArrayVec;

use super::tlb::Tlbi;
use crate::addr::VirtAddr;

/// How many separate VA ranges a [`Flush`] keeps before it falls back to flushing the whole
/// ASID (or everything).
pub const FLUSH_RANGES: usize = 8;

/// The TLB invalidations that a table change requires before the old translations are
/// guaranteed gone. Apply it with [`Flush::ops`] (or `Mmu::flush`); dropping it unapplied
/// leaves stale translations in every TLB, exactly as skipping the TLBI would on hardware.
#[must_use = "stale TLB entries stay until the invalidations are applied"]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flush {
    ranges: ArrayVec<(u64, u64), FLUSH_RANGES>,
    overflow: bool,
    global: bool,
    asid: u16,
}

impl Flush {
    /// Creates an empty record for translations of `asid`.
    pub const fn new(asid: u16) -> Self {
        Flush {
            ranges: ArrayVec::new_const(),
            overflow: false,
            global: false,
            asid,
        }
    }

    /// Discards the record without applying it, saying so: for a caller that knows no TLB
    /// can hold the translations it names (tables not yet live, or a TLB flushed whole
    /// since). Dropping a `Flush` unapplied is otherwise a bug the compiler warns about.
    #[inline]
    pub fn ignore(self) {}

    /// Returns whether nothing needs invalidating.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && !self.overflow
    }

    /// Returns whether a global (nG = 0) translation was changed.
    pub fn touches_global(&self) -> bool {
        self.global
    }

    /// Returns the recorded `(start, length)` ranges, unless the record overflowed into a
    /// whole-ASID flush.
    pub fn ranges(&self) -> Option<&[(u64, u64)]> {
        (!self.overflow).then_some(&self.ranges)
    }

    /// Records that the translation of `[start, start + len)` changed.
    #[inline]
    pub fn add(&mut self, start: u64, len: u64, global: bool) {
        self.global |= global;
        if self.overflow || len == 0 {
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            // A range that starts inside the last one or just past it extends it.
            if start >= last.0 && start - last.0 <= last.1 {
                last.1 = last.1.max((start - last.0).saturating_add(len));
                return;
            }
        }
        if self.ranges.try_push((start, len)).is_err() {
            self.overflow = true;
            self.ranges.clear();
        }
    }

    /// Merges another record into this one.
    pub fn merge(&mut self, other: Flush) {
        self.global |= other.global;
        if other.overflow {
            self.overflow = true;
            self.ranges.clear();
            return;
        }
        for (s, l) in other.ranges {
            self.add(s, l, false);
        }
    }

    /// Returns the TLBI operations that carry out this record: `VAE1` per page for small
    /// ranges, `RVAE1` for larger ones, and `ASIDE1` (or `VMALLE1` when a global entry
    /// changed) after an overflow.
    pub fn ops(&self) -> impl Iterator<Item = Tlbi> + '_ {
        let whole = if self.overflow {
            Some(if self.global {
                Tlbi::Vmalle1
            } else {
                Tlbi::Aside1 { asid: self.asid }
            })
        } else {
            None
        };
        let asid = self.asid;
        let ranged = self.ranges.iter().flat_map(move |&(start, len)| {
            let pages = len.div_ceil(4096);
            let per_page = pages <= 16;
            let n = if per_page { pages } else { 1 };
            (0..n).map(move |i| {
                if per_page {
                    Tlbi::Vae1 {
                        asid,
                        va: VirtAddr::new(start.wrapping_add(i << 12)),
                    }
                } else {
                    Tlbi::Rvae1 {
                        asid,
                        va: VirtAddr::new(start),
                        len,
                    }
                }
            })
        });
        whole.into_iter().chain(ranged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_overflows() {
        let mut f = Flush::new(3);
        f.add(0x1000, 0x1000, false);
        f.add(0x2000, 0x1000, false);
        assert_eq!(f.ranges(), Some(&[(0x1000, 0x2000)][..]));
        assert_eq!(f.ops().count(), 2);
        // Inside the last range, overlapping its end, and with a gap: only the gap makes
        // a new range.
        f.add(0x1800, 0x800, false);
        f.add(0x2800, 0x1000, false);
        assert_eq!(f.ranges(), Some(&[(0x1000, 0x2800)][..]));
        f.add(0x5000, 0x1000, false);
        assert_eq!(f.ranges(), Some(&[(0x1000, 0x2800), (0x5000, 0x1000)][..]));
        let mut f = Flush::new(3);
        f.add(0x1000, 0x2000, false);
        for i in 0..10 {
            f.add(0x10_0000 * (i + 2), 0x1000, i == 5);
        }
        assert!(f.ranges().is_none());
        assert_eq!(
            f.ops().collect::<ArrayVec<_, 4>>().as_slice(),
            &[Tlbi::Vmalle1]
        );
        let mut g = Flush::new(1);
        g.add(0, 1 << 30, false);
        assert_eq!(
            g.ops().next(),
            Some(Tlbi::Rvae1 {
                asid: 1,
                va: VirtAddr::new(0),
                len: 1 << 30
            })
        );
    }
}
