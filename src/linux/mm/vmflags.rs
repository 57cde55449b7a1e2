//! `vm_flags` of a VMA (`include/linux/mm.h`) and the smaps `VmFlags:` mnemonics
//! (`show_smap_vma_flags`, `fs/proc/task_mmu.c`).
//!
//! Bit positions are the kernel's. Bits 0–31 are identical on every 6.x kernel; the
//! architecture-specific high bits follow the 6.18 layout for arm64 (`VM_MTE` at bit 36,
//! `VM_MTE_ALLOWED` at 37, the GCS `VM_SHADOW_STACK` at 38). The smaps line lists the
//! mnemonics in ascending bit order, so only the relative order of the high bits matters
//! for byte-exact output, and that order (`mt` before `ss`, `dp`, `ui`, `sl`) is the same
//! for 6.1, 6.12 and 6.18 whenever those flags exist.

use core::fmt;

bitflags::bitflags! {
    /// The kernel's `vm_flags_t`: protection, `MAY*` limits and behaviour bits of a VMA.
    ///
    /// Unknown bits are kept (`from_bits_retain`) and render as `??` in smaps, like the
    /// kernel does for a set bit without a mnemonic.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub struct VmFlags: u64 {
        /// `VM_READ` (`rd`): readable.
        const VM_READ = 1 << 0;
        /// `VM_WRITE` (`wr`): writable.
        const VM_WRITE = 1 << 1;
        /// `VM_EXEC` (`ex`): executable.
        const VM_EXEC = 1 << 2;
        /// `VM_SHARED` (`sh`): shared and writable-shared.
        const VM_SHARED = 1 << 3;
        /// `VM_MAYREAD` (`mr`): `mprotect` may add `VM_READ`.
        const VM_MAYREAD = 1 << 4;
        /// `VM_MAYWRITE` (`mw`): `mprotect` may add `VM_WRITE`.
        const VM_MAYWRITE = 1 << 5;
        /// `VM_MAYEXEC` (`me`): `mprotect` may add `VM_EXEC`.
        const VM_MAYEXEC = 1 << 6;
        /// `VM_MAYSHARE` (`ms`): a shared mapping (`s` in the maps permissions).
        const VM_MAYSHARE = 1 << 7;
        /// `VM_GROWSDOWN` (`gd`): a stack that grows down on faults below it.
        const VM_GROWSDOWN = 1 << 8;
        /// `VM_UFFD_MISSING` (`um`): userfaultfd missing-page tracking.
        const VM_UFFD_MISSING = 1 << 9;
        /// `VM_PFNMAP` (`pf`): pages without `struct page` (part of `VM_SPECIAL`).
        const VM_PFNMAP = 1 << 10;
        /// `VM_MAYBE_GUARD` (`gu`, 6.18): guard markers may be installed; sticky on merge.
        const VM_MAYBE_GUARD = 1 << 11;
        /// `VM_UFFD_WP` (`uw`): userfaultfd write-protect tracking.
        const VM_UFFD_WP = 1 << 12;
        /// `VM_LOCKED` (`lo`): `mlock`ed.
        const VM_LOCKED = 1 << 13;
        /// `VM_IO` (`io`): memory-mapped I/O (part of `VM_SPECIAL`).
        const VM_IO = 1 << 14;
        /// `VM_SEQ_READ` (`sr`): `MADV_SEQUENTIAL`.
        const VM_SEQ_READ = 1 << 15;
        /// `VM_RAND_READ` (`rr`): `MADV_RANDOM`.
        const VM_RAND_READ = 1 << 16;
        /// `VM_DONTCOPY` (`dc`): `MADV_DONTFORK`.
        const VM_DONTCOPY = 1 << 17;
        /// `VM_DONTEXPAND` (`de`): cannot be expanded by `mremap` (part of `VM_SPECIAL`).
        const VM_DONTEXPAND = 1 << 18;
        /// `VM_LOCKONFAULT` (`lf`): `mlock2(MLOCK_ONFAULT)`.
        const VM_LOCKONFAULT = 1 << 19;
        /// `VM_ACCOUNT` (`ac`): charged to the overcommit accounting.
        const VM_ACCOUNT = 1 << 20;
        /// `VM_NORESERVE` (`nr`): `MAP_NORESERVE`, not accounted.
        const VM_NORESERVE = 1 << 21;
        /// `VM_HUGETLB` (`ht`): hugetlbfs mapping.
        const VM_HUGETLB = 1 << 22;
        /// `VM_SYNC` (`sf`): synchronous page faults (`MAP_SYNC`).
        const VM_SYNC = 1 << 23;
        /// `VM_ARCH_1`: arm64 `VM_ARM64_BTI` (`bt`); `ar` on x86.
        const VM_ARCH_1 = 1 << 24;
        /// `VM_WIPEONFORK` (`wf`): `MADV_WIPEONFORK`.
        const VM_WIPEONFORK = 1 << 25;
        /// `VM_DONTDUMP` (`dd`): `MADV_DONTDUMP`.
        const VM_DONTDUMP = 1 << 26;
        /// `VM_SOFTDIRTY` (`sd`): soft-dirty tracking (only with `CONFIG_MEM_SOFT_DIRTY`); sticky.
        const VM_SOFTDIRTY = 1 << 27;
        /// `VM_MIXEDMAP` (`mm`): mixed page/PFN mapping (part of `VM_SPECIAL`).
        const VM_MIXEDMAP = 1 << 28;
        /// `VM_HUGEPAGE` (`hg`): `MADV_HUGEPAGE`.
        const VM_HUGEPAGE = 1 << 29;
        /// `VM_NOHUGEPAGE` (`nh`): `MADV_NOHUGEPAGE` (also `MAP_STACK` from 6.7).
        const VM_NOHUGEPAGE = 1 << 30;
        /// `VM_MERGEABLE` (`mg`): KSM candidate (`MADV_MERGEABLE`).
        const VM_MERGEABLE = 1 << 31;
        /// `VM_PKEY_BIT0` (no mnemonic; shown through `ProtectionKey:`).
        const VM_PKEY_BIT0 = 1 << 32;
        /// `VM_PKEY_BIT1` (no mnemonic).
        const VM_PKEY_BIT1 = 1 << 33;
        /// `VM_PKEY_BIT2` (no mnemonic).
        const VM_PKEY_BIT2 = 1 << 34;
        /// `VM_PKEY_BIT3` (no mnemonic; x86 only).
        const VM_PKEY_BIT3 = 1 << 35;
        /// `VM_MTE` (`mt`, arm64): MTE tag checking enabled (`PROT_MTE`).
        const VM_MTE = 1 << 36;
        /// `VM_MTE_ALLOWED` (no mnemonic, arm64): tagged memory permitted; hidden but merge-relevant.
        const VM_MTE_ALLOWED = 1 << 37;
        /// `VM_SHADOW_STACK` (`ss`): arm64 GCS / x86 shadow stack.
        const VM_SHADOW_STACK = 1 << 38;
        /// `VM_ALLOW_ANY_UNCACHED` (no mnemonic table entry, prints `??`).
        const VM_ALLOW_ANY_UNCACHED = 1 << 39;
        /// `VM_DROPPABLE` (`dp`): `MAP_DROPPABLE`.
        const VM_DROPPABLE = 1 << 40;
        /// `VM_UFFD_MINOR` (`ui`): userfaultfd minor faults.
        const VM_UFFD_MINOR = 1 << 41;
        /// `VM_SEALED` (`sl`): `mseal`ed.
        const VM_SEALED = 1 << 42;
    }
}

