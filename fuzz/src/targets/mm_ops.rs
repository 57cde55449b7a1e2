//! The `mm_ops` target: Linux call sequences on a simulated process, checked after each
//! call against the VMA and paging invariants.

use super::*;
use pagesim::linux::mm::mremap::MremapFlags;

// ===== mm_ops ===========================================================================

/// Physical memory choices (MiB), by 2 bits of the config byte; 16K-page layouts get
/// 64 MiB more for their 32 MiB huge zero page (a naturally aligned run, which the root
/// table allocated before it must not break up).
pub(crate) const MM_RAM_MIB: [u64; 4] = [16, 24, 32, 64];
/// `vm.max_map_count` unless the knobs ask for a small one: the tree's slots are
/// allocated (and initialised) per input, so 65530 would cost more than the run.
pub(crate) const MM_MAX_MAP_COUNT: usize = 1000;
/// Operations per input, at most.
pub(crate) const MM_MAX_OPS: usize = 64;
/// A populating call (MAP_POPULATE, MADV_POPULATE_*, MADV_WILLNEED) longer than this
/// loses its populate part: the simulator faults page by page, and 2^40 bytes of
/// PROT_NONE mapping would take minutes without finding anything new.
pub(crate) const MM_POPULATE_MAX: u64 = 64 << 20;

/// Every advice value the model names, then a few it must refuse.
pub(crate) const MM_ADVICE: [mman::Advice; 28] = [
    mman::MADV_NORMAL,
    mman::MADV_RANDOM,
    mman::MADV_SEQUENTIAL,
    mman::MADV_WILLNEED,
    mman::MADV_DONTNEED,
    mman::MADV_FREE,
    mman::MADV_REMOVE,
    mman::MADV_DONTFORK,
    mman::MADV_DOFORK,
    mman::MADV_MERGEABLE,
    mman::MADV_UNMERGEABLE,
    mman::MADV_HUGEPAGE,
    mman::MADV_NOHUGEPAGE,
    mman::MADV_DONTDUMP,
    mman::MADV_DODUMP,
    mman::MADV_WIPEONFORK,
    mman::MADV_KEEPONFORK,
    mman::MADV_COLD,
    mman::MADV_PAGEOUT,
    mman::MADV_POPULATE_READ,
    mman::MADV_POPULATE_WRITE,
    mman::MADV_DONTNEED_LOCKED,
    mman::MADV_COLLAPSE,
    mman::MADV_HWPOISON,
    mman::MADV_SOFT_OFFLINE,
    mman::MADV_GUARD_INSTALL,
    mman::MADV_GUARD_REMOVE,
    mman::MADV_NOHUGEPAGE,
];
pub(crate) const MM_BAD_ADVICE: [mman::Advice; 7] = [
    mman::Advice::from_raw(-1),
    mman::Advice::from_raw(5),
    mman::Advice::from_raw(7),
    mman::Advice::from_raw(26),
    mman::Advice::from_raw(99),
    mman::Advice::from_raw(i32::MAX),
    mman::Advice::from_raw(i32::MIN),
];
/// PROT bits besides rwx: valid only on some machines, or never.
pub(crate) const MM_PROT_EXTRA: [u32; 7] = [
    mman::PROT_SEM.bits(),
    mman::PROT_BTI.bits(),
    mman::PROT_MTE.bits(),
    mman::PROT_GROWSDOWN.bits(),
    mman::PROT_GROWSUP.bits(),
    mman::PROT_GROWSDOWN.bits() | mman::PROT_GROWSUP.bits(),
    0x40,
];
/// MAP bits the model ignores or refuses.
pub(crate) const MM_MAP_EXTRA: [u32; 8] = [
    mman::MAP_32BIT.bits(),
    mman::MAP_DENYWRITE.bits(),
    mman::MAP_EXECUTABLE.bits(),
    mman::MAP_LOCKED.bits(),
    mman::MAP_NONBLOCK.bits(),
    mman::MAP_HUGETLB.bits(),
    mman::MAP_SYNC.bits(),
    mman::MAP_UNINITIALIZED.bits(),
];

