//! `mmap(NULL, 4 KiB)` + `munmap` of the result in an address space that already holds
//! 100 or 65,000 VMAs (arm64 6.12 layout).

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

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mm/pagesim");
    for n in [100usize, 65_000] {
        let mut p = LayoutParams::arm64_6_12();
        p.max_map_count = 70_000;
        let mut slots = vec![VmaSlot::EMPTY; n + 64];
        let mut mm = AddressSpace::fresh_process(&mut slots, p, "/init").unwrap();
        populate(&mut mm, n);
        let rw = PROT_READ | PROT_WRITE;
        g.bench_function(format!("mmap_munmap_{n}vmas"), |b| {
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
