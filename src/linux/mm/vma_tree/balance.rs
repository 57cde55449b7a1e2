//! The AVL balance and the gap augmentation of the tree's nodes.

use super::*;

/// The nodes a descent passed, each with the side it took (`true`: right).
pub(super) type Path = ArrayVec<(u32, bool), MAX_DEPTH>;

impl<'a> VmaTree<'a> {
    /// Returns (height, max_gap) of subtree `i` (0, 0 for none).
    pub(super) fn hg(&self, i: u32) -> (u8, u64) {
        match self.slots.get(i as usize) {
            Some(s) => (s.height, s.max_gap),
            None => (0, 0),
        }
    }

    pub(super) fn update_node(&mut self, n: u32) {
        let (l, r, gap) = {
            let s = self.s(n);
            (s.left, s.right, s.gap_before)
        };
        let (hl, gl) = self.hg(l);
        let (hr, gr) = self.hg(r);
        let s = self.sm(n);
        s.height = 1 + max(hl, hr);
        s.max_gap = max(gap, max(gl, gr));
    }

    /// Returns child `right` (or left) of node `n`.
    fn child(&self, n: u32, right: bool) -> u32 {
        let s = self.s(n);
        if right {
            s.right
        } else {
            s.left
        }
    }

    fn set_child(&mut self, n: u32, right: bool, c: u32) {
        let s = self.sm(n);
        if right {
            s.right = c;
        } else {
            s.left = c;
        }
    }

    /// Rotates subtree `n` toward side `right` (its child on the other side rises) and
    /// returns the new root.
    fn rotate(&mut self, n: u32, right: bool) -> u32 {
        let up = self.child(n, !right);
        let inner = self.child(up, right);
        self.set_child(n, !right, inner);
        self.set_child(up, right, n);
        self.update_node(n);
        self.update_node(up);
        up
    }

    pub(super) fn rebalance(&mut self, n: u32) -> u32 {
        self.update_node(n);
        let (l, r) = (self.s(n).left, self.s(n).right);
        let (hl, hr) = (self.h(l), self.h(r));
        // The taller side, if it is more than one higher.
        let tall = if hl > hr + 1 {
            false
        } else if hr > hl + 1 {
            true
        } else {
            return n;
        };
        let c = self.child(n, tall);
        // A child heavy on its inner side is rotated outward first (double rotation).
        if self.h(self.child(c, tall)) < self.h(self.child(c, !tall)) {
            let nc = self.rotate(c, tall);
            self.set_child(n, tall, nc);
        }
        self.rotate(n, !tall)
    }

    /// Descends from the root toward `key`, recording each node passed and the side taken
    /// in `path`; returns (last node with `vm_start < key`, the node with `vm_start ==
    /// key`, first node with `vm_start > key`). The path ends above the node keyed `key`,
    /// or at the leaf a new node keyed `key` hangs from.
    ///
    /// # Errors
    /// [`VmaTreeError::Corrupted`] if the tree is deeper than a balanced tree can be.
    pub(super) fn descend(
        &self,
        key: u64,
        path: &mut Path,
    ) -> Result<(u32, u32, u32), VmaTreeError> {
        let mut n = self.root;
        let (mut pred, mut succ) = (NIL, NIL);
        while n != NIL {
            let k = self.start(n);
            if key == k {
                let mut l = self.s(n).left;
                if l != NIL {
                    while self.s(l).right != NIL {
                        l = self.s(l).right;
                    }
                    pred = l;
                }
                let mut r = self.s(n).right;
                if r != NIL {
                    while self.s(r).left != NIL {
                        r = self.s(r).left;
                    }
                    succ = r;
                }
                return Ok((pred, n, succ));
            }
            let right = key > k;
            if right {
                pred = n;
            } else {
                succ = n;
            }
            path.try_push((n, right))
                .map_err(|_| VmaTreeError::Corrupted)?;
            n = self.child(n, right);
        }
        Ok((pred, NIL, succ))
    }

