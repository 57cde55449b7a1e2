//! `mmap`/`mprotect`/`madvise` argument constants (`include/uapi/asm-generic/mman-common.h`,
//! `mman.h`, arm64 `asm/mman.h`). The values are the same on arm64 and x86_64 except where noted.

/// `PROT_*` bits as passed to `mmap` and `mprotect`.
pub type Prot = u32;
/// `MAP_*` bits as passed to `mmap`.
pub type MapFlags = u32;
/// A `MADV_*` advice as passed to `madvise`.
pub type Advice = i32;

/// `PROT_NONE`: no access.
pub const PROT_NONE: Prot = 0x0;
/// `PROT_READ`: readable.
pub const PROT_READ: Prot = 0x1;
/// `PROT_WRITE`: writable.
pub const PROT_WRITE: Prot = 0x2;
/// `PROT_EXEC`: executable.
pub const PROT_EXEC: Prot = 0x4;
/// `PROT_SEM`: may be used for atomic operations (accepted and ignored).
pub const PROT_SEM: Prot = 0x8;
/// `PROT_BTI` (arm64): BTI-guarded pages (`bt`), only on CPUs with BTI.
pub const PROT_BTI: Prot = 0x10;
/// `PROT_MTE` (arm64): tag-checked memory (`mt`), only on CPUs with MTE.
pub const PROT_MTE: Prot = 0x20;
/// `PROT_GROWSDOWN`: `mprotect` extends the change down to the start of a grows-down VMA.
pub const PROT_GROWSDOWN: Prot = 0x0100_0000;
/// `PROT_GROWSUP`: the upward counterpart (no arm64/x86 VMA grows up).
pub const PROT_GROWSUP: Prot = 0x0200_0000;

/// `MAP_SHARED`: share changes.
pub const MAP_SHARED: MapFlags = 0x01;
/// `MAP_PRIVATE`: changes are private (copy on write).
pub const MAP_PRIVATE: MapFlags = 0x02;
/// `MAP_SHARED_VALIDATE`: `MAP_SHARED` with flag validation (file mappings only).
pub const MAP_SHARED_VALIDATE: MapFlags = 0x03;
/// `MAP_DROPPABLE` (6.11+): private, may be dropped under memory pressure.
pub const MAP_DROPPABLE: MapFlags = 0x08;
/// `MAP_TYPE`: mask of the mapping type.
pub const MAP_TYPE: MapFlags = 0x0f;
/// `MAP_FIXED`: place exactly at `addr`, replacing what is there.
pub const MAP_FIXED: MapFlags = 0x10;
/// `MAP_ANONYMOUS`: not backed by a file.
pub const MAP_ANONYMOUS: MapFlags = 0x20;
/// `MAP_32BIT` (x86_64 only): place in the first 2 GiB (not modelled).
pub const MAP_32BIT: MapFlags = 0x40;
/// `MAP_GROWSDOWN`: a stack-like VMA (`gd`).
pub const MAP_GROWSDOWN: MapFlags = 0x0100;
/// `MAP_DENYWRITE`: ignored.
pub const MAP_DENYWRITE: MapFlags = 0x0800;
/// `MAP_EXECUTABLE`: ignored.
pub const MAP_EXECUTABLE: MapFlags = 0x1000;
/// `MAP_LOCKED`: `mlock` the mapping (`lo`) and populate it.
pub const MAP_LOCKED: MapFlags = 0x2000;
/// `MAP_NORESERVE`: do not account (`nr` instead of `ac`).
pub const MAP_NORESERVE: MapFlags = 0x4000;
/// `MAP_POPULATE`: prefault the mapping.
pub const MAP_POPULATE: MapFlags = 0x8000;
/// `MAP_NONBLOCK`: with `MAP_POPULATE`, do not populate.
pub const MAP_NONBLOCK: MapFlags = 0x1_0000;
/// `MAP_STACK`: a thread stack (`nh` from 6.7).
pub const MAP_STACK: MapFlags = 0x2_0000;
/// `MAP_HUGETLB`: hugetlbfs pages (not modelled: no huge page pool, `ENOMEM`).
pub const MAP_HUGETLB: MapFlags = 0x4_0000;
/// `MAP_SYNC`: synchronous faults (DAX files only; ignored for anonymous memory).
pub const MAP_SYNC: MapFlags = 0x8_0000;
/// `MAP_FIXED_NOREPLACE`: like `MAP_FIXED` but fail with `EEXIST` instead of replacing.
pub const MAP_FIXED_NOREPLACE: MapFlags = 0x10_0000;
/// `MAP_UNINITIALIZED`: ignored without `CONFIG_MMAP_ALLOW_UNINITIALIZED`.
pub const MAP_UNINITIALIZED: MapFlags = 0x400_0000;

