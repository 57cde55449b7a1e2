//! The TLB scenarios of the VMSA spec (§10.3) through `Mmu`, which caches translations:
//! where the spec allows "stale or fresh", the test accepts both; where it demands fresh,
//! the test demands it.

use pagesim::arch::{Access, Cpu, El, FaultKind, Registers};
use pagesim::mmu::{Mmu, Tlbi};
use pagesim::phys::{PhysMemory, SparseMemory};
use pagesim::{PhysAddr, VirtAddr};

#[path = "common/fixture.rs"]
mod common;
use common::{fixture, TCR};

fn regs(asid: u64, tcr_extra: u64) -> Registers {
    Registers {
        tcr: TCR | tcr_extra,
        sctlr: 1,
        ttbr0: (asid << 48) | 0x4000_0000,
        ttbr1: 0x4010_0000,
        mair: 0xff,
    }
}

type TestMmu = Mmu<SparseMemory, 64, true>;

fn mmu(tcr_extra: u64) -> TestMmu {
    Mmu::new(regs(1, tcr_extra), Cpu::MAX, fixture())
}

fn pa(m: &mut TestMmu, va: u64, access: Access) -> Result<u64, (FaultKind, i8)> {
    m.translate(VirtAddr::new(va), access)
        .map(|p| p.as_u64())
        .map_err(|f| (f.kind, f.level.map_or(99, |l| l.get())))
}

fn store(m: &mut TestMmu, at: u64, v: u64) {
    m.memory_mut().write_u64(PhysAddr::new(at), v).unwrap();
}

fn vae1(asid: u16, va: u64) -> Tlbi {
    Tlbi::from_operand(
        "VAE1",
        ((asid as u64) << 48) | ((va >> 12) & ((1 << 44) - 1)),
    )
    .unwrap()
}

const R1: Access = Access::read(El::El1);
const W1: Access = Access::write(El::El1);
const R0: Access = Access::read(El::El0);
const W0: Access = Access::write(El::El0);

#[test]
fn t1_stale_until_tlbi() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    store(&mut m, 0x4000_3008, 0);
    let r = pa(&mut m, 0x1000, R1);
    assert!(r == Ok(0x8800_1000) || r == Err((FaultKind::Translation, 3)));
    m.tlbi(vae1(1, 0x1000));
    assert_eq!(pa(&mut m, 0x1000, R1), Err((FaultKind::Translation, 3)));
}

#[test]
fn t2_faults_are_not_cached() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x40_0010, R1), Err((FaultKind::Translation, 2)));
    store(&mut m, 0x4000_2010, 0x0000_0000_9040_0701);
    assert_eq!(pa(&mut m, 0x40_0010, R1), Ok(0x9040_0010));
}

#[test]
fn t3_access_flag_fault_not_cached() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x5000, R1), Err((FaultKind::AccessFlag, 3)));
    store(&mut m, 0x4000_3028, 0x8800_5743);
    assert_eq!(pa(&mut m, 0x5000, R1), Ok(0x8800_5000));
}

#[test]
fn t4_non_global_entries_belong_to_their_asid() {
    let mut m = mmu(0);
    store(&mut m, 0x4000_3008, 0x0000_0000_8800_1F43);
    assert_eq!(pa(&mut m, 0x1000, R0), Ok(0x8800_1000));
    store(&mut m, 0x4000_3008, 0x0000_0000_8810_1F43);
    m.set_registers(regs(2, 0));
    assert_eq!(pa(&mut m, 0x1000, R0), Ok(0x8810_1000));
    m.set_registers(regs(1, 0));
    let r = pa(&mut m, 0x1000, R0);
    assert!(r == Ok(0x8800_1000) || r == Ok(0x8810_1000));
    // This TLB is direct-mapped: ASID 2's entry replaced ASID 1's in the same slot.
    assert_eq!(r, Ok(0x8810_1000));
}

#[test]
fn t5_global_entries_survive_asid_switch_and_aside1() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x2000, R1), Ok(0x8800_2000));
    store(&mut m, 0x4000_3010, 0x0000_0000_8820_2703);
    m.set_registers(regs(2, 0));
    // pagesim keeps global entries across an ASID switch: the stale answer.
    assert_eq!(pa(&mut m, 0x2000, R1), Ok(0x8800_2000));
    m.tlbi(Tlbi::Aside1 { asid: 1 });
    m.tlbi(Tlbi::Aside1 { asid: 2 });
    assert_eq!(pa(&mut m, 0x2000, R1), Ok(0x8800_2000));
    m.tlbi(Tlbi::from_operand("VAAE1", 0x2000 >> 12).unwrap());
    assert_eq!(pa(&mut m, 0x2000, R1), Ok(0x8820_2000));
}

