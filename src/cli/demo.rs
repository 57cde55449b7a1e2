//! `pagesim demo`: a guided tour of one address translation, level by level.

use std::io::{self, Write};

use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{walk, Access, Cpu, Descriptor, El, Regime, Registers};
use crate::machinery::{PhysMemory, SparseMemory, TracingMemory};

/// Builds a tiny arm64 user address space by hand (4 KiB granule, 48-bit VA): one text page
/// at 0x400000 (r-x), one data page at 0x401000 (rw-), nothing at 0.
fn build() -> (Regime, SparseMemory) {
    let mut mem = SparseMemory::new(PhysAddr::new(0x4000_0000), 0x4000_0000);
    let words = [
        (0x4000_0000u64, 0x4000_1003u64),     // L0[0] -> L1 table
        (0x4000_1000, 0x4000_2003),           // L1[0] -> L2 table
        (0x4000_2010, 0x4000_3003),           // L2[2] -> L3 table (VA 0x400000..0x5fffff)
        (0x4000_3000, 0x0020_0000_4800_0fc3), // L3[0]: text, AP=11 (r-), PXN, nG, AF
        (0x4000_3008, 0x0060_0000_4800_1f43), // L3[1]: data, AP=01 (rw), UXN+PXN, nG, AF
    ];
    for (pa, v) in words {
        mem.write_u64(PhysAddr::new(pa), v).expect("in RAM");
    }
    let regs = Registers {
        tcr: 0x0000_0005_b510_3510, // T0SZ=T1SZ=16, 4K granules, IPS=48, inner-shareable WB walks
        sctlr: 1,
        ttbr0: 0x0001_0000_4000_0000, // ASID 1
        ttbr1: 0,
        mair: 0xff,
    };
    (Regime::new(regs, Cpu::MAX), mem)
}

fn show(
    out: &mut dyn Write,
    regime: &Regime,
    mem: &mut SparseMemory,
    va: u64,
    access: Access,
) -> io::Result<()> {
    let mut t = TracingMemory::new(mem);
    let r = walk(regime, &mut t, VirtAddr::new(va), access);
    writeln!(out, "{:?} {:?} at {va:#x}:", access.el(), access.kind())?;
    let start = regime.half(false).start_level.get();
    for (i, (pa, d)) in t.reads().iter().enumerate() {
        let lvl = start + i as i8;
        let kind = match (
            Descriptor(*d).is_valid(),
            Descriptor(*d).is_table_or_page(),
            lvl,
        ) {
            (false, _, _) => "invalid",
            (true, true, 3) => "page",
            (true, true, _) => "table",
            (true, false, _) => "block",
        };
        writeln!(
            out,
            "  L{lvl}: descriptor at {:#x} = {d:#018x} ({kind})",
            pa.as_u64()
        )?;
    }
    match r {
        Ok(tr) => writeln!(
            out,
            "  -> PA {:#x}, {} byte page, PAR_EL1 {:#x}",
            tr.pa.as_u64(),
            tr.size(),
            tr.par()
        )?,
        Err(f) => {
            writeln!(out, "  -> {f}")?;
            if access.is_el0() {
                writeln!(
                    out,
                    "  the kernel turns this into SIGSEGV: Segmentation fault (core dumped)"
                )?;
            }
        }
    }
    writeln!(out)
}

/// Prints the tour to `out`.
///
/// # Errors
/// I/O errors of `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let (regime, mut mem) = build();
    writeln!(
        out,
        "pagesim demo: AArch64 stage-1 translation, 4 KiB granule, 48-bit VA, ASID {}\n",
        regime.asid()
    )?;
    show(out, &regime, &mut mem, 0x40_0123, Access::fetch(El::El0))?;
    show(out, &regime, &mut mem, 0x40_1008, Access::write(El::El0))?;
    show(out, &regime, &mut mem, 0x40_1000, Access::fetch(El::El0))?;
    show(out, &regime, &mut mem, 0x0, Access::write(El::El0))?;
    Ok(())
}
