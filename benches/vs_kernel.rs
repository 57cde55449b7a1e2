//! pagesim against the host kernel: first-touch writes and reads of a 100 MiB anonymous
//! mapping, and an untouched 4 KiB mmap + munmap, through pagesim's simulated MMU and page
//! tables beside the same work done by the kernel in this bench process.
//!
//! The write and read cells run three memories: `pagesim` the default storage (data stored,
//! in sparse RAM: a frame no data is written to is never backed or zeroed), `pagesim_flat`
//! host RAM for every simulated byte (an emulator's; each faulting frame is zeroed, as the
//! kernel zeroes it) and `pagesim_nodata` (data not stored). `zero_floor` zeroes 100 MiB
//! one 4 KiB page at a time, the floor of the flat write cell. The `fault_write_100mib`
//! cells time the first-touch writes alone, with the mmap and munmap around them outside
//! the clock: per element, the time of one write fault.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pagesim::arch::AccessKind;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::DataMode;
use pagesim::linux::storage::{ProcessStorage, SimProcess, Start};
use pagesim::VirtAddr;

const SIZE: u64 = 100 << 20;
const PAGE: u64 = 4096;
const RW: mman::Prot = mman::PROT_READ.union(mman::PROT_WRITE);
const PA: mman::MapFlags = mman::MAP_PRIVATE.union(mman::MAP_ANONYMOUS);

fn params() -> LayoutParams {
    // Base pages only, like the host kernel for an mmap without MADV_HUGEPAGE.
    let mut p = LayoutParams::arm64_6_1();
    p.thp = ThpMode::Never;
    p
}

/// Maps SIZE bytes, touches every page with `kind`, and unmaps them.
fn first_touch_pass(p: &mut SimProcess<'_>, kind: AccessKind) {
    let addr = p.mmap(0, SIZE, RW, PA).unwrap();
    touch_all(p, addr, kind);
    p.munmap(addr, SIZE).unwrap();
}

/// Touches every page of the SIZE bytes at `addr` with `kind`.
fn touch_all(p: &mut SimProcess<'_>, addr: u64, kind: AccessKind) {
    let mut va = addr;
    while va < addr + SIZE {
        black_box(p.access(VirtAddr::new(va), kind));
        va += PAGE;
    }
}

/// Times `iters` passes of first-touch writes alone: each pass's mmap before and munmap
/// (which zaps what the writes mapped) after are outside the clock, so the time per page
/// is the fault's.
fn faults_only(p: &mut SimProcess<'_>, iters: u64) -> Duration {
    let mut t = Duration::ZERO;
    for _ in 0..iters {
        let addr = p.mmap(0, SIZE, RW, PA).unwrap();
        let start = Instant::now();
        touch_all(p, addr, AccessKind::Write);
        t += start.elapsed();
        p.munmap(addr, SIZE).unwrap();
    }
    t
}

/// Maps SIZE bytes of private anonymous memory in this process (the caller unmaps them).
fn kernel_map() -> *mut u8 {
    // SAFETY: a fresh anonymous mapping, which overlaps nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut u8;
    assert!(p as isize != -1);
    p
}

/// As [`faults_only`], for the host kernel's first-touch writes.
fn kernel_faults_only(iters: u64) -> Duration {
    let mut t = Duration::ZERO;
    for _ in 0..iters {
        let p = kernel_map();
        // SAFETY: the SIZE bytes at `p` are this loop's own mapping, written within bounds
        // and then unmapped; nothing else refers to them.
        unsafe {
            let start = Instant::now();
            let mut off = 0;
            while off < SIZE as usize {
                std::ptr::write_volatile(p.add(off), 1);
                off += PAGE as usize;
            }
            t += start.elapsed();
            libc::munmap(p as *mut _, SIZE as usize);
        }
    }
    t
}

fn kernel_touch(write: bool) {
    let p = kernel_map();
    // SAFETY: the SIZE bytes at `p` are this call's own mapping, touched within bounds and
    // then unmapped; nothing else refers to them.
    unsafe {
        let mut off = 0;
        while off < SIZE as usize {
            if write {
                std::ptr::write_volatile(p.add(off), 1);
            } else {
                black_box(std::ptr::read_volatile(p.add(off)));
            }
            off += PAGE as usize;
        }
        libc::munmap(p as *mut _, SIZE as usize);
    }
}

fn group(c: &mut Criterion) {
    let mut g = c.benchmark_group("vs_kernel");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    let mut storage = ProcessStorage::new(&params(), 256 << 20);
    let mut p = storage
        .build(params(), Start::Fresh, ImportHints::default())
        .unwrap();
    g.throughput(Throughput::Elements(SIZE / PAGE));
    let kinds = [
        ("write_100mib", AccessKind::Write),
        ("read_100mib", AccessKind::Read),
    ];
    for (name, kind) in kinds {
        g.bench_function(format!("pagesim/{name}"), |b| {
            b.iter(|| first_touch_pass(&mut p, kind))
        });
        g.bench_function(format!("kernel/{name}"), |b| {
            b.iter(|| kernel_touch(kind == AccessKind::Write))
        });
    }
    // The first-touch write faults alone (per element: one fault), without the mmap and
    // the munmap around them.
    g.bench_function("pagesim/fault_write_100mib", |b| {
        b.iter_custom(|iters| faults_only(&mut p, iters))
    });
    g.bench_function("kernel/fault_write_100mib", |b| {
        b.iter_custom(kernel_faults_only)
    });
    // The other two memories: host RAM for every byte, and no data.
    let mut flat = ProcessStorage::with_flat_ram(&params(), 256 << 20);
    let mut nodata = ProcessStorage::with_data(&params(), 256 << 20, DataMode::None);
    for (label, storage) in [("pagesim_flat", &mut flat), ("pagesim_nodata", &mut nodata)] {
        let mut q = storage
            .build(params(), Start::Fresh, ImportHints::default())
            .unwrap();
        for (name, kind) in kinds {
            g.bench_function(format!("{label}/{name}"), |b| {
                b.iter(|| first_touch_pass(&mut q, kind))
            });
        }
        g.bench_function(format!("{label}/fault_write_100mib"), |b| {
            b.iter_custom(|iters| faults_only(&mut q, iters))
        });
    }
    drop((flat, nodata));
    // The floor of the flat write cell: zeroing the 100 MiB of frames it takes, one 4 KiB
    // call each as a fault makes it, in RAM of the same size (the kernel zeroes too). Each
    // page goes through black_box, or the compiler fuses the loop into one 100 MiB memset,
    // which streams past the cache at twice the speed no page-at-a-time zeroing reaches.
    let mut ram = vec![0u8; 256 << 20];
    g.bench_function("zero_floor/write_100mib", |b| {
        b.iter(|| {
            for page in ram[..SIZE as usize].chunks_exact_mut(PAGE as usize) {
                black_box(page).fill(0);
            }
        })
    });
    drop(ram);
    g.throughput(Throughput::Elements(1));
    g.bench_function("pagesim/mmap_munmap_4k", |b| {
        b.iter(|| {
            let a = p.mmap(0, PAGE, RW, PA).unwrap();
            p.munmap(black_box(a), PAGE).unwrap();
        })
    });
    g.bench_function("kernel/mmap_munmap_4k", |b| {
        b.iter(|| {
            // SAFETY: maps and unmaps one untouched anonymous page.
            unsafe {
                let q = libc::mmap(
                    std::ptr::null_mut(),
                    PAGE as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                libc::munmap(black_box(q), PAGE as usize);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, group);
criterion_main!(benches);
