//! Unit tests of demand paging.

use super::*;
use crate::mmu::Contents;
use crate::phys::SliceMemory;
use std::vec;
use std::vec::Vec;

const BASE: u64 = 0x4000_0000;
const RAM: usize = 32 << 20;

fn with_paging<R>(
    cfg: PagingConfig,
    f: impl FnOnce(&mut Paging<'_, SliceMemory<'_>, 64>) -> R,
) -> R {
    let mut ram = vec![0u8; RAM];
    let frames = RAM / 4096;
    let mut storage = vec![0u64; FrameAllocator::storage_words(frames)];
    let alloc = FrameAllocator::new(
        PhysAddr::new(BASE),
        RAM as u64,
        &mut storage,
        Contents::Zeroed,
    )
    .unwrap();
    let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
    let mut p = Paging::new(cfg, mem, alloc).unwrap();
    f(&mut p)
}

const RW: VmFlags = VmFlags::VM_READ
    .union(VmFlags::VM_WRITE)
    .union(VmFlags::VM_MAYREAD)
    .union(VmFlags::VM_MAYWRITE);

fn vma(start: u64, end: u64, flags: VmFlags, thp: bool) -> impl Fn(u64) -> Option<VmaView> {
    move |a| {
        (a >= start && a < end).then_some(VmaView {
            start,
            end,
            flags,
            thp,
            file: None,
        })
    }
}

#[test]
fn read_maps_zero_page_write_allocates_and_cow() {
    with_paging(PagingConfig::default(), |p| {
        let mut v = vma(0x1000_0000, 0x1001_0000, RW, false);
        let free0 = p.frames().free_frames();
        let r = p.access(
            VirtAddr::new(0x1000_0010),
            AccessKind::Read,
            &mut v,
            &mut NoFiles,
        );
        assert_eq!(r, Touch::Done(PhysAddr::new(p.zero_page().as_u64() + 0x10)));
        assert_eq!(
            p.residency(0x1000_0000, 0x1001_0000).unwrap(),
            Residency {
                present_pages: 1,
                ..Default::default()
            }
        );
        // Write after read: copy-on-write off the zero page.
        let r = p.access(
            VirtAddr::new(0x1000_0010),
            AccessKind::Write,
            &mut v,
            &mut NoFiles,
        );
        assert!(matches!(r, Touch::Done(pa) if pa.as_u64() != p.zero_page().as_u64() + 0x10));
        assert_eq!(p.stats().cow, 1);
        let res = p.residency(0x1000_0000, 0x1001_0000).unwrap();
        assert_eq!(
            (res.rss, res.private_dirty, res.present_pages),
            (4096, 4096, 1)
        );
        // Frames: one data page plus the L1/L2/L3 tables of the new mapping.
        assert_eq!(
            free0 - p.frames().free_frames(),
            1 + p.mapper().table_count() as usize - 1
        );
        // A second write hits the TLB: no new fault.
        let faults = p.stats().faults;
        let _ = p.access(
            VirtAddr::new(0x1000_0018),
            AccessKind::Write,
            &mut v,
            &mut NoFiles,
        );
        assert_eq!(p.stats().faults, faults);
        p.zap(0x1000_0000, 0x1001_0000).unwrap();
        assert_eq!(p.frames().free_frames(), free0);
        assert_eq!(
            p.residency(0x1000_0000, 0x1001_0000).unwrap(),
            Residency::default()
        );
    });
}

#[test]
fn segv_codes() {
    with_paging(PagingConfig::default(), |p| {
        let mut v = vma(0x1000_0000, 0x1001_0000, VmFlags::VM_READ, false);
        match p.access(VirtAddr::new(0), AccessKind::Write, &mut v, &mut NoFiles) {
            Touch::Segv(s) => {
                assert_eq!(s.code, SegvCode::MapErr);
                assert_eq!(s.fault.kind, FaultKind::Translation);
                assert_eq!(s.fault.esr() >> 26, 0x24);
            }
            t => panic!("{t:?}"),
        }
        assert!(matches!(
            p.access(
                VirtAddr::new(0x1000_0000),
                AccessKind::Read,
                &mut v,
                &mut NoFiles
            ),
            Touch::Done(_)
        ));
        match p.access(
            VirtAddr::new(0x1000_0000),
            AccessKind::Write,
            &mut v,
            &mut NoFiles,
        ) {
            Touch::Segv(s) => {
                assert_eq!(s.code, SegvCode::AccErr);
                assert_eq!(s.fault.kind, FaultKind::Permission);
            }
            t => panic!("{t:?}"),
        }
        // A tagged pointer reports the untagged address.
        match p.access(
            VirtAddr::new(0x5a00_0000_0000_0000),
            AccessKind::Read,
            &mut v,
            &mut NoFiles,
        ) {
            Touch::Segv(s) => assert_eq!((s.code, s.addr.as_u64()), (SegvCode::MapErr, 0)),
            t => panic!("{t:?}"),
        }
    });
}