#[test]
fn t6_tlbi_inside_a_block_drops_the_block() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x20_0000, R1), Ok(0x9000_0000));
    assert_eq!(pa(&mut m, 0x3F_F000, R1), Ok(0x901F_F000));
    store(&mut m, 0x4000_2008, 0);
    m.tlbi(vae1(1, 0x3F_F000));
    store(&mut m, 0x4000_2008, 0x0040_0000_9400_0701);
    assert_eq!(pa(&mut m, 0x20_0000, R1), Ok(0x9400_0000));
    assert_eq!(pa(&mut m, 0x3F_F000, R1), Ok(0x941F_F000));
}

#[test]
fn t7_relaxed_permissions_need_tlbi_or_rewalk() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x3000, R1), Ok(0x8800_3000));
    store(&mut m, 0x4000_3018, 0x8800_3703);
    let r = pa(&mut m, 0x3000, W1);
    assert!(r == Ok(0x8800_3000) || r == Err((FaultKind::Permission, 3)));
    m.tlbi(vae1(1, 0x3000));
    assert_eq!(pa(&mut m, 0x3000, W1), Ok(0x8800_3000));
}

#[test]
fn t8_write_to_clean_dbm_entry_walks_and_dirties() {
    let mut m = mmu((1 << 39) | (1 << 40));
    assert_eq!(pa(&mut m, 0x6000, R0), Ok(0x8800_6000));
    assert_eq!(
        m.memory().read_u64(PhysAddr::new(0x4000_3030)),
        Ok(0x0008_0000_8800_67C3)
    );
    assert_eq!(pa(&mut m, 0x6000, W0), Ok(0x8800_6000));
    assert_eq!(
        m.memory().read_u64(PhysAddr::new(0x4000_3030)),
        Ok(0x0008_0000_8800_6743)
    );
    store(&mut m, 0x4000_3030, 0x0008_0000_8800_67C3);
    m.tlbi(vae1(1, 0x6000));
    assert_eq!(pa(&mut m, 0x6000, W0), Ok(0x8800_6000));
    assert_eq!(
        m.memory().read_u64(PhysAddr::new(0x4000_3030)),
        Ok(0x0008_0000_8800_6743)
    );
}

#[test]
fn t9_access_flag_set_again_after_tlbi() {
    let mut m = mmu(1 << 39);
    assert_eq!(pa(&mut m, 0x5000, R1), Ok(0x8800_5000));
    assert_eq!(
        m.memory().read_u64(PhysAddr::new(0x4000_3028)),
        Ok(0x8800_5743)
    );
    store(&mut m, 0x4000_3028, 0x8800_5343);
    assert_eq!(pa(&mut m, 0x5000, R1), Ok(0x8800_5000));
    m.tlbi(vae1(1, 0x5000));
    assert_eq!(pa(&mut m, 0x5000, R1), Ok(0x8800_5000));
    assert_eq!(
        m.memory().read_u64(PhysAddr::new(0x4000_3028)),
        Ok(0x8800_5743)
    );
}

#[test]
fn t10_epd_after_tcr_write() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    m.set_registers(regs(1, 1 << 7));
    let r = pa(&mut m, 0x1000, R1);
    assert!(r == Ok(0x8800_1000) || r == Err((FaultKind::Translation, 0)));
    m.tlbi(Tlbi::Vmalle1);
    assert_eq!(pa(&mut m, 0x1000, R1), Err((FaultKind::Translation, 0)));
}

#[test]
fn t11_table_replaced_by_block() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    assert_eq!(pa(&mut m, 0x20_0000, R1), Ok(0x9000_0000));
    store(&mut m, 0x4000_1000, 0);
    m.tlbi(vae1(1, 0x1000));
    m.tlbi(vae1(1, 0x20_0000));
    store(&mut m, 0x4000_1000, 0x0000_0000_8000_0701);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8000_1000));
}

#[test]
fn stats_count_hits_misses_walks() {
    let mut m = mmu(0);
    for _ in 0..3 {
        pa(&mut m, 0x1000, R1).unwrap();
    }
    let _ = pa(&mut m, 0x0, R1);
    let s = m.stats();
    assert_eq!((s.hits, s.walks, s.fills, s.faults), (2, 2, 1, 1));
    assert_eq!(s.misses, 2);
}

#[test]
fn pan_is_evaluated_per_access_on_hits() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    // The same cached entry: PAN=1 takes EL1 data access away from EL0-accessible memory.
    assert_eq!(
        pa(&mut m, 0x1000, R1.with_pan(true)),
        Err((FaultKind::Permission, 3))
    );
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
}

#[test]
fn tagged_addresses_share_entries_under_tbi() {
    let mut m = mmu(1 << 37);
    assert_eq!(pa(&mut m, 0x5A00_0000_0020_1234, R1), Ok(0x9000_1234));
    assert_eq!(pa(&mut m, 0x0000_0000_0020_1234, R1), Ok(0x9000_1234));
    assert_eq!(m.stats().hits, 1);
    // Without TBI the tagged address faults, even though an entry exists.
    m.set_registers(regs(1, 0));
    assert_eq!(pa(&mut m, 0x0000_0000_0020_1234, R1), Ok(0x9000_1234));
    assert_eq!(
        pa(&mut m, 0x5A00_0000_0020_1234, R1),
        Err((FaultKind::Translation, 0))
    );
}

