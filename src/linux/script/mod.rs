//! The `pagesim run` script language: one call per line.
//!
//! ```text
//! [NAME =] mmap ADDR LEN PROT FLAGS
//! munmap ADDR LEN | mprotect ADDR LEN PROT | madvise ADDR LEN ADVICE | brk ADDR
//! [NAME =] mremap ADDR OLDLEN NEWLEN FLAGS [NEWADDR]
//! read ADDR [LEN] | write ADDR [LEN] | exec ADDR [LEN]
//! mincore ADDR LEN | maps [PID] | smaps [PID]
//! [NAME =] fork | [NAME =] vfork | exit [STATUS] | switch PID
//! ```
//! Calls act in the current process: the first one until `switch` names another. `fork`
//! and `vfork` print the child's pid (the next after the highest in use) and NAME then
//! stands for it; `exit` ends the current process and makes its parent current.
//! Numbers are decimal or `0x` hex with an optional `K`, `M` or `G` suffix; ADDR may also be
//! `NULL`, a NAME bound by an earlier mmap, or `NAME+OFF` / `NAME-OFF`; `brk0` names the
//! break the script starts with. PROT is `none` or
//! letters from `rwx` (`-` allowed, e.g. `r-x`); FLAGS is a comma list of `private`,
//! `shared`, `anonymous`, `fixed`, `fixed_noreplace`, `noreserve`, `populate`, `stack`,
//! `growsdown`; `#` starts a comment.

pub mod run;

use std::collections::HashMap;
use std::string::String;

use crate::linux::mm::mman;
use crate::linux::mm::mremap::{MremapFlags, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE};

/// The name bound, before the first call, to the program break the script starts with.
pub const BRK0: &str = "brk0";

/// An address operand, resolved when the call runs (names bind to mmap results).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A number.
    Num(u64),
    /// A name plus a signed offset.
    Name(String, i64),
}

/// One parsed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `mmap`, optionally binding its result to a name.
    Mmap {
        /// The name to bind.
        bind: Option<String>,
        /// The hint or fixed address.
        addr: Addr,
        /// Length.
        len: u64,
        /// PROT_* bits.
        prot: mman::Prot,
        /// MAP_* bits.
        flags: mman::MapFlags,
        /// The host file to map and the byte offset into it (`None`: anonymous memory).
        file: Option<(String, u64)>,
    },
    /// `munmap`.
    Munmap {
        /// Start.
        addr: Addr,
        /// Length.
        len: u64,
    },
    /// `mremap`, optionally binding its result to a name.
    Mremap {
        /// The name to bind.
        bind: Option<String>,
        /// The old address.
        addr: Addr,
        /// The old length.
        old_len: u64,
        /// The new length.
        new_len: u64,
        /// MREMAP_* bits.
        flags: MremapFlags,
        /// The new address (`MREMAP_FIXED`, or a hint).
        new_addr: Option<Addr>,
    },
    /// `mprotect`.
    Mprotect {
        /// Start.
        addr: Addr,
        /// Length.
        len: u64,
        /// PROT_* bits.
        prot: mman::Prot,
    },
    /// `madvise`.
    Madvise {
        /// Start.
        addr: Addr,
        /// Length.
        len: u64,
        /// MADV_* value.
        advice: mman::Advice,
    },
    /// `brk`.
    Brk {
        /// The new break (0 queries).
        addr: Addr,
    },
    /// Touch one byte per page of a range (read, write or exec), stopping at a fault.
    Touch {
        /// Access kind.
        kind: crate::arch::AccessKind,
        /// Start.
        addr: Addr,
        /// Length (one byte when absent).
        len: u64,
    },
    /// `mincore`: which pages of a range are resident.
    Mincore {
        /// Start (page aligned).
        addr: Addr,
        /// Length.
        len: u64,
    },
    /// Print /proc/PID/maps of the current process, or of `pid`.
    Maps {
        /// Another process (a pid or a name bound by fork).
        pid: Option<Addr>,
    },
    /// Print /proc/PID/smaps of the current process, or of `pid`.
    Smaps {
        /// Another process (a pid or a name bound by fork).
        pid: Option<Addr>,
    },
    /// `fork` (or `vfork`), optionally binding the child's pid to a name. The current
    /// process stays the parent.
    Fork {
        /// The name to bind.
        bind: Option<String>,
        /// `vfork`: the child runs in the parent's address space until it exits.
        vfork: bool,
    },
    /// `exit`: the current process ends; its parent becomes current.
    Exit {
        /// The exit status (printed only).
        status: i32,
    },
    /// Make later calls act in another process.
    Switch {
        /// The process (a pid or a name bound by fork).
        pid: Addr,
    },
}

