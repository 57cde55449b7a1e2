//! Reading maps and smaps text back: lines, entries and their errors.

use super::*;
use crate::linux::mm::vma::FileId;

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

impl core::error::Error for ParseError {}

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

/// Numbered lines of a text; a final newline does not start another line.
#[derive(Clone, Debug)]
pub(super) struct Lines<'t> {
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

pub(super) fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

pub(super) fn parse_dec(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits off the text up to the next space (exclusive) and the rest after it.
pub(super) fn field(s: &str) -> (&str, Option<&str>) {
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
            file: FileId(0),
        }
    };
    if matches!(kind, VmaKind::File { .. }) && offset % page != 0 {
        return Err(E::BadOffset);
    }
    Ok(Vma::with_kind(
        start,
        end,
        flags,
        kind,
        offset >> fmt.page_shift,
        fmt.page_shift,
    ))
}

/// Where a parser stands in its text: the lines left, the format, the end of the last VMA
/// (VMAs must ascend) and whether an error ended the stream.
#[derive(Clone, Debug)]
struct Cursor<'t> {
    lines: Lines<'t>,
    fmt: MapsFormat,
    prev_end: u64,
    done: bool,
}

impl<'t> Cursor<'t> {
    /// Returns the next numbered line, or `None` at the end or after an error.
    fn next_line(&mut self) -> Option<(usize, &'t str)> {
        if self.done {
            return None;
        }
        let next = self.lines.next_line();
        self.done = next.is_none();
        next
    }

    fn new(text: &'t str, fmt: &MapsFormat) -> Self {
        Cursor {
            lines: Lines::new(text),
            fmt: *fmt,
            prev_end: 0,
            done: false,
        }
    }
}

/// Streaming parser of `/proc/PID/maps` text: yields one VMA per line, stops after the
/// first error.
#[derive(Clone, Debug)]
pub struct MapsParser<'t> {
    c: Cursor<'t>,
}

impl<'t> MapsParser<'t> {
    /// Starts parsing `text`.
    pub fn new(text: &'t str, fmt: &MapsFormat) -> Self {
        MapsParser {
            c: Cursor::new(text, fmt),
        }
    }

    /// Returns the number of lines consumed so far.
    pub fn line(&self) -> usize {
        self.c.lines.line
    }
}

impl Iterator for MapsParser<'_> {
    type Item = Result<Vma, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, text) = self.c.next_line()?;
        let r = parse_maps_line(text, &self.c.fmt).and_then(|v| {
            if v.vm_start < self.c.prev_end {
                Err(ParseErrorKind::Overlap)
            } else {
                self.c.prev_end = v.vm_end;
                Ok(v)
            }
        });
        if r.is_err() {
            self.c.done = true;
        }
        Some(r.map_err(|kind| ParseError { line, kind }))
    }
}

/// Streaming parser of `/proc/PID/smaps` text: yields one entry per VMA, stops after the
/// first error. The layout must match the [`MapsFormat`] exactly.
#[derive(Clone, Debug)]
pub struct SmapsParser<'t> {
    c: Cursor<'t>,
}

impl<'t> SmapsParser<'t> {
    /// Starts parsing `text`.
    pub fn new(text: &'t str, fmt: &MapsFormat) -> Self {
        SmapsParser {
            c: Cursor::new(text, fmt),
        }
    }

    /// Returns the number of lines consumed so far.
    pub fn line(&self) -> usize {
        self.c.lines.line
    }

    fn field_line(&mut self, label: &'static str) -> Result<(usize, &'t str), ParseError> {
        let line = self.c.lines.line + 1;
        let (n, text) = self.c.lines.next_line().ok_or(ParseError {
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
        let line = self.c.lines.line + 1;
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
        let mut vma = parse_maps_line(text, &self.c.fmt).map_err(err)?;
        if vma.vm_start < self.c.prev_end {
            return Err(err(ParseErrorKind::Overlap));
        }
        let page_kb = self.c.fmt.page_size().unwrap_or(0) >> 10;
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
        if self.c.fmt.smaps_ksm_line {
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
        let thp_line = self.c.lines.line + 1;
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
        if self.c.fmt.smaps_protection_key {
            let pk_line = self.c.lines.line + 1;
            c.protection_key =
                u32::try_from(self.plain("ProtectionKey:")?).map_err(|_| ParseError {
                    line: pk_line,
                    kind: ParseErrorKind::BadValue {
                        field: "ProtectionKey:",
                    },
                })?;
        }
        let (n, rest) = self.field_line("VmFlags:")?;
        let flags =
            VmFlags::parse_mnemonics(rest, self.c.fmt.mnemonics).map_err(|e| ParseError {
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
        self.c.prev_end = vma.vm_end;
        Ok(SmapsEntry { vma, counters: c })
    }
}

impl Iterator for SmapsParser<'_> {
    type Item = Result<SmapsEntry, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, text) = self.c.next_line()?;
        let r = self.entry(line, text);
        if r.is_err() {
            self.c.done = true;
        }
        Some(r)
    }
}
