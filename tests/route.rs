//! `Mmu::route` gives an emulator what it routes an access on (PA, memory attributes, page
//! or block size, global), the same from a walk and from a TLB hit; `Mmu::flush_with`
//! reports each invalidation it applies, so that an embedder's own cache can follow.

use pagesim::arch::{Access, Attributes, Cpu, DeviceKind, El, Granule, Registers};
use pagesim::mmu::{Contents, FrameAllocator, Lpa2, Mapper, Mmu, TableFormat, Tlbi, VaRange};
use pagesim::phys::SliceMemory;
use pagesim::{PhysAddr, VirtAddr};

const RAM: u64 = 0x4000_0000;
// MAIR: Attr0 Normal write-back, Attr1 Device-nGnRE, Attr2 Normal non-cacheable.
const MAIR: u64 = 0x44_04_ff;

#[test]
fn routes_from_walks_and_hits_agree() {
    let mut ram = vec![0u8; 4 << 20];
    let mut mem = SliceMemory::new(PhysAddr::new(RAM), &mut ram);
    let mut storage = vec![0u64; FrameAllocator::storage_words(1024)];
    let mut frames =
        FrameAllocator::new(PhysAddr::new(RAM), 4 << 20, &mut storage, Contents::Zeroed).unwrap();
    let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48).unwrap();
    let mut mapper = Mapper::new(format, &mut mem, &mut frames).unwrap();
    mapper.set_asid(3);
    let user = Attributes::AF | Attributes::AP_EL0 | Attributes::NG;
    let device = user | Attributes::ATTR_INDX_0 | Attributes::UXN | Attributes::PXN;
    // A Device page (MMIO), a non-global Normal page, and a global 2 MiB Normal block.
    let maps = [
        (0x1000_0000u64, 0x0900_0000u64, 0x1000u64, device),
        (
            0x1000_1000,
            0x8000_1000,
            0x1000,
            user | Attributes::ATTR_INDX_1,
        ),
        (
            0x2000_0000,
            0x8020_0000,
            2 << 20,
            Attributes::AF | Attributes::AP_EL0,
        ),
    ];
    for (va, pa, len, attrs) in maps {
        mapper
            .map(
                &mut mem,
                &mut frames,
                VirtAddr::new(va),
                PhysAddr::new(pa),
                len,
                attrs,
            )
            .unwrap()
            .ignore(); // the tables are not live yet: no TLB holds them
    }
    let regs = Registers {
        tcr: 0x5_8010_0010 | (1 << 39),
        sctlr: 1,
        ttbr0: mapper.ttbr(3),
        ttbr1: 0,
        mair: MAIR,
    };
    let mut mmu: Mmu<_, 64, true> = Mmu::new(regs, Cpu::MAX, mem);
    let read = Access::read(El::El0);
    for round in 0..2 {
        // Round 0 walks and fills the TLB; round 1 is served by it.
        let r = mmu.route(VirtAddr::new(0x1000_0010), read).unwrap();
        assert_eq!(r.pa, PhysAddr::new(0x0900_0010));
        assert!(r.attr.is_device(), "round {round}");
        assert_eq!(r.attr.device_kind(), Some(DeviceKind::NGnRE));
        assert_eq!((r.size_log2, r.global), (12, false));
        let r = mmu.route(VirtAddr::new(0x1000_1abc), read).unwrap();
        assert_eq!(r.pa, PhysAddr::new(0x8000_1abc));
        assert!(!r.attr.is_device() && !r.attr.is_cacheable());
        let r = mmu.route(VirtAddr::new(0x2012_3456), read).unwrap();
        assert_eq!(r.pa, PhysAddr::new(0x8032_3456));
        assert!(r.attr.is_cacheable());
        assert_eq!((r.size_log2, r.global), (21, true));
    }
    let stats = mmu.stats();
    assert_eq!(stats.walks, 3, "the second round hits");
    assert_eq!(stats.hits, 3);
    // A fault routes nowhere.
    assert!(mmu.route(VirtAddr::new(0x3000_0000), read).is_err());

    // Unmapping the Normal page: the embedder sees the invalidation it must mirror.
    let mut mem = mmu.into_memory();
    let flush = mapper
        .unmap(&mut mem, &mut frames, VirtAddr::new(0x1000_1000), 0x1000)
        .unwrap();
    let mut mmu: Mmu<_, 64, true> = Mmu::new(regs, Cpu::MAX, mem);
    let mut seen = vec![];
    mmu.flush_with(flush, |op| seen.push(op));
    assert_eq!(seen.len(), 1);
    assert!(matches!(seen[0], Tlbi::Vae1 { .. }), "{seen:?}");
    assert!(mmu.route(VirtAddr::new(0x1000_1abc), read).is_err());
}
