//! Random call sequences for the live cross-check, as `pagesim run` scripts: a small
//! deterministic generator (seeded, no clock) of the calls pagesim models, addressed
//! relative to earlier mappings of the same sequence.

use pagesim::arch::AccessKind;
use pagesim::linux::mm::mman;
use pagesim::linux::mm::mremap::{MremapFlags, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE};
use pagesim::linux::script::{Addr, Call, BRK0};

const RW: mman::Prot = mman::PROT_READ.union(mman::PROT_WRITE);
/// The harness files' lengths in pages (rounded up), as the harness creates them.
const FILE_PAGES: [u64; 4] = [6, 8, 16, 40];

const PA: mman::MapFlags = mman::MAP_PRIVATE.union(mman::MAP_ANONYMOUS);

/// Returns `n` calls from `seed`. An arena comes first: the top-down allocator puts every
/// later mapping below it, and calls aimed at offsets inside earlier mappings stay in
/// memory the sequence mapped, never the executor's own.
///
/// A third of the mmaps map one of the harness files in `dir` (private or shared, at a
/// page offset that may lie past its end) instead of anonymous memory. About one call in
/// ten forks (up to three processes), switches to another process, or exits the current
/// one; the calls after it act in the process that is current then, on the same names
/// (a mapping made after a fork exists in one process only).
pub fn sequence(seed: u64, n: usize, dir: &std::path::Path) -> Vec<Call> {
    let mut x = seed | 1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m.max(1)
    };
    let mut calls = vec![];
    // The name and length of each mmap so far (a failed one leaves its name unbound, and
    // the calls aimed at it are skipped).
    let mut slots: Vec<(String, u64)> = vec![];
    let mmap = |calls: &mut Vec<Call>,
                slots: &mut Vec<(String, u64)>,
                addr,
                len,
                prot,
                flags,
                file: Option<(String, u64)>| {
        let name = format!("s{}", calls.len());
        slots.push((name.clone(), len));
        calls.push(Call::Mmap {
            bind: Some(name),
            addr,
            len,
            prot,
            flags,
            file,
        });
    };
    mmap(
        &mut calls,
        &mut slots,
        Addr::Num(0),
        64 << 20,
        mman::PROT_NONE,
        PA | mman::MAP_NORESERVE,
        None,
    );
    mmap(&mut calls, &mut slots, Addr::Num(0), 0x40000, RW, PA, None);
    let prots = [
        mman::PROT_NONE,
        mman::PROT_READ,
        RW,
        RW | mman::PROT_EXEC,
        mman::PROT_READ | mman::PROT_EXEC,
    ];
    let advices = [
        mman::MADV_DONTNEED,
        mman::MADV_HUGEPAGE,
        mman::MADV_NOHUGEPAGE,
        mman::MADV_NORMAL,
        mman::MADV_WILLNEED,
        mman::MADV_FREE,
        mman::MADV_POPULATE_WRITE,
        mman::MADV_FREE,
        mman::MADV_COLD,
    ];
    let flag_sets = [
        PA,
        PA,
        PA,
        PA | mman::MAP_POPULATE,
        mman::MAP_SHARED | mman::MAP_ANONYMOUS,
    ];
    // The live processes (how a call names them, and the parent's index), and the
    // current one: forks, switches and exits mix in once the arena exists.
    let mut procs: Vec<(Addr, Option<Addr>)> = vec![(Addr::Num(1), None)];
    let mut current = 0usize;
    while calls.len() < n {
        if next(10) == 0 {
            match next(3) {
                0 if procs.len() < 3 => {
                    let name = format!("c{}", calls.len());
                    calls.push(Call::Fork {
                        bind: Some(name.clone()),
                        vfork: false,
                    });
                    procs.push((Addr::Name(name, 0), Some(procs[current].0.clone())));
                }
                1 if procs.len() > 1 => {
                    current = next(procs.len() as u64) as usize;
                    calls.push(Call::Switch {
                        pid: procs[current].0.clone(),
                    });
                }
                2 if procs.len() > 1 => {
                    calls.push(Call::Exit { status: 0 });
                    let (me, parent) = procs.remove(current);
                    for p in procs.iter_mut() {
                        if p.1.as_ref() == Some(&me) {
                            p.1 = None;
                        }
                    }
                    // The parent becomes current, or the first process left.
                    current = parent
                        .and_then(|pa| procs.iter().position(|p| p.0 == pa))
                        .unwrap_or(0);
                }
                _ => {}
            }
            continue;
        }
        let (name, slen) = slots[next(8) as usize % slots.len()].clone();
        // An offset inside the slot (wrapped into it, page aligned), and a length that
        // stays inside it.
        let off = next(64 << 8) * 0x1000;
        let off = if off < slen {
            off
        } else {
            (off % slen.max(1)) & !0xfff
        };
        let len = (1 + next(24)) * 0x1000;
        let inside = len.min(slen - off).max(1);
        let at = |extra: i64| Addr::Name(name.clone(), off as i64 + extra);
        // A file instead of anonymous memory for a third of the mmaps: which file, at
        // which page, shared or private (the anonymous flag set decides the rest).
        let file_or_anon = |next: &mut dyn FnMut(u64) -> u64, f: mman::MapFlags| {
            if next(3) != 0 {
                return (f, None);
            }
            let i = next(FILE_PAGES.len() as u64) as usize;
            let page = next(FILE_PAGES[i] + 2);
            let kind = if f.contains(mman::MAP_SHARED) {
                mman::MAP_SHARED
            } else {
                mman::MAP_PRIVATE
            };
            let flags = (f - mman::MAP_ANONYMOUS - mman::MAP_TYPE) | kind;
            let path = dir.join(format!("f{i}")).to_string_lossy().into_owned();
            (flags, Some((path, page * 0x1000)))
        };
        let call = match next(10) {
            0 => {
                let (p, f) = (prots[next(5) as usize], flag_sets[next(5) as usize]);
                let (f, file) = file_or_anon(&mut next, f);
                mmap(&mut calls, &mut slots, Addr::Num(0), len, p, f, file);
                continue;
            }
            1 => {
                let (p, f) = (prots[next(5) as usize], flag_sets[next(5) as usize]);
                let (f, file) = file_or_anon(&mut next, f);
                mmap(&mut calls, &mut slots, at(0), len, p, f, file);
                continue;
            }
            2 => {
                let p = prots[next(5) as usize];
                let fixed = if next(2) == 0 {
                    mman::MAP_FIXED
                } else {
                    mman::MAP_FIXED_NOREPLACE
                };
                let f = flag_sets[next(5) as usize] | fixed;
                let (f, file) = file_or_anon(&mut next, f);
                mmap(&mut calls, &mut slots, at(0), inside, p, f, file);
                continue;
            }
            3 if next(2) == 0 => {
                // mremap: shrink, grow (in place or moved), or move to a fixed address
                // inside the arena, sometimes leaving the old range (DONTUNMAP).
                let (n0, _) = slots[0].clone();
                let target = Addr::Name(n0, (next((64 << 8) - 64) * 0x1000) as i64);
                let (flags, new_len, new_addr) = match next(5) {
                    0 => (
                        MremapFlags::empty(),
                        (1 + next(inside / 0x1000)) * 0x1000,
                        None,
                    ),
                    1 => (MremapFlags::empty(), inside + next(8) * 0x1000, None),
                    2 => (MREMAP_MAYMOVE, inside + next(8) * 0x1000, None),
                    3 => (
                        MREMAP_MAYMOVE | MREMAP_FIXED,
                        (1 + next(8)) * 0x1000,
                        Some(target),
                    ),
                    _ => (
                        MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED,
                        inside,
                        Some(target),
                    ),
                };
                let name = format!("s{}", calls.len());
                slots.push((name.clone(), new_len));
                Call::Mremap {
                    bind: Some(name),
                    addr: at(0),
                    old_len: inside,
                    new_len,
                    flags,
                    new_addr,
                }
            }
            3 => Call::Munmap {
                addr: at(0),
                len: inside,
            },
            4 | 5 => Call::Mprotect {
                addr: at(0),
                len: inside,
                prot: prots[next(5) as usize],
            },
            6 => Call::Madvise {
                addr: at(0),
                len: inside,
                advice: advices[next(advices.len() as u64) as usize],
            },
            7 if next(3) == 1 => Call::Touch {
                kind: if next(2) == 0 {
                    AccessKind::Write
                } else {
                    AccessKind::Read
                },
                addr: at(0),
                len: 1,
            },
            7 if next(3) == 0 => Call::Mincore {
                addr: at(next(2) as i64 * 0x10),
                len: inside,
            },
            7 => Call::Brk {
                addr: Addr::Name(BRK0.to_string(), next(40) as i64 * 0x1000),
            },
            _ => Call::Touch {
                kind: if next(2) == 0 {
                    AccessKind::Write
                } else {
                    AccessKind::Read
                },
                addr: at(0),
                len: inside,
            },
        };
        calls.push(call);
    }
    calls
}