impl VmFlags {
    /// `VM_ARM64_BTI` (`bt`): BTI-guarded pages, an alias of [`VmFlags::VM_ARCH_1`].
    pub const VM_ARM64_BTI: VmFlags = VmFlags::VM_ARCH_1;
    /// `VM_SPECIAL`: flags of mappings that never merge, split specially or expand.
    pub const VM_SPECIAL: VmFlags = VmFlags::VM_IO
        .union(VmFlags::VM_DONTEXPAND)
        .union(VmFlags::VM_PFNMAP)
        .union(VmFlags::VM_MIXEDMAP);
    /// `VM_STICKY`: flags ignored by the merge comparison and OR-ed into the merged VMA.
    pub const VM_STICKY: VmFlags = VmFlags::VM_SOFTDIRTY.union(VmFlags::VM_MAYBE_GUARD);
    /// `VM_STARTGAP_FLAGS`: flags that keep a guard gap below the VMA (`vm_start_gap`).
    pub const VM_STARTGAP_FLAGS: VmFlags = VmFlags::VM_GROWSDOWN.union(VmFlags::VM_SHADOW_STACK);
    /// `VM_DATA_DEFAULT_FLAGS` without exec: `rd wr mr mw me` (a private RW mapping before accounting).
    pub const VM_DATA_FLAGS_NON_EXEC: VmFlags = VmFlags::VM_READ
        .union(VmFlags::VM_WRITE)
        .union(VmFlags::VM_MAYREAD)
        .union(VmFlags::VM_MAYWRITE)
        .union(VmFlags::VM_MAYEXEC);

