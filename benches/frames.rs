//! Frame allocator benchmarks at 1 GiB of managed memory, half full and fragmented.

use pagesim::mmu::Contents;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pagesim::addr::PhysAddr;
use pagesim::mmu::frames::FrameAllocator;

const BASE: u64 = 0x4000_0000;
const FRAMES: usize = 1 << 18; // 1 GiB
const CHUNK: usize = 512; // frames per 2 MiB

/// Returns the next value of a xorshift64 generator.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Returns an allocator of 1 GiB with half its frames free: a quarter of the 2 MiB chunks
/// wholly free, and random single frames (a third of each other chunk on average) free.
fn fragmented(storage: &mut [u64]) -> FrameAllocator<'_> {
    let mut frames = FrameAllocator::new(
        PhysAddr::new(BASE),
        (FRAMES as u64) << 12,
        storage,
        Contents::Zeroed,
    )
    .expect("valid range");
    frames.alloc_run(18).expect("everything is free");
    let pa = |i: usize| PhysAddr::new(BASE + ((i as u64) << 12));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let chunks = FRAMES / CHUNK;
    let mut whole = vec![false; chunks];
    let mut freed = 0;
    while freed < chunks / 4 {
        let c = (xorshift(&mut rng) % chunks as u64) as usize;
        if !whole[c] {
            whole[c] = true;
            freed += 1;
            frames.free_run(pa(c * CHUNK), 9).expect("allocated chunk");
        }
    }
    while frames.free_frames() < FRAMES / 2 {
        let i = (xorshift(&mut rng) % FRAMES as u64) as usize;
        if !whole[i / CHUNK] && frames.is_allocated(pa(i)) == Ok(true) {
            frames.free(pa(i)).expect("allocated frame");
        }
    }
    frames
}

fn bench_frames(c: &mut Criterion) {
    let mut storage = vec![0u64; FrameAllocator::storage_words(FRAMES)];
    let mut group = c.benchmark_group("frames");

    let mut frames = fragmented(&mut storage);
    group.bench_function("alloc_free_4k", |b| {
        b.iter(|| {
            let pa = frames.alloc().expect("free frames exist");
            frames.free(black_box(pa)).expect("just allocated");
        })
    });

    let mut frames = fragmented(&mut storage);
    group.bench_function("alloc_free_64k", |b| {
        b.iter(|| {
            let pa = frames
                .alloc_run(black_box(4))
                .expect("free 64 KiB runs exist");
            frames.free_run(black_box(pa), 4).expect("just allocated");
        })
    });

    let mut frames = fragmented(&mut storage);
    group.bench_function("alloc_free_2m", |b| {
        b.iter(|| {
            let pa = frames
                .alloc_run(black_box(9))
                .expect("free 2 MiB chunks exist");
            frames.free_run(black_box(pa), 9).expect("just allocated");
        })
    });

    // A ring of 4096 live frames: each step allocates one and frees the oldest.
    let mut frames = fragmented(&mut storage);
    let mut ring: Vec<PhysAddr> = (0..4096).map(|_| frames.alloc().expect("free")).collect();
    let mut next = 0;
    group.bench_function("churn_4k", |b| {
        b.iter(|| {
            let pa = frames.alloc().expect("free frames exist");
            frames.free(ring[next]).expect("live frame");
            ring[next] = pa;
            next = (next + 1) % ring.len();
        })
    });

    // Fills then empties the fragmented allocator: the cost of scanning when memory is short.
    let mut frames = fragmented(&mut storage);
    let mut taken = Vec::with_capacity(FRAMES);
    group.bench_function("drain_refill_4k", |b| {
        b.iter(|| {
            while let Ok(pa) = frames.alloc() {
                taken.push(pa);
            }
            for pa in taken.drain(..) {
                frames.free(pa).expect("live frame");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_frames);
criterion_main!(benches);
