//! Every call that changes VMAs keeps the page tables in step even with no frame left:
//! the splits it needs use the table deposited with each huge page, so none of them can
//! fail for want of memory (and an error, if one ever came, would be returned, never
//! dropped). Each call runs on a process whose memory was exhausted by faults first,
//! with 4 KiB and 16 KiB pages, and must succeed with frames, tables and VMAs consistent.

use pagesim::addr::VirtAddr;
use pagesim::arch::AccessKind;
use pagesim::linux::mm::vma_tree::VmaSlot;
use pagesim::linux::mm::{mman, AddressSpace, LayoutParams, ThpMode};
use pagesim::linux::paging::{Paging, PagingConfig, Touch};
use pagesim::linux::process::Process;
use pagesim::mmu::Contents;
use pagesim::mmu::FrameAllocator;
use pagesim::phys::SliceMemory;
use pagesim::PhysAddr;

const RAM_BASE: u64 = 0x4000_0000;

type P<'s> = Process<'s, 's, SliceMemory<'s>, 64>;

/// What to do to the exhausted process, given the THP-backed mapping's start and the
/// huge page size.
type Call = fn(&mut P<'_>, u64, u64) -> Result<(), String>;

fn calls() -> Vec<(&'static str, Call)> {
    vec![
        ("mprotect inside a THP", |p, a, _| {
            p.mprotect(a + 0x4000, 0x4000, mman::PROT_READ)
                .map_err(|e| format!("{e:?}"))
        }),
        ("mprotect across two THPs", |p, a, h| {
            p.mprotect(a + h - 0x4000, 0x8000, mman::PROT_NONE)
                .map_err(|e| format!("{e:?}"))
        }),
        ("munmap inside a THP", |p, a, _| {
            p.munmap(a + 0x4000, 0x4000).map_err(|e| format!("{e:?}"))
        }),
        ("MADV_DONTNEED inside a THP", |p, a, _| {
            p.madvise(a + 0x4000, 0x8000, mman::MADV_DONTNEED)
                .map_err(|e| format!("{e:?}"))
        }),
        ("MADV_FREE inside a THP", |p, a, _| {
            p.madvise(a + 0x4000, 0x8000, mman::MADV_FREE)
                .map_err(|e| format!("{e:?}"))
        }),
        ("MADV_COLD inside a THP", |p, a, _| {
            p.madvise(a + 0x4000, 0x8000, mman::MADV_COLD)
                .map_err(|e| format!("{e:?}"))
        }),
        ("MADV_NOHUGEPAGE inside a THP", |p, a, _| {
            p.madvise(a + 0x4000, 0x4000, mman::MADV_NOHUGEPAGE)
                .map_err(|e| format!("{e:?}"))
        }),
        ("MAP_FIXED inside a THP", |p, a, _| {
            p.mmap(
                a + 0x4000,
                0x4000,
                mman::PROT_READ,
                mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_FIXED,
            )
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
        }),
        ("munmap of everything", |p, a, h| {
            p.munmap(a, 4 * h).map_err(|e| format!("{e:?}"))
        }),
    ]
}

fn run(mut params: LayoutParams, ram_size: usize) {
    params.thp = ThpMode::Always;
    let cfg = PagingConfig::for_layout(&params);
    let page = cfg.granule.page_size();
    let huge = 1u64 << cfg.granule.level_shift(pagesim::arch::Level::L2);
    for (name, call) in calls() {
        let mut slots = vec![VmaSlot::EMPTY; 256];
        let mut ram = vec![0u8; ram_size];
        let frames_n = ram_size / 4096;
        let mut words = vec![0u64; FrameAllocator::storage_words(frames_n)];
        let space = AddressSpace::fresh_process(&mut slots, params, "/bin/t").unwrap();
        let frames = FrameAllocator::new(
            PhysAddr::new(RAM_BASE),
            ram_size as u64,
            &mut words,
            Contents::Zeroed,
        )
        .unwrap();
        let mem = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut ram);
        let paging = Paging::new(cfg, mem, frames).unwrap();
        let mut p: P<'_> = Process::new(space, paging);
        let rw = mman::PROT_READ | mman::PROT_WRITE;
        let pa = mman::MAP_PRIVATE | mman::MAP_ANONYMOUS;
        // Four huge pages, THP-aligned.
        let raw = p.mmap(0, 5 * huge, rw, pa).unwrap();
        let a = (raw + huge - 1) & !(huge - 1);
        for i in 0..4 {
            assert!(matches!(
                p.access(VirtAddr::new(a + i * huge), AccessKind::Write),
                Touch::Done(_)
            ));
        }
        assert_eq!(p.paging().deposited_tables(), 4, "{name}: four THPs mapped");
        // Exhaust memory with base pages elsewhere.
        let filler = p
            .mmap(0, ram_size as u64, rw, pa | mman::MAP_NORESERVE)
            .unwrap();
        p.madvise(filler, ram_size as u64, mman::MADV_NOHUGEPAGE)
            .unwrap();
        let mut off = 0;
        loop {
            match p.access(VirtAddr::new(filler + off), AccessKind::Write) {
                Touch::Done(_) => off += page,
                Touch::OutOfMemory { .. } => break,
                t => panic!("{name}: {t:?}"),
            }
        }
        let free_before = p.paging().frames().free_frames();
        assert!(
            (free_before as u64) <= 4 * (page >> 12),
            "{name}: only the deposits are left ({free_before} frames)"
        );
        call(&mut p, a, huge).unwrap_or_else(|e| panic!("{name}: {e}"));
        p.validate()
            .unwrap_or_else(|e| panic!("{name}: inconsistent after the call: {e}"));
    }
}

#[test]
fn calls_succeed_with_no_frame_left_4k() {
    let mut params = LayoutParams::arm64_6_12();
    params.task_size = 1 << 48;
    run(params, 24 << 20);
}

#[test]
fn calls_succeed_with_no_frame_left_16k() {
    let mut params = LayoutParams::arm64_6_12_16k();
    params.task_size = 1 << 47;
    run(params, 192 << 20);
}
