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

// ----- rendering ---------------------------------------------------------------------

/// Writes the maps line of `vma`, newline included.
///
/// # Errors
///
/// Returns the writer's error.
pub fn write_maps_line<W: Write>(w: &mut W, vma: &Vma, fmt: &MapsFormat) -> fmt::Result {
    // Longest header: 16+1+16+1+4+1+16+1+8+1+8+1+20+1 = 95 bytes.
    let mut head = ArrayString::<128>::new();
    let p = vma.vm_flags.perms();
    let offset = match vma.kind {
        VmaKind::File { .. } => vma.vm_pgoff.checked_shl(fmt.page_shift).unwrap_or(0),
        _ => 0,
    };
    let dev = vma.kind.dev();
    write!(
        head,
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        vma.vm_start,
        vma.vm_end,
        p[0] as char,
        p[1] as char,
        p[2] as char,
        p[3] as char,
        offset,
        dev.major,
        dev.minor,
        vma.kind.ino()
    )?;
    w.write_str(&head)?;
    if vma.kind.has_name() {
        for _ in head.len()..MAPS_NAME_PAD {
            w.write_char(' ')?;
        }
        w.write_char(' ')?;
        vma.kind.write_name(w)?;
    }
    w.write_char('\n')
}

/// Writes `/proc/PID/maps` for `vmas` (in the order given: ascending, with the x86
/// `[vsyscall]` gate VMA last).
///
/// # Errors
///
/// Returns the writer's error.
pub fn render_maps<'v, W: Write, I: IntoIterator<Item = &'v Vma>>(
    w: &mut W,
    vmas: I,
    fmt: &MapsFormat,
) -> fmt::Result {
    for v in vmas {
        write_maps_line(w, v, fmt)?;
    }
    Ok(())
}

fn kb_line<W: Write>(w: &mut W, label: &str, kb: u64) -> fmt::Result {
    writeln!(w, "{label}{kb:>8} kB")
}

/// Writes one smaps entry: the maps line, the counters in the kernel's order, and
/// `VmFlags:`.
///
/// # Errors
///
/// Returns the writer's error.
pub fn write_smaps_entry<W: Write>(
    w: &mut W,
    vma: &Vma,
    c: &SmapsCounters,
    fmt: &MapsFormat,
) -> fmt::Result {
    write_maps_line(w, vma, fmt)?;
    let page_kb = fmt.page_size().unwrap_or(0) >> 10;
    kb_line(w, "Size:           ", vma.size() >> 10)?;
    kb_line(w, "KernelPageSize: ", page_kb)?;
    kb_line(w, "MMUPageSize:    ", page_kb)?;
    kb_line(w, "Rss:            ", c.rss)?;
    kb_line(w, "Pss:            ", c.pss)?;
    kb_line(w, "Pss_Dirty:      ", c.pss_dirty)?;
    kb_line(w, "Shared_Clean:   ", c.shared_clean)?;
    kb_line(w, "Shared_Dirty:   ", c.shared_dirty)?;
    kb_line(w, "Private_Clean:  ", c.private_clean)?;
    kb_line(w, "Private_Dirty:  ", c.private_dirty)?;
    kb_line(w, "Referenced:     ", c.referenced)?;
    kb_line(w, "Anonymous:      ", c.anonymous)?;
    if fmt.smaps_ksm_line {
        kb_line(w, "KSM:            ", c.ksm)?;
    }
    kb_line(w, "LazyFree:       ", c.lazy_free)?;
    kb_line(w, "AnonHugePages:  ", c.anon_huge_pages)?;
    kb_line(w, "ShmemPmdMapped: ", c.shmem_pmd_mapped)?;
    kb_line(w, "FilePmdMapped:  ", c.file_pmd_mapped)?;
    kb_line(w, "Shared_Hugetlb: ", c.shared_hugetlb)?;
    // The kernel prints this label one character longer and the value 7 wide.
    writeln!(w, "Private_Hugetlb: {:>7} kB", c.private_hugetlb)?;
    kb_line(w, "Swap:           ", c.swap)?;
    kb_line(w, "SwapPss:        ", c.swap_pss)?;
    kb_line(w, "Locked:         ", c.locked)?;
    let thp = u8::from(c.thp_eligible);
    if fmt.smaps_thp_eligible_padded {
        writeln!(w, "THPeligible:    {thp:>8}")?;
    } else {
        writeln!(w, "THPeligible:    {thp}")?;
    }
    if fmt.smaps_protection_key {
        writeln!(w, "ProtectionKey:  {:>8}", c.protection_key)?;
    }
    w.write_str("VmFlags: ")?;
    vma.vm_flags.write_mnemonics(w, fmt.mnemonics)?;
    w.write_char('\n')
}