/// `MADV_NORMAL`: clear `sr`/`rr`.
pub const MADV_NORMAL: Advice = 0;
/// `MADV_RANDOM`: set `rr`.
pub const MADV_RANDOM: Advice = 1;
/// `MADV_SEQUENTIAL`: set `sr`.
pub const MADV_SEQUENTIAL: Advice = 2;
/// `MADV_WILLNEED`: read ahead (no VMA change).
pub const MADV_WILLNEED: Advice = 3;
/// `MADV_DONTNEED`: zap the pages.
pub const MADV_DONTNEED: Advice = 4;
/// `MADV_FREE`: pages may be freed lazily.
pub const MADV_FREE: Advice = 8;
/// `MADV_REMOVE`: punch a hole in the backing (shared memory only).
pub const MADV_REMOVE: Advice = 9;
/// `MADV_DONTFORK`: set `dc`.
pub const MADV_DONTFORK: Advice = 10;
/// `MADV_DOFORK`: clear `dc`.
pub const MADV_DOFORK: Advice = 11;
/// `MADV_MERGEABLE`: set `mg` (KSM).
pub const MADV_MERGEABLE: Advice = 12;
/// `MADV_UNMERGEABLE`: clear `mg`.
pub const MADV_UNMERGEABLE: Advice = 13;
/// `MADV_HUGEPAGE`: set `hg`, clear `nh`.
pub const MADV_HUGEPAGE: Advice = 14;
/// `MADV_NOHUGEPAGE`: set `nh`, clear `hg`.
pub const MADV_NOHUGEPAGE: Advice = 15;
/// `MADV_DONTDUMP`: set `dd`.
pub const MADV_DONTDUMP: Advice = 16;
/// `MADV_DODUMP`: clear `dd`.
pub const MADV_DODUMP: Advice = 17;
/// `MADV_WIPEONFORK`: set `wf` (private anonymous only).
pub const MADV_WIPEONFORK: Advice = 18;
/// `MADV_KEEPONFORK`: clear `wf`.
pub const MADV_KEEPONFORK: Advice = 19;
/// `MADV_COLD`: deactivate the pages.
pub const MADV_COLD: Advice = 20;
/// `MADV_PAGEOUT`: reclaim the pages.
pub const MADV_PAGEOUT: Advice = 21;
/// `MADV_POPULATE_READ`: prefault readable.
pub const MADV_POPULATE_READ: Advice = 22;
/// `MADV_POPULATE_WRITE`: prefault writable.
pub const MADV_POPULATE_WRITE: Advice = 23;
/// `MADV_DONTNEED_LOCKED`: like `MADV_DONTNEED`, also on `mlock`ed VMAs.
pub const MADV_DONTNEED_LOCKED: Advice = 24;
/// `MADV_COLLAPSE`: synchronous THP collapse.
pub const MADV_COLLAPSE: Advice = 25;
/// `MADV_HWPOISON`: poison a page (needs `CAP_SYS_ADMIN`; not modelled).
pub const MADV_HWPOISON: Advice = 100;
/// `MADV_SOFT_OFFLINE`: soft-offline a page (not modelled).
pub const MADV_SOFT_OFFLINE: Advice = 101;
/// `MADV_GUARD_INSTALL` (6.13+): install guard markers.
pub const MADV_GUARD_INSTALL: Advice = 102;
/// `MADV_GUARD_REMOVE` (6.13+): remove guard markers.
pub const MADV_GUARD_REMOVE: Advice = 103;

