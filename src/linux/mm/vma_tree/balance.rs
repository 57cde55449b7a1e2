//! The B-tree's balance: a full node splits in two, a node under half full takes entries
//! from a neighbour or merges with it, and the summaries above a change are refreshed.

use super::node::{Entry, MIN_FILL};
use super::*;

impl<'a> VmaTree<'a> {
    /// Returns how many new nodes inserting an entry at the end of `path` takes: one per
    /// full node from the leaf up, and a new root if the root is full too.
    pub(super) fn splits_needed(&self, path: &Path) -> usize {
        let full = path
            .iter()
            .rev()
            .take_while(|&&(n, _)| self.n(n).len() >= FANOUT)
            .count();
        full + usize::from(full == path.len())
    }

    /// Inserts `e` into the leaf where `path` ends, at its position, splitting full nodes
    /// on the way up; then refreshes the summaries above. The caller has checked
    /// [`VmaTree::splits_needed`] against the free nodes.
    pub(super) fn insert_entry(&mut self, path: &Path, mut e: Entry) {
        let Some(&(_, leaf_pos)) = path.last() else {
            return;
        };
        let mut level = path.len() - 1;
        let mut pos = leaf_pos as usize;
        loop {
            let n = path[level].0;
            if self.n(n).len() < FANOUT {
                self.nm(n).insert(pos, e);
                break;
            }
            let m = self.alloc_node();
            let mut buf = [Entry::ZERO; FANOUT + 1];
            let node = self.n(n);
            let leaf = node.leaf;
            let k = node.copy_out(&mut buf, 0);
            buf.copy_within(pos..k, pos + 1);
            buf[pos] = e;
            let half = FANOUT.div_ceil(2);
            self.nm(n).fill(&buf[..half]);
            let right = self.nm(m);
            right.leaf = leaf;
            right.fill(&buf[half..]);
            let (sn, sm) = (self.n(n).summary(n), self.n(m).summary(m));
            if level == 0 {
                let r = self.alloc_node();
                let root = self.nm(r);
                root.leaf = false;
                root.fill(&[sn, sm]);
                self.root = r;
                self.height += 1;
                return;
            }
            let (parent, i) = path[level - 1];
            self.nm(parent).set(i as usize, sn);
            e = sm;
            pos = i as usize + 1;
            level -= 1;
        }
        self.refresh_up(path, level);
    }

    /// Refills the nodes of `path` that fell under half full after an entry left the leaf
    /// at its end, from the leaf up: from a neighbour that can spare entries, else by a
    /// merge with it. A root left with one child gives way to it. Then refreshes the
    /// summaries above.
    pub(super) fn fix_underflow(&mut self, path: &Path) {
        if path.is_empty() {
            return;
        }
        let mut level = path.len() - 1;
        loop {
            let n = path[level].0;
            if level == 0 {
                let node = self.n(n);
                if !node.leaf && node.len() == 1 {
                    let c = node.child[0];
                    self.free_node(n);
                    self.root = c;
                    self.height -= 1;
                }
                return;
            }
            if self.n(n).len() >= MIN_FILL {
                break;
            }
            let (parent, i) = path[level - 1];
            let p = self.n(parent);
            let li = (i as usize).saturating_sub(1);
            if li + 1 >= p.len() {
                // A parent with one child is only the root, handled above.
                break;
            }
            let (l, r) = (p.child[li], p.child[li + 1]);
            let mut buf = [Entry::ZERO; 2 * FANOUT];
            let k = self.n(l).copy_out(&mut buf, 0);
            let total = self.n(r).copy_out(&mut buf, k);
            if total <= FANOUT {
                self.nm(l).fill(&buf[..total]);
                self.free_node(r);
                let sl = self.n(l).summary(l);
                let p = self.nm(parent);
                p.set(li, sl);
                p.remove(li + 1);
                level -= 1;
                continue;
            }
            let half = total / 2;
            self.nm(l).fill(&buf[..half]);
            self.nm(r).fill(&buf[half..total]);
            let (sl, sr) = (self.n(l).summary(l), self.n(r).summary(r));
            let p = self.nm(parent);
            p.set(li, sl);
            p.set(li + 1, sr);
            level -= 1;
            break;
        }
        self.refresh_up(path, level);
    }

    /// Refreshes the entries that sum up `path`'s nodes below `level` in their parents,
    /// from `level` up; stops at the first that does not change (nothing above it does).
    pub(super) fn refresh_up(&mut self, path: &Path, level: usize) {
        for l in (0..level.min(path.len())).rev() {
            let (parent, i) = path[l];
            let child = path[l + 1].0;
            let sum = self.n(child).summary(child);
            if self.n(parent).entry(i as usize) == sum {
                break;
            }
            self.nm(parent).set(i as usize, sum);
        }
    }

    /// Sets the gap below the VMA starting at `start` to `gap` and refreshes the
    /// summaries above it.
    pub(super) fn set_gap(&mut self, start: u64, gap: u64) {
        let mut path = Path::new();
        if self.descend(start, &mut path).is_err() {
            return;
        }
        let Some(&(leaf, pos)) = path.last() else {
            return;
        };
        if let Some(g) = self.nm(leaf).gap.get_mut(pos as usize) {
            *g = gap;
        }
        self.refresh_up(&path, path.len() - 1);
    }
}