pub(crate) fn is_populate_advice(a: mman::Advice) -> bool {
    matches!(
        a,
        mman::MADV_POPULATE_READ | mman::MADV_POPULATE_WRITE | mman::MADV_WILLNEED
    )
}

/// The layout chosen by a config byte (bits 0–1 preset, 2–3 RAM, 4–5 THP) and a knobs
/// byte; returns it with the RAM size.
pub(crate) fn mm_layout(cfg: u8, knobs: u8, small_map_count: u8) -> (LayoutParams, u64) {
    let mut params = match cfg & 3 {
        0 => LayoutParams::arm64_6_1(),
        1 => LayoutParams::arm64_6_12(),
        2 => LayoutParams::arm64_6_12_16k(),
        _ => LayoutParams::x86_64_6_18(),
    };
    let mut ram = MM_RAM_MIB[usize::from(cfg >> 2) & 3] << 20;
    if params.page_shift == 14 {
        ram += 64 << 20;
    }
    params.thp = match (cfg >> 4) & 3 {
        0 => params.thp,
        1 => ThpMode::Never,
        2 => ThpMode::Madvise,
        _ => ThpMode::Always,
    };
    // arm64 6.12 with a 48-bit VA instead of LPA2's 52.
    if cfg & 0x40 != 0 && params.task_size == 1 << 52 {
        params.task_size = params.default_map_window;
    }
    params.max_map_count = if knobs & 1 != 0 {
        usize::from(small_map_count & 31) + 4
    } else {
        MM_MAX_MAP_COUNT
    };
    params.legacy_va_layout = knobs & 2 != 0;
    params.overcommit_never = knobs & 4 != 0;
    params.cap_sys_rawio ^= knobs & 8 != 0;
    params.cpu_mte = knobs & 0x10 != 0;
    params.rlimit_stack = match (knobs >> 5) & 3 {
        0 => params.rlimit_stack,
        1 => 128 << 10,
        2 => mman::RLIM_INFINITY,
        _ => 1 << 30,
    };
    (params, ram)
}

/// Sorted disjoint `[start, end)` ranges.
pub(crate) type Ranges = Vec<(u64, u64)>;

/// What maps shows as mapped: each VMA's range, perms and name, adjacent equal ones
/// joined (the kernel may keep a split it made before failing a call, so failed calls
/// are compared on this, as in tests/process_props.rs).
pub(crate) fn mm_coverage(vmas: &[Vma]) -> Vec<(u64, u64, VmFlags, VmaKind)> {
    let mut out: Vec<(u64, u64, VmFlags, VmaKind)> = Vec::new();
    for v in vmas {
        match out.last_mut() {
            Some(l) if l.1 == v.vm_start && l.2 == v.vm_flags && l.3 == v.kind => l.1 = v.vm_end,
            _ => out.push((v.vm_start, v.vm_end, v.vm_flags, v.kind)),
        }
    }
    out
}

/// What is mapped at all, whatever the perms and names.
pub(crate) fn mm_ranges(vmas: &[Vma]) -> Ranges {
    let mut out: Ranges = Vec::new();
    for v in vmas {
        match out.last_mut() {
            Some(l) if l.1 == v.vm_start => l.1 = v.vm_end,
            _ => out.push((v.vm_start, v.vm_end)),
        }
    }
    out
}

