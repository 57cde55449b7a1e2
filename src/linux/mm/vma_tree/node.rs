//! One node of the tree: up to [`FANOUT`] entries in address order, each summing up a
//! child. In a leaf the child is a VMA and the entry holds its end and the free gap just
//! below it; in an inner node the child is a node and the entry holds the highest end and
//! the largest gap under it, as the maple tree's pivots and gap slots do.

use core::cmp::min;

/// The most entries in a node (the maple tree's `MAPLE_RANGE64_SLOTS` is 16). Unit tests
/// use 4, so that a few dozen VMAs already make a deep tree.
pub(super) const FANOUT: usize = if cfg!(test) { 4 } else { 16 };

/// The fewest entries in a node other than the root.
pub(super) const MIN_FILL: usize = FANOUT / 2;

/// One entry: the child's highest end, its largest gap (in a leaf: the gap below the VMA),
/// and the child's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) end: u64,
    pub(super) gap: u64,
    pub(super) child: u32,
}

impl Entry {
    pub(super) const ZERO: Entry = Entry {
        end: 0,
        gap: 0,
        child: 0,
    };
}

// The ends lead, then the children and the count: a descent reads only those three lines.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(super) struct Node {
    pub(super) end: [u64; FANOUT],
    pub(super) child: [u32; FANOUT],
    len: u8,
    pub(super) leaf: bool,
    pub(super) gap: [u64; FANOUT],
}

impl Node {
    /// An empty leaf.
    pub(super) const EMPTY: Node = Node {
        end: [0; FANOUT],
        child: [0; FANOUT],
        len: 0,
        leaf: true,
        gap: [0; FANOUT],
    };

    /// Returns the number of entries.
    pub(super) fn len(&self) -> usize {
        min(self.len as usize, FANOUT)
    }

    /// Returns the first entry whose end lies above `key`, or the count if none does.
    pub(super) fn find(&self, key: u64) -> usize {
        let len = self.len();
        self.end[..len].iter().position(|&e| e > key).unwrap_or(len)
    }

    /// Returns entry `i` (a zero entry past the end).
    pub(super) fn entry(&self, i: usize) -> Entry {
        if i >= self.len() {
            return Entry::ZERO;
        }
        Entry {
            end: self.end[i],
            gap: self.gap[i],
            child: self.child[i],
        }
    }

    /// Overwrites entry `i` (nothing past the end).
    pub(super) fn set(&mut self, i: usize, e: Entry) {
        if i < self.len() {
            self.end[i] = e.end;
            self.gap[i] = e.gap;
            self.child[i] = e.child;
        }
    }

    /// Inserts `e` at `i`, moving the entries from `i` up by one; nothing if the node is
    /// full or `i` is past the end.
    pub(super) fn insert(&mut self, i: usize, e: Entry) {
        let len = self.len();
        if len >= FANOUT || i > len {
            return;
        }
        // One loop over the three arrays: the moves are a few entries, shorter than the
        // calls three `copy_within`s make.
        for j in (i..len).rev() {
            self.end[j + 1] = self.end[j];
            self.gap[j + 1] = self.gap[j];
            self.child[j + 1] = self.child[j];
        }
        self.len += 1;
        self.set(i, e);
    }

    /// Removes entry `i`, moving the ones above it down (nothing past the end).
    pub(super) fn remove(&mut self, i: usize) {
        let len = self.len();
        if i < len {
            for j in i + 1..len {
                self.end[j - 1] = self.end[j];
                self.gap[j - 1] = self.gap[j];
                self.child[j - 1] = self.child[j];
            }
            self.len -= 1;
        }
    }

    /// Replaces the entries with `es` (at most [`FANOUT`] of them are kept).
    pub(super) fn fill(&mut self, es: &[Entry]) {
        let n = min(es.len(), FANOUT);
        for (i, e) in es.iter().take(n).enumerate() {
            self.end[i] = e.end;
            self.gap[i] = e.gap;
            self.child[i] = e.child;
        }
        self.len = n as u8;
    }

    /// Appends the entries to `buf` from `at`; returns the index after the last.
    pub(super) fn copy_out(&self, buf: &mut [Entry], at: usize) -> usize {
        let mut k = at;
        for i in 0..self.len() {
            if let Some(slot) = buf.get_mut(k) {
                *slot = self.entry(i);
                k += 1;
            }
        }
        k
    }

    /// Returns the entry that sums this node up in its parent: its highest end and its
    /// largest gap, with `me` as the child.
    pub(super) fn summary(&self, me: u32) -> Entry {
        let len = self.len();
        Entry {
            end: if len == 0 { 0 } else { self.end[len - 1] },
            gap: self.gap[..len].iter().fold(0, |m, &g| m.max(g)),
            child: me,
        }
    }
}
