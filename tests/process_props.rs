//! Property tests of a whole simulated process (VMAs + demand-paged tables on the MMU):
//! every valid leaf lies inside a VMA that allows what the leaf grants, frames in use are
//! exactly tables + resident pages + the zero pages, and failed calls change nothing.

use pagesim::arch::AccessKind;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::Touch;
use pagesim::linux::storage::{ProcessStorage, SimProcess, Start};
use pagesim::VirtAddr;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Mmap {
        fixed: bool,
        slot: usize,
        off: u64,
        pages: u64,
        prot: mman::Prot,
    },
    Munmap {
        slot: usize,
        off: u64,
        pages: u64,
    },
    Mprotect {
        slot: usize,
        off: u64,
        pages: u64,
        prot: mman::Prot,
    },
    Madvise {
        slot: usize,
        off: u64,
        pages: u64,
        advice: mman::Advice,
    },
    Touch {
        slot: usize,
        off: u64,
        pages: u64,
        write: bool,
    },
    Brk {
        pages: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let prot = prop_oneof![Just(0u32), Just(1), Just(3), Just(5), Just(7)]
        .prop_map(mman::Prot::from_bits_retain);
    let advice = prop_oneof![
        Just(mman::MADV_DONTNEED),
        Just(mman::MADV_FREE),
        Just(mman::MADV_HUGEPAGE),
        Just(mman::MADV_NOHUGEPAGE),
        Just(mman::MADV_POPULATE_WRITE),
        Just(mman::MADV_POPULATE_READ),
    ];
    prop_oneof![
        3 => (any::<bool>(), 0usize..6, 0u64..1024, 1u64..1100, prot.clone()).prop_map(|(fixed, slot, off, pages, prot)| Op::Mmap { fixed, slot, off, pages, prot }),
        2 => (0usize..6, 0u64..1024, 1u64..600).prop_map(|(slot, off, pages)| Op::Munmap { slot, off, pages }),
        2 => (0usize..6, 0u64..1024, 1u64..600, prot).prop_map(|(slot, off, pages, prot)| Op::Mprotect { slot, off, pages, prot }),
        2 => (0usize..6, 0u64..1024, 1u64..600, advice).prop_map(|(slot, off, pages, advice)| Op::Madvise { slot, off, pages, advice }),
        4 => (0usize..6, 0u64..1024, 1u64..700, any::<bool>()).prop_map(|(slot, off, pages, write)| Op::Touch { slot, off, pages, write }),
        1 => (0u64..64).prop_map(|pages| Op::Brk { pages }),
    ]
}

const PAGE: u64 = 4096;

/// Mapped ranges with their permissions and names, adjacent equal ones joined.
fn coverage(maps: &str) -> Vec<(u64, u64, String, String)> {
    let mut out: Vec<(u64, u64, String, String)> = vec![];
    for l in maps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (s, e) = f[0].split_once('-').unwrap();
        let (s, e) = (
            u64::from_str_radix(s, 16).unwrap(),
            u64::from_str_radix(e, 16).unwrap(),
        );
        let name = f.get(5).copied().unwrap_or("").to_string();
        match out.last_mut() {
            Some(last) if last.1 == s && last.2 == f[1] && last.3 == name => last.1 = e,
            _ => out.push((s, e, f[1].to_string(), name)),
        }
    }
    out
}

fn check_invariants(p: &SimProcess<'_>) -> Result<(), TestCaseError> {
    // The library's invariants: VMA tree sound, every leaf inside a VMA that allows what it
    // grants, one deposited table per block and the deposits free, every frame in use
    // held by a table, a mapped page or a zero page.
    if let Err(e) = p.validate() {
        return Err(TestCaseError::fail(format!("{e}")));
    }
    // The anonymous pages smaps reports own their frames; page-cache pages (the program's
    // file, when touched) are held by the cache, mapped or not.
    let paging = p.paging();
    let mut anon = 0;
    for v in p.space().iter() {
        anon += paging.residency(v.vm_start, v.vm_end).unwrap().anonymous;
    }
    let cached = paging.cached_pages().len() as u64;
    let frames = paging.frames();
    let used = (frames.total_frames() - frames.free_frames()) as u64;
    let tables = paging.mapper().table_count();
    // The zero page and the 2 MiB huge zero page are allocated once at start.
    prop_assert_eq!(
        used,
        tables + anon / PAGE + cached + 1 + 512,
        "frames in use = tables + anonymous pages + page cache + zero pages"
    );
    Ok(())
}

