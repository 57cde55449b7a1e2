//! The Linux kernel's memory management, in two layers.
//!
//! * [`mm`], the **VMA layer**, needs no MMU: `vm_flags`, VMAs and their tree, the
//!   address space and its calls (`mmap`, `munmap`, `mprotect`, `madvise`, `brk`) with the
//!   kernel's placement, merge and errno rules, and byte-exact `/proc/PID/maps` and `smaps`
//!   text both ways. It tells the layer below what changed through [`mm::PageOps`].
//! * [`paging`] and [`process`], the **paging layer**, join it to the simulated AArch64
//!   MMU: demand paging through real translation tables (zero page, copy-on-write, THP as
//!   level-2 blocks, SIGSEGV), residency for smaps and mincore, and a [`process::Process`]
//!   that keeps VMAs and tables in step; [`system::System`] runs several processes on
//!   one machine (fork with copy-on-write, vfork, exec over a live process, exit).
//!
//! Nothing in [`mm`] imports [`paging`] or [`process`].
//!
//! With `std`: [`storage`] owns a process's storage on the heap and builds it (fresh, or
//! imported from captured maps/smaps text), [`host_files`] maps the host's files, and
//! [`script`] is the call language of
//! `pagesim run` (parse, run, print like strace), which property tests and fuzz targets
//! use too.

pub mod exec;
#[cfg(feature = "std")]
pub mod host_files;
pub mod mm;
pub mod paging;
pub mod process;
#[cfg(feature = "std")]
pub mod script;
#[cfg(feature = "std")]
pub mod storage;
pub mod system;
