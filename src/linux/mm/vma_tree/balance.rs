//! The AVL balance and the gap augmentation of the tree's nodes.

use super::*;

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

    pub(super) fn insert_rec(&mut self, n: u32, new: u32, key: u64) -> u32 {
        if n == NIL {
            return new;
        }
        if key < self.start(n) {
            let l = self.insert_rec(self.s(n).left, new, key);
            self.sm(n).left = l;
        } else {
            let r = self.insert_rec(self.s(n).right, new, key);
            self.sm(n).right = r;
        }
        self.rebalance(n)
    }

    pub(super) fn remove_rec(&mut self, n: u32, key: u64) -> u32 {
        if n == NIL {
            return NIL;
        }
        let k = self.start(n);
        if key < k {
            let l = self.remove_rec(self.s(n).left, key);
            self.sm(n).left = l;
        } else if key > k {
            let r = self.remove_rec(self.s(n).right, key);
            self.sm(n).right = r;
        } else {
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
            return self.rebalance(m);
        }
        self.rebalance(n)
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

    /// Recomputes the cached gaps along the left spine of subtree `n` (bottom-up).
    pub(super) fn fix_left_spine(&mut self, n: u32) {
        let mut path: ArrayVec<u32, MAX_DEPTH> = ArrayVec::new();
        let mut c = n;
        while c != NIL && path.try_push(c).is_ok() {
            c = self.s(c).left;
        }
        while let Some(c) = path.pop() {
            self.update_node(c);
        }
    }

    /// Recomputes the cached gaps on the path from the root to the node keyed `key`.
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
        while let Some(n) = path.pop() {
            self.update_node(n);
        }
    }
}
