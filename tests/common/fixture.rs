//! The VMSA spec's §10.1 fixture, shared by the vector and TLB-sequence tests.

use pagesim::phys::{PhysMemory, SparseMemory};
use pagesim::PhysAddr;

/// TCR_EL1 of the fixture: T0SZ=T1SZ=16, 4K granules, IPS=48 bits.
pub const TCR: u64 = 0x0000_0005_8010_0010;

/// Returns the fixture's memory image (every word not listed is 0).
pub fn fixture() -> SparseMemory {
    let mut m = SparseMemory::new(PhysAddr::new(0), 1 << 48);
    for line in include_str!("../data/vmsa_fixture.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut it = line
            .split_whitespace()
            .map(|w| u64::from_str_radix(&w[2..], 16).unwrap());
        let (pa, v) = (it.next().unwrap(), it.next().unwrap());
        m.write_u64(PhysAddr::new(pa), v).unwrap();
    }
    m
}