#[test]
fn thp_write_and_huge_zero_read() {
    for (hzw, after_write_huge) in [
        (HugeZeroWrite::AllocateThp, 2 << 20),
        (HugeZeroWrite::SplitAndCopy, 0),
    ] {
        let cfg = PagingConfig {
            huge_zero_write: hzw,
            ..PagingConfig::default()
        };
        with_paging(cfg, |p| {
            let mut v = vma(0x4000_0000, 0x4060_0000, RW, true);
            // Write fault in an eligible block: a THP.
            assert!(matches!(
                p.access(
                    VirtAddr::new(0x4000_1000),
                    AccessKind::Write,
                    &mut v,
                    &mut NoFiles
                ),
                Touch::Done(_)
            ));
            let r = p.residency(0x4000_0000, 0x4020_0000).unwrap();
            assert_eq!((r.rss, r.anon_huge), (2 << 20, 2 << 20));
            // Read fault in the next block: the huge zero page.
            assert!(matches!(
                p.access(
                    VirtAddr::new(0x4020_0000),
                    AccessKind::Read,
                    &mut v,
                    &mut NoFiles
                ),
                Touch::Done(_)
            ));
            let r = p.residency(0x4020_0000, 0x4040_0000).unwrap();
            assert_eq!((r.rss, r.present_pages), (0, 512));
            // Write to it: 6.18 allocates a THP, 6.1/6.12 split and copy one page.
            assert!(matches!(
                p.access(
                    VirtAddr::new(0x4020_0000),
                    AccessKind::Write,
                    &mut v,
                    &mut NoFiles
                ),
                Touch::Done(_)
            ));
            let r = p.residency(0x4020_0000, 0x4040_0000).unwrap();
            assert_eq!(r.anon_huge, after_write_huge);
            assert_eq!(r.rss, if after_write_huge > 0 { 2 << 20 } else { 4096 });
            // MADV_DONTNEED of 4 KiB of the THP splits it.
            p.zap(0x4000_0000, 0x4000_1000).unwrap();
            let r = p.residency(0x4000_0000, 0x4020_0000).unwrap();
            assert_eq!((r.rss, r.anon_huge), ((2 << 20) - 4096, 0));
            let mut mc = vec![0u8; 512];
            assert_eq!(p.mincore(0x4000_0000, 2 << 20, &mut mc), Ok(512));
            assert_eq!(mc.iter().filter(|&&b| b == 1).count(), 511);
        });
    }
}

#[test]
fn blocks_split_even_with_no_frame_left() {
    // 6 MiB of RAM: a few THPs and a huge-zero map, then base pages until memory runs
    // out. Each block still splits (mprotect inside it, MADV_DONTNEED of part of it):
    // its deposited table pays for the split, as the kernel's deposit does.
    let ram_len = 6usize << 20;
    let mut ram = vec![0u8; ram_len];
    let mut storage = vec![0u64; FrameAllocator::storage_words(ram_len / 4096)];
    let alloc = FrameAllocator::new(
        PhysAddr::new(BASE),
        ram_len as u64,
        &mut storage,
        Contents::Zeroed,
    )
    .unwrap();
    let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
    let mut p: Paging<'_, _, 16> = Paging::new(PagingConfig::default(), mem, alloc).unwrap();
    let mut v = vma(0x4000_0000, 0x4100_0000, RW, true);
    assert!(matches!(
        p.access(
            VirtAddr::new(0x4000_0000),
            AccessKind::Write,
            &mut v,
            &mut NoFiles
        ),
        Touch::Done(_)
    ));
    assert!(matches!(
        p.access(
            VirtAddr::new(0x4020_0000),
            AccessKind::Read,
            &mut v,
            &mut NoFiles
        ),
        Touch::Done(_)
    ));
    assert_eq!(p.deposited_tables(), 2);
    let mut small = vma(0x5000_0000, 0x6000_0000, RW, false);
    let mut i = 0;
    while matches!(
        p.access(
            VirtAddr::new(0x5000_0000 + i * 4096),
            AccessKind::Write,
            &mut small,
            &mut NoFiles,
        ),
        Touch::Done(_)
    ) {
        i += 1;
    }
    assert_eq!(p.frames().free_frames() as u64, p.deposited_tables());
    // mprotect of the second half of the THP: the block splits.
    p.split_block_at(0x4010_0000).unwrap();
    p.change_protection(0x4010_0000, 0x4020_0000, VmFlags::VM_READ)
        .unwrap();
    assert_eq!(p.deposited_tables(), 1);
    assert_eq!(p.leaf_at(0x4000_0000).unwrap().unwrap().size_log2, 12);
    assert_eq!(p.residency(0x4000_0000, 0x4020_0000).unwrap().rss, 2 << 20);
    // MADV_DONTNEED of one page of the huge zero map splits it too.
    p.zap(0x4020_0000, 0x4020_1000).unwrap();
    assert_eq!(p.deposited_tables(), 0);
    let mut mc = vec![0u8; 512];
    assert_eq!(p.mincore(0x4020_0000, 2 << 20, &mut mc), Ok(512));
    assert_eq!(mc.iter().filter(|&&b| b == 1).count(), 511);
}