fn run(ops: Vec<Op>, va52: bool) -> Result<(), TestCaseError> {
    let mut params = LayoutParams::arm64_6_12();
    params.thp = ThpMode::Madvise;
    if !va52 {
        params.task_size = 1 << 48;
    }
    let mut storage = ProcessStorage::new(&params, 64 << 20);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let mut slots: Vec<u64> = vec![];
    let brk0 = p.brk(0).unwrap();
    let addr = |slots: &Vec<u64>, slot: usize, off: u64| {
        slots
            .get(slot % slots.len().max(1))
            .map_or(0x1000_0000, |b| b + off * PAGE)
    };
    for o in ops {
        let maps = p.maps_string();
        let failed = match o {
            Op::Mmap {
                fixed,
                slot,
                off,
                pages,
                prot,
            } => {
                let hint = if fixed { addr(&slots, slot, off) } else { 0 };
                let flags = mman::MAP_PRIVATE
                    | mman::MAP_ANONYMOUS
                    | if fixed {
                        mman::MAP_FIXED
                    } else {
                        mman::MapFlags::empty()
                    };
                match p.mmap(hint, pages * PAGE, prot, flags) {
                    Ok(a) => {
                        slots.push(a);
                        false
                    }
                    Err(_) => true,
                }
            }
            Op::Munmap { slot, off, pages } => {
                p.munmap(addr(&slots, slot, off), pages * PAGE).is_err()
            }
            Op::Mprotect {
                slot,
                off,
                pages,
                prot,
            } => {
                let _refused = p
                    .mprotect(addr(&slots, slot, off), pages * PAGE, prot)
                    .is_err();
                false // mprotect may fail half-way (ENOMEM), as the kernel's does
            }
            Op::Madvise {
                slot,
                off,
                pages,
                advice,
            } => {
                let _refused = p
                    .madvise(addr(&slots, slot, off), pages * PAGE, advice)
                    .is_err();
                false
            }
            Op::Touch {
                slot,
                off,
                pages,
                write,
            } => {
                let a = addr(&slots, slot, off);
                for i in 0..pages {
                    let kind = if write {
                        AccessKind::Write
                    } else {
                        AccessKind::Read
                    };
                    match p.access(VirtAddr::new(a + i * PAGE), kind) {
                        Touch::Done(_) => {}
                        Touch::Segv(_) => break,
                        Touch::Bus(b) => prop_assert!(false, "SIGBUS without files: {b:?}"),
                        Touch::OutOfMemory { addr } => prop_assert!(
                            false,
                            "out of memory at {:#x} with 64 MiB of RAM",
                            addr.as_u64()
                        ),
                    }
                }
                false
            }
            Op::Brk { pages } => {
                prop_assert!(p.brk(brk0 + pages * PAGE).is_ok());
                false
            }
        };
        if failed {
            // A failed call maps and unmaps nothing. (The kernel may keep a VMA split it
            // made before failing, as munmap does when the far end needs a split that a
            // special mapping refuses, so compare what is mapped, not how it is split.)
            prop_assert_eq!(
                coverage(&p.maps_string()),
                coverage(&maps),
                "a failed call changed what is mapped"
            );
        }
        check_invariants(&p)?;
    }
    // Unmapping everything returns every private page.
    for s in slots {
        let _ = p.munmap(s, 1100 * PAGE);
    }
    check_invariants(&p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn process_invariants_hold(ops in proptest::collection::vec(op(), 1..30)) {
        run(ops, false)?;
    }

    #[test]
    fn process_invariants_hold_with_52_bit_va_lpa2(ops in proptest::collection::vec(op(), 1..30)) {
        run(ops, true)?;
    }
}
