//! `mmap(NULL, 4 KiB)` + `munmap` of the result in an address space that already holds
//! 100 or 65,000 VMAs (arm64 6.12 layout), with the VMA storage in 4 KiB host pages and
//! (`_hugepages`) in transparent huge pages.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pagesim::linux::mm::mman::*;
use pagesim::linux::mm::vma_tree::VmaSlot;
use pagesim::linux::mm::{AddressSpace, LayoutParams};

const PG: u64 = 0x1000;

/// Adds `n` one-page read-only VMAs below the vDSO, one free page between neighbours, so
/// a new RW page lands in the highest hole and merges with nothing.
fn populate(mm: &mut AddressSpace<'_>, n: usize) {
    let mut top = mm.mmap_base() - 0x10000;
    for _ in 0..n {
        top -= 2 * PG;
        mm.mmap(top, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            .unwrap();
    }
}

/// Returns `n` empty slots; with `huge`, in memory the host backs with transparent huge
/// pages where it can (`MADV_HUGEPAGE`), as the kernel's own VMA nodes live in slab memory
/// its direct map covers with huge pages: 65,000 slots span 28 MiB, over 7,000 4 KiB
/// pages, and a descent then pays TLB misses the kernel does not.
fn slots(n: usize, huge: bool) -> Vec<VmaSlot> {
    let mut v: Vec<VmaSlot> = Vec::with_capacity(n);
    if huge {
        let bytes = n * std::mem::size_of::<VmaSlot>();
        let start = v.as_mut_ptr() as usize;
        let first = (start + (2 << 20) - 1) & !((2 << 20) - 1);
        let end = (start + bytes) & !((2 << 20) - 1);
        if end > first {
            // SAFETY: advice on whole 2 MiB pages inside the vector's own allocation,
            // before anything is written there; it changes no contents.
            unsafe { libc::madvise(first as *mut _, end - first, libc::MADV_HUGEPAGE) };
        }
    }
    v.resize(n, VmaSlot::EMPTY);
    v
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mm/pagesim");
    for (n, huge) in [
        (100usize, false),
        (65_000, false),
        (100, true),
        (65_000, true),
    ] {
        let mut p = LayoutParams::arm64_6_12();
        p.max_map_count = 70_000;
        let mut slots = slots(n + 64, huge);
        let mut mm = AddressSpace::fresh_process(&mut slots, p, "/init").unwrap();
        populate(&mut mm, n);
        let rw = PROT_READ | PROT_WRITE;
        let name = if huge { "_hugepages" } else { "" };
        g.bench_function(format!("mmap_munmap_{n}vmas{name}"), |b| {
            b.iter(|| {
                let a = mm
                    .mmap(0, black_box(PG), rw, MAP_PRIVATE | MAP_ANONYMOUS)
                    .unwrap();
                mm.munmap(a, PG).unwrap();
                black_box(a)
            })
        });
        mm.tree().validate().unwrap();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
