//! Unit tests of the table mapper.

use super::*;
use crate::phys::SliceMemory;
use std::string::String;
use std::vec::Vec;

struct Frames(Vec<u64>);

impl FrameSource for Frames {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        assert_eq!(order, 0);
        self.0.pop().map(|p| (PhysAddr::new(p), false))
    }
    fn release(&mut self, pa: PhysAddr, _: u32, _: bool) -> Result<(), FrameError> {
        self.0.push(pa.as_u64());
        Ok(())
    }
    fn available(&self, _: u32) -> u64 {
        self.0.len() as u64
    }
}

const BASE: u64 = 0x4000_0000;

fn setup(ram: &mut [u8]) -> (SliceMemory<'_>, Frames, Mapper) {
    let mut mem = SliceMemory::new(PhysAddr::new(BASE), ram);
    let mut frames = Frames((0..64).rev().map(|i| BASE + i * 4096).collect());
    let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48).unwrap();
    let m = Mapper::new(format, &mut mem, &mut frames).unwrap();
    (mem, frames, m)
}

const RW: Attributes = Attributes::AF.union(Attributes::SH0).union(Attributes::SH1);

/// Maps `[va, va + len)` to `pa` read-write; the tables are not live, so no TLB needs
/// the invalidations.
fn map_rw(
    m: &mut Mapper,
    mem: &mut SliceMemory<'_>,
    frames: &mut Frames,
    va: u64,
    pa: u64,
    len: u64,
) {
    m.map(mem, frames, VirtAddr::new(va), PhysAddr::new(pa), len, RW)
        .unwrap()
        .ignore();
}

#[test]
fn blocks_where_aligned_pages_elsewhere() {
    let mut ram = vec![0u8; 64 * 4096];
    let (mut mem, mut frames, mut m) = setup(&mut ram);
    // 2 MiB + 8 KiB at a 2 MiB-aligned VA and PA: one L2 block and two L3 pages.
    map_rw(
        &mut m,
        &mut mem,
        &mut frames,
        0x20_0000,
        0x8020_0000,
        0x20_2000,
    );
    let mut leaves = Vec::new();
    m.for_each_leaf(&mem, VirtAddr::new(0), 1 << 30, |l| {
        leaves.push((l.va.as_u64(), l.level.get(), l.pa.as_u64()));
        true
    })
    .unwrap();
    assert_eq!(
        leaves,
        [
            (0x20_0000, 2, 0x8020_0000),
            (0x40_0000, 3, 0x8040_0000),
            (0x40_1000, 3, 0x8040_1000)
        ]
    );
    // L0, L1, L2 tables, plus one L3 table.
    assert_eq!(m.table_count(), 4);
    let mut out = String::new();
    m.ptdump(&mem, 0xff, &mut out).unwrap();
    assert_eq!(
        out,
        "---[ TTBR0 half ]---\n\
         0x0000000000200000-0x0000000000400000           2M PMD       RW x  SHD AF        BLK        MEM/NORMAL\n\
         0x0000000000400000-0x0000000000402000           8K PTE       RW x  SHD AF                   MEM/NORMAL\n"
    );
}