#[test]
fn out_of_frames_is_reported_and_state_is_intact() {
    let mut ram = vec![0u8; 1 << 20];
    let mut storage = vec![0u64; FrameAllocator::storage_words(256)];
    let alloc =
        FrameAllocator::new(PhysAddr::new(BASE), 1 << 20, &mut storage, Contents::Zeroed).unwrap();
    let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
    let cfg = PagingConfig {
        huge_zero_page: false,
        ..PagingConfig::default()
    };
    let mut p: Paging<'_, _, 16> = Paging::new(cfg, mem, alloc).unwrap();
    let mut v = vma(0x1000_0000, 0x2000_0000, RW, false);
    let mut done = Vec::new();
    let mut oom = None;
    for i in 0..400u64 {
        match p.access(
            VirtAddr::new(0x1000_0000 + i * 4096),
            AccessKind::Write,
            &mut v,
            &mut NoFiles,
        ) {
            Touch::Done(_) => done.push(i),
            Touch::OutOfMemory { addr } => {
                oom = Some(addr);
                break;
            }
            t => panic!("{t:?}"),
        }
    }
    assert!(oom.is_some());
    assert_eq!(p.frames().free_frames(), 0);
    // Everything mapped before is still there.
    let r = p.residency(0x1000_0000, 0x2000_0000).unwrap();
    assert_eq!(r.rss, done.len() as u64 * 4096);
    for &i in &done {
        assert!(matches!(
            p.access(
                VirtAddr::new(0x1000_0000 + i * 4096),
                AccessKind::Read,
                &mut v,
                &mut NoFiles,
            ),
            Touch::Done(_)
        ));
    }
}

/// Runs the same random accesses and zaps through two pagings, one mapping first touches
/// through the walk's slot and one through the general handler, and checks that nothing
/// tells them apart: outcomes, counters, TLB counters, free frames and every byte of RAM.
#[test]
fn slot_faults_match_the_general_handler() {
    let g16 = PagingConfig {
        granule: Granule::K16,
        huge_zero_page: false,
        ..PagingConfig::default()
    };
    let lpa2 = PagingConfig {
        va_bits: 52,
        ..PagingConfig::default()
    };
    for (seed, cfg) in [(1u64, PagingConfig::default()), (2, g16), (3, lpa2)] {
        let run = |slot_faults: bool| {
            let mut ram = vec![0u8; RAM];
            let mut storage = vec![0u64; FrameAllocator::storage_words(RAM / 4096)];
            let alloc = FrameAllocator::new(
                PhysAddr::new(BASE),
                RAM as u64,
                &mut storage,
                Contents::Zeroed,
            )
            .unwrap();
            let mem = SliceMemory::new(PhysAddr::new(BASE), &mut ram);
            let mut p: Paging<'_, _, 64> = Paging::new(cfg, mem, alloc).unwrap();
            p.slot_faults = slot_faults;
            let page = cfg.granule.page_size();
            // (start, flags, thp) of 4 MiB VMAs side by side from 256 MiB.
            let vmas = [
                (RW, false),
                (RW, true),
                (VmFlags::VM_READ, false),
                (RW.union(VmFlags::VM_EXEC), false),
                (VmFlags::VM_WRITE, false),
                (RW.union(VmFlags::VM_SHARED), false),
                (VmFlags::empty(), false),
            ];
            let base = 0x1000_0000u64;
            let span = 4u64 << 20;
            let mut find = |a: u64| {
                let i = a.checked_sub(base)? / span;
                let &(flags, thp) = vmas.get(i as usize)?;
                let start = base + i * span;
                Some(VmaView {
                    start,
                    end: start + span,
                    flags,
                    thp,
                    file: None,
                })
            };
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut seen = Vec::new();
            for _ in 0..3000 {
                let r = next();
                // Clustered addresses, so that tables fill and holes get touched again.
                let va = (base + (r >> 8) % (vmas.len() as u64 * span + span / 2)) & !7;
                let va = (va & !(0x3f << 12)) | (((r >> 40) & 3) << 12);
                match r % 16 {
                    0 => {
                        let start = va & !(page - 1);
                        let _ = p.zap(start, start + page * (1 + ((r >> 20) & 7)));
                    }
                    k => {
                        let kind = match k % 3 {
                            0 => AccessKind::Read,
                            1 => AccessKind::Write,
                            _ => AccessKind::Fetch,
                        };
                        let tag = if r & 0x100_0000 != 0 { 0x5a << 56 } else { 0 };
                        let t = p.access(VirtAddr::new(va | tag), kind, &mut find, &mut NoFiles);
                        seen.push(t);
                    }
                }
            }
            p.validate().unwrap();
            let state = (seen, *p.stats(), p.mmu().stats(), p.frames().free_frames());
            drop(p);
            (state, ram)
        };
        let (fast, fast_ram) = run(true);
        let (general, general_ram) = run(false);
        assert!(
            fast.1.anon_pages > 100 && fast.1.zero_page_maps > 100,
            "{:?}",
            fast.1
        );
        assert_eq!(fast, general, "seed {seed}");
        assert!(fast_ram == general_ram, "seed {seed}: RAM differs");
    }
}
