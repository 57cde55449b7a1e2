//! Insert + remove of one VMA placed by a top-down gap search, at 100 and 65,000 VMAs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pagesim::linux::mm::vma::Vma;
use pagesim::linux::mm::vma_tree::{GapParams, VmUnmappedAreaInfo, VmaSlot, VmaTree};
use pagesim::linux::mm::vmflags::VmFlags;

const PG: u64 = 0x1000;
const MMAP_BASE: u64 = 0xffff_f800_0000;

/// Fills `t` with `n` one-page VMAs below `MMAP_BASE`, one free page between neighbours,
/// and a 4-page hole half way down: a 2-page request must descend to that hole.
fn populate(t: &mut VmaTree<'_>, n: usize) {
    let flags = VmFlags::VM_DATA_FLAGS_NON_EXEC | VmFlags::VM_ACCOUNT;
    let mut top = MMAP_BASE;
    for i in 0..n {
        top -= if i == n / 2 { 5 * PG } else { 2 * PG };
        t.insert(Vma::new_anon(top, top + PG, flags, 12).unwrap())
            .unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("vma_tree");
    let gp = GapParams {
        mmap_min_addr: 0x8000,
        stack_guard_gap: 256 * PG,
        page_size: PG,
    };
    let flags = VmFlags::VM_DATA_FLAGS_NON_EXEC | VmFlags::VM_ACCOUNT;
    for n in [100usize, 65_000] {
        let mut slots = vec![VmaSlot::EMPTY; n + 1];
        let mut t = VmaTree::new(&mut slots);
        populate(&mut t, n);
        let lowest = t.first().unwrap().vm_start;
        let info = VmUnmappedAreaInfo {
            length: 2 * PG,
            low_limit: lowest,
            high_limit: MMAP_BASE,
            ..Default::default()
        };
        g.bench_function(format!("insert_remove_{n}"), |b| {
            b.iter(|| {
                let a = t.unmapped_area_topdown(black_box(&info), &gp).unwrap();
                t.insert(Vma::new_anon(a, a + 2 * PG, flags, 12).unwrap())
                    .unwrap();
                black_box(t.remove(a).unwrap());
            })
        });
        t.validate().unwrap();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
