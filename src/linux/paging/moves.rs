//! Moving page-table entries for `mremap` (`move_page_tables`): pages and the zero pages
//! keep their frames, attributes, dirty and young state; a THP moves whole as one block
//! when its new place is PMD aligned and the move covers it, and is split first otherwise.

use super::*;

impl<'f, M: PhysMemory, const N: usize> Paging<'f, M, N> {
    /// Returns how many table frames a move of `len` bytes may need at its destination
    /// (one last-level table per PMD it touches, plus the levels above).
    pub fn move_tables_needed(&self, len: u64) -> u64 {
        ((len / self.pmd()) + 2 + 3) << (self.config.granule.page_shift() - 12)
    }

    /// Moves the mappings of `[old, old + len)` to `[new, new + len)`, which must not
    /// overlap and must hold no mappings (mremap has unmapped it).
    ///
    /// # Errors
    /// [`MapError`] when a table change fails (out of frames for the new tables: callers
    /// check [`Paging::move_tables_needed`] first).
    pub fn move_range(&mut self, old: u64, new: u64, len: u64) -> Result<(), MapError> {
        let page = self.page();
        let pmd = self.pmd();
        let end = old + len;
        let mut cursor = old;
        while let Some((leaf, s, e)) = self.next_leaf_part(cursor, end)? {
            let ls = leaf.va.as_u64();
            let size = 1u64 << leaf.size_log2;
            let attrs = Attributes::from_bits_truncate(leaf.descriptor.bits())
                - Attributes::VALID
                - Attributes::TABLE_OR_PAGE;
            if size > page {
                let dst = new.wrapping_add(ls.wrapping_sub(old));
                let whole = s == ls && e == ls + size;
                if whole && dst.is_multiple_of(pmd) {
                    // move_huge_pmd: the block and its deposit move together.
                    self.unmap(ls, size)?;
                    self.release_deposits(1);
                    if !self.map_block(dst, leaf.pa, attrs) {
                        return Err(MapError::OutOfFrames {
                            va: VirtAddr::new(dst),
                        });
                    }
                    cursor = e;
                } else {
                    // Split into pages (with the block's deposit), then move those.
                    self.split_block_at(if s > ls { s } else { ls + page })?;
                }
                continue;
            }
            self.unmap(s, page)?;
            self.map(new + (s - old), leaf.pa, page, attrs)?;
            cursor = e;
        }
        Ok(())
    }
}
