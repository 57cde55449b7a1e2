//! pagesim against the host kernel: first-touch writes and reads of a 100 MiB anonymous
//! mapping (with data pages stored, and without: `pagesim_nodata`), and an untouched 4 KiB
//! mmap + munmap, through pagesim's simulated MMU and page tables beside the same work done
//! by the kernel in this bench process; `zero_floor` zeroes the frames a stored-data write
//! of 100 MiB takes, the floor of that cell.

use std::hint::black_box;
use std::time::Duration;

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

fn touch_all(p: &mut SimProcess<'_>, addr: u64, kind: AccessKind) {
    let mut va = addr;
    while va < addr + SIZE {
        black_box(p.access(VirtAddr::new(va), kind));
        va += PAGE;
    }
}

fn kernel_touch(write: bool) {
    // SAFETY: an anonymous private mapping of SIZE bytes, touched within bounds and then
    // unmapped; nothing else refers to it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        assert!(p as isize != -1);
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
    for (name, kind) in [
        ("write_100mib", AccessKind::Write),
        ("read_100mib", AccessKind::Read),
    ] {
        g.bench_function(format!("pagesim/{name}"), |b| {
            b.iter(|| {
                let a = p.mmap(0, SIZE, RW, PA).unwrap();
                touch_all(&mut p, a, kind);
                p.munmap(a, SIZE).unwrap();
            })
        });
        g.bench_function(format!("kernel/{name}"), |b| {
            b.iter(|| kernel_touch(kind == AccessKind::Write))
        });
    }
    // The floor of a first-touch write with data stored: zeroing the 100 MiB of frames it
    // takes, 4 KiB at a time, in simulated RAM of the same size (the kernel zeroes too).
    let mut ram = vec![0u8; 256 << 20];
    g.bench_function("zero_floor/write_100mib", |b| {
        b.iter(|| {
            for page in black_box(&mut ram[..SIZE as usize]).chunks_exact_mut(PAGE as usize) {
                page.fill(0);
            }
        })
    });
    drop(ram);
    // The same with data pages not stored (DataMode::None): page tables only.
    let mut nodata = ProcessStorage::with_data(&params(), 256 << 20, DataMode::None);
    let mut q = nodata
        .build(params(), Start::Fresh, ImportHints::default())
        .unwrap();
    for (name, kind) in [
        ("write_100mib", AccessKind::Write),
        ("read_100mib", AccessKind::Read),
    ] {
        g.bench_function(format!("pagesim_nodata/{name}"), |b| {
            b.iter(|| {
                let a = q.mmap(0, SIZE, RW, PA).unwrap();
                touch_all(&mut q, a, kind);
                q.munmap(a, SIZE).unwrap();
            })
        });
    }
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