/// Writes `/proc/PID/smaps` for `entries` in the order given.
///
/// # Errors
///
/// Returns the writer's error.
pub fn render_smaps<'v, W: Write, I: IntoIterator<Item = (&'v Vma, SmapsCounters)>>(
    w: &mut W,
    entries: I,
    fmt: &MapsFormat,
) -> fmt::Result {
    for (v, c) in entries {
        write_smaps_entry(w, v, &c, fmt)?;
    }
    Ok(())
}

// ----- parse errors -----------------------------------------------------------------

/// What is wrong with a line of maps or smaps text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The `start-end` field is not two hex numbers.
    BadRange,
    /// `start >= end`, or the bounds are not page aligned.
    BadBounds,
    /// The permissions are not `[r-][w-][x-][sp]`.
    BadPerms,
    /// The offset is not a hex number, or not page aligned for a file VMA.
    BadOffset,
    /// The device is not `hex:hex`.
    BadDev,
    /// The inode is not a decimal number.
    BadInode,
    /// The name cannot be stored.
    BadName(VmaError),
    /// An unnamed line has a device, inode or offset, which only file VMAs have.
    UnnamedBacked,
    /// The line is empty.
    EmptyLine,
    /// The VMA starts below the end of the previous one (or of one already in the tree).
    Overlap,
    /// An smaps line other than the expected one (`expected` names the label).
    MissingField {
        /// The label expected on this line, e.g. `"Rss:"`.
        expected: &'static str,
    },
    /// The value of an smaps field is not what the kernel prints.
    BadValue {
        /// The field's label.
        field: &'static str,
    },
    /// `Size`, `KernelPageSize` or `MMUPageSize` disagrees with the VMA or the format.
    Inconsistent {
        /// The field's label.
        field: &'static str,
    },
    /// The `VmFlags:` line has an unknown mnemonic.
    BadVmFlags(VmFlagsError),
    /// `VmFlags:` disagrees with the permissions of the entry's first line.
    PermsMismatch,
    /// The text ends in the middle of an smaps entry.
    UnexpectedEnd,
    /// More VMAs than the tree has free slots.
    TooManyVmas,
    /// The format's page shift is unusable (>= 64).
    BadFormat,
}

/// A parse error at a 1-based line number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number of the offending line.
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match self.kind {
            ParseErrorKind::BadRange => f.write_str("malformed address range"),
            ParseErrorKind::BadBounds => f.write_str("empty or unaligned address range"),
            ParseErrorKind::BadPerms => f.write_str("malformed permissions"),
            ParseErrorKind::BadOffset => f.write_str("malformed or unaligned offset"),
            ParseErrorKind::BadDev => f.write_str("malformed device"),
            ParseErrorKind::BadInode => f.write_str("malformed inode"),
            ParseErrorKind::BadName(e) => write!(f, "bad name: {e}"),
            ParseErrorKind::UnnamedBacked => {
                f.write_str("unnamed mapping with a device, inode or offset")
            }
            ParseErrorKind::EmptyLine => f.write_str("empty line"),
            ParseErrorKind::Overlap => f.write_str("VMA overlaps or precedes the previous one"),
            ParseErrorKind::MissingField { expected } => write!(f, "expected `{expected}`"),
            ParseErrorKind::BadValue { field } => write!(f, "malformed value of `{field}`"),
            ParseErrorKind::Inconsistent { field } => {
                write!(f, "`{field}` disagrees with the mapping")
            }
            ParseErrorKind::BadVmFlags(e) => write!(f, "{e}"),
            ParseErrorKind::PermsMismatch => f.write_str("VmFlags disagree with the permissions"),
            ParseErrorKind::UnexpectedEnd => f.write_str("text ends inside an smaps entry"),
            ParseErrorKind::TooManyVmas => f.write_str("more VMAs than free slots"),
            ParseErrorKind::BadFormat => f.write_str("unusable page shift"),
        }
    }
}

