//! A 64 GiB process in a simulated 80 GiB machine without data pages (`DataMode::None`):
//! `mmap` of 64 GiB and a write to every 4 KiB page (16 Mi first-touch faults, base pages
//! only). Prints the time and this process's peak RSS (VmHWM in /proc/self/status) and
//! fails when it takes 30 s or more or the peak reaches 512 MiB. One run, no statistics:
//! the case is about scale, not nanoseconds (`cargo bench --bench nodata_64g`).

use std::time::Instant;

use pagesim::arch::AccessKind;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::{DataMode, Touch};
use pagesim::linux::storage::{ProcessStorage, Start};
use pagesim::VirtAddr;

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut params = LayoutParams::arm64_6_12();
    params.thp = ThpMode::Never;
    let start = Instant::now();
    let mut storage = ProcessStorage::with_data(&params, 80 << 30, DataMode::None);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .expect("a process");
    let len = 64u64 << 30;
    let rw = mman::PROT_READ | mman::PROT_WRITE;
    let flags = mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_NORESERVE;
    let a = p.mmap(0, len, rw, flags).expect("mmap 64 GiB");
    let mut va = a;
    while va < a + len {
        match p.access(VirtAddr::new(va), AccessKind::Write) {
            Touch::Done(_) => {}
            t => panic!("write at {va:#x}: {t:?}"),
        }
        va += 4096;
    }
    let secs = start.elapsed().as_secs_f64();
    let rss = peak_rss_kib();
    let rss_mib = rss.map_or(f64::NAN, |k| k as f64 / 1024.0);
    println!(
        "nodata_64g: 64 GiB written page by page in {secs:.1} s, peak RSS {rss_mib:.0} MiB, \
         {} page-table frames",
        p.paging().mapper().table_count()
    );
    assert!(secs < 30.0, "took {secs:.1} s (limit 30 s)");
    if let Some(k) = rss {
        assert!(k < 512 * 1024, "peak RSS {rss_mib:.0} MiB (limit 512 MiB)");
    }
}