/// A script error: the 1-based line number and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ScriptError {}

/// How a number written without a `0x` prefix is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareRadix {
    /// Decimal (scripts: `4096`, `100M`).
    Decimal,
    /// Hexadecimal (register values in `pagesim at`'s JSON: `"580100010"`).
    Hex,
}

/// Parses a number: decimal or `0x` hex, with an optional K/M/G suffix and `_` separators.
///
/// # Errors
/// A message for anything else, or an overflow.
pub fn parse_number(s: &str) -> Result<u64, String> {
    parse_number_with(s, BareRadix::Decimal)
}

/// Parses a number as [`parse_number`] does, reading one without a `0x` prefix in `bare`
/// radix. The one number parser of the script language and of `pagesim at`'s JSON.
///
/// # Errors
/// A message for anything else, or an overflow.
pub fn parse_number_with(s: &str, bare: BareRadix) -> Result<u64, String> {
    let t = s.trim();
    let (body, mult) = match t.chars().last() {
        Some('K') | Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') | Some('m') => (&t[..t.len() - 1], 1u64 << 20),
        Some('G') | Some('g') => (&t[..t.len() - 1], 1u64 << 30),
        _ => (t, 1),
    };
    let (digits, radix) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None if bare == BareRadix::Hex => (body, 16),
        None => (body, 10),
    };
    let v = u64::from_str_radix(&digits.replace('_', ""), radix)
        .map_err(|_| format!("`{s}` is not a number"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` overflows 64 bits"))
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    if s.eq_ignore_ascii_case("null") {
        return Ok(Addr::Num(0));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return parse_number(s).map(Addr::Num);
    }
    let (name, off) = match s.find(['+', '-']) {
        Some(i) => {
            let n = parse_number(&s[i + 1..])?;
            let n = i64::try_from(n).map_err(|_| format!("offset in `{s}` is too large"))?;
            (&s[..i], if &s[i..i + 1] == "-" { -n } else { n })
        }
        None => (s, 0),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{s}` is not an address or a name"));
    }
    Ok(Addr::Name(name.to_string(), off))
}

/// Parses PROT: `none`, or letters from `rwx` with `-` placeholders.
///
/// # Errors
/// A message for other letters.
pub fn parse_prot(s: &str) -> Result<mman::Prot, String> {
    if s.eq_ignore_ascii_case("none") || s == "---" {
        return Ok(mman::PROT_NONE);
    }
    let mut p = mman::PROT_NONE;
    for c in s.chars() {
        p |= match c {
            'r' | 'R' => mman::PROT_READ,
            'w' | 'W' => mman::PROT_WRITE,
            'x' | 'X' => mman::PROT_EXEC,
            '-' => mman::PROT_NONE,
            _ => return Err(format!("`{s}` is not a protection (use none or r, w, x)")),
        };
    }
    Ok(p)
}

fn parse_flags(s: &str) -> Result<mman::MapFlags, String> {
    let mut f = mman::MapFlags::empty();
    for w in s.split([',', '|']) {
        let w = w.trim();
        let w = if w.eq_ignore_ascii_case("anon") {
            "anonymous"
        } else {
            w
        };
        f |= mman::lookup_name(&mman::MAP_NAMES, "MAP_", w)
            .ok_or_else(|| format!("unknown mmap flag `{w}`"))?;
    }
    Ok(f)
}

/// The names of the `mremap` flags in scripts.
const MREMAP_NAMES: [(MremapFlags, &str); 3] = [
    (MREMAP_MAYMOVE, "maymove"),
    (MREMAP_FIXED, "fixed"),
    (MREMAP_DONTUNMAP, "dontunmap"),
];