// ----- line parsing -----------------------------------------------------------------

/// Numbered lines of a text; a final newline does not start another line.
#[derive(Clone, Debug)]
struct Lines<'t> {
    rest: Option<&'t str>,
    line: usize,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Self {
        Lines {
            rest: (!text.is_empty()).then_some(text),
            line: 0,
        }
    }

    fn next_line(&mut self) -> Option<(usize, &'t str)> {
        let text = self.rest?;
        let (l, rest) = match text.find('\n') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, ""),
        };
        self.rest = (!rest.is_empty()).then_some(rest);
        self.line += 1;
        Some((self.line, l))
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn parse_dec(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits off the text up to the next space (exclusive) and the rest after it.
fn field(s: &str) -> (&str, Option<&str>) {
    match s.find(' ') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Parses one maps line (without its newline) into a VMA.
///
/// The flags are those the permissions show (`VM_READ`, `VM_WRITE`, `VM_EXEC`,
/// `VM_MAYSHARE`); anonymous VMAs get `vm_pgoff = vm_start >> page_shift`, special
/// mappings 0, file VMAs `offset >> page_shift`.
///
/// # Errors
///
/// Returns the [`ParseErrorKind`] of the first malformed field.
pub fn parse_maps_line(line: &str, fmt: &MapsFormat) -> Result<Vma, ParseErrorKind> {
    use ParseErrorKind as E;
    let page = fmt.page_size().ok_or(E::BadFormat)?;
    if line.is_empty() {
        return Err(E::EmptyLine);
    }
    let (range, rest) = field(line);
    let (s, e) = range.split_once('-').ok_or(E::BadRange)?;
    let start = parse_hex(s).ok_or(E::BadRange)?;
    let end = parse_hex(e).ok_or(E::BadRange)?;
    if start >= end || start % page != 0 || end % page != 0 {
        return Err(E::BadBounds);
    }
    let (perms, rest) = field(rest.ok_or(E::BadPerms)?);
    let pb = perms.as_bytes();
    if pb.len() != 4 {
        return Err(E::BadPerms);
    }
    let mut flags = VmFlags::empty();
    let rwx = [
        (b'r', VmFlags::VM_READ),
        (b'w', VmFlags::VM_WRITE),
        (b'x', VmFlags::VM_EXEC),
    ];
    for (&c, (yes, bit)) in pb.iter().zip(rwx) {
        if c == yes {
            flags |= bit;
        } else if c != b'-' {
            return Err(E::BadPerms);
        }
    }
    match pb[3] {
        b's' => flags |= VmFlags::VM_MAYSHARE,
        b'p' => {}
        _ => return Err(E::BadPerms),
    }
    let (off, rest) = field(rest.ok_or(E::BadOffset)?);
    let offset = parse_hex(off).ok_or(E::BadOffset)?;
    let (dev, rest) = field(rest.ok_or(E::BadDev)?);
    let (maj, min) = dev.split_once(':').ok_or(E::BadDev)?;
    let major = parse_hex(maj)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(E::BadDev)?;
    let minor = parse_hex(min)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(E::BadDev)?;
    let dev = DevId { major, minor };
    let (ino, rest) = field(rest.ok_or(E::BadInode)?);
    let ino = parse_dec(ino).ok_or(E::BadInode)?;
    let name = rest.map_or("", |r| r.trim_start_matches(' '));
    let plain = dev == DevId::default() && ino == 0 && offset == 0;
    let kind = if name.is_empty() {
        if !plain {
            return Err(E::UnnamedBacked);
        }
        VmaKind::Anonymous
    } else if plain && name.starts_with('[') {
        match name {
            "[heap]" => VmaKind::Heap,
            "[stack]" => VmaKind::Stack,
            "[vdso]" => VmaKind::Vdso,
            "[vvar]" => VmaKind::Vvar,
            "[vvar_vclock]" => VmaKind::VvarVclock,
            "[vsyscall]" => VmaKind::Vsyscall,
            _ => match name
                .strip_prefix("[anon:")
                .and_then(|n| n.strip_suffix(']'))
            {
                Some(n) => VmaKind::AnonNamed(vma_name(n).map_err(E::BadName)?),
                None => VmaKind::Special(vma_name(name).map_err(E::BadName)?),
            },
        }
    } else {
        VmaKind::File {
            dev,
            ino,
            path: vma_name(name).map_err(E::BadName)?,
        }
    };
    let vm_pgoff = match kind {
        VmaKind::File { .. } => {
            if offset % page != 0 {
                return Err(E::BadOffset);
            }
            offset >> fmt.page_shift
        }
        ref k if k.is_special() => 0,
        _ => start >> fmt.page_shift,
    };
    Ok(Vma {
        vm_start: start,
        vm_end: end,
        vm_flags: flags,
        vm_pgoff,
        anon_vma: None,
        anon_vma_fork_child: false,
        kind,
    })
}

/// Streaming parser of `/proc/PID/maps` text: yields one VMA per line, stops after the
/// first error.
#[derive(Clone, Debug)]
pub struct MapsParser<'t> {
    lines: Lines<'t>,
    fmt: MapsFormat,
    prev_end: u64,
    done: bool,
}

impl<'t> MapsParser<'t> {
    /// Starts parsing `text`.
    pub fn new(text: &'t str, fmt: &MapsFormat) -> Self {
        MapsParser {
            lines: Lines::new(text),
            fmt: *fmt,
            prev_end: 0,
            done: false,
        }
    }

    /// Returns the number of lines consumed so far.
    pub fn line(&self) -> usize {
        self.lines.line
    }
}

impl Iterator for MapsParser<'_> {
    type Item = Result<Vma, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some((line, text)) = self.lines.next_line() else {
            self.done = true;
            return None;
        };
        let r = parse_maps_line(text, &self.fmt).and_then(|v| {
            if v.vm_start < self.prev_end {
                Err(ParseErrorKind::Overlap)
            } else {
                self.prev_end = v.vm_end;
                Ok(v)
            }
        });
        if r.is_err() {
            self.done = true;
        }
        Some(r.map_err(|kind| ParseError { line, kind }))
    }
}

