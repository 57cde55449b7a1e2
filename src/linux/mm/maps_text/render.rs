//! Writing maps lines and smaps entries byte for byte as the kernel prints them.

use super::*;

/// Writes the maps line of `vma`, newline included.
///
/// # Errors
///
/// Returns the writer's error.
pub fn write_maps_line<W: Write>(w: &mut W, vma: &Vma, fmt: &MapsFormat) -> fmt::Result {
    // Longest header: 16+1+16+1+4+1+16+1+8+1+8+1+20+1 = 95 bytes.
    let mut head = ArrayString::<128>::new();
    let p = vma.vm_flags.perms();
    let offset = match vma.kind {
        VmaKind::File { .. } => vma.vm_pgoff.checked_shl(fmt.page_shift).unwrap_or(0),
        _ => 0,
    };
    let dev = vma.kind.dev();
    write!(
        head,
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        vma.vm_start,
        vma.vm_end,
        p[0] as char,
        p[1] as char,
        p[2] as char,
        p[3] as char,
        offset,
        dev.major,
        dev.minor,
        vma.kind.ino()
    )?;
    w.write_str(&head)?;
    if vma.kind.has_name() {
        for _ in head.len()..MAPS_NAME_PAD {
            w.write_char(' ')?;
        }
        w.write_char(' ')?;
        vma.kind.write_name(w)?;
    }
    w.write_char('\n')
}

/// Writes `/proc/PID/maps` for `vmas` (in the order given: ascending, with the x86
/// `[vsyscall]` gate VMA last).
///
/// # Errors
///
/// Returns the writer's error.
pub fn render_maps<'v, W: Write, I: IntoIterator<Item = &'v Vma>>(
    w: &mut W,
    vmas: I,
    fmt: &MapsFormat,
) -> fmt::Result {
    for v in vmas {
        write_maps_line(w, v, fmt)?;
    }
    Ok(())
}

pub(super) fn kb_line<W: Write>(w: &mut W, label: &str, kb: u64) -> fmt::Result {
    writeln!(w, "{label}{kb:>8} kB")
}

/// Writes one smaps entry: the maps line, the counters in the kernel's order, and
/// `VmFlags:`.
///
/// # Errors
///
/// Returns the writer's error.
pub fn write_smaps_entry<W: Write>(
    w: &mut W,
    vma: &Vma,
    c: &SmapsCounters,
    fmt: &MapsFormat,
) -> fmt::Result {
    write_maps_line(w, vma, fmt)?;
    let page_kb = fmt.page_size().unwrap_or(0) >> 10;
    kb_line(w, "Size:           ", vma.size() >> 10)?;
    kb_line(w, "KernelPageSize: ", page_kb)?;
    kb_line(w, "MMUPageSize:    ", page_kb)?;
    let ksm = fmt.smaps_ksm_line.then_some(("KSM:            ", c.ksm));
    let counters = [
        ("Rss:            ", c.rss),
        ("Pss:            ", c.pss),
        ("Pss_Dirty:      ", c.pss_dirty),
        ("Shared_Clean:   ", c.shared_clean),
        ("Shared_Dirty:   ", c.shared_dirty),
        ("Private_Clean:  ", c.private_clean),
        ("Private_Dirty:  ", c.private_dirty),
        ("Referenced:     ", c.referenced),
        ("Anonymous:      ", c.anonymous),
    ];
    let after_ksm = [
        ("LazyFree:       ", c.lazy_free),
        ("AnonHugePages:  ", c.anon_huge_pages),
        ("ShmemPmdMapped: ", c.shmem_pmd_mapped),
        ("FilePmdMapped:  ", c.file_pmd_mapped),
        ("Shared_Hugetlb: ", c.shared_hugetlb),
    ];
    for (label, kb) in counters.into_iter().chain(ksm).chain(after_ksm) {
        kb_line(w, label, kb)?;
    }
    // The kernel prints this label one character longer and the value 7 wide.
    writeln!(w, "Private_Hugetlb: {:>7} kB", c.private_hugetlb)?;
    for (label, kb) in [
        ("Swap:           ", c.swap),
        ("SwapPss:        ", c.swap_pss),
        ("Locked:         ", c.locked),
    ] {
        kb_line(w, label, kb)?;
    }
    let thp = u8::from(c.thp_eligible);
    if fmt.smaps_thp_eligible_padded {
        writeln!(w, "THPeligible:    {thp:>8}")?;
    } else {
        writeln!(w, "THPeligible:    {thp}")?;
    }
    if fmt.smaps_protection_key {
        writeln!(w, "ProtectionKey:  {:>8}", c.protection_key)?;
    }
    w.write_str("VmFlags: ")?;
    vma.vm_flags.write_mnemonics(w, fmt.mnemonics)?;
    w.write_char('\n')
}

/// Writes `/proc/PID/smaps` for `entries` in the order given.
///
/// # Errors
///
/// Returns the writer's error.
pub fn render_smaps<'v, W: Write, I: IntoIterator<Item = (&'v Vma, SmapsCounters)>>(
    w: &mut W,
    entries: I,
    fmt: &MapsFormat,
) -> fmt::Result {
    for (v, c) in entries {
        write_smaps_entry(w, v, &c, fmt)?;
    }
    Ok(())
}
