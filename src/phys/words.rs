//! A flat run of memory viewed as little-endian words, which walks index directly.

/// A run of RAM from a base address, read as little-endian 64-bit words: what
/// [`PhysMemory::word_view`](super::PhysMemory::word_view) hands a walk, so that reading a
/// descriptor is one add on the walk's dependent chain, one load, and two branches (the
/// view's base, start and length stay in registers for the whole walk).
#[derive(Clone, Copy, Debug)]
pub struct WordView<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl<'a> WordView<'a> {
    /// Views `bytes`, which hold the memory from physical address `base`.
    #[inline(always)]
    pub fn new(base: u64, bytes: &'a [u8]) -> WordView<'a> {
        WordView { base, bytes }
    }

    /// Returns the word `offset` bytes into the table at `table`, if the view holds it.
    #[inline(always)]
    pub fn entry(&self, table: u64, offset: u64) -> Option<u64> {
        // The base comes off the offset first, so that the table address, which the
        // previous level's load produced, is added last.
        let off = table.wrapping_add(offset.wrapping_sub(self.base));
        // One compare against the last offset a word fits at; the slice's own range check
        // then holds by construction and folds away.
        let off = usize::try_from(off).ok()?;
        let last = self.bytes.len().checked_sub(8)?;
        if off > last {
            return None;
        }
        let w = self.bytes.get(off..off + 8)?;
        Some(u64::from_le_bytes(<[u8; 8]>::try_from(w).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_the_words_inside() {
        let bytes: [u8; 29] = core::array::from_fn(|i| i as u8);
        for base in [0u64, 0x1000, 0x1003, 0xffff_ffff_ffff_fff8] {
            let v = WordView::new(base, &bytes);
            for table in [0u64, 0x1000, 0xff8, 0xffff_ffff_ffff_f000, base] {
                for offset in (0..0x40).step_by(4) {
                    let off = table.wrapping_add(offset).wrapping_sub(base);
                    let want = (off <= 21).then(|| {
                        let o = off as usize;
                        u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap())
                    });
                    assert_eq!(
                        v.entry(table, offset),
                        want,
                        "{base:#x} {table:#x}+{offset}"
                    );
                }
            }
        }
    }
}
