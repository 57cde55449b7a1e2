//! The VMA-level model of a Linux process address space (spec `linux-anon-mmap.md`
//! §0–§9): `mmap`, `munmap`, `mprotect`, `madvise` and `brk` on anonymous memory, with the
//! kernel's placement, merge/split, `max_map_count` and errno rules, for the arm64 6.1,
//! 6.12 (4 KiB and 16 KiB pages, 48- and 52-bit VA) and x86_64 6.18 kernels.
//!
//! This is the VMA layer of [`crate::linux`]: it needs no MMU.
//!
//! * [`vmflags`]: `vm_flags` bits and the smaps `VmFlags:` mnemonics.
//! * [`vma`]: one virtual memory area and the kernel's mergeability predicate.
//! * [`vma_tree`]: bounded, allocation-free VMA storage with gap search.
//! * [`maps_text`]: byte-exact `/proc/PID/maps` and `/proc/PID/smaps` text, both ways.
//! * [`errno`]: [`Errno`] numbers and `strerror` texts.
//! * [`mman`]: `PROT_*`, `MAP_*`, `MADV_*` values.
//! * [`params`]: [`LayoutParams`] presets (page size, kernel version, `TASK_SIZE`,
//!   `mmap_base`, THP mode, ...).
//! * [`space`]: [`AddressSpace`], naming (`[heap]`, `[stack]`) and maps/smaps rendering.
//! * [`layout`]: a freshly exec'd process and the import of captured maps/smaps text.
//! * [`file`](mod@file): [`OpenFile`] and `mmap` of files ([`AddressSpace::mmap_file`]).
//! * [`ops`]: [`PageOps`], through which the page layer learns which ranges changed.
//! * [`mremap`]: `mremap` and its flags.
//! * `mmap`, `munmap`, `mprotect`, `madvise`, `brk`: the calls, as methods of
//!   [`AddressSpace`].
//!
//! ```
//! use pagesim::linux::mm::{mman::*, AddressSpace, LayoutParams};
//! use pagesim::linux::mm::vma_tree::VmaSlot;
//!
//! let mut slots = [VmaSlot::EMPTY; 32];
//! let mut mm = AddressSpace::fresh_process(&mut slots, LayoutParams::arm64_6_12(), "/init")?;
//! let a = mm.mmap(0, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)?;
//! assert_eq!(a, 0xfffff7ff9000);
//! mm.mprotect(a + 0x1000, 0x1000, PROT_READ)?;
//! assert_eq!(mm.map_count(), 11);
//! # Ok::<(), pagesim::linux::mm::Errno>(())
//! ```

pub mod errno;
pub mod file;
pub mod layout;
pub mod maps_text;
pub mod mman;
pub mod ops;
pub mod params;
pub mod space;
pub mod stack;
pub mod vma;
pub mod vma_tree;
pub mod vmflags;

mod brk;
mod fork;
pub use fork::fork_copies_pages;
mod madvise;
mod mmap;
mod mprotect;
pub mod mremap;
mod munmap;

pub use errno::Errno;
pub use file::OpenFile;
pub use layout::ImportHints;
pub use ops::{NoPageOps, PageOps};
pub use params::{Arch, KernelVersion, LayoutParams, ThpMode};
pub use space::AddressSpace;