/// Streaming parser of `/proc/PID/smaps` text: yields one entry per VMA, stops after the
/// first error. The layout must match the [`MapsFormat`] exactly.
#[derive(Clone, Debug)]
pub struct SmapsParser<'t> {
    lines: Lines<'t>,
    fmt: MapsFormat,
    prev_end: u64,
    done: bool,
}

impl<'t> SmapsParser<'t> {
    /// Starts parsing `text`.
    pub fn new(text: &'t str, fmt: &MapsFormat) -> Self {
        SmapsParser {
            lines: Lines::new(text),
            fmt: *fmt,
            prev_end: 0,
            done: false,
        }
    }

    /// Returns the number of lines consumed so far.
    pub fn line(&self) -> usize {
        self.lines.line
    }

    fn field_line(&mut self, label: &'static str) -> Result<(usize, &'t str), ParseError> {
        let line = self.lines.line + 1;
        let (n, text) = self.lines.next_line().ok_or(ParseError {
            line,
            kind: ParseErrorKind::UnexpectedEnd,
        })?;
        let rest = text.strip_prefix(label).ok_or(ParseError {
            line: n,
            kind: ParseErrorKind::MissingField { expected: label },
        })?;
        Ok((n, rest))
    }

    fn kb(&mut self, label: &'static str) -> Result<u64, ParseError> {
        let (n, rest) = self.field_line(label)?;
        rest.trim_start_matches(' ')
            .strip_suffix(" kB")
            .and_then(parse_dec)
            .ok_or(ParseError {
                line: n,
                kind: ParseErrorKind::BadValue { field: label },
            })
    }

