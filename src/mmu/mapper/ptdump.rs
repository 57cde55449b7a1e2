//! A page-table dump in the style of the kernel's `ptdump`.

use super::*;

fn ptdump_line<W: fmt::Write>(
    w: &mut W,
    (start, end, level, attrs): (u64, u64, i8, u64),
    five_level: bool,
    mair: u64,
) -> fmt::Result {
    let mut delta = end.wrapping_sub(start) >> 10;
    let units = ['K', 'M', 'G', 'T', 'P', 'E'];
    let mut u = 0;
    while delta & 1023 == 0 && delta != 0 && u + 1 < units.len() {
        delta >>= 10;
        u += 1;
    }
    let name = match (level, five_level) {
        (3, _) => "PTE",
        (2, _) => "PMD",
        (1, _) => "PUD",
        (0, true) => "P4D",
        _ => "PGD",
    };
    write!(
        w,
        "0x{start:016x}-0x{end:016x}   {delta:9}{} {name}",
        units[u]
    )?;
    let b = |bit: u32| attrs & (1u64 << bit) != 0;
    let fields: [(bool, &str, &str); 11] = [
        (b(0), " ", "F"),
        (b(6), "USR", "   "),
        (b(7), "ro", "RW"),
        (b(53), "NX", "x "),
        (attrs & (3 << 8) == 3 << 8, "SHD", "   "),
        (b(10), "AF", "  "),
        (b(11), "NG", "  "),
        (b(52), "CON", "   "),
        (b(1), "   ", "BLK"),
        (b(54), "UXN", "   "),
        (b(50), "GP", "  "),
    ];
    for (on, set, clear) in fields {
        write!(w, " {}", if on { set } else { clear })?;
    }
    let attr = (mair >> (8 * ((attrs >> 2) & 7))) as u8;
    let mem = match attr {
        0x00 => "DEVICE/nGnRnE",
        0x04 => "DEVICE/nGnRE",
        0x08 => "DEVICE/nGRE",
        0x0c => "DEVICE/GRE",
        0x44 => "MEM/NORMAL-NC",
        0xf0 => "MEM/NORMAL-TAGGED",
        0xff => "MEM/NORMAL",
        _ => "MEM/OTHER",
    };
    writeln!(w, " {mem}")
}

impl Mapper {
    /// Writes a dump of the half's mappings in the style of the Linux arm64 kernel's
    /// `/sys/kernel/debug/kernel_page_tables`: one line per run of leaves with the same
    /// level and attributes, `0xSTART-0xEND   SIZE LEVEL attributes…`. `mair` names the
    /// memory types.
    ///
    /// # Errors
    /// [`fmt::Error`] from `w`; tables that cannot be read end the dump with a note line.
    pub fn ptdump<M: PhysMemory + ?Sized, W: fmt::Write>(
        &self,
        mem: &M,
        mair: u64,
        w: &mut W,
    ) -> fmt::Result {
        let (lo, hi) = self.format.va_range();
        writeln!(
            w,
            "---[ {} ]---",
            if self.format.upper {
                "TTBR1 half"
            } else {
                "TTBR0 half"
            }
        )?;
        let five_level = self.format.start_level().get() < 0;
        let mut run: Option<(u64, u64, i8, u64)> = None; // start, end (exclusive), level, attrs
        let mut out = Ok(());
        let prot_mask = Attributes::all().bits();
        let emit = |w: &mut W, r: (u64, u64, i8, u64)| -> fmt::Result {
            ptdump_line(w, r, five_level, mair)
        };
        let res = self.for_each_leaf(mem, VirtAddr::new(lo), hi - lo + 1, |leaf| {
            let start = leaf.va.as_u64();
            let end = start.wrapping_add(1u64 << leaf.size_log2);
            let attrs =
                leaf.descriptor.bits() & prot_mask & !(if self.format.ds { 3 << 8 } else { 0 });
            let lvl = leaf.level.get();
            match run {
                Some((s, e, l, a)) if e == start && l == lvl && a == attrs => {
                    run = Some((s, end, l, a))
                }
                Some(r) => {
                    if let Err(e) = emit(w, r) {
                        out = Err(e);
                        return false;
                    }
                    run = Some((start, end, lvl, attrs));
                }
                None => run = Some((start, end, lvl, attrs)),
            }
            true
        });
        out?;
        if let Some(r) = run {
            ptdump_line(w, r, five_level, mair)?;
        }
        if let Err(e) = res {
            writeln!(w, "(dump stopped: {e})")?;
        }
        Ok(())
    }
}
