//! The MMU around the walker: frames, the table mapper, `Flush` records, the TLB and the
//! [`Mmu`] facade. It sits on [`crate::arch`] and [`crate::phys`], and nothing in it knows
//! of Linux.

pub mod flush;
pub mod frames;
pub mod mapper;
mod facade;
pub mod tlb;

pub use flush::Flush;
pub use frames::{FrameAllocator, FrameError};
pub use mapper::{FrameSource, Leaf, MapError, Mapper, TableFormat};
pub use facade::Mmu;
pub use tlb::{Stats, Tlb, TlbEntry, Tlbi};