#[test]
fn e0pd_faults_even_with_a_cached_entry() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x1000, R0), Ok(0x8800_1000));
    m.set_registers(regs(1, 1 << 55));
    assert_eq!(pa(&mut m, 0x1000, R0), Err((FaultKind::Translation, 0)));
}

#[test]
fn entries_of_a_switched_out_asid_hit_again_when_it_returns() {
    let mut m = mmu(0);
    // A non-global page.
    store(&mut m, 0x4000_3008, 0x0000_0000_8800_1F43);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    m.set_registers(regs(2, 0));
    // Under ASID 2 the ASID-1 entry must not answer: the walk sees the cleared descriptor.
    store(&mut m, 0x4000_3008, 0);
    assert_eq!(pa(&mut m, 0x1000, R1), Err((FaultKind::Translation, 3)));
    let walks = m.stats().walks;
    m.set_registers(regs(1, 0));
    // Back under ASID 1 the stale entry still answers, without a walk.
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    assert_eq!(m.stats().walks, walks);
    // A TLBI by VA for ASID 1 issued while ASID 2 is current still removes it.
    m.set_registers(regs(2, 0));
    m.tlbi(vae1(1, 0x1000));
    m.set_registers(regs(1, 0));
    assert_eq!(pa(&mut m, 0x1000, R1), Err((FaultKind::Translation, 3)));
}

#[test]
fn hits_survive_the_entries_that_served_them() {
    let mut m = mmu(0);
    for _ in 0..4 {
        pa(&mut m, 0x1000, R1).unwrap();
    }
    assert_eq!(m.stats().hits, 3);
    m.tlbi(Tlbi::Vmalle1);
    assert_eq!(m.stats().hits, 3);
    assert!(m.tlb().is_empty());
    pa(&mut m, 0x1000, R1).unwrap();
    pa(&mut m, 0x1000, R1).unwrap();
    assert_eq!(m.stats().hits, 4);
}

#[test]
fn e0pd_refuses_el0_on_entries_filled_by_el1() {
    // E0PD0 (TCR bit 55) set before any fill: an EL1 read caches the page, an EL0 read of
    // it still faults at level 0, and the EL1 read keeps hitting.
    let mut m = mmu(1 << 55);
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    let walks = m.stats().walks;
    assert_eq!(pa(&mut m, 0x1000, R0), Err((FaultKind::Translation, 0)));
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    assert_eq!(m.stats().walks, walks);
}

#[test]
fn tagged_access_hits_an_entry_filled_untagged() {
    let mut m = mmu(1 << 37);
    assert_eq!(pa(&mut m, 0x0000_0000_0020_1234, R1), Ok(0x9000_1234));
    let walks = m.stats().walks;
    assert_eq!(pa(&mut m, 0x5A00_0000_0020_1234, R1), Ok(0x9000_1234));
    assert_eq!(m.stats().walks, walks);
    assert_eq!(m.stats().hits, 1);
}

#[test]
fn uncounted_tlb_translates_alike_and_keeps_hits_at_zero() {
    let mut m: Mmu<SparseMemory, 64, false> = Mmu::new(regs(1, 0), Cpu::MAX, fixture());
    for _ in 0..3 {
        assert_eq!(
            m.translate(VirtAddr::new(0x1000), R1).map(|p| p.as_u64()),
            Ok(0x8800_1000)
        );
    }
    let s = m.stats();
    assert_eq!((s.hits, s.misses, s.walks, s.fills), (0, 1, 1, 1));
}

#[test]
fn a_block_entry_still_hits_after_a_tlbi_that_spares_it() {
    let mut m = mmu(0);
    assert_eq!(pa(&mut m, 0x20_0000, R1), Ok(0x9000_0000));
    assert_eq!(pa(&mut m, 0x1000, R1), Ok(0x8800_1000));
    let walks = m.stats().walks;
    // A TLBI of a page elsewhere looks through the block entries and keeps this one.
    m.tlbi(vae1(1, 0x1000));
    assert_eq!(pa(&mut m, 0x20_1000, R1), Ok(0x9000_1000));
    assert_eq!(m.stats().walks, walks, "the block entry served the access");
    // Dropping the block itself leaves the next access to walk, and to fill it again.
    m.tlbi(vae1(1, 0x3F_F000));
    assert_eq!(pa(&mut m, 0x20_2000, R1), Ok(0x9000_2000));
    assert_eq!(m.stats().walks, walks + 1);
    assert_eq!(pa(&mut m, 0x20_3000, R1), Ok(0x9000_3000));
    assert_eq!(m.stats().walks, walks + 1);
}
