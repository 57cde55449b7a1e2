//! Every public fallible entry point driven with hostile arguments: each returns a typed
//! error (an errno for the Linux calls, an architectural fault for accesses), never panics,
//! and leaves the state as it was.

use pagesim::arch::{
    at, walk, Access, AccessKind, AtOp, Cpu, El, FaultKind, Granule, Regime, RegimeError, Registers,
};
use pagesim::linux::mm::maps_text::MapsFormat;
use pagesim::linux::mm::mman::{Advice, MapFlags, Prot};
use pagesim::linux::mm::{mman, Errno, ImportHints, LayoutParams};
use pagesim::linux::paging::{Paging, PagingConfig, PagingError, Touch};
use pagesim::linux::script;
use pagesim::linux::storage::{ProcessStorage, Start};
use pagesim::mmu::Contents;
use pagesim::mmu::{
    FrameAllocator, FrameError, Lpa2, MapError, Mapper, Mmu, TableFormat, Tlb, Tlbi, VaRange,
};
use pagesim::phys::{MemoryError, PhysMemory, SliceMemory, SparseMemory};
use pagesim::{PhysAddr, VirtAddr};

const EDGES: [u64; 8] = [
    0,
    1,
    0xfff,
    0x1000,
    u64::MAX,
    u64::MAX - 0xfff,
    1 << 63,
    0x0000_ffff_ffff_f000,
];

#[test]
fn addresses() {
    assert!(PhysAddr::try_new(1 << 52).is_err());
    assert!(PhysAddr::try_new(u64::MAX).is_err());
    assert_eq!(PhysAddr::new(u64::MAX).checked_add(1), None);
    assert_eq!(VirtAddr::new(u64::MAX).checked_add(1), None);
}

#[test]
fn registers_and_walks() {
    for tcr in [0, u64::MAX, 0x3f3f, 7 << 32, 3 << 14] {
        let regs = Registers {
            tcr,
            sctlr: u64::MAX,
            ttbr0: u64::MAX,
            ttbr1: u64::MAX,
            mair: u64::MAX,
        };
        let _ = Regime::try_new(regs, Cpu::MAX);
        let r = Regime::new(regs, Cpu::MAX);
        let mut mem = SparseMemory::new(PhysAddr::new(0), 1 << 20);
        for va in EDGES {
            for op in AtOp::ALL {
                let _ = at(&r, &mut mem, op, VirtAddr::new(va));
            }
            let _ = walk(
                &r,
                &mut mem,
                VirtAddr::new(va),
                Access::write(El::El0).with_size(16),
            );
        }
        // A walk never writes outside the descriptors it updates: nothing was mapped here.
        assert_eq!(mem.words().count(), 0);
    }
    assert_eq!(
        Regime::try_new(
            Registers {
                tcr: 3 << 14,
                ..Default::default()
            },
            Cpu::MAX
        ),
        Err(RegimeError::ReservedGranule { half: 0, tg: 3 })
    );
}

#[test]
fn physical_memory() {
    let mut ram = vec![0u8; 4096];
    let mut m = SliceMemory::new(PhysAddr::new(0x1000), &mut ram);
    for pa in [0, 0xff8, 0x2000, 0x1ffc, (1 << 52) - 8] {
        assert_eq!(
            m.read_u64(PhysAddr::new(pa)),
            Err(MemoryError::ExternalAbort {
                pa: PhysAddr::new(pa)
            })
        );
        assert!(m.write_u64(PhysAddr::new(pa), 1).is_err());
        assert!(m.compare_exchange_u64(PhysAddr::new(pa), 0, 1).is_err());
    }
    assert!(m.zero(PhysAddr::new(0x1000), 0x2000).is_err());
    assert!(m.bytes().iter().all(|&b| b == 0));
}

#[test]
fn frame_allocator() {
    let mut storage = vec![0u64; FrameAllocator::storage_words(16)];
    assert!(FrameAllocator::new(
        PhysAddr::new(0x1001),
        16 << 12,
        &mut storage,
        Contents::Zeroed
    )
    .is_err());
    assert!(FrameAllocator::new(
        PhysAddr::new(0x1000),
        (16 << 12) + 1,
        &mut storage,
        Contents::Zeroed
    )
    .is_err());
    let mut small = vec![0u64; 1];
    assert!(matches!(
        FrameAllocator::new(PhysAddr::new(0), 1 << 30, &mut small, Contents::Zeroed),
        Err(FrameError::StorageTooSmall { .. })
    ));
    let mut f = FrameAllocator::new(
        PhysAddr::new(0x10000),
        16 << 12,
        &mut storage,
        Contents::Zeroed,
    )
    .unwrap();
    assert!(matches!(
        f.alloc_run(41),
        Err(FrameError::InvalidOrder { .. })
    ));
    assert_eq!(f.alloc_run(5), Err(FrameError::OutOfMemory));
    assert!(matches!(
        f.free(PhysAddr::new(0x10000)),
        Err(FrameError::DoubleFree { .. })
    ));
    assert!(matches!(
        f.free(PhysAddr::new(0x1000)),
        Err(FrameError::Foreign { .. })
    ));
    assert!(matches!(
        f.free(PhysAddr::new(0x10008)),
        Err(FrameError::Misaligned { .. })
    ));
    assert_eq!(f.free_frames(), 16);
}

