//! Translation faults as data: kind, level, and the syndrome values software would see.

use core::fmt;

use super::access::Access;
use super::granule::Level;
use crate::addr::VirtAddr;

/// The kind of a stage-1 fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Address size fault: an address above the input or output address size.
    AddressSize,
    /// Translation fault: no valid mapping.
    Translation,
    /// Access flag fault: AF = 0 without hardware AF management.
    AccessFlag,
    /// Permission fault.
    Permission,
    /// Alignment fault (unaligned access to Device memory).
    Alignment,
    /// Synchronous External abort on a translation table walk.
    ExternalAbortOnWalk,
    /// Unsupported atomic hardware update of a descriptor (FSC 0x31).
    UnsupportedAtomicUpdate,
}

/// A stage-1 fault: what an access got instead of a physical address.
///
/// Faults are the normal result of a walk, not an error of the simulator: the methods give
/// the fault status code, ESR_EL1 and PAR_EL1 values the architecture defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The kind of fault.
    pub kind: FaultKind,
    /// The lookup level that faulted (`None` for alignment faults, which carry no level;
    /// an unsupported atomic update reports the leaf's level, though its FSC has none).
    pub level: Option<Level>,
    /// The faulting virtual address as issued (FAR_EL1), tag byte included.
    pub va: VirtAddr,
    /// The access that faulted.
    pub access: Access,
}

impl Fault {
    /// Creates a fault at a level.
    #[inline]
    pub const fn new(kind: FaultKind, level: Level, va: VirtAddr, access: Access) -> Fault {
        Fault {
            kind,
            level: Some(level),
            va,
            access,
        }
    }

    /// Returns the 6-bit fault status code (DFSC/IFSC, PAR_EL1.FST).
    pub const fn fsc(&self) -> u8 {
        let lvl = match self.level {
            Some(l) => l.get(),
            None => 0,
        };
        let l = (lvl & 3) as u8;
        match self.kind {
            FaultKind::AddressSize if lvl < 0 => 0x29,
            FaultKind::AddressSize => l,
            FaultKind::Translation if lvl < 0 => 0x2b,
            FaultKind::Translation => 0x04 | l,
            FaultKind::AccessFlag => 0x08 | l,
            FaultKind::Permission => 0x0c | l,
            FaultKind::ExternalAbortOnWalk if lvl < 0 => 0x13,
            FaultKind::ExternalAbortOnWalk => 0x14 | l,
            FaultKind::Alignment => 0x21,
            FaultKind::UnsupportedAtomicUpdate => 0x31,
        }
    }

    /// Returns the exception class for taking this fault to EL1: 0x20/0x21 for instruction
    /// aborts from EL0/EL1, 0x24/0x25 for data aborts.
    pub const fn ec(&self) -> u8 {
        match (self.access.is_fetch(), self.access.is_el0()) {
            (true, true) => 0x20,
            (true, false) => 0x21,
            (false, true) => 0x24,
            (false, false) => 0x25,
        }
    }

    /// Returns the ISS: the FSC, and WnR (bit 6) for data writes. ISV, S1PTW, CM, EA and
    /// FnV are 0 for stage-1 faults (spec §4.3).
    pub const fn iss(&self) -> u32 {
        let mut iss = self.fsc() as u32;
        if !self.access.is_fetch() && self.access.is_write() {
            iss |= 1 << 6;
        }
        iss
    }

    /// Returns ESR_EL1 for this fault taken to EL1: EC, IL = 1, ISS.
    pub const fn esr(&self) -> u32 {
        ((self.ec() as u32) << 26) | (1 << 25) | self.iss()
    }

    /// Returns FAR_EL1: the faulting VA as issued.
    #[inline]
    pub const fn far(&self) -> u64 {
        self.va.as_u64()
    }

    /// Returns the PAR_EL1 value an AT instruction reports for this fault: F = 1, FST,
    /// PTW = 0, S = 0 (stage 1), and bit 11 (RES1).
    pub const fn par(&self) -> u64 {
        1 | ((self.fsc() as u64) << 1) | (1 << 11)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::AddressSize => "address size fault",
            FaultKind::Translation => "translation fault",
            FaultKind::AccessFlag => "access flag fault",
            FaultKind::Permission => "permission fault",
            FaultKind::Alignment => "alignment fault",
            FaultKind::ExternalAbortOnWalk => "synchronous external abort on walk",
            FaultKind::UnsupportedAtomicUpdate => "unsupported atomic hardware update fault",
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(l) = self.level {
            write!(f, ", level {}", l.get())?;
        }
        write!(
            f,
            " (FSC {:#04x}, ESR {:#010x}, FAR {:#x})",
            self.fsc(),
            self.esr(),
            self.far()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::access::El;

    #[test]
    fn syndromes_from_spec_examples() {
        let va = VirtAddr::new(0x1000);
        let f = Fault::new(
            FaultKind::Translation,
            Level::L3,
            va,
            Access::write(El::El0),
        );
        assert_eq!(f.esr(), 0x9200_0047);
        let f = Fault::new(FaultKind::Permission, Level::L3, va, Access::write(El::El1));
        assert_eq!(f.esr(), 0x9600_004f);
        let f = Fault::new(FaultKind::Permission, Level::L3, va, Access::fetch(El::El1));
        assert_eq!(f.esr(), 0x8600_000f);
        let f = Fault::new(
            FaultKind::Translation,
            Level::MINUS_1,
            va,
            Access::read(El::El1),
        );
        assert_eq!(f.fsc(), 0x2b);
        assert_eq!(f.par(), 1 | (0x2b << 1) | (1 << 11));
        let f = Fault::new(
            FaultKind::ExternalAbortOnWalk,
            Level::L2,
            va,
            Access::read(El::El1),
        );
        assert_eq!(f.fsc(), 0x16);
    }
}