fn parse_mremap_flags(s: &str) -> Result<MremapFlags, String> {
    if let Ok(n) = parse_number(s) {
        return u32::try_from(n)
            .map(MremapFlags::from_bits_retain)
            .map_err(|_| format!("mremap flags `{s}` do not fit 32 bits"));
    }
    let mut f = MremapFlags::empty();
    for w in s.split([',', '|']) {
        let w = w.trim();
        let w = w.strip_prefix("MREMAP_").unwrap_or(w);
        f |= MREMAP_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(w))
            .map(|(b, _)| *b)
            .ok_or_else(|| format!("unknown mremap flag `{w}`"))?;
    }
    Ok(f)
}

/// Writes `mremap` flags as a script reads them (`0`, or names joined by commas).
pub(crate) fn mremap_flags_text(flags: MremapFlags, upper: bool) -> String {
    let mut parts = vec![];
    let mut rest = flags.bits();
    for (b, n) in MREMAP_NAMES {
        if flags.contains(b) {
            parts.push(if upper {
                format!("MREMAP_{}", n.to_ascii_uppercase())
            } else {
                n.to_string()
            });
            rest &= !b.bits();
        }
    }
    if rest != 0 || parts.is_empty() {
        parts.push(format!("{rest:#x}"));
    }
    parts.join(if upper { "|" } else { "," })
}

fn parse_advice(s: &str) -> Result<mman::Advice, String> {
    match mman::lookup_name(&mman::ADVICE_NAMES, "MADV_", s.trim()) {
        Some(a) => Ok(a),
        None => parse_number(s)
            .map(|v| mman::Advice::from_raw(v as i32))
            .map_err(|_| format!("unknown advice `{s}`")),
    }
}

/// Writes `prot` as a script does: `none`, or `r`, `w`, `x` and `-` (`rw-`), then any
/// other bits by name.
fn write_prot(f: &mut std::fmt::Formatter<'_>, prot: mman::Prot) -> std::fmt::Result {
    if prot == mman::PROT_NONE {
        return f.write_str("none");
    }
    let rwx = [
        (mman::PROT_READ, 'r'),
        (mman::PROT_WRITE, 'w'),
        (mman::PROT_EXEC, 'x'),
    ];
    for (bit, c) in rwx {
        write!(f, "{}", if prot.contains(bit) { c } else { '-' })?;
    }
    Ok(())
}

/// Writes MAP_* flags as a script does: lower-case names without the prefix, joined by
/// commas (`private,anonymous,fixed`).
fn write_flags(f: &mut std::fmt::Formatter<'_>, flags: mman::MapFlags) -> std::fmt::Result {
    let mut rest = flags.bits();
    let mut sep = "";
    let kind = flags.bits() & mman::MAP_TYPE.bits();
    for (bit, name) in mman::MAP_NAMES {
        let bit = bit.bits();
        if bit != 0 && rest & bit == bit && (bit & mman::MAP_TYPE.bits() == 0 || kind == bit) {
            let short = name.trim_start_matches("MAP_").to_ascii_lowercase();
            write!(f, "{sep}{short}")?;
            sep = ",";
            rest &= !bit;
        }
    }
    if rest != 0 || sep.is_empty() {
        write!(f, "{sep}{rest:#x}")?;
    }
    Ok(())
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Num(0) => f.write_str("NULL"),
            Addr::Num(n) => write!(f, "{n:#x}"),
            Addr::Name(n, 0) => f.write_str(n),
            Addr::Name(n, off) if *off < 0 => write!(f, "{n}-{:#x}", off.unsigned_abs()),
            Addr::Name(n, off) => write!(f, "{n}+{off:#x}"),
        }
    }
}

