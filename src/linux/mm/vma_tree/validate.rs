//! Checking the tree's structure: order, no overlaps, fill, depth, summaries, gaps and
//! counts.

use super::node::{Entry, MIN_FILL};
use super::*;

/// What the check has seen so far, in address order.
struct Seen {
    prev_end: u64,
    vmas: usize,
    nodes: usize,
}

impl<'a> VmaTree<'a> {
    /// Checks every invariant: order, disjointness, the cached ends and gaps, that every
    /// leaf is at the same depth and every node but the root at least half full, the count
    /// and the free lists. O(n); meant for tests and debug assertions.
    ///
    /// # Errors
    ///
    /// [`VmaTreeError::Corrupted`] if any invariant fails.
    pub fn validate(&self) -> Result<(), VmaTreeError> {
        let mut seen = Seen {
            prev_end: 0,
            vmas: 0,
            nodes: 0,
        };
        if self.root == NIL {
            if self.cap != 0 || self.len != 0 {
                return Err(VmaTreeError::Corrupted);
            }
        } else {
            self.validate_node(self.root, 0, &mut seen)?;
        }
        if seen.vmas != self.len || seen.prev_end != self.last_end {
            return Err(VmaTreeError::Corrupted);
        }
        let count = |mut f: u32, next: &dyn Fn(u32) -> u32| {
            let mut k = 0usize;
            while f != NIL && k <= self.cap {
                k += 1;
                f = next(f);
            }
            k
        };
        let free = count(self.free, &|i| self.s(i).next_free);
        let free_nodes = count(self.node_free, &|i| self.n(i).child[0]);
        if free + self.len != self.cap
            || free_nodes != self.nodes_free
            || free_nodes + seen.nodes != self.cap
        {
            return Err(VmaTreeError::Corrupted);
        }
        Ok(())
    }

    /// Checks the subtree of node `n` at `depth`; returns its summary.
    fn validate_node(&self, n: u32, depth: usize, seen: &mut Seen) -> Result<Entry, VmaTreeError> {
        let node = self.n(n);
        let len = node.len();
        let leaf = depth + 1 == self.height;
        let fill_ok = match (depth, leaf) {
            (0, true) => true,
            (0, false) => len >= 2,
            _ => len >= MIN_FILL,
        };
        if n as usize >= self.cap || depth >= self.height || node.leaf != leaf || !fill_ok {
            return Err(VmaTreeError::Corrupted);
        }
        seen.nodes += 1;
        for i in 0..len {
            let e = node.entry(i);
            if leaf {
                if e.child as usize >= self.cap {
                    return Err(VmaTreeError::Corrupted);
                }
                let v = self.v(e.child);
                if v.vm_start >= v.vm_end
                    || v.vm_start < seen.prev_end
                    || e.gap != v.vm_start - seen.prev_end
                    || e.end != v.vm_end
                {
                    return Err(VmaTreeError::Corrupted);
                }
                seen.prev_end = v.vm_end;
                seen.vmas += 1;
            } else {
                let sum = self.validate_node(e.child, depth + 1, seen)?;
                if sum != e {
                    return Err(VmaTreeError::Corrupted);
                }
            }
        }
        Ok(node.summary(n))
    }
}