    /// Returns the four maps permission characters (`rwxp`, `r--s`, ...).
    pub const fn perms(self) -> [u8; 4] {
        [
            if self.contains(VmFlags::VM_READ) {
                b'r'
            } else {
                b'-'
            },
            if self.contains(VmFlags::VM_WRITE) {
                b'w'
            } else {
                b'-'
            },
            if self.contains(VmFlags::VM_EXEC) {
                b'x'
            } else {
                b'-'
            },
            if self.contains(VmFlags::VM_MAYSHARE) {
                b's'
            } else {
                b'p'
            },
        ]
    }

    /// Returns whether `self` and `other` are equal once the sticky flags are ignored
    /// (`vm_flags` rule of `is_mergeable_vma`).
    pub const fn eq_ignoring_sticky(self, other: VmFlags) -> bool {
        (self.bits() ^ other.bits()) & !VmFlags::VM_STICKY.bits() == 0
    }

    /// Writes the smaps mnemonics of the set bits in ascending bit order, each followed by
    /// one space, exactly as after `VmFlags: ` in `/proc/PID/smaps`.
    ///
    /// # Errors
    ///
    /// Returns the writer's error.
    pub fn write_mnemonics<W: fmt::Write>(self, w: &mut W, table: MnemonicTable) -> fmt::Result {
        for m in self.mnemonics(table) {
            w.write_str(m)?;
            w.write_char(' ')?;
        }
        Ok(())
    }

    /// Returns an iterator over the mnemonics of the set bits in the kernel's order.
    ///
    /// Hidden bits (empty mnemonic, such as `VM_MTE_ALLOWED`) are skipped; set bits without
    /// a table entry yield `??`.
    pub fn mnemonics(self, table: MnemonicTable) -> Mnemonics {
        Mnemonics {
            bits: self.bits(),
            next: 0,
            table,
        }
    }

    /// Parses the text after `VmFlags:` (mnemonics separated by ASCII whitespace).
    ///
    /// # Errors
    ///
    /// Returns [`VmFlagsError::UnknownMnemonic`] for a token that is not in `table`
    /// (including `??`, which names no bit).
    pub fn parse_mnemonics(text: &str, table: MnemonicTable) -> Result<VmFlags, VmFlagsError> {
        let mut flags = VmFlags::empty();
        for (index, token) in text.split_ascii_whitespace().enumerate() {
            match bit_of_mnemonic(token, table) {
                Some(bit) => flags |= VmFlags::from_bits_retain(1u64 << bit),
                None => return Err(VmFlagsError::UnknownMnemonic { index }),
            }
        }
        Ok(flags)
    }
}

/// Which architecture's mnemonic table renders `VmFlags:` (they differ in a few arch bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MnemonicTable {
    /// arm64: bit 24 is `bt`, `VM_MTE` is `mt`, `VM_MTE_ALLOWED` and the POE pkey bits are hidden.
    #[default]
    Arm64,
    /// x86_64: bit 24 is `ar`, the pkey bits are hidden, no MTE.
    X86_64,
}

/// Returns the smaps mnemonic of bit `bit` (0–63): `""` for a hidden bit, `"??"` for a bit
/// the kernel's table leaves unnamed.
pub const fn mnemonic(bit: u32, table: MnemonicTable) -> &'static str {
    let arm = matches!(table, MnemonicTable::Arm64);
    match bit {
        0 => "rd",
        1 => "wr",
        2 => "ex",
        3 => "sh",
        4 => "mr",
        5 => "mw",
        6 => "me",
        7 => "ms",
        8 => "gd",
        9 => "um",
        10 => "pf",
        11 => "gu",
        12 => "uw",
        13 => "lo",
        14 => "io",
        15 => "sr",
        16 => "rr",
        17 => "dc",
        18 => "de",
        19 => "lf",
        20 => "ac",
        21 => "nr",
        22 => "ht",
        23 => "sf",
        24 => {
            if arm {
                "bt"
            } else {
                "ar"
            }
        }
        25 => "wf",
        26 => "dd",
        27 => "sd",
        28 => "mm",
        29 => "hg",
        30 => "nh",
        31 => "mg",
        32..=35 => "",
        36 => {
            if arm {
                "mt"
            } else {
                ""
            }
        }
        37 => "",
        38 => "ss",
        40 => "dp",
        41 => "ui",
        42 => "sl",
        _ => "??",
    }
}

/// Returns the bit whose mnemonic is `token`, if any.
pub fn bit_of_mnemonic(token: &str, table: MnemonicTable) -> Option<u32> {
    if token.len() != 2 || token == "??" {
        return None;
    }
    (0..64u32).find(|&bit| mnemonic(bit, table) == token)
}

/// Iterator over the mnemonics of a [`VmFlags`] value, see [`VmFlags::mnemonics`].
#[derive(Clone, Debug)]
pub struct Mnemonics {
    bits: u64,
    next: u32,
    table: MnemonicTable,
}