#[test]
fn errors_leave_tables_unchanged() {
    let mut ram = vec![0u8; 64 * 4096];
    let (mut mem, mut frames, mut m) = setup(&mut ram);
    map_rw(&mut m, &mut mem, &mut frames, 0x1000, 0x9000_0000, 0x1000);
    let before = mem.bytes().to_vec();
    let cases = [
        (
            0x1001,
            0x9000_0000,
            0x1000,
            MapError::Unaligned { addr: 0x1001 },
        ),
        (
            0x2000,
            0x9000_0000,
            0x1001,
            MapError::Unaligned { addr: 0x1001 },
        ),
        (
            0x2000,
            0x9000_0800,
            0x1000,
            MapError::Unaligned { addr: 0x9000_0800 },
        ),
        (
            0x0,
            0x9000_0000,
            0x2000,
            MapError::AlreadyMapped {
                va: VirtAddr::new(0x1000),
            },
        ),
        (
            0xffff_ffff_f000,
            0x9000_0000,
            0x2000,
            MapError::OutOfRange {
                va: VirtAddr::new(0x1_0000_0000_0fff),
            },
        ),
        (
            0x1_0000_0000_0000,
            0x9000_0000,
            0x1000,
            MapError::OutOfRange {
                va: VirtAddr::new(0x1_0000_0000_0000),
            },
        ),
        (
            0x2000,
            0xffff_ffff_f000,
            0x2000,
            MapError::OutputOutOfRange {
                pa: 0x1_0000_0000_0fff,
            },
        ),
        (
            u64::MAX - 0xfff,
            0,
            0x2000,
            MapError::OutOfRange {
                va: VirtAddr::new(u64::MAX - 0xfff),
            },
        ),
    ];
    for (va, pa, len, want) in cases {
        let got = m.map(
            &mut mem,
            &mut frames,
            VirtAddr::new(va),
            PhysAddr::new(pa),
            len,
            RW,
        );
        assert_eq!(got, Err(want), "map({va:#x}, {pa:#x}, {len:#x})");
        assert!(mem.bytes() == before.as_slice());
    }
    assert_eq!(
        m.map(
            &mut mem,
            &mut frames,
            VirtAddr::new(0x2000),
            PhysAddr::new(0x9000_0000),
            0x1000,
            Attributes::VALID
        ),
        Err(MapError::InvalidAttributes { bits: 1 })
    );
    // No frames left: a map that needs new tables fails cleanly.
    let mut empty = Frames(Vec::new());
    assert_eq!(
        m.map(
            &mut mem,
            &mut empty,
            VirtAddr::new(0x4000_0000),
            PhysAddr::new(0x9000_0000),
            0x1000,
            RW
        ),
        Err(MapError::OutOfFrames {
            va: VirtAddr::new(0x4000_0000)
        })
    );
    assert!(mem.bytes() == before.as_slice());
}

#[test]
fn partial_unmap_of_a_block_splits_with_break_before_make() {
    let mut ram = vec![0u8; 64 * 4096];
    let (mut mem, mut frames, mut m) = setup(&mut ram);
    let _ = m
        .map(
            &mut mem,
            &mut frames,
            VirtAddr::new(0x20_0000),
            PhysAddr::new(0x8020_0000),
            0x20_0000,
            RW | Attributes::NG,
        )
        .unwrap();
    m.set_asid(7);
    let flush = m
        .unmap(&mut mem, &mut frames, VirtAddr::new(0x20_1000), 0x1000)
        .unwrap();
    // The whole block was invalidated (break-before-make), then the page itself.
    assert_eq!(flush.ranges(), Some(&[(0x20_0000, 0x20_0000)][..]));
    assert!(!flush.touches_global());
    assert!(flush
        .ops()
        .all(|op| matches!(op, crate::mmu::Tlbi::Rvae1 { asid: 7, .. })));
    assert!(m.lookup(&mem, VirtAddr::new(0x20_1000)).unwrap().is_none());
    let l = m.lookup(&mem, VirtAddr::new(0x20_2000)).unwrap().unwrap();
    assert_eq!((l.level.get(), l.pa.as_u64()), (3, 0x8020_2000));
    // Unmapping the rest frees the L3 table (and the L2, L1 tables with it).
    let _ = m
        .unmap(&mut mem, &mut frames, VirtAddr::new(0), 1 << 30)
        .unwrap();
    assert_eq!(m.table_count(), 1);
    assert_eq!(frames.0.len(), 63);
}

#[test]
fn protect_changes_only_attribute_bits() {
    let mut ram = vec![0u8; 64 * 4096];
    let (mut mem, mut frames, mut m) = setup(&mut ram);
    map_rw(&mut m, &mut mem, &mut frames, 0x1000, 0x9000_0000, 0x3000);
    let f = m
        .protect(
            &mut mem,
            &mut frames,
            VirtAddr::new(0x2000),
            0x1000,
            Attributes::AP_RO | Attributes::UXN,
            Attributes::empty(),
        )
        .unwrap();
    assert_eq!(f.ranges(), Some(&[(0x2000, 0x1000)][..]));
    let d = m
        .lookup(&mem, VirtAddr::new(0x2000))
        .unwrap()
        .unwrap()
        .descriptor;
    assert_eq!(
        d.bits(),
        0x9000_1000 | RW.bits() | Attributes::AP_RO.bits() | Attributes::UXN.bits() | 3
    );
    let d1 = m
        .lookup(&mem, VirtAddr::new(0x1000))
        .unwrap()
        .unwrap()
        .descriptor;
    assert_eq!(d1.bits(), 0x9000_0000 | RW.bits() | 3);
    assert_eq!(
        m.protect(
            &mut mem,
            &mut frames,
            VirtAddr::new(0x2000),
            0x1000,
            Attributes::TABLE_OR_PAGE,
            Attributes::empty()
        ),
        Err(MapError::InvalidAttributes { bits: 2 })
    );
}

