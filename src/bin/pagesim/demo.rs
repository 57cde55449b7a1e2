//! `pagesim demo`: the two programs of the seed notes replayed on a simulated arm64
//! process — the NULL-pointer write that ends in "Segmentation fault", and the 100 MiB
//! anonymous mmap with /proc/PID/maps before and after — then what demand paging does when
//! the 100 MiB is touched, and one translation level by level.

use std::io::{self, Write};

use pagesim::addr::VirtAddr;
use pagesim::arch::{AccessKind, Descriptor};
use pagesim::linux::mm::{mman, ImportHints, LayoutParams};
use pagesim::linux::paging::{DataMode, Touch};
use pagesim::linux::storage::{ProcessStorage, Start};

/// The notes' "before" listing of /proc/PID/maps (as captured: padding lost, typographic
/// dashes).
pub const SEED_BEFORE_MAPS: &str = include_str!("../../../data/seed_before_maps.txt");

/// The size the notes' program maps.
pub const ALLOC_SIZE: u64 = 100 * 1024 * 1024;

/// Restores the text the kernel printed from the notes' copy: en dash `–` was `--`, em
/// dash `—` was `---`.
pub fn normalise_notes(text: &str) -> String {
    text.replace('—', "---").replace('–', "--")
}

/// Simulated RAM for the demo: room for 100 MiB of pages and their tables.
const PHYS_MEM: u64 = 256 << 20;