    fn plain(&mut self, label: &'static str) -> Result<u64, ParseError> {
        let (n, rest) = self.field_line(label)?;
        parse_dec(rest.trim_start_matches(' ')).ok_or(ParseError {
            line: n,
            kind: ParseErrorKind::BadValue { field: label },
        })
    }

    fn expect_kb(&mut self, label: &'static str, want: u64) -> Result<(), ParseError> {
        let line = self.lines.line + 1;
        if self.kb(label)? != want {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Inconsistent { field: label },
            });
        }
        Ok(())
    }

    fn entry(&mut self, line: usize, text: &str) -> Result<SmapsEntry, ParseError> {
        let err = |kind| ParseError { line, kind };
        let mut vma = parse_maps_line(text, &self.fmt).map_err(err)?;
        if vma.vm_start < self.prev_end {
            return Err(err(ParseErrorKind::Overlap));
        }
        let page_kb = self.fmt.page_size().unwrap_or(0) >> 10;
        self.expect_kb("Size:", vma.size() >> 10)?;
        self.expect_kb("KernelPageSize:", page_kb)?;
        self.expect_kb("MMUPageSize:", page_kb)?;
        let mut c = SmapsCounters {
            rss: self.kb("Rss:")?,
            pss: self.kb("Pss:")?,
            pss_dirty: self.kb("Pss_Dirty:")?,
            shared_clean: self.kb("Shared_Clean:")?,
            shared_dirty: self.kb("Shared_Dirty:")?,
            private_clean: self.kb("Private_Clean:")?,
            private_dirty: self.kb("Private_Dirty:")?,
            referenced: self.kb("Referenced:")?,
            anonymous: self.kb("Anonymous:")?,
            ..SmapsCounters::default()
        };
        if self.fmt.smaps_ksm_line {
            c.ksm = self.kb("KSM:")?;
        }
        c.lazy_free = self.kb("LazyFree:")?;
        c.anon_huge_pages = self.kb("AnonHugePages:")?;
        c.shmem_pmd_mapped = self.kb("ShmemPmdMapped:")?;
        c.file_pmd_mapped = self.kb("FilePmdMapped:")?;
        c.shared_hugetlb = self.kb("Shared_Hugetlb:")?;
        c.private_hugetlb = self.kb("Private_Hugetlb:")?;
        c.swap = self.kb("Swap:")?;
        c.swap_pss = self.kb("SwapPss:")?;
        c.locked = self.kb("Locked:")?;
        let thp_line = self.lines.line + 1;
        c.thp_eligible = match self.plain("THPeligible:")? {
            0 => false,
            1 => true,
            _ => {
                return Err(ParseError {
                    line: thp_line,
                    kind: ParseErrorKind::BadValue {
                        field: "THPeligible:",
                    },
                })
            }
        };
        if self.fmt.smaps_protection_key {
            let pk_line = self.lines.line + 1;
            c.protection_key =
                u32::try_from(self.plain("ProtectionKey:")?).map_err(|_| ParseError {
                    line: pk_line,
                    kind: ParseErrorKind::BadValue {
                        field: "ProtectionKey:",
                    },
                })?;
        }
        let (n, rest) = self.field_line("VmFlags:")?;
        let flags = VmFlags::parse_mnemonics(rest, self.fmt.mnemonics).map_err(|e| ParseError {
            line: n,
            kind: ParseErrorKind::BadVmFlags(e),
        })?;
        if flags.perms() != vma.vm_flags.perms() {
            return Err(ParseError {
                line: n,
                kind: ParseErrorKind::PermsMismatch,
            });
        }
        vma.vm_flags = flags;
        self.prev_end = vma.vm_end;
        Ok(SmapsEntry { vma, counters: c })
    }
}

impl Iterator for SmapsParser<'_> {
    type Item = Result<SmapsEntry, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some((line, text)) = self.lines.next_line() else {
            self.done = true;
            return None;
        };
        let r = self.entry(line, text);
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

// ----- atomic import -----------------------------------------------------------------

