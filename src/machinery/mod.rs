//! The machinery around the walker: simulated physical memory, frames, table mapper and TLB.

pub mod phys;
#[cfg(feature = "std")]
pub mod sparse;
pub mod trace;

pub use phys::{MemoryError, PhysMemory, SliceMemory};
#[cfg(feature = "std")]
pub use sparse::SparseMemory;
pub use trace::TracingMemory;
