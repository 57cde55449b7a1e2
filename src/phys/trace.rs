//! A memory wrapper that records the descriptor reads of a walk, for showing a translation
//! level by level.

use arrayvec::ArrayVec;

use super::{MemoryError, PhysMemory};
use crate::addr::PhysAddr;

/// The most reads one walk makes: levels -1 to 3.
pub const MAX_WALK_READS: usize = 5;

/// Wraps a [`PhysMemory`] and records every 64-bit read (at most [`MAX_WALK_READS`]; later
/// reads are passed through unrecorded) and every successful compare-and-swap.
#[derive(Debug)]
pub struct TracingMemory<'m, M: PhysMemory + ?Sized> {
    inner: &'m mut M,
    reads: core::cell::RefCell<ArrayVec<(PhysAddr, u64), MAX_WALK_READS>>,
    swaps: ArrayVec<(PhysAddr, u64, u64), 2>,
    /// Reads and swaps passed through but not recorded (the records were full).
    unrecorded: core::cell::Cell<usize>,
}

impl<'m, M: PhysMemory + ?Sized> TracingMemory<'m, M> {
    /// Wraps `inner`.
    pub fn new(inner: &'m mut M) -> Self {
        TracingMemory {
            inner,
            reads: core::cell::RefCell::new(ArrayVec::new()),
            swaps: ArrayVec::new(),
            unrecorded: core::cell::Cell::new(0),
        }
    }

    /// Returns how many reads and swaps were passed through without being recorded
    /// because the records were full (zero for a single walk).
    pub fn unrecorded(&self) -> usize {
        self.unrecorded.get()
    }

    /// Returns the recorded reads `(pa, value)` in order.
    pub fn reads(&self) -> ArrayVec<(PhysAddr, u64), MAX_WALK_READS> {
        self.reads.borrow().clone()
    }

    /// Returns the recorded successful swaps `(pa, old, new)`.
    pub fn swaps(&self) -> &[(PhysAddr, u64, u64)] {
        &self.swaps
    }
}

impl<M: PhysMemory + ?Sized> PhysMemory for TracingMemory<'_, M> {
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        let v = self.inner.read_u64(pa)?;
        if self.reads.borrow_mut().try_push((pa, v)).is_err() {
            self.unrecorded.set(self.unrecorded.get() + 1);
        }
        Ok(v)
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        self.inner.write_u64(pa, value)
    }

    fn compare_exchange_u64(
        &mut self,
        pa: PhysAddr,
        current: u64,
        new: u64,
    ) -> Result<Result<(), u64>, MemoryError> {
        let r = self.inner.compare_exchange_u64(pa, current, new)?;
        if r.is_ok() && self.swaps.try_push((pa, current, new)).is_err() {
            self.unrecorded.set(self.unrecorded.get() + 1);
        }
        Ok(r)
    }

    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        self.inner.zero(pa, len)
    }
}
