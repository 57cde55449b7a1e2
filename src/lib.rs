//! pagesim: an exact software model of the AArch64 stage-1 MMU (VMSAv8-64) and of the
//! Linux kernel's memory management (anonymous and file memory, exec, mremap, fork).
//!
//! The core is `#![no_std]` without `alloc`: embed the walker, TLB and mapper in an
//! emulator with no heap. The `std` feature adds heap conveniences (sparse memory, process
//! storage, maps/smaps import, the call-script language); the `cli` feature (on by default)
//! builds the `pagesim` command-line tool, which is not library API.
//!
//! The layers, bottom up: [`addr`] and [`phys`] (addresses, physical memory), [`arch`] (the
//! architecture: regime, descriptors, walk, faults), [`mmu`] (frames, mapper, TLB, the
//! [`mmu::Mmu`] facade), then [`linux`]: its VMA layer [`linux::mm`] and, joined to the MMU,
//! [`linux::paging`], [`linux::process`] and [`linux::system`] (several processes: fork,
//! vfork, exit). A layer imports only those below it.
//!
//! Ranges: calls that mirror a syscall or the mapper's API take a start and a length
//! (`mmap(addr, len, ..)`, `Mapper::map(.., va, pa, len, ..)`); ranges handed between layers
//! (`PageOps`, `Paging::zap`, `Paging::residency`) are half-open `[start, end)`.
//!
//! ```
//! use pagesim::arch::{walk, Access, Cpu, El, Regime, Registers};
//! use pagesim::phys::{PhysMemory, SliceMemory};
//! use pagesim::{PhysAddr, VirtAddr};
//!
//! // 64 KiB of RAM at 0x4000_0000 holding a 4 KiB-granule, 48-bit VA table tree.
//! let mut ram = vec![0u8; 0x10000];
//! let mut mem = SliceMemory::new(PhysAddr::new(0x4000_0000), &mut ram);
//! mem.write_u64(PhysAddr::new(0x4000_0000), 0x4000_1003)?; // L0[0] -> table
//! mem.write_u64(PhysAddr::new(0x4000_1000), 0x4000_2003)?; // L1[0] -> table
//! mem.write_u64(PhysAddr::new(0x4000_2000), 0x4000_3003)?; // L2[0] -> table
//! mem.write_u64(PhysAddr::new(0x4000_3008), 0x8800_1743)?; // L3[1]: page, AP=01, AF
//!
//! let regs = Registers {
//!     tcr: 0x5_8010_0010, // T0SZ=T1SZ=16, 4K granules, IPS=48 bits
//!     sctlr: 1,           // MMU on
//!     ttbr0: 0x4000_0000,
//!     ttbr1: 0,
//!     mair: 0xff,
//! };
//! let regime = Regime::try_new(regs, Cpu::MAX)?;
//! let t = walk(&regime, &mut mem, VirtAddr::new(0x1abc), Access::read(El::El0)).unwrap();
//! assert_eq!(t.pa, PhysAddr::new(0x8800_1abc));
//!
//! // The same page is not executable at EL1: EL0 can write it.
//! let f = walk(&regime, &mut mem, VirtAddr::new(0x1000), Access::fetch(El::El1)).unwrap_err();
//! assert_eq!(f.esr(), 0x8600_000f);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod arch;
pub mod linux;
pub mod mmu;
pub mod phys;

#[cfg(feature = "proptest")]
pub mod strategies;

pub use addr::{PhysAddr, VirtAddr};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