impl Iterator for Mnemonics {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        while self.next < 64 {
            let bit = self.next;
            self.next += 1;
            if self.bits & (1u64 << bit) != 0 {
                let m = mnemonic(bit, self.table);
                if !m.is_empty() {
                    return Some(m);
                }
            }
        }
        None
    }
}

/// Error from [`VmFlags::parse_mnemonics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFlagsError {
    /// The token at 0-based position `index` is not a mnemonic of the table.
    UnknownMnemonic {
        /// 0-based index of the offending token.
        index: usize,
    },
}

impl core::error::Error for VmFlagsError {}

impl fmt::Display for VmFlagsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmFlagsError::UnknownMnemonic { index } => {
                write!(f, "VmFlags token #{} is not a known mnemonic", index + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn render(f: VmFlags, t: MnemonicTable) -> String {
        let mut s = String::new();
        f.write_mnemonics(&mut s, t).unwrap();
        s
    }

    #[test]
    fn observed_strings_round_trip() {
        // §12 and §18.6 observations, each with the kernel's trailing space.
        let observed = [
            "rd wr mr mw me ac ",
            "rd wr mr mw me gd ac ",
            "rd wr mr mw me lo ac ",
            "rd wr mr mw me dc ac ",
            "rd wr mr mw me gu ac ",
            "rd wr mr mw me rr ac nh ",
            "rd wr mr mw me ac wf ",
            "rd wr mr mw me ac dd ",
            "rd wr mr mw me ac hg ",
            "rd wr mr mw me nr wf dd dp ",
            "rd mr mw me ",
            "rd mr mw me ac ",
            "mr mw me ",
            "wr mr mw me ac ",
            "ex mr mw me ",
            "rd wr ex mr mw me ac ",
            "rd wr mr mw me nr ",
            "rd ex mr mw me bt ",
            "rd wr mr mw me ac mt ",
            "rd mr pf de ",
            "rd ex mr mw me de ",
            "",
        ];
        for s in observed {
            let f = VmFlags::parse_mnemonics(s, MnemonicTable::Arm64).unwrap();
            assert_eq!(render(f, MnemonicTable::Arm64), s);
        }
    }

    #[test]
    fn kernel_bit_values() {
        assert_eq!(VmFlags::VM_GROWSDOWN.bits(), 0x100);
        assert_eq!(VmFlags::VM_ACCOUNT.bits(), 0x0010_0000);
        assert_eq!(VmFlags::VM_NORESERVE.bits(), 0x0020_0000);
        assert_eq!(VmFlags::VM_SOFTDIRTY.bits(), 0x0800_0000);
        assert_eq!(VmFlags::VM_HUGEPAGE.bits(), 0x2000_0000);
        assert_eq!(VmFlags::VM_NOHUGEPAGE.bits(), 0x4000_0000);
        assert_eq!(VmFlags::VM_MERGEABLE.bits(), 0x8000_0000);
        assert_eq!(VmFlags::VM_MAYBE_GUARD.bits(), 0x800);
    }

    #[test]
    fn hidden_and_unknown_bits() {
        let f = VmFlags::VM_READ | VmFlags::VM_MTE_ALLOWED | VmFlags::VM_PKEY_BIT0;
        assert_eq!(render(f, MnemonicTable::Arm64), "rd ");
        let f = VmFlags::from_bits_retain(1 << 63) | VmFlags::VM_ALLOW_ANY_UNCACHED;
        assert_eq!(render(f, MnemonicTable::Arm64), "?? ?? ");
        assert_eq!(render(VmFlags::VM_ARCH_1, MnemonicTable::X86_64), "ar ");
        assert_eq!(render(VmFlags::VM_MTE, MnemonicTable::X86_64), "");
        assert_eq!(
            VmFlags::parse_mnemonics("rd ?? wr", MnemonicTable::Arm64),
            Err(VmFlagsError::UnknownMnemonic { index: 1 })
        );
        assert!(VmFlags::parse_mnemonics("rdx", MnemonicTable::Arm64).is_err());
        assert!(VmFlags::parse_mnemonics("mt", MnemonicTable::X86_64).is_err());
    }

    #[test]
    fn perms_and_sticky() {
        assert_eq!(&VmFlags::VM_WRITE.perms(), b"-w-p");
        assert_eq!(&(VmFlags::VM_READ | VmFlags::VM_MAYSHARE).perms(), b"r--s");
        let a = VmFlags::VM_DATA_FLAGS_NON_EXEC;
        assert!(a.eq_ignoring_sticky(a | VmFlags::VM_MAYBE_GUARD | VmFlags::VM_SOFTDIRTY));
        assert!(!a.eq_ignoring_sticky(a | VmFlags::VM_ACCOUNT));
    }
}