/// Validates a stream of `(line, vma)` against the tree: no overlap with VMAs already
/// there and enough free slots. `[vsyscall]` is skipped (it is not in the VMA tree).
fn check_fits<I: Iterator<Item = Result<(usize, Vma), ParseError>>>(
    items: I,
    tree: &VmaTree<'_>,
) -> Result<usize, ParseError> {
    let free = tree.capacity() - tree.len();
    let mut n = 0usize;
    for item in items {
        let (line, v) = item?;
        if v.kind == VmaKind::Vsyscall {
            continue;
        }
        if tree.find_vma_intersection(v.vm_start, v.vm_end).is_some() {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Overlap,
            });
        }
        if n == free {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::TooManyVmas,
            });
        }
        n += 1;
    }
    Ok(n)
}

/// Inserts already-validated VMAs; on an unexpected failure removes what it inserted.
fn insert_all<I: Iterator<Item = (usize, Vma)> + Clone>(
    items: I,
    tree: &mut VmaTree<'_>,
) -> Result<(), ParseError> {
    let mut inserted = 0usize;
    for (line, v) in items.clone() {
        if v.kind == VmaKind::Vsyscall {
            continue;
        }
        if tree.insert(v).is_err() {
            for (_, u) in items
                .filter(|(_, u)| u.kind != VmaKind::Vsyscall)
                .take(inserted)
            {
                // Inserted by this call a moment ago, so it is there to remove.
                let removed = tree.remove(u.vm_start);
                debug_assert!(removed.is_ok(), "a VMA just inserted is in the tree");
            }
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Overlap,
            });
        }
        inserted += 1;
    }
    Ok(())
}

fn maps_numbered(
    mut p: MapsParser<'_>,
) -> impl Iterator<Item = Result<(usize, Vma), ParseError>> + Clone + '_ {
    core::iter::from_fn(move || {
        let r = p.next()?;
        let line = p.line();
        Some(r.map(|v| (line, v)))
    })
}

fn smaps_numbered(
    mut p: SmapsParser<'_>,
) -> impl Iterator<Item = Result<(usize, SmapsEntry), ParseError>> + Clone + '_ {
    core::iter::from_fn(move || {
        let first = p.line() + 1;
        let r = p.next()?;
        Some(r.map(|e| (first, e)))
    })
}

/// Parses all of `text` as `/proc/PID/maps` and inserts the VMAs into `tree`, skipping
/// `[vsyscall]`; returns how many were inserted.
///
/// # Errors
///
/// Returns the first [`ParseError`] (malformed line, overlap with a VMA in the text or the
/// tree, too many VMAs); then nothing has been inserted.
pub fn import_maps(
    text: &str,
    fmt: &MapsFormat,
    tree: &mut VmaTree<'_>,
) -> Result<usize, ParseError> {
    let n = check_fits(maps_numbered(MapsParser::new(text, fmt)), tree)?;
    let valid = maps_numbered(MapsParser::new(text, fmt)).map_while(Result::ok);
    insert_all(valid, tree)?;
    Ok(n)
}

/// Parses all of `text` as `/proc/PID/smaps`, inserts the VMAs (with their full
/// `VmFlags`) into `tree`, skipping `[vsyscall]`, and hands every entry, in order, to
/// `on_entry` once everything is in; returns how many VMAs were inserted.
///
/// # Errors
///
/// Returns the first [`ParseError`]; then nothing has been inserted and `on_entry` was
/// not called.
pub fn import_smaps<F: FnMut(&SmapsEntry)>(
    text: &str,
    fmt: &MapsFormat,
    tree: &mut VmaTree<'_>,
    mut on_entry: F,
) -> Result<usize, ParseError> {
    let n = check_fits(
        smaps_numbered(SmapsParser::new(text, fmt)).map(|r| r.map(|(l, e)| (l, e.vma))),
        tree,
    )?;
    let valid = smaps_numbered(SmapsParser::new(text, fmt))
        .map_while(Result::ok)
        .map(|(l, e)| (l, e.vma));
    insert_all(valid, tree)?;
    for e in SmapsParser::new(text, fmt).map_while(Result::ok) {
        on_entry(&e);
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