/// Writes the call as one line of the script language, which [`parse`] reads back.
impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Mmap {
                bind,
                addr,
                len,
                prot,
                flags,
                file,
            } => {
                if let Some(b) = bind {
                    write!(f, "{b} = ")?;
                }
                write!(f, "mmap {addr} {len:#x} ")?;
                write_prot(f, *prot)?;
                f.write_str(" ")?;
                write_flags(f, *flags)?;
                match file {
                    Some((path, off)) => write!(f, " {path} {off:#x}"),
                    None => Ok(()),
                }
            }
            Call::Mremap {
                bind,
                addr,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                if let Some(b) = bind {
                    write!(f, "{b} = ")?;
                }
                write!(
                    f,
                    "mremap {addr} {old_len:#x} {new_len:#x} {}",
                    mremap_flags_text(*flags, false)
                )?;
                match new_addr {
                    Some(a) => write!(f, " {a}"),
                    None => Ok(()),
                }
            }
            Call::Munmap { addr, len } => write!(f, "munmap {addr} {len:#x}"),
            Call::Mprotect { addr, len, prot } => {
                write!(f, "mprotect {addr} {len:#x} ")?;
                write_prot(f, *prot)
            }
            Call::Madvise { addr, len, advice } => match mman::advice_name(*advice) {
                Some(n) => write!(
                    f,
                    "madvise {addr} {len:#x} {}",
                    n.trim_start_matches("MADV_").to_ascii_lowercase()
                ),
                None => write!(f, "madvise {addr} {len:#x} {}", advice.raw()),
            },
            Call::Brk { addr } => write!(f, "brk {addr}"),
            Call::Touch { kind, addr, len } => {
                let verb = match kind {
                    crate::arch::AccessKind::Read => "read",
                    crate::arch::AccessKind::Write => "write",
                    crate::arch::AccessKind::Fetch => "exec",
                };
                write!(f, "{verb} {addr} {len:#x}")
            }
            Call::Mincore { addr, len } => write!(f, "mincore {addr} {len:#x}"),
            Call::Maps { pid: None } => f.write_str("maps"),
            Call::Maps { pid: Some(p) } => write!(f, "maps {p}"),
            Call::Smaps { pid: None } => f.write_str("smaps"),
            Call::Smaps { pid: Some(p) } => write!(f, "smaps {p}"),
            Call::Fork { bind, vfork } => {
                if let Some(b) = bind {
                    write!(f, "{b} = ")?;
                }
                f.write_str(if *vfork { "vfork" } else { "fork" })
            }
            Call::Exit { status } => write!(f, "exit {status}"),
            Call::Switch { pid } => write!(f, "switch {pid}"),
        }
    }
}

