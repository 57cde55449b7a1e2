//! The machinery around the walker: simulated physical memory, frames, table mapper and TLB.

pub mod flush;
pub mod frames;
pub mod mapper;
pub mod mmu;
pub mod phys;
#[cfg(feature = "std")]
pub mod sparse;
pub mod tlb;
pub mod trace;

pub use flush::Flush;
pub use frames::{FrameAllocator, FrameError};
pub use mapper::{FrameSource, Leaf, MapError, Mapper, TableFormat};
pub use mmu::Mmu;
pub use phys::{MemoryError, PhysMemory, SliceMemory};
#[cfg(feature = "std")]
pub use sparse::SparseMemory;
pub use tlb::{Stats, Tlb, TlbEntry, Tlbi};
pub use trace::TracingMemory;
