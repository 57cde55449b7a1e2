//! `pagesim run`: executes a script of memory calls on a simulated process and prints each
//! result like strace, and maps/smaps exactly as the kernel would.

use std::collections::HashMap;
use std::string::String;

use super::{Addr, Call};
use crate::arch::AccessKind;
use crate::linux::mm::mman;
use crate::linux::paging::Touch;
use crate::linux::storage::SimProcess;
use crate::VirtAddr;

/// Formats PROT_* bits as strace does.
pub fn prot_name(p: u32) -> String {
    if p == 0 {
        return "PROT_NONE".into();
    }
    let mut parts = std::vec::Vec::new();
    for (bit, name) in [
        (mman::PROT_READ, "PROT_READ"),
        (mman::PROT_WRITE, "PROT_WRITE"),
        (mman::PROT_EXEC, "PROT_EXEC"),
    ] {
        if p & bit != 0 {
            parts.push(name.to_string());
        }
    }
    let rest = p & !(mman::PROT_READ | mman::PROT_WRITE | mman::PROT_EXEC);
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// Formats MAP_* bits as strace does.
pub fn flags_name(f: u32) -> String {
    let mut parts = std::vec::Vec::new();
    match f & mman::MAP_TYPE {
        mman::MAP_SHARED => parts.push("MAP_SHARED".to_string()),
        mman::MAP_PRIVATE => parts.push("MAP_PRIVATE".to_string()),
        mman::MAP_SHARED_VALIDATE => parts.push("MAP_SHARED_VALIDATE".to_string()),
        0 => {}
        t => parts.push(format!("{t:#x}")),
    }
    let mut rest = f & !mman::MAP_TYPE;
    for (bit, name) in [
        (mman::MAP_FIXED, "MAP_FIXED"),
        (mman::MAP_ANONYMOUS, "MAP_ANONYMOUS"),
        (mman::MAP_GROWSDOWN, "MAP_GROWSDOWN"),
        (mman::MAP_NORESERVE, "MAP_NORESERVE"),
        (mman::MAP_POPULATE, "MAP_POPULATE"),
        (mman::MAP_STACK, "MAP_STACK"),
        (mman::MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
    ] {
        if rest & bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

fn advice_name(a: i32) -> String {
    let names = [
        (mman::MADV_NORMAL, "MADV_NORMAL"),
        (mman::MADV_RANDOM, "MADV_RANDOM"),
        (mman::MADV_SEQUENTIAL, "MADV_SEQUENTIAL"),
        (mman::MADV_WILLNEED, "MADV_WILLNEED"),
        (mman::MADV_DONTNEED, "MADV_DONTNEED"),
        (mman::MADV_FREE, "MADV_FREE"),
        (mman::MADV_HUGEPAGE, "MADV_HUGEPAGE"),
        (mman::MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"),
        (mman::MADV_DONTFORK, "MADV_DONTFORK"),
        (mman::MADV_DOFORK, "MADV_DOFORK"),
        (mman::MADV_DONTDUMP, "MADV_DONTDUMP"),
        (mman::MADV_DODUMP, "MADV_DODUMP"),
        (mman::MADV_WIPEONFORK, "MADV_WIPEONFORK"),
        (mman::MADV_KEEPONFORK, "MADV_KEEPONFORK"),
        (mman::MADV_COLD, "MADV_COLD"),
        (mman::MADV_PAGEOUT, "MADV_PAGEOUT"),
        (mman::MADV_POPULATE_READ, "MADV_POPULATE_READ"),
        (mman::MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE"),
        (mman::MADV_COLLAPSE, "MADV_COLLAPSE"),
    ];
    names
        .iter()
        .find(|(v, _)| *v == a)
        .map_or_else(|| a.to_string(), |(_, n)| n.to_string())
}

fn addr_arg(a: u64) -> String {
    if a == 0 {
        "NULL".into()
    } else {
        format!("{a:#x}")
    }
}

/// Runs `calls` on `p`, appending the output to `out`. Returns an error message naming the
/// line when an address refers to an unbound name (after a failed mmap).
///
/// # Errors
/// `(line, message)` for a name bound to a failed mmap.
pub fn run(
    p: &mut SimProcess<'_>,
    calls: &[(usize, Call)],
    quiet: bool,
    out: &mut String,
) -> Result<(), (usize, String)> {
    let mut names: HashMap<String, u64> = HashMap::new();
    for (line, call) in calls {
        let resolve = |a: &Addr| -> Result<u64, (usize, String)> {
            match a {
                Addr::Num(n) => Ok(*n),
                Addr::Name(n, off) => names
                    .get(n)
                    .map(|b| b.wrapping_add(*off as u64))
                    .ok_or_else(|| (*line, format!("`{n}` has no address (its mmap failed)"))),
            }
        };
        let ret = |r: Result<(), crate::linux::mm::Errno>| match r {
            Ok(()) => "0".to_string(),
            Err(e) => format!("-1 {} ({})", e.name(), e.strerror()),
        };
        let text = match call {
            Call::Mmap {
                bind,
                addr,
                len,
                prot,
                flags,
            } => {
                let a = resolve(addr)?;
                let r = p.mmap(a, *len, *prot, *flags);
                if let (Some(n), Ok(v)) = (bind, r) {
                    names.insert(n.clone(), v);
                }
                format!(
                    "mmap({}, {:#x}, {}, {}) = {}",
                    addr_arg(a),
                    len,
                    prot_name(*prot),
                    flags_name(*flags),
                    match r {
                        Ok(v) => format!("{v:#x}"),
                        Err(e) => format!("-1 {} ({})", e.name(), e.strerror()),
                    }
                )
            }
            Call::Munmap { addr, len } => {
                let a = resolve(addr)?;
                format!(
                    "munmap({}, {:#x}) = {}",
                    addr_arg(a),
                    len,
                    ret(p.munmap(a, *len))
                )
            }
            Call::Mprotect { addr, len, prot } => {
                let a = resolve(addr)?;
                format!(
                    "mprotect({}, {:#x}, {}) = {}",
                    addr_arg(a),
                    len,
                    prot_name(*prot),
                    ret(p.mprotect(a, *len, *prot))
                )
            }
            Call::Madvise { addr, len, advice } => {
                let a = resolve(addr)?;
                format!(
                    "madvise({}, {:#x}, {}) = {}",
                    addr_arg(a),
                    len,
                    advice_name(*advice),
                    ret(p.madvise(a, *len, *advice))
                )
            }
            Call::Brk { addr } => {
                let a = resolve(addr)?;
                match p.brk(a) {
                    Ok(b) => format!("brk({}) = {b:#x}", addr_arg(a)),
                    Err(e) => format!("brk({}) = -1 {} ({})", addr_arg(a), e.name(), e.strerror()),
                }
            }
            Call::Touch { kind, addr, len } => {
                let a = resolve(addr)?;
                let name = match kind {
                    AccessKind::Read => "read",
                    AccessKind::Write => "write",
                    AccessKind::Fetch => "exec",
                };
                let page = p.paging().config().granule.page_size();
                let mut result = "0".to_string();
                let mut va = a;
                let end = a.saturating_add((*len).max(1));
                while va < end {
                    match p.access(VirtAddr::new(va), *kind) {
                        Touch::Done(_) => {}
                        Touch::Segv(s) => {
                            result = format!(
                                "SIGSEGV {{si_code={}, si_addr={:#x}}}",
                                s.code.name(),
                                s.addr.as_u64()
                            );
                            if quiet {
                                out.push_str(&format!("{name}({a:#x}, {len:#x}) = {result}\n"));
                            }
                            break;
                        }
                        Touch::OutOfMemory { addr } => {
                            result = format!(
                                "-1 ENOMEM (out of simulated physical memory at {:#x})",
                                addr.as_u64()
                            );
                            break;
                        }
                    }
                    va = (va & !(page - 1)).saturating_add(page);
                }
                format!("{name}({a:#x}, {len:#x}) = {result}")
            }
            Call::Maps => {
                out.push_str(&p.maps_string());
                out.push('\n');
                continue;
            }
            Call::Smaps => {
                let smaps = p
                    .smaps_string()
                    .map_err(|e| (*line, format!("smaps: {e}")))?;
                out.push_str(&smaps);
                out.push('\n');
                continue;
            }
        };
        if !quiet {
            out.push_str(&text);
            out.push('\n');
        }
    }
    Ok(())
}