pub(crate) fn ranges_normalize(mut v: Ranges) -> Ranges {
    v.retain(|r| r.0 < r.1);
    v.sort_unstable();
    let mut out: Ranges = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(l) if l.1 >= s => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

pub(crate) fn ranges_add(r: &Ranges, s: u64, e: u64) -> Ranges {
    let mut v = r.clone();
    v.push((s, e));
    ranges_normalize(v)
}

pub(crate) fn ranges_sub(r: &Ranges, s: u64, e: u64) -> Ranges {
    let mut out = Vec::new();
    for &(a, b) in r {
        if b <= s || a >= e {
            out.push((a, b));
            continue;
        }
        if a < s {
            out.push((a, s));
        }
        if b > e {
            out.push((e, b));
        }
    }
    out
}

/// Parses maps text (as the importer does, into a tree of its own) and checks it against
/// the space: the same VMAs with the perms, names and offsets maps shows, and rendering
/// the parsed VMAs gives the text back byte for byte. Returns the parsed VMAs without
/// `[vsyscall]`.
pub(crate) fn mm_check_maps(p: &SimProcess<'_>, params: &LayoutParams) -> Vec<Vma> {
    let fmt = &params.maps;
    let text = p.maps_string();
    let all: Vec<Vma> = MapsParser::new(&text, fmt)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the process's maps do not parse: {e}\n{text}"));
    assert_eq!(
        render_maps_string(&all, fmt),
        text,
        "maps text does not render back from its parse"
    );
    let space: Vec<Vma> = p.space().iter().map(|v| p.space().display_vma(v)).collect();
    let mut slots = vec![VmaSlot::EMPTY; space.len() + 2];
    let mut tree = VmaTree::new(&mut slots);
    let n = import_maps(&text, fmt, &mut tree)
        .unwrap_or_else(|e| panic!("the process's maps do not import: {e}\n{text}"));
    let parsed = tree_vmas(&tree);
    assert_eq!(n, parsed.len());
    assert_eq!(
        parsed.len(),
        space.len(),
        "maps shows another VMA count\n{text}"
    );
    let shown = VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC | VmFlags::VM_MAYSHARE;
    // Which open file a VMA came from (a shmem object's size) is not in maps.
    let seen = |k: &VmaKind| {
        let mut k = *k;
        if let VmaKind::File { file, .. } = &mut k {
            *file = Default::default();
        }
        k
    };
    for (a, b) in parsed.iter().zip(&space) {
        assert_eq!(
            (a.vm_start, a.vm_end, a.vm_flags, seen(&a.kind)),
            (b.vm_start, b.vm_end, b.vm_flags & shown, seen(&b.kind)),
            "maps line differs from the VMA\n{text}"
        );
        if matches!(a.kind, VmaKind::File { .. }) {
            assert_eq!(a.vm_pgoff, b.vm_pgoff, "file offset in maps");
        }
    }
    parsed
}

/// The smaps text parses, renders back byte for byte, lists the VMAs maps lists, and its
/// Rss is what the page tables hold.
pub(crate) fn mm_check_smaps(p: &SimProcess<'_>, params: &LayoutParams, maps: &[Vma]) {
    let fmt = &params.maps;
    let text = p.smaps_string().expect("the tables are readable");
    let entries: Vec<SmapsEntry> = SmapsParser::new(&text, fmt)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the process's smaps do not parse: {e}\n{text}"));
    assert_eq!(
        render_smaps_string(&entries, fmt),
        text,
        "smaps text does not render back from its parse"
    );
    let vmas: Vec<&SmapsEntry> = entries
        .iter()
        .filter(|e| e.vma.kind != VmaKind::Vsyscall)
        .collect();
    assert_eq!(vmas.len(), maps.len(), "smaps and maps list other VMAs");
    for (e, m) in vmas.iter().zip(maps) {
        assert_eq!((e.vma.vm_start, e.vma.vm_end), (m.vm_start, m.vm_end));
        let rss = p.paging().residency(m.vm_start, m.vm_end).unwrap().rss;
        assert_eq!(e.counters.rss, rss >> 10, "smaps Rss of {:#x}", m.vm_start);
    }
}

/// The invariants of a simulated process after any call: VMAs sorted, disjoint, aligned
/// and below TASK_SIZE; every valid leaf inside a VMA that allows what the leaf grants;
/// frames in use = page-table frames + resident private pages + the zero page + the huge
/// zero page (in 4 KiB frames); maps renders, parses and imports back to the VMAs.
/// Returns the parsed maps VMAs. On a machine that holds other processes too (not
/// `alone`), the frame accounting is the machine's check, not this one's.
pub(crate) fn mm_check_in(p: &SimProcess<'_>, params: &LayoutParams, alone: bool) -> Vec<Vma> {
    let page = params.page_size();
    let mut prev_end = 0;
    for v in p.space().iter() {
        assert!(
            v.vm_start < v.vm_end
                && v.vm_start >= prev_end
                && v.vm_start % page == 0
                && v.vm_end % page == 0,
            "VMA {:#x}-{:#x} after {prev_end:#x}",
            v.vm_start,
            v.vm_end
        );
        prev_end = v.vm_end;
    }
    assert!(prev_end <= params.task_size, "a VMA ends above TASK_SIZE");

    // The library's invariants: leaves inside VMAs that allow them, one deposited table
    // per block with the deposits free, and every frame in use accounted for.
    if let Err(e) = p.validate() {
        panic!("process invariant broken: {e}");
    }
    let paging = p.paging();

    // Anonymous pages own their frames; page-cache pages are held by the cache, mapped or
    // not.
    let anon: u64 = p
        .space()
        .iter()
        .map(|v| paging.residency(v.vm_start, v.vm_end).unwrap().anonymous)
        .sum();
    let cached = paging.cached_pages().len() as u64 * (page >> 12);
    if !alone {
        return mm_check_maps(p, params);
    }
    let frames = paging.frames();
    let used = (frames.total_frames() - frames.free_frames()) as u64;
    let tables = paging.mapper().table_count() << (params.page_shift - 12);
    let pmd = paging.config().granule.page_size() / 8 * paging.config().granule.page_size();
    assert_eq!(
        used,
        tables + (anon >> 12) + cached + (page >> 12) + (pmd >> 12),
        "frames in use = tables + anonymous pages + page cache + zero pages"
    );
    mm_check_maps(p, params)
}

/// Reads an address operand: mostly an earlier mmap result (or a VMA the process started
/// with; index 0 is the latest) plus a page offset, sometimes a raw or edge value.
pub(crate) fn mm_addr(r: &mut Reader<'_>, slots: &[u64], params: &LayoutParams, brk: u64) -> u64 {
    let page = params.page_size();
    let m = r.u8();
    let base = if slots.is_empty() {
        0x1000_0000
    } else {
        slots[slots.len() - 1 - usize::from(m >> 3) % slots.len()]
    };
    match m & 7 {
        0..=4 => base.wrapping_add_signed(i64::from(r.u8() as i8) * page as i64),
        5 => r.u64(),
        6 => {
            let edges = [
                0,
                1,
                page - 1,
                page,
                u64::MAX,
                u64::MAX - page + 1,
                1 << 63,
                params.task_size - page,
                params.task_size,
                params.default_map_window - page,
                params.default_map_window,
                params.mmap_min_addr,
                params.mmap_min_addr - page,
                brk,
                0x00ff_ffff_ffff_f000,
                0x0100_0000_1000_0000,
            ];
            edges[usize::from(r.u8()) % edges.len()]
        }
        _ => base.wrapping_add(u64::from(r.u16())),
    }
}

/// Reads a length: mostly a few pages, sometimes PMD multiples, raw or edge values.
pub(crate) fn mm_len(r: &mut Reader<'_>, params: &LayoutParams) -> u64 {
    let page = params.page_size();
    let l = r.u8();
    let n = u64::from(l & 63) + 1;
    match l >> 6 {
        0 => n * page,
        1 => n * 16 * page,
        2 => {
            let adj = [0, page, 0u64.wrapping_sub(page), 1][usize::from(l >> 2) & 3];
            (u64::from(l & 3) + 1)
                .wrapping_mul(params.pmd_size)
                .wrapping_add(adj)
        }
        _ => match l & 7 {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::MAX - page + 1,
            4 => 1 << 47,
            5 => params.task_size,
            6 => page + 1,
            _ => r.u64(),
        },
    }
}

pub(crate) fn mm_prot(r: &mut Reader<'_>) -> u32 {
    let b = r.u8();
    let mut prot = u32::from(b & 7);
    if b & 0x80 != 0 {
        let i = usize::from(b >> 3) & 7;
        prot |= MM_PROT_EXTRA
            .get(i)
            .copied()
            .unwrap_or_else(|| 1 << (r.u8() & 31));
    }
    prot
}

pub(crate) fn mm_advice(r: &mut Reader<'_>) -> mman::Advice {
    let b = r.u8();
    if b < 0xe0 {
        MM_ADVICE[usize::from(b) % MM_ADVICE.len()]
    } else if b < 0xf8 {
        MM_BAD_ADVICE[usize::from(b) % MM_BAD_ADVICE.len()]
    } else {
        mman::Advice::from_raw(i32::from(r.u8() as i8))
    }
}

/// Decodes mmap's flags and whether the address is a hint (else NULL).
pub(crate) fn mm_map_flags(r: &mut Reader<'_>) -> (u32, bool) {
    let f = r.u8();
    let mut flags = match f & 7 {
        0..=3 => mman::MAP_PRIVATE.bits(),
        4 | 5 => mman::MAP_SHARED.bits(),
        6 => mman::MAP_SHARED_VALIDATE.bits(),
        _ => [0, mman::MAP_DROPPABLE.bits(), mman::MAP_TYPE.bits(), 0x4][usize::from(f >> 6)],
    };
    if f & 8 == 0 {
        flags |= mman::MAP_ANONYMOUS.bits();
    }
    let hinted = match (f >> 4) & 3 {
        0 => false,
        1 => true,
        2 => {
            flags |= mman::MAP_FIXED.bits();
            true
        }
        _ => {
            flags |= mman::MAP_FIXED_NOREPLACE.bits();
            true
        }
    };
    if f & 0x40 != 0 {
        flags |= mman::MAP_POPULATE.bits();
    }
    if f & 0x80 != 0 {
        let g = r.u8();
        for (bit, flag) in [
            (1, mman::MAP_NORESERVE),
            (2, mman::MAP_STACK),
            (4, mman::MAP_GROWSDOWN),
            (8, mman::MAP_FIXED),
            (0x10, mman::MAP_FIXED_NOREPLACE),
        ] {
            if g & bit != 0 {
                flags |= flag.bits();
            }
        }
        if g & 0x20 != 0 {
            flags |= MM_MAP_EXTRA[usize::from(g >> 6) * 2 % MM_MAP_EXTRA.len()];
        }
        if g & 0x80 != 0 {
            flags |= 1 << (r.u8() & 31);
        }
    }
    (flags, hinted)
}

/// Page-aligned `[start, end)` of a call's range, if it does not overflow.
pub(crate) fn mm_span(addr: u64, len: u64, page: u64) -> Option<(u64, u64)> {
    let end = addr.checked_add(len)?.checked_add(page - 1)? & !(page - 1);
    Some((addr & !(page - 1), end))
}

/// The first opcode byte of a process operation in [`mm_ops`].
pub const MM_PROCESS_OP: u8 = 0xf8;

/// Fuzz target `mm_ops`: a simulated process (VMAs + demand paging on the MMU, as
/// `pagesim run` builds it) driven by up to 64 Linux calls and touches with arbitrary
/// arguments: mmap (NULL, hint, MAP_FIXED, MAP_FIXED_NOREPLACE; private, shared;
/// populate, noreserve, stack, growsdown, garbage bits), munmap, mprotect, madvise (every
/// advice and garbage), brk, reads/writes/execs of page ranges, maps and smaps. After
/// each call the process invariants hold (see [`mm_check_in`]), a call that returned an
/// errno mapped and unmapped nothing, mprotect and madvise never change what is mapped,
/// a successful mmap maps exactly its range (at the address for MAP_FIXED*), a
/// successful munmap unmaps exactly its range, and a completed access lies inside a VMA
/// that allows it.
///
/// Input: `cfg:u8 knobs:u8 map_count:u8`, then operations: an opcode byte (mod 9) and
/// its arguments, as decoded below (`make_seeds.py` has encoders). An opcode byte from
/// [`MM_PROCESS_OP`] up is a process operation on the machine instead (fork, vfork,
/// switch, exit: the low two bits, then a pid byte), after which the machine's frame
/// accounting ([`pagesim::linux::system::System::validate`]) must hold; calls act in the
/// current process.
pub fn mm_ops(data: &[u8]) {
    let mut r = Reader::new(data);
    let (cfg, knobs, small) = (r.u8(), r.u8(), r.u8());
    let (params, ram) = mm_layout(cfg, knobs, small);
    let page = params.page_size();
    let mut storage = ProcessStorage::new(&params, ram).with_processes_of(3, 512);
    let mut sys = match storage.build_system(params, Start::Fresh, ImportHints::default()) {
        Ok(p) => p,
        // A fresh process has more VMAs than the smallest max_map_counts allow.
        Err(_) if knobs & 1 != 0 => return,
        Err(e) => panic!("no fresh process: {e}"),
    };
    let mut slots: Vec<u64> = sys.process().space().iter().map(|v| v.vm_start).collect();
    let mut maps = mm_check_in(sys.process(), &params, true);
    let mut ops = 0;
    // Set to see each operation's state when studying a reproducer.
    let trace = std::env::var_os("PAGESIM_FUZZ_TRACE").is_some();
    while !r.is_empty() && ops < MM_MAX_OPS {
        ops += 1;
        let b = r.u8();
        if b >= MM_PROCESS_OP {
            // Processes: fork, vfork, switch to one of the first four pids, or exit.
            let arg = r.u8();
            let res = match b & 3 {
                0 => sys.fork().map(|_| ()),
                1 => sys.vfork().map(|_| ()),
                2 => sys.switch(1 + u32::from(arg % 4)),
                _ => sys.exit(),
            };
            if trace {
                eprintln!(
                    "process op {b:#x} {arg:#x} = {res:?}, now in {}",
                    sys.current()
                );
            }
            if let Err(e) = sys.validate() {
                panic!("system invariant after process op {b:#x}: {e}");
            }
            let alone = sys.pids().count() == 1;
            maps = mm_check_in(sys.process(), &params, alone);
            continue;
        }
        let alone = sys.pids().count() == 1;
        let p = sys.process_mut();
        let brk = p.brk(0).expect("brk(0) changes no table");
        let before = maps.clone();
        let op = b % 9;
        if trace {
            eprintln!(
                "op {op}, {} bytes left, maps before:\n{}",
                r.data.len(),
                p.maps_string()
            );
        }
        match op {
            0 => {
                let (mut flags, hinted) = mm_map_flags(&mut r);
                let addr = if hinted {
                    mm_addr(&mut r, &slots, &params, brk)
                } else {
                    0
                };
                let len = mm_len(&mut r, &params);
                let prot = mm_prot(&mut r);
                if len > MM_POPULATE_MAX {
                    flags &= !mman::MAP_POPULATE.bits();
                }
                let res = p.mmap(
                    addr,
                    len,
                    mman::Prot::from_bits_retain(prot),
                    mman::MapFlags::from_bits_retain(flags),
                );
                if trace {
                    eprintln!("mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}) = {res:x?}");
                }
                maps = mm_check_in(p, &params, alone);
                match res {
                    Err(e) => assert_eq!(
                        mm_coverage(&maps),
                        mm_coverage(&before),
                        "mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}) = {e:?} changed the map"
                    ),
                    Ok(a) => {
                        let (s, e) = mm_span(a, len, page).expect("a mapping that wraps");
                        assert!(
                            a % page == 0 && e <= params.task_size && s < e,
                            "mmap returned {a:#x} for {len:#x}"
                        );
                        if flags & (mman::MAP_FIXED | mman::MAP_FIXED_NOREPLACE).bits() != 0 {
                            assert_eq!(a, addr, "MAP_FIXED* mapped elsewhere");
                        }
                        assert_eq!(
                            mm_ranges(&maps),
                            ranges_add(&mm_ranges(&before), s, e),
                            "mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}) = {a:#x} mapped another range"
                        );
                        slots.push(a);
                    }
                }
            }
            1 => {
                let addr = mm_addr(&mut r, &slots, &params, brk);
                let len = mm_len(&mut r, &params);
                let res = p.munmap(addr, len);
                if trace {
                    eprintln!("munmap({addr:#x}, {len:#x}) = {res:?}");
                }
                maps = mm_check_in(p, &params, alone);
                match res {
                    Err(e) => assert_eq!(
                        mm_coverage(&maps),
                        mm_coverage(&before),
                        "munmap({addr:#x}, {len:#x}) = {e:?} changed the map"
                    ),
                    Ok(()) => {
                        let (s, e) = mm_span(addr, len, page).expect("munmap of a wrapping range");
                        assert_eq!(
                            mm_ranges(&maps),
                            ranges_sub(&mm_ranges(&before), s, e),
                            "munmap({addr:#x}, {len:#x}) unmapped another range"
                        );
                    }
                }
            }
            2 | 3 => {
                let mprotect = op == 2;
                let addr = mm_addr(&mut r, &slots, &params, brk);
                let len = mm_len(&mut r, &params);
                let arg = if mprotect {
                    mm_prot(&mut r) as i32
                } else {
                    let advice = mm_advice(&mut r);
                    if is_populate_advice(advice) && len > MM_POPULATE_MAX {
                        mman::MADV_NORMAL.raw()
                    } else {
                        advice.raw()
                    }
                };
                let res = if mprotect {
                    p.mprotect(addr, len, mman::Prot::from_bits_retain(arg as u32))
                } else {
                    p.madvise(addr, len, mman::Advice::from_raw(arg))
                };
                if trace {
                    let name = if mprotect { "mprotect" } else { "madvise" };
                    eprintln!("{name}({addr:#x}, {len:#x}, {arg:#x}) = {res:?}");
                }
                maps = mm_check_in(p, &params, alone);
                // Either may fail half-way (ENOMEM at a hole) as the kernel's do, but
                // neither maps nor unmaps anything.
                assert_eq!(
                    mm_ranges(&maps),
                    mm_ranges(&before),
                    "{}({addr:#x}, {len:#x}) = {res:?} changed what is mapped",
                    if mprotect { "mprotect" } else { "madvise" }
                );
            }
            4 => {
                let b = r.u8();
                let target = match b & 3 {
                    0 => 0,
                    1 => brk.wrapping_add(u64::from(r.u8()) * page),
                    2 => brk.wrapping_sub(u64::from(r.u8()) * page),
                    _ => mm_addr(&mut r, &slots, &params, brk),
                };
                let got = p.brk(target).expect("brk keeps the tables in step");
                if trace {
                    eprintln!("brk({target:#x}) = {got:#x}");
                }
                maps = mm_check_in(p, &params, alone);
                assert!(got == brk || got == target, "brk({target:#x}) = {got:#x}");
            }
            5 | 6 => {
                let k = r.u8();
                let kind = [Kind::Read, Kind::Write, Kind::Fetch, Kind::Write][usize::from(k & 3)];
                let pages = u64::from(k >> 2) + 1;
                let addr = mm_addr(&mut r, &slots, &params, brk);
                for i in 0..pages {
                    let Some(va) = addr.checked_add(i * page) else {
                        break;
                    };
                    let t = p.access(VirtAddr::new(va), kind);
                    if trace {
                        eprintln!("{kind:?} {va:#x}: {t:x?}");
                    }
                    match t {
                        Touch::Done(_) => {
                            let v = p
                                .space()
                                .vma_lookup(va & 0x00ff_ffff_ffff_ffff)
                                .unwrap_or_else(|| panic!("{kind:?} at {va:#x} outside every VMA"));
                            let need = match kind {
                                Kind::Write => VmFlags::VM_WRITE,
                                Kind::Fetch => VmFlags::VM_EXEC,
                                Kind::Read => {
                                    VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC
                                }
                            };
                            assert!(
                                v.vm_flags.intersects(need),
                                "{kind:?} at {va:#x} done in a VMA with {:?}",
                                v.vm_flags
                            );
                        }
                        Touch::Segv(_) => break,
                        Touch::Bus(b) => {
                            // Only shared anonymous memory (shmem) has an object here: an
                            // access past its size is SIGBUS, as when mremap grew the
                            // mapping beyond the object (the object does not grow).
                            let a = b.addr.as_u64() & 0x00ff_ffff_ffff_ffff;
                            let v = p
                                .space()
                                .vma_lookup(a)
                                .unwrap_or_else(|| panic!("SIGBUS at {a:#x} outside every VMA"));
                            let pages = match &v.kind {
                                VmaKind::File { file, .. } => file.shmem_pages(),
                                _ => None,
                            };
                            let shift = params.page_shift;
                            let index = v.vm_pgoff + ((a - v.vm_start) >> shift);
                            assert!(
                                pages.is_some_and(|n| index >= n),
                                "SIGBUS at {a:#x} (page {index} of {pages:?}) in {v:?}"
                            );
                            break;
                        }
                        Touch::OutOfMemory { .. } => {
                            mm_check_in(p, &params, alone);
                            break;
                        }
                    }
                }
                maps = mm_check_in(p, &params, alone);
            }
            8 => {
                let addr = mm_addr(&mut r, &slots, &params, brk);
                let old_len = mm_len(&mut r, &params);
                let new_len = mm_len(&mut r, &params);
                let f = r.u8();
                // The three flags mostly, any bits sometimes.
                let flags = if f & 0x80 != 0 {
                    u32::from(f) << 1
                } else {
                    u32::from(f & 7)
                };
                let new_addr = mm_addr(&mut r, &slots, &params, brk);
                let res = p.mremap(
                    addr,
                    old_len,
                    new_len,
                    MremapFlags::from_bits_retain(flags),
                    new_addr,
                );
                if trace {
                    eprintln!(
                        "mremap({addr:#x}, {old_len:#x}, {new_len:#x}, {flags:#x}, {new_addr:#x}) = {res:x?}"
                    );
                }
                maps = mm_check_in(p, &params, alone);
                if let Ok(a) = res {
                    // The first page at least is mapped (a fixed move of several VMAs
                    // keeps the gaps between them).
                    let r = mm_ranges(&maps);
                    assert!(
                        a % page == 0 && ranges_add(&r, a, a + page) == r,
                        "mremap returned {a:#x}, which is not mapped"
                    );
                    slots.push(a);
                }
            }
            _ => {
                if r.u8() & 1 == 0 {
                    assert_eq!(p.maps_string(), p.space().maps_string());
                } else {
                    mm_check_smaps(p, &params, &maps);
                }
            }
        }
    }
    let alone = sys.pids().count() == 1;
    let p = sys.process_mut();
    mm_check_smaps(p, &params, &maps);
    // Unmapping every mmap result's neighbourhood returns their private pages.
    for s in slots {
        let res = p.munmap(s, 64 * page);
        if trace {
            eprintln!("final munmap({s:#x}, {:#x}) = {res:?}", 64 * page);
        }
    }
    mm_check_in(p, &params, alone);
    if let Err(e) = sys.validate() {
        panic!("system invariant at the end: {e}");
    }
}