struct NoFrames;
impl pagesim::mmu::FrameSource for NoFrames {
    fn allocate(&mut self, _: u32) -> Option<(PhysAddr, bool)> {
        None
    }
    fn release(&mut self, _: PhysAddr, _: u32, _: bool) -> Result<(), FrameError> {
        Ok(())
    }
    fn available(&self, _: u32) -> u64 {
        0
    }
}

#[test]
fn mapper() {
    assert_eq!(
        TableFormat::try_new(Granule::K4, 60, VaRange::Lower, Lpa2::Off, 48),
        Err(MapError::InvalidFormat)
    );
    assert_eq!(
        TableFormat::try_new(Granule::K64, 48, VaRange::Lower, Lpa2::On, 48),
        Err(MapError::InvalidFormat)
    );
    let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48).unwrap();
    let mut mem = SparseMemory::new(PhysAddr::new(0), 1 << 30);
    assert!(matches!(
        Mapper::new(format, &mut mem, &mut NoFrames),
        Err(MapError::OutOfFrames { .. })
    ));
    let mut m = Mapper::from_root(format, PhysAddr::new(0x1000));
    let attrs = pagesim::arch::Attributes::AF;
    for va in EDGES {
        for len in [0, 1, 0x1000, u64::MAX, u64::MAX - 0xfff] {
            let _ = m.map(
                &mut mem,
                &mut NoFrames,
                VirtAddr::new(va),
                PhysAddr::new(0x1000),
                len,
                attrs,
            );
            let _ = m.unmap(&mut mem, &mut NoFrames, VirtAddr::new(va), len);
            let _ = m.protect(
                &mut mem,
                &mut NoFrames,
                VirtAddr::new(va),
                len,
                attrs,
                attrs,
            );
            let _ = m.map_page(
                &mut mem,
                &mut NoFrames,
                VirtAddr::new(va),
                PhysAddr::new(va & ((1 << 52) - 1)),
                attrs,
            );
        }
    }
    assert_eq!(
        mem.words().count(),
        0,
        "no call with hostile arguments wrote a table"
    );
}

#[test]
fn tlb_and_mmu() {
    for name in ["", "VAE1", "RVAE1", "RVAAE1IS", "ALLE2", "vae1"] {
        for xt in EDGES {
            if let Ok(op) = Tlbi::from_operand(name, xt) {
                let mut t: Tlb<16> = Tlb::new();
                t.invalidate(op);
            }
        }
    }
    let mut t: Tlb<16> = Tlb::new();
    t.invalidate(Tlbi::Rvae1 {
        asid: 0,
        va: VirtAddr::new(u64::MAX),
        len: u64::MAX,
    });
    t.invalidate(Tlbi::Rvaae1 {
        va: VirtAddr::new(0),
        len: 0,
    });
    let regs = Registers {
        tcr: u64::MAX,
        sctlr: 1,
        ttbr0: 0,
        ttbr1: 0,
        mair: 0,
    };
    let mut mmu: Mmu<SparseMemory, 16> =
        Mmu::new(regs, Cpu::MAX, SparseMemory::new(PhysAddr::new(0), 1 << 20));
    for va in EDGES {
        for a in [
            Access::read(El::El0),
            Access::fetch(El::El1).with_pan(true),
            Access::write(El::El1).with_size(8),
        ] {
            let _ = mmu.translate(VirtAddr::new(va), a);
        }
    }
}

type Call<'c> = dyn Fn(&mut pagesim::linux::storage::SimProcess<'_>) -> Result<(), Errno> + 'c;

