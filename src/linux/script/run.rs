//! `pagesim run`: executes a script of memory calls on a simulated process and prints each
//! result like strace, and maps/smaps exactly as the kernel would.

use std::collections::HashMap;
use std::string::String;

use super::{Addr, Call};
use crate::arch::AccessKind;
use crate::linux::mm::mman;
use crate::linux::paging::Touch;
use crate::linux::storage::SimSystem;
use crate::linux::system::SystemError;
use crate::VirtAddr;

/// Formats PROT_* bits as strace does.
pub fn prot_name(p: mman::Prot) -> String {
    if p.is_empty() {
        return "PROT_NONE".into();
    }
    let mut parts = std::vec::Vec::new();
    let mut rest = p.bits();
    for (bit, name) in mman::PROT_NAMES {
        let bit = bit.bits();
        if rest & bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// Formats MAP_* bits as strace does.
pub fn flags_name(f: mman::MapFlags) -> String {
    let mut parts = std::vec::Vec::new();
    let kind = mman::MAP_TYPE.bits();
    match f.bits() & kind {
        0 => {}
        t => parts.push(
            mman::MAP_NAMES
                .iter()
                .find(|(v, _)| v.bits() == t)
                .map_or_else(|| format!("{t:#x}"), |(_, n)| n.to_string()),
        ),
    }
    let mut rest = f.bits() & !kind;
    for (bit, name) in mman::MAP_NAMES {
        let bit = bit.bits();
        if bit & kind == 0 && rest & bit != 0 {
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

fn advice_name(a: mman::Advice) -> String {
    mman::advice_name(a).map_or_else(|| a.raw().to_string(), str::to_string)
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map_or_else(String::new, |p| p.to_string())
}

fn addr_arg(a: u64) -> String {
    if a == 0 {
        "NULL".into()
    } else {
        format!("{a:#x}")
    }
}

/// Runs `calls` on the processes of `sys` (starting in its current one), appending the
/// output to `out`. Returns an error message naming the
/// line when an address refers to an unbound name (after a failed mmap).
///
/// # Errors
/// `(line, message)` for a name bound to a failed mmap.
pub fn run(
    sys: &mut SimSystem<'_>,
    calls: &[(usize, Call)],
    quiet: bool,
    out: &mut String,
) -> Result<(), (usize, String)> {
    let mut names: HashMap<String, u64> = HashMap::new();
    let brk0 = sys
        .process_mut()
        .brk(0)
        .map_err(|e| (0, format!("brk: {e:?}")))?;
    names.insert(String::from(super::BRK0), brk0);
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
        let sys_ret = |r: Result<(), SystemError>| match r {
            Ok(()) => "0".to_string(),
            Err(SystemError::NoSuchProcess(_)) => "-1 ESRCH (No such process)".to_string(),
            Err(SystemError::Errno(e)) => format!("-1 {} ({})", e.name(), e.strerror()),
        };
        let pid_of = |a: &Option<Addr>| -> Result<Option<u32>, (usize, String)> {
            a.as_ref().map(|a| resolve(a).map(|v| v as u32)).transpose()
        };
        let p = sys.process_mut();
        let text = match call {
            Call::Mmap {
                bind,
                addr,
                len,
                prot,
                flags,
                file,
            } => {
                let a = resolve(addr)?;
                let (r, fd) = match file {
                    Some((path, off)) => match p.open(path) {
                        Ok(f) => (
                            p.mmap_file(a, *len, *prot, *flags, &f, *off),
                            format!(", {path:?}, {off:#x}"),
                        ),
                        Err(e) => (Err(e), format!(", {path:?}, {off:#x}")),
                    },
                    None => (p.mmap(a, *len, *prot, *flags), String::new()),
                };
                if let (Some(n), Ok(v)) = (bind, r) {
                    names.insert(n.clone(), v);
                }
                format!(
                    "mmap({}, {:#x}, {}, {}{fd}) = {}",
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
            Call::Mremap {
                bind,
                addr,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                let a = resolve(addr)?;
                let na = match new_addr {
                    Some(n) => resolve(n)?,
                    None => 0,
                };
                let r = p.mremap(a, *old_len, *new_len, *flags, na);
                if let (Some(n), Ok(v)) = (bind, r) {
                    names.insert(n.clone(), v);
                }
                format!(
                    "mremap({}, {:#x}, {:#x}, {}{}) = {}",
                    addr_arg(a),
                    old_len,
                    new_len,
                    super::mremap_flags_text(*flags, true),
                    if new_addr.is_some() {
                        format!(", {}", addr_arg(na))
                    } else {
                        String::new()
                    },
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
                    let signal = match p.access(VirtAddr::new(va), *kind) {
                        Touch::Done(_) => None,
                        Touch::Segv(s) => Some(format!(
                            "SIGSEGV {{si_code={}, si_addr={:#x}}}",
                            s.code.name(),
                            s.addr.as_u64()
                        )),
                        Touch::Bus(b) => Some(format!(
                            "SIGBUS {{si_code=BUS_ADRERR, si_addr={:#x}}}",
                            b.addr.as_u64()
                        )),
                        Touch::OutOfMemory { addr } => {
                            result = format!(
                                "-1 ENOMEM (out of simulated physical memory at {:#x})",
                                addr.as_u64()
                            );
                            break;
                        }
                    };
                    if let Some(sig) = signal {
                        result = sig;
                        if quiet {
                            out.push_str(&format!("{name}({a:#x}, {len:#x}) = {result}\n"));
                        }
                        break;
                    }
                    va = (va & !(page - 1)).saturating_add(page);
                }
                format!("{name}({a:#x}, {len:#x}) = {result}")
            }
            Call::Mincore { addr, len } => {
                let a = resolve(addr)?;
                let page = p.paging().config().granule.page_size();
                let mut vec = std::vec![0u8; (len.div_ceil(page) as usize).min(1 << 20)];
                match p.mincore(a, *len, &mut vec) {
                    Ok(n) => {
                        let bits: String = vec[..n].iter().map(|b| char::from(b'0' + b)).collect();
                        format!("mincore({a:#x}, {len:#x}) = 0 [{bits}]")
                    }
                    Err(e) => format!("mincore({a:#x}, {len:#x}) = {}", ret(Err(e))),
                }
            }
            Call::Maps { pid } => {
                let pid = pid_of(pid)?;
                let text = match pid {
                    None => Ok(p.maps_string()),
                    Some(pid) => sys.maps_of(pid),
                };
                match text {
                    Ok(t) => {
                        out.push_str(&t);
                        out.push('\n');
                        continue;
                    }
                    Err(e) => format!("maps({}) = {}", pid_text(pid), sys_ret(Err(e))),
                }
            }
            Call::Smaps { pid } => {
                let text = match pid_of(pid)? {
                    None => p
                        .smaps_string()
                        .map_err(|e| (*line, format!("smaps: {e}")))?,
                    Some(pid) => match sys.smaps_of(pid) {
                        Ok(t) => t,
                        Err(e) => {
                            let t = format!("smaps({pid}) = {}", sys_ret(Err(e)));
                            if !quiet {
                                out.push_str(&t);
                                out.push('\n');
                            }
                            continue;
                        }
                    },
                };
                out.push_str(&text);
                out.push('\n');
                continue;
            }
            Call::Fork { bind, vfork } => {
                let name = if *vfork { "vfork" } else { "fork" };
                let r = if *vfork { sys.vfork() } else { sys.fork() };
                match r {
                    Ok(child) => {
                        if let Some(n) = bind {
                            names.insert(n.clone(), u64::from(child));
                        }
                        format!("{name}() = {child}")
                    }
                    Err(e) => format!("{name}() = {}", sys_ret(Err(e))),
                }
            }
            Call::Exit { status } => {
                let pid = sys.current();
                match sys.exit() {
                    Ok(()) => format!(
                        "[pid {pid}] exit_group({status}) = ?  # now in {}",
                        sys.current()
                    ),
                    Err(e) => format!("[pid {pid}] exit_group({status}) = {}", sys_ret(Err(e))),
                }
            }
            Call::Switch { pid } => {
                let pid = resolve(pid)? as u32;
                format!("switch({pid}) = {}", sys_ret(sys.switch(pid)))
            }
        };
        if !quiet {
            out.push_str(&text);
            out.push('\n');
        }
    }
    Ok(())
}