/// Parses a whole script.
///
/// # Errors
/// The first bad line, with its number.
pub fn parse(text: &str) -> Result<std::vec::Vec<(usize, Call)>, ScriptError> {
    let mut out = std::vec::Vec::new();
    let mut names: HashMap<String, ()> = HashMap::new();
    // The break when the script starts is always bound.
    names.insert(String::from(BRK0), ());
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| ScriptError {
            line: i + 1,
            message,
        };
        let (bind, rest) = match line.split_once('=') {
            Some((n, r)) => {
                let n = n.trim();
                if n.is_empty()
                    || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || n.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(err(format!("`{n}` is not a name")));
                }
                (Some(n.to_string()), r.trim())
            }
            None => (None, line),
        };
        let w: std::vec::Vec<&str> = rest.split_whitespace().collect();
        if w.is_empty() {
            return Err(err("a name with no call after `=`".into()));
        }
        let argc = |n: usize| -> Result<(), ScriptError> {
            if w.len() != n + 1 {
                Err(err(format!(
                    "`{}` takes {} arguments, got {}",
                    w[0],
                    n,
                    w.len() - 1
                )))
            } else {
                Ok(())
            }
        };
        let addr = |s: &str| -> Result<Addr, ScriptError> {
            let a = parse_addr(s).map_err(&err)?;
            if let Addr::Name(n, _) = &a {
                if !names.contains_key(n) {
                    return Err(err(format!(
                        "`{n}` is not bound by an earlier mmap, mremap or fork"
                    )));
                }
            }
            Ok(a)
        };
        let num = |s: &str| parse_number(s).map_err(&err);
        let call = match w[0] {
            "mmap" => {
                if w.len() != 5 {
                    argc(6)?;
                }
                Call::Mmap {
                    bind: bind.clone(),
                    addr: addr(w[1])?,
                    len: num(w[2])?,
                    prot: parse_prot(w[3]).map_err(&err)?,
                    flags: parse_flags(w[4]).map_err(&err)?,
                    file: match w.get(5..7) {
                        Some([path, off]) => Some((path.to_string(), num(off)?)),
                        _ => None,
                    },
                }
            }
            "mremap" => {
                if w.len() != 5 {
                    argc(5)?;
                }
                Call::Mremap {
                    bind: bind.clone(),
                    addr: addr(w[1])?,
                    old_len: num(w[2])?,
                    new_len: num(w[3])?,
                    flags: parse_mremap_flags(w[4]).map_err(&err)?,
                    new_addr: w.get(5).map(|a| addr(a)).transpose()?,
                }
            }
            "munmap" => {
                argc(2)?;
                Call::Munmap {
                    addr: addr(w[1])?,
                    len: num(w[2])?,
                }
            }
            "mprotect" => {
                argc(3)?;
                Call::Mprotect {
                    addr: addr(w[1])?,
                    len: num(w[2])?,
                    prot: parse_prot(w[3]).map_err(&err)?,
                }
            }
            "madvise" => {
                argc(3)?;
                Call::Madvise {
                    addr: addr(w[1])?,
                    len: num(w[2])?,
                    advice: parse_advice(w[3]).map_err(&err)?,
                }
            }
            "brk" => {
                argc(1)?;
                Call::Brk { addr: addr(w[1])? }
            }
            "read" | "write" | "exec" => {
                if w.len() != 2 && w.len() != 3 {
                    return Err(err(format!("`{}` takes ADDR [LEN]", w[0])));
                }
                let kind = match w[0] {
                    "read" => crate::arch::AccessKind::Read,
                    "write" => crate::arch::AccessKind::Write,
                    _ => crate::arch::AccessKind::Fetch,
                };
                Call::Touch {
                    kind,
                    addr: addr(w[1])?,
                    len: if w.len() == 3 { num(w[2])? } else { 1 },
                }
            }
            "mincore" => {
                argc(2)?;
                Call::Mincore {
                    addr: addr(w[1])?,
                    len: num(w[2])?,
                }
            }
            "maps" | "smaps" => {
                if w.len() > 2 {
                    argc(1)?;
                }
                let pid = w.get(1).map(|a| addr(a)).transpose()?;
                if w[0] == "maps" {
                    Call::Maps { pid }
                } else {
                    Call::Smaps { pid }
                }
            }
            "fork" | "vfork" => {
                argc(0)?;
                Call::Fork {
                    bind: bind.clone(),
                    vfork: w[0] == "vfork",
                }
            }
            "exit" => {
                if w.len() > 2 {
                    argc(1)?;
                }
                let status = match w.get(1) {
                    Some(v) => v
                        .parse::<i32>()
                        .map_err(|_| err(format!("`{v}` is not an exit status")))?,
                    None => 0,
                };
                Call::Exit { status }
            }
            "switch" => {
                argc(1)?;
                Call::Switch { pid: addr(w[1])? }
            }
            other => return Err(err(format!("unknown call `{other}`"))),
        };
        if bind.is_some()
            && !matches!(
                call,
                Call::Mmap { .. } | Call::Mremap { .. } | Call::Fork { .. }
            )
        {
            return Err(err("only mmap, mremap and fork results can be named".into()));
        }
        if let Some(n) = &bind {
            names.insert(n.clone(), ());
        }
        out.push((i + 1, call));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let s = "# the seed program\nbuf = mmap NULL 100M rw private,anonymous\nwrite buf 100M\nmprotect buf+4K 4K r-x\nmunmap buf 0x6400000\nmaps\n";
        let calls = parse(s).unwrap();
        assert_eq!(calls.len(), 5);
        assert_eq!(
            calls[0],
            (
                2,
                Call::Mmap {
                    bind: Some("buf".into()),
                    addr: Addr::Num(0),
                    len: 100 << 20,
                    file: None,
                    prot: mman::PROT_READ | mman::PROT_WRITE,
                    flags: mman::MAP_PRIVATE | mman::MAP_ANONYMOUS
                }
            )
        );
        assert_eq!(
            calls[2].1,
            Call::Mprotect {
                addr: Addr::Name("buf".into(), 4096),
                len: 4096,
                prot: mman::PROT_READ | mman::PROT_EXEC
            }
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (s, line) in [
            ("maps\nfrobnicate 1\n", 2),
            ("mmap 0 4K rq private,anonymous\n", 1),
            ("\n\nmunmap x 4K\n", 3),
            ("a = munmap 0 4K\n", 1),
            ("mmap 0 99999999999999999999 rw private\n", 1),
            ("read\n", 1),
        ] {
            assert_eq!(parse(s).unwrap_err().line, line, "{s:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x10K"), Ok(0x4000));
        assert_eq!(parse_number("3G"), Ok(3 << 30));
        assert!(parse_number("0x").is_err());
        assert!(parse_number("20000000000G").is_err());
    }
}
