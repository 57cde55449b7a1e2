//! Pure-data model of the Linux kernel's anonymous-memory bookkeeping.
//!
//! * [`vmflags`]: `vm_flags` bits and the smaps `VmFlags:` mnemonics.
//! * [`vma`]: one virtual memory area and the kernel's mergeability predicate.
//! * [`vma_tree`]: bounded, allocation-free VMA storage with gap search.
//! * [`maps_text`]: byte-exact `/proc/PID/maps` and `/proc/PID/smaps` text, both ways.

pub mod maps_text;
pub mod mm;
pub mod paging;
pub mod process;
pub mod vma;
pub mod vma_tree;
pub mod vmflags;
