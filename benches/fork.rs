//! Fork of a process with 1 GiB of touched anonymous memory (4 KiB pages, THP off), in
//! pagesim (the child's tables built by copying the parent's entries, then the child's
//! exit) beside the host kernel's fork of this bench process with the same memory (fork,
//! the child's `_exit`, `waitpid`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pagesim::arch::AccessKind;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::{DataMode, Touch};
use pagesim::linux::storage::{ProcessStorage, Start};
use pagesim::VirtAddr;

const SIZE: u64 = 1 << 30;
const PAGE: u64 = 4096;
const RW: mman::Prot = mman::PROT_READ.union(mman::PROT_WRITE);
const PA: mman::MapFlags = mman::MAP_PRIVATE.union(mman::MAP_ANONYMOUS);

fn params() -> LayoutParams {
    let mut p = LayoutParams::arm64_6_1();
    p.thp = ThpMode::Never;
    p
}

fn group(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(10);
    g.throughput(Throughput::Elements(SIZE / PAGE));

    // The data pages hold nothing a fork reads: memory without data keeps the bench's
    // host memory to the tables.
    let mut storage =
        ProcessStorage::with_data(&params(), SIZE + (64 << 20), DataMode::None).with_processes(1);
    let mut sys = storage
        .build_system(params(), Start::Fresh, ImportHints::default())
        .unwrap();
    let a = sys.process_mut().mmap(0, SIZE, RW, PA).unwrap();
    let mut va = a;
    while va < a + SIZE {
        assert!(matches!(
            sys.process_mut()
                .access(VirtAddr::new(va), AccessKind::Write),
            Touch::Done(_)
        ));
        va += PAGE;
    }
    g.bench_function("pagesim/1gib_touched", |b| {
        b.iter(|| {
            let child = sys.fork().unwrap();
            sys.switch(child).unwrap();
            sys.exit().unwrap();
        })
    });
    sys.validate().unwrap();
    drop(sys);

    // SAFETY: a private anonymous mapping of SIZE bytes written within bounds; the
    // forked child only calls _exit.
    let p = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        assert!(p as isize != -1);
        libc::madvise(p as *mut _, SIZE as usize, libc::MADV_NOHUGEPAGE);
        let mut off = 0;
        while off < SIZE as usize {
            std::ptr::write_volatile(p.add(off), 1);
            off += PAGE as usize;
        }
        p
    };
    g.bench_function("kernel/1gib_touched", |b| {
        b.iter(|| {
            // SAFETY: the child exits at once; the parent reaps it.
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    libc::_exit(0);
                }
                assert!(pid > 0);
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
            }
        })
    });
    // SAFETY: the mapping made above.
    unsafe {
        libc::munmap(p as *mut _, SIZE as usize);
    }
    g.finish();
}

criterion_group!(benches, group);
criterion_main!(benches);
