//! `/proc/PID/maps` and `/proc/PID/smaps` text, byte-identical to the kernel's
//! (`show_map_vma`, `show_vma_header_prefix`, `show_smap`, `__show_smap`,
//! `show_smap_vma_flags` in fs/proc/task_mmu.c; spec §10, §12, §18.6), and a parser for
//! that text.
//!
//! Rendering goes through [`core::fmt::Write`]. Parsing works on a `&str` line by line,
//! without allocating: [`MapsParser`] and [`SmapsParser`] stream entries, and
//! [`import_maps`] / [`import_smaps`] load a whole listing into a [`VmaTree`] atomically
//! (on any error, nothing is imported and the error names the 1-based line).
//!
//! The parser accepts what the kernel prints and, in addition, any run of spaces between
//! the inode and the name and a missing trailing space on unnamed lines (text that lost
//! its padding in transit); rendering always restores the kernel's padding.

use core::fmt::{self, Write};

use arrayvec::ArrayString;

use super::vma::{vma_name, DevId, Vma, VmaError, VmaKind};
use super::vma_tree::VmaTree;
use super::vmflags::{MnemonicTable, VmFlags, VmFlagsError};

mod import;
mod parse;
mod render;

pub use import::{import_maps, import_smaps};
pub use parse::{parse_maps_line, MapsParser, ParseError, ParseErrorKind, SmapsParser};
pub use render::{render_maps, render_smaps, write_maps_line, write_smaps_entry};

/// Column (0-based) before which maps pads named lines: `25 + 6 * sizeof(void *) - 1`.
pub const MAPS_NAME_PAD: usize = 72;

/// Kernel-dependent details of the maps and smaps text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapsFormat {
    /// `PAGE_SHIFT` (file offsets are `vm_pgoff << PAGE_SHIFT`; `KernelPageSize`).
    pub page_shift: u32,
    /// Mnemonic table of the `VmFlags:` line.
    pub mnemonics: MnemonicTable,
    /// smaps has a `KSM:` line after `Anonymous:` (6.12 and 6.18; not 6.1).
    pub smaps_ksm_line: bool,
    /// `THPeligible:` value right-aligned in 8 columns (6.12, 6.18) instead of bare (6.1).
    pub smaps_thp_eligible_padded: bool,
    /// smaps has a `ProtectionKey:` line (x86 with PKU, arm64 with POE).
    pub smaps_protection_key: bool,
}

impl MapsFormat {
    /// x86_64, Linux 6.18, 4 KiB pages, no PKU (the spec's test machine).
    pub const X86_64_6_18: MapsFormat = MapsFormat {
        page_shift: 12,
        mnemonics: MnemonicTable::X86_64,
        smaps_ksm_line: true,
        smaps_thp_eligible_padded: true,
        smaps_protection_key: false,
    };
    /// arm64, Linux 6.1 (Debian), 4 KiB pages.
    pub const ARM64_6_1: MapsFormat = MapsFormat {
        page_shift: 12,
        mnemonics: MnemonicTable::Arm64,
        smaps_ksm_line: false,
        smaps_thp_eligible_padded: false,
        smaps_protection_key: false,
    };
    /// arm64, Linux 6.12 (Debian), 4 KiB pages.
    pub const ARM64_6_12: MapsFormat = MapsFormat {
        page_shift: 12,
        mnemonics: MnemonicTable::Arm64,
        smaps_ksm_line: true,
        smaps_thp_eligible_padded: true,
        smaps_protection_key: false,
    };
    /// arm64, Linux 6.12 (Debian), 16 KiB pages.
    pub const ARM64_6_12_16K: MapsFormat = MapsFormat {
        page_shift: 14,
        ..MapsFormat::ARM64_6_12
    };

    fn page_size(&self) -> Option<u64> {
        1u64.checked_shl(self.page_shift)
    }
}

/// The residency numbers of one smaps entry, in kB, as the caller computed them.
///
/// `Size`, `KernelPageSize` and `MMUPageSize` come from the VMA and the [`MapsFormat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SmapsCounters {
    /// `Rss:`.
    pub rss: u64,
    /// `Pss:`.
    pub pss: u64,
    /// `Pss_Dirty:`.
    pub pss_dirty: u64,
    /// `Shared_Clean:`.
    pub shared_clean: u64,
    /// `Shared_Dirty:`.
    pub shared_dirty: u64,
    /// `Private_Clean:`.
    pub private_clean: u64,
    /// `Private_Dirty:`.
    pub private_dirty: u64,
    /// `Referenced:`.
    pub referenced: u64,
    /// `Anonymous:`.
    pub anonymous: u64,
    /// `KSM:` (printed only with [`MapsFormat::smaps_ksm_line`]).
    pub ksm: u64,
    /// `LazyFree:`.
    pub lazy_free: u64,
    /// `AnonHugePages:`.
    pub anon_huge_pages: u64,
    /// `ShmemPmdMapped:`.
    pub shmem_pmd_mapped: u64,
    /// `FilePmdMapped:`.
    pub file_pmd_mapped: u64,
    /// `Shared_Hugetlb:`.
    pub shared_hugetlb: u64,
    /// `Private_Hugetlb:`.
    pub private_hugetlb: u64,
    /// `Swap:`.
    pub swap: u64,
    /// `SwapPss:`.
    pub swap_pss: u64,
    /// `Locked:`.
    pub locked: u64,
    /// `THPeligible:` (printed as 0 or 1).
    pub thp_eligible: bool,
    /// `ProtectionKey:` (printed only with [`MapsFormat::smaps_protection_key`]).
    pub protection_key: u32,
}

/// One parsed smaps entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmapsEntry {
    /// The VMA, with every flag that `VmFlags:` shows (hidden flags are absent).
    pub vma: Vma,
    /// The residency numbers.
    pub counters: SmapsCounters,
}

#[cfg(test)]
mod tests;