    /// Hangs `child` where the end of `path` points and climbs back to the root,
    /// rebalancing and refreshing the cached heights and gaps. A node is rebalanced while
    /// the subtree below it changed shape (its root or height); above that, where only a
    /// largest gap changed, or at `succ`, whose own gap the caller changed, only the
    /// node's largest gap is recomputed (its balance is as it was); elsewhere nothing is.
    pub(super) fn climb(&mut self, path: &mut Path, mut child: u32, succ: u32) {
        let (mut shape, mut gap) = (true, true);
        while let Some((n, right)) = path.pop() {
            if shape {
                self.set_child(n, right, child);
                let before = self.hg(n);
                child = self.rebalance(n);
                let after = self.hg(child);
                shape = child != n || after.0 != before.0;
                gap = after.1 != before.1;
            } else {
                if gap || n == succ {
                    let before = self.s(n).max_gap;
                    self.update_gap(n);
                    gap = self.s(n).max_gap != before;
                }
                child = n;
            }
        }
        self.root = child;
    }

    /// Recomputes the largest gap of node `n` from its own and its children's (its height
    /// stays).
    fn update_gap(&mut self, n: u32) {
        let s = self.s(n);
        let (l, r, own) = (s.left, s.right, s.gap_before);
        let m = max(own, max(self.hg(l).1, self.hg(r).1));
        self.sm(n).max_gap = m;
    }

    /// Takes node `n` out of its subtree; returns what takes its place there.
    pub(super) fn unlink(&mut self, n: u32) -> u32 {
        let (l, r) = (self.s(n).left, self.s(n).right);
        if l == NIL {
            self.fix_left_spine(r);
            return r;
        }
        if r == NIL {
            return l;
        }
        let (r2, m) = self.remove_min(r);
        self.sm(m).left = l;
        self.sm(m).right = r2;
        self.rebalance(m)
    }

    /// Detaches the minimum of subtree `n`; returns (new subtree root, detached node).
    pub(super) fn remove_min(&mut self, n: u32) -> (u32, u32) {
        let l = self.s(n).left;
        if l == NIL {
            return (self.s(n).right, n);
        }
        let (nl, m) = self.remove_min(l);
        self.sm(n).left = nl;
        (self.rebalance(n), m)
    }

    /// Recomputes the cached gaps along the left spine of subtree `n` (bottom-up), after
    /// a change to the gap of its lowest node; stops where a node's largest gap is
    /// unchanged (nothing above it then changes).
    pub(super) fn fix_left_spine(&mut self, n: u32) {
        let mut path: ArrayVec<u32, MAX_DEPTH> = ArrayVec::new();
        let mut c = n;
        while c != NIL && path.try_push(c).is_ok() {
            c = self.s(c).left;
        }
        self.fix_up(&mut path);
    }

    /// Recomputes the cached gaps on the path from the root to the node keyed `key`, after
    /// a change to that node's gap; stops where a node's largest gap is unchanged.
    pub(super) fn fix_path(&mut self, key: u64) {
        let mut path: ArrayVec<u32, MAX_DEPTH> = ArrayVec::new();
        let mut n = self.root;
        while n != NIL {
            if path.try_push(n).is_err() {
                break;
            }
            let k = self.start(n);
            n = if key < k {
                self.s(n).left
            } else if key > k {
                self.s(n).right
            } else {
                NIL
            };
        }
        self.fix_up(&mut path);
    }

    /// Refreshes the nodes of `path` from its end up, while their largest gap changes (no
    /// height changes: the shape is the same).
    fn fix_up(&mut self, path: &mut ArrayVec<u32, MAX_DEPTH>) {
        while let Some(n) = path.pop() {
            let before = self.hg(n);
            self.update_node(n);
            if self.hg(n) == before {
                break;
            }
        }
    }
}
