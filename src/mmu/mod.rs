//! The MMU around the walker: frames, the table mapper, `Flush` records, the TLB and the
//! [`Mmu`] facade. It sits on [`crate::arch`] and [`crate::phys`], and nothing in it knows
//! of Linux.

mod facade;
pub mod flush;
pub mod frames;
pub mod mapper;
pub mod tlb;

pub use facade::{Mmu, Route};
pub use flush::Flush;
pub use frames::{Contents, FrameAllocator, FrameError};
pub use mapper::{CopyLeaf, FrameSource, Leaf, Lpa2, MapError, Mapper, TableFormat, VaRange};
pub use tlb::{AccessCheck, Stats, Tlb, TlbEntry, Tlbi};