/// The `MAP_*` flags by name, the one table that scripts, strace-like output and the
/// harness read: each name as the kernel spells it. A script writes it in lower case
/// without the `MAP_` prefix (`fixed_noreplace`). `MAP_TYPE` values come first.
pub const MAP_NAMES: [(MapFlags, &str); 20] = [
    (MAP_SHARED_VALIDATE, "MAP_SHARED_VALIDATE"),
    (MAP_SHARED, "MAP_SHARED"),
    (MAP_PRIVATE, "MAP_PRIVATE"),
    (MAP_DROPPABLE, "MAP_DROPPABLE"),
    (MAP_FIXED, "MAP_FIXED"),
    (MAP_ANONYMOUS, "MAP_ANONYMOUS"),
    (MAP_32BIT, "MAP_32BIT"),
    (MAP_GROWSDOWN, "MAP_GROWSDOWN"),
    (MAP_DENYWRITE, "MAP_DENYWRITE"),
    (MAP_EXECUTABLE, "MAP_EXECUTABLE"),
    (MAP_LOCKED, "MAP_LOCKED"),
    (MAP_NORESERVE, "MAP_NORESERVE"),
    (MAP_POPULATE, "MAP_POPULATE"),
    (MAP_NONBLOCK, "MAP_NONBLOCK"),
    (MAP_STACK, "MAP_STACK"),
    (MAP_HUGETLB, "MAP_HUGETLB"),
    (MAP_SYNC, "MAP_SYNC"),
    (MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
    (MAP_UNINITIALIZED, "MAP_UNINITIALIZED"),
    (MAP_TYPE, "MAP_TYPE"),
];

/// The `PROT_*` bits by name (the kernel's spelling; scripts write `r`, `w`, `x`).
pub const PROT_NAMES: [(Prot, &str); 8] = [
    (PROT_READ, "PROT_READ"),
    (PROT_WRITE, "PROT_WRITE"),
    (PROT_EXEC, "PROT_EXEC"),
    (PROT_SEM, "PROT_SEM"),
    (PROT_BTI, "PROT_BTI"),
    (PROT_MTE, "PROT_MTE"),
    (PROT_GROWSDOWN, "PROT_GROWSDOWN"),
    (PROT_GROWSUP, "PROT_GROWSUP"),
];

/// The `MADV_*` advices by name, the kernel's spelling (a script writes it in lower case
/// without the `MADV_` prefix: `populate_write`).
pub const ADVICE_NAMES: [(Advice, &str); 27] = [
    (MADV_NORMAL, "MADV_NORMAL"),
    (MADV_RANDOM, "MADV_RANDOM"),
    (MADV_SEQUENTIAL, "MADV_SEQUENTIAL"),
    (MADV_WILLNEED, "MADV_WILLNEED"),
    (MADV_DONTNEED, "MADV_DONTNEED"),
    (MADV_FREE, "MADV_FREE"),
    (MADV_REMOVE, "MADV_REMOVE"),
    (MADV_DONTFORK, "MADV_DONTFORK"),
    (MADV_DOFORK, "MADV_DOFORK"),
    (MADV_MERGEABLE, "MADV_MERGEABLE"),
    (MADV_UNMERGEABLE, "MADV_UNMERGEABLE"),
    (MADV_HUGEPAGE, "MADV_HUGEPAGE"),
    (MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"),
    (MADV_DONTDUMP, "MADV_DONTDUMP"),
    (MADV_DODUMP, "MADV_DODUMP"),
    (MADV_WIPEONFORK, "MADV_WIPEONFORK"),
    (MADV_KEEPONFORK, "MADV_KEEPONFORK"),
    (MADV_COLD, "MADV_COLD"),
    (MADV_PAGEOUT, "MADV_PAGEOUT"),
    (MADV_POPULATE_READ, "MADV_POPULATE_READ"),
    (MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE"),
    (MADV_DONTNEED_LOCKED, "MADV_DONTNEED_LOCKED"),
    (MADV_COLLAPSE, "MADV_COLLAPSE"),
    (MADV_HWPOISON, "MADV_HWPOISON"),
    (MADV_SOFT_OFFLINE, "MADV_SOFT_OFFLINE"),
    (MADV_GUARD_INSTALL, "MADV_GUARD_INSTALL"),
    (MADV_GUARD_REMOVE, "MADV_GUARD_REMOVE"),
];

/// Returns the kernel's name of an advice, if it has one.
pub fn advice_name(advice: Advice) -> Option<&'static str> {
    ADVICE_NAMES
        .iter()
        .find(|(v, _)| *v == advice)
        .map(|(_, n)| *n)
}

/// Finds a name of one of the tables, written as the kernel spells it or, case
/// insensitive, without its `prefix` (`fixed_noreplace`, `populate_write`).
pub fn lookup_name<T: Copy>(table: &[(T, &str)], prefix: &str, name: &str) -> Option<T> {
    table.iter().find_map(|(v, n)| {
        let short = n.strip_prefix(prefix).unwrap_or(n);
        (n.eq_ignore_ascii_case(name) || short.eq_ignore_ascii_case(name)).then_some(*v)
    })
}

/// `RLIM_INFINITY` as a 64-bit `rlim_t`.
pub const RLIM_INFINITY: u64 = u64::MAX;