/// Prints the demo to `out`.
///
/// # Errors
/// I/O errors of `out`; a failure of the simulation itself is reported as
/// [`io::ErrorKind::Other`].
pub fn run(out: &mut dyn Write, data: DataMode) -> io::Result<()> {
    let params = LayoutParams::arm64_6_1();
    let before = normalise_notes(SEED_BEFORE_MAPS);
    let mut storage = ProcessStorage::with_data(&params, PHYS_MEM, data);
    let mut p = storage
        .build(params, Start::Maps(&before), ImportHints::default())
        .map_err(io::Error::other)?;

    writeln!(
        out,
        "pagesim demo: the seed notes' two programs on a simulated arm64 process"
    )?;
    writeln!(
        out,
        "(Linux 6.1 rules, 4 KiB pages, 48-bit VA; every page lives in AArch64 page tables)"
    )?;
    writeln!(out)?;
    writeln!(out, "=== 1. *p = 0 with p = NULL ===")?;
    writeln!(out, "$ ./main")?;
    writeln!(out, "before invalid access")?;
    match p.access(VirtAddr::new(0), AccessKind::Write) {
        Touch::Segv(s) => {
            let f = s.fault;
            writeln!(
                out,
                "  [MMU]    EL0 store to {:#x}: {} at level {} (FSC {:#04x}, ESR_EL1 {:#010x}, FAR_EL1 {:#x})",
                f.far(),
                f.kind,
                f.level.map_or(0, |l| l.get()),
                f.fsc(),
                f.esr(),
                f.far()
            )?;
            writeln!(
                out,
                "  [kernel] no VMA contains {:#x}: SIGSEGV {{si_code={}, si_addr={:#x}}}",
                s.addr.as_u64(),
                s.code.name(),
                s.addr.as_u64()
            )?;
            writeln!(out, "Segmentation fault (core dumped)")?;
        }
        other => writeln!(out, "  unexpected: {other:?}")?,
    }
    writeln!(out)?;

    writeln!(
        out,
        "=== 2. mmap(NULL, 100 MiB, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) ==="
    )?;
    writeln!(out, "$ ./main")?;
    writeln!(out, "*** memory map before memory allocation ***")?;
    write!(out, "{}", p.maps_string())?;
    let addr = p
        .mmap(
            0,
            ALLOC_SIZE,
            mman::PROT_READ | mman::PROT_WRITE,
            mman::MAP_PRIVATE | mman::MAP_ANONYMOUS,
        )
        .map_err(|e| io::Error::other(format!("mmap failed: {e}")))?;
    writeln!(out)?;
    writeln!(
        out,
        "*** succeeded to allocate memory: address = {addr:#x}; size = {ALLOC_SIZE:#x} ***"
    )?;
    writeln!(out)?;
    writeln!(out, "*** memory map after memory allocation ***")?;
    write!(out, "{}", p.maps_string())?;
    writeln!(out)?;

    writeln!(
        out,
        "=== 3. touching the 100 MiB: demand paging through the MMU ==="
    )?;
    let frames_before = p.paging().frames().free_frames();
    let page = p.paging().config().granule.page_size();
    let mut va = addr;
    while va < addr + ALLOC_SIZE {
        if let Touch::Segv(_) | Touch::OutOfMemory { .. } =
            p.access(VirtAddr::new(va), AccessKind::Write)
        {
            writeln!(out, "  unexpected fault at {va:#x}")?;
            break;
        }
        va += page;
    }
    let st = *p.paging().stats();
    let tlb = p.paging().mmu().stats();
    let frames = frames_before - p.paging().frames().free_frames();
    let tables = p
        .paging()
        .mapper()
        .tables_per_level(p.paging().mmu().memory())
        .map_err(|e| io::Error::other(e.to_string()))?;
    let res = p
        .paging()
        .residency(addr, addr + ALLOC_SIZE)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let touches = ALLOC_SIZE / page;
    writeln!(out, "  writes (one byte per 4 KiB page)  {touches:>10}")?;
    writeln!(out, "  page faults taken                 {:>10}", st.faults)?;
    writeln!(
        out,
        "  4 KiB pages allocated             {:>10}",
        st.anon_pages
    )?;
    writeln!(out, "  2 MiB huge pages (THP, L2 blocks) {:>10}", st.thp)?;
    writeln!(
        out,
        "  frames allocated (incl. tables)   {:>10}  ({} MiB)",
        frames,
        (frames as u64 * 4096) >> 20
    )?;
    writeln!(
        out,
        "  page-table frames L0/L1/L2/L3     {:>10}",
        format!("{}/{}/{}/{}", tables[1], tables[2], tables[3], tables[4])
    )?;
    writeln!(
        out,
        "  Rss of the mapping                {:>7} kB  (AnonHugePages {} kB)",
        res.rss >> 10,
        res.anon_huge >> 10
    )?;
    writeln!(
        out,
        "  TLB hits / misses / walks         {:>10}  ({} / {} / {}, hit rate {:.1}%)",
        "",
        st.translations - tlb.misses,
        tlb.misses,
        tlb.walks,
        100.0 * (st.translations - tlb.misses) as f64 / st.translations.max(1) as f64
    )?;
    writeln!(out)?;

    let probe = addr + 0x1234;
    writeln!(
        out,
        "  translation of {probe:#x} (EL0 read), level by level:"
    )?;
    let (r, reads) = p.paging_trace(VirtAddr::new(probe), AccessKind::Read);
    let start = p.paging().mapper().format().start_level().get();
    for (i, (pa, d)) in reads.iter().enumerate() {
        let lvl = start + i as i8;
        let desc = Descriptor(*d);
        let kind = match (desc.is_valid(), desc.is_table_or_page(), lvl) {
            (false, _, _) => "invalid",
            (true, true, 3) => "page",
            (true, true, _) => "table",
            (true, false, _) => "block",
        };
        writeln!(
            out,
            "    L{lvl}  descriptor at {:#012x} = {d:#018x}  {kind}",
            pa.as_u64()
        )?;
    }
    match r {
        Ok(t) => writeln!(
            out,
            "    ->  PA {:#x} ({} KiB {})",
            t.pa.as_u64(),
            t.size() >> 10,
            if t.size() > page { "block" } else { "page" }
        )?,
        Err(f) => writeln!(out, "    ->  {f}")?,
    }
    Ok(())
}