#[test]
fn paging_and_process() {
    let mut ram = vec![0u8; 1 << 20];
    let mut storage = vec![0u64; FrameAllocator::storage_words(256)];
    let frames = FrameAllocator::new(
        PhysAddr::new(0x4000_0000),
        1 << 20,
        &mut storage,
        Contents::Zeroed,
    )
    .unwrap();
    let mem = SliceMemory::new(PhysAddr::new(0x4000_0000), &mut ram);
    let bad = PagingConfig {
        granule: Granule::K64,
        ..PagingConfig::default()
    };
    assert!(matches!(
        Paging::<_, 16>::new(bad, mem, frames),
        Err(PagingError::InvalidConfig)
    ));

    let params = LayoutParams::arm64_6_12();
    let mut st = ProcessStorage::new(&params, 64 << 20);
    let mut p = st
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let rw = mman::PROT_READ | mman::PROT_WRITE;
    let pa = mman::MAP_PRIVATE | mman::MAP_ANONYMOUS;
    for a in EDGES {
        for len in [0, 1, u64::MAX, u64::MAX - 0xfff, 1 << 62] {
            let calls: [&Call<'_>; 5] = [
                &|p| {
                    p.mmap(
                        a,
                        len,
                        Prot::from_bits_retain(0xff),
                        MapFlags::from_bits_retain(0xffff_ffff),
                    )
                    .map(|_| ())
                },
                &|p| {
                    p.mmap(a, len, rw, pa | mman::MAP_FIXED_NOREPLACE)
                        .map(|_| ())
                },
                &|p| p.munmap(a | 1, len),
                &|p| p.mprotect(a | 1, len, rw),
                &|p| p.madvise(a | 1, len, Advice::Other(9999)),
            ];
            for call in calls {
                let snapshot = p.maps_string();
                if call(&mut p).is_err() {
                    assert_eq!(p.maps_string(), snapshot, "a failed call changed the map");
                }
            }
        }
    }
    let before = p.maps_string();
    let mut vec = vec![0u8; 16];
    assert_eq!(p.mincore(1, 4096, &mut vec), Err(Errno::EINVAL));
    assert_eq!(
        p.mincore(0x7000_0000_0000, 4096, &mut vec),
        Err(Errno::ENOMEM)
    );
    assert_eq!(p.mincore(!0xfff, 0x2000, &mut vec), Err(Errno::ENOMEM));
    assert_eq!(
        p.mincore(0x40_0000, 0x1000_0000, &mut vec),
        Err(Errno::ENOMEM)
    );
    assert_eq!(p.mincore(0x40_0000, 0x2000, &mut vec), Ok(2));
    assert_eq!(p.mmap(0, 0, rw, pa), Err(Errno::EINVAL));
    assert_eq!(p.mmap(0, u64::MAX, rw, pa), Err(Errno::ENOMEM));
    assert_eq!(p.munmap(1, 0x1000), Err(Errno::EINVAL));
    let brk = p.brk(0).unwrap();
    assert_eq!(p.brk(u64::MAX), Ok(brk));
    assert_eq!(p.maps_string(), before, "hostile calls changed the map");
    for va in EDGES {
        for k in [AccessKind::Read, AccessKind::Write, AccessKind::Fetch] {
            match p.access(VirtAddr::new(va), k) {
                Touch::Segv(s) => assert!(matches!(
                    s.fault.kind,
                    FaultKind::Translation | FaultKind::Permission | FaultKind::AddressSize
                )),
                // Only inside a VMA (the calls above may legitimately have mapped page 0).
                Touch::Done(_) => assert!(
                    p.space().vma_lookup(va & 0x00ff_ffff_ffff_ffff).is_some(),
                    "{va:#x}"
                ),
                other => panic!("{va:#x}: {other:?}"),
            }
        }
    }
}

#[test]
fn text_inputs() {
    let fmt = MapsFormat::ARM64_6_12;
    let mut slots = vec![pagesim::linux::mm::vma_tree::VmaSlot::EMPTY; 8];
    for text in [
        "",
        "garbage",
        "0-0 rw-p 0 0:0 0\n",
        "ffffffffffffffff-0 rw-p 00000000 00:00 0 \n",
        "1000-2000 rwxq 00000000 00:00 0\n\u{0}",
    ] {
        let mut tree = pagesim::linux::mm::vma_tree::VmaTree::new(&mut slots);
        if let Err(e) = pagesim::linux::mm::maps_text::import_maps(text, &fmt, &mut tree) {
            assert!(e.line >= 1);
            assert_eq!(tree.len(), 0, "nothing imported on error");
        }
    }
    for s in [
        "mmap",
        "= mmap 0 1 rw private",
        "x = brk 0",
        "read 0x 1",
        "mmap 0 1G rwz private",
        "madvise 0 0 nope",
    ] {
        assert!(script::parse(s).is_err(), "{s}");
    }
    // `pagesim at` answers every malformed line with an error object, one per line.
    let bad = [
        "null",
        "[]",
        "{\"tcr\":1}",
        "{\"tcr\":\"0x\",\"sctlr\":\"0\",\"ttbr0\":\"0\",\"ttbr1\":\"0\",\"mair\":\"0\",\"va\":\"0\",\"op\":\"S1E1R\"}",
        "{\"tcr\":\"0x0\",\"sctlr\":\"0x1\",\"ttbr0\":\"0x0\",\"ttbr1\":\"0x0\",\"mair\":\"0x0\",\"va\":\"0x0\",\"op\":\"S9E9\"}",
        "{\"tcr\":\"0x10\",\"sctlr\":\"0x1\",\"ttbr0\":\"0x0\",\"ttbr1\":\"0x0\",\"mair\":\"0x0\",\"va\":\"0x0\",\"op\":\"S1E1R\",\"writes\":[[\"0x1\",\"0x0\"]]}",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pagesim"))
        .arg("at")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for l in bad {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), bad.len(), "{text}");
    for (l, answer) in bad.iter().zip(&lines) {
        assert!(answer.starts_with("{\"error\":"), "{l} -> {answer}");
    }
}