#[test]
fn ttbr_encodes_asid_and_52_bit_base() {
    let f = TableFormat::try_new(Granule::K64, 52, VaRange::Lower, Lpa2::Off, 52).unwrap();
    let m = Mapper::from_root(f, PhysAddr::new(0x000f_0000_1234_0000));
    assert_eq!(m.ttbr(5), (5 << 48) | 0x1234_0000 | (0xf << 2));
    assert!(TableFormat::try_new(Granule::K4, 52, VaRange::Lower, Lpa2::Off, 48).is_err());
    assert!(TableFormat::try_new(Granule::K64, 48, VaRange::Lower, Lpa2::On, 48).is_err());
}

#[test]
fn unmap_with_hands_over_every_page_it_removes() {
    let mut ram = vec![0u8; 64 * 4096];
    let (mut mem, mut frames, mut m) = setup(&mut ram);
    // A 2 MiB block with pages on both sides; the unmap cuts into the block and takes
    // the pages after it.
    map_rw(
        &mut m,
        &mut mem,
        &mut frames,
        0x1f_e000,
        0x8_001f_e000,
        0x20_4000,
    );
    let (va, len) = (0x3f_0000u64, 0x1_3000u64);
    let mut before = Vec::new();
    let mut p = va;
    while p < va + len {
        if let Some(l) = m.lookup(&mem, VirtAddr::new(p)).unwrap() {
            before.push((p, l.pa.as_u64() + (p - l.va.as_u64())));
        }
        p += 4096;
    }
    let mut handed = Vec::new();
    let tables = frames.0.len();
    let flush = m
        .unmap_with(
            &mut mem,
            &mut frames,
            VirtAddr::new(va),
            len,
            &mut |l: &Leaf, f: &mut Frames| {
                // The frame source is the caller's to use meanwhile.
                assert!(f.available(0) + 2 >= tables as u64);
                let mut a = l.va.as_u64();
                while a < l.va.as_u64() + (1 << l.size_log2) {
                    handed.push((a, l.pa.as_u64() + (a - l.va.as_u64())));
                    a += 4096;
                }
            },
        )
        .unwrap();
    flush.ignore();
    assert_eq!(handed, before);
    assert_eq!(before.len(), 0x12); // the mapping ends at 0x40_2000
                                    // Gone from the tables; the block's part before the range stays.
    for &(a, _) in &before {
        assert_eq!(m.lookup(&mem, VirtAddr::new(a)).unwrap(), None);
    }
    let kept = m.lookup(&mem, VirtAddr::new(va - 4096)).unwrap().unwrap();
    assert_eq!(kept.pa.as_u64(), 0x8_003e_f000);
}

#[test]
fn derived_leaf_shape_matches_the_general_rules() {
    // The fault path's page mapping reads these instead of deriving them; every format
    // the constructor accepts must agree with the general formulas.
    let mut checked = 0;
    for granule in [Granule::K4, Granule::K16, Granule::K64] {
        for input_bits in 16..=52 {
            for lpa2 in [Lpa2::Off, Lpa2::On] {
                for oa_bits in [32, 40, 48, 52] {
                    let Ok(f) =
                        TableFormat::try_new(granule, input_bits, VaRange::Lower, lpa2, oa_bits)
                    else {
                        continue;
                    };
                    assert_eq!(f.page_shift, f.shift(3));
                    assert_eq!(f.leaf_index_mask, f.index_mask(3), "{f:?}");
                    assert_eq!(f.oa_low_mask, f.descriptor_format().low_oa_mask(), "{f:?}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked}");
}
