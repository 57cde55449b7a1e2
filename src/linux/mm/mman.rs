//! `mmap`/`mprotect`/`madvise` arguments (`include/uapi/asm-generic/mman-common.h`,
//! `mman.h`, arm64 `asm/mman.h`), typed: [`Prot`] and [`MapFlags`] are bit sets that keep
//! bits the kernel does not know (so that they give its `EINVAL`), [`Advice`] an enum with
//! an [`Advice::Other`] for values the kernel does not know. The kernel's names are kept
//! as constants of those types (`PROT_READ | PROT_WRITE`, `MADV_FREE`). The values are the
//! same on arm64 and x86_64 except where noted.

use bitflags::bitflags;

bitflags! {
    /// `PROT_*` bits as passed to `mmap` and `mprotect`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u32 {
        /// `PROT_READ`: readable.
        const READ = 0x1;
        /// `PROT_WRITE`: writable.
        const WRITE = 0x2;
        /// `PROT_EXEC`: executable.
        const EXEC = 0x4;
        /// `PROT_SEM`: may be used for atomic operations (accepted and ignored).
        const SEM = 0x8;
        /// `PROT_BTI` (arm64): BTI-guarded pages (`bt`), only on CPUs with BTI.
        const BTI = 0x10;
        /// `PROT_MTE` (arm64): tag-checked memory (`mt`), only on CPUs with MTE.
        const MTE = 0x20;
        /// `PROT_GROWSDOWN`: `mprotect` extends the change down to the start of a grows-down VMA.
        const GROWSDOWN = 0x0100_0000;
        /// `PROT_GROWSUP`: the upward counterpart (no arm64/x86 VMA grows up).
        const GROWSUP = 0x0200_0000;
    }
}

bitflags! {
    /// `MAP_*` bits as passed to `mmap`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MapFlags: u32 {
        /// `MAP_SHARED`: share changes.
        const SHARED = 0x01;
        /// `MAP_PRIVATE`: changes are private (copy on write).
        const PRIVATE = 0x02;
        /// `MAP_SHARED_VALIDATE`: `MAP_SHARED` with flag validation (file mappings only).
        const SHARED_VALIDATE = 0x03;
        /// `MAP_DROPPABLE` (6.11+): private, may be dropped under memory pressure.
        const DROPPABLE = 0x08;
        /// `MAP_TYPE`: mask of the mapping type.
        const TYPE = 0x0f;
        /// `MAP_FIXED`: place exactly at `addr`, replacing what is there.
        const FIXED = 0x10;
        /// `MAP_ANONYMOUS`: not backed by a file.
        const ANONYMOUS = 0x20;
        /// `MAP_32BIT` (x86_64 only): place in the first 2 GiB (not modelled).
        const BIT32 = 0x40;
        /// `MAP_GROWSDOWN`: a stack-like VMA (`gd`).
        const GROWSDOWN = 0x0100;
        /// `MAP_DENYWRITE`: ignored.
        const DENYWRITE = 0x0800;
        /// `MAP_EXECUTABLE`: ignored.
        const EXECUTABLE = 0x1000;
        /// `MAP_LOCKED`: `mlock` the mapping (`lo`) and populate it.
        const LOCKED = 0x2000;
        /// `MAP_NORESERVE`: do not account (`nr` instead of `ac`).
        const NORESERVE = 0x4000;
        /// `MAP_POPULATE`: prefault the mapping.
        const POPULATE = 0x8000;
        /// `MAP_NONBLOCK`: with `MAP_POPULATE`, do not populate.
        const NONBLOCK = 0x1_0000;
        /// `MAP_STACK`: a thread stack (`nh` from 6.7).
        const STACK = 0x2_0000;
        /// `MAP_HUGETLB`: hugetlbfs pages (not modelled: no huge page pool, `ENOMEM`).
        const HUGETLB = 0x4_0000;
        /// `MAP_SYNC`: synchronous faults (DAX files only; ignored for anonymous memory).
        const SYNC = 0x8_0000;
        /// `MAP_FIXED_NOREPLACE`: like `MAP_FIXED` but fail with `EEXIST` instead of replacing.
        const FIXED_NOREPLACE = 0x10_0000;
        /// `MAP_UNINITIALIZED`: ignored without `CONFIG_MMAP_ALLOW_UNINITIALIZED`.
        const UNINITIALIZED = 0x400_0000;
    }
}

/// `PROT_NONE`: no access.
pub const PROT_NONE: Prot = Prot::empty();
/// `PROT_READ`: see [`Prot::READ`].
pub const PROT_READ: Prot = Prot::READ;
/// `PROT_WRITE`: see [`Prot::WRITE`].
pub const PROT_WRITE: Prot = Prot::WRITE;
/// `PROT_EXEC`: see [`Prot::EXEC`].
pub const PROT_EXEC: Prot = Prot::EXEC;
/// `PROT_SEM`: see [`Prot::SEM`].
pub const PROT_SEM: Prot = Prot::SEM;
/// `PROT_BTI`: see [`Prot::BTI`].
pub const PROT_BTI: Prot = Prot::BTI;
/// `PROT_MTE`: see [`Prot::MTE`].
pub const PROT_MTE: Prot = Prot::MTE;
/// `PROT_GROWSDOWN`: see [`Prot::GROWSDOWN`].
pub const PROT_GROWSDOWN: Prot = Prot::GROWSDOWN;
/// `PROT_GROWSUP`: see [`Prot::GROWSUP`].
pub const PROT_GROWSUP: Prot = Prot::GROWSUP;
/// `MAP_SHARED`: see [`MapFlags::SHARED`].
pub const MAP_SHARED: MapFlags = MapFlags::SHARED;
/// `MAP_PRIVATE`: see [`MapFlags::PRIVATE`].
pub const MAP_PRIVATE: MapFlags = MapFlags::PRIVATE;
/// `MAP_SHARED_VALIDATE`: see [`MapFlags::SHARED_VALIDATE`].
pub const MAP_SHARED_VALIDATE: MapFlags = MapFlags::SHARED_VALIDATE;
/// `MAP_DROPPABLE`: see [`MapFlags::DROPPABLE`].
pub const MAP_DROPPABLE: MapFlags = MapFlags::DROPPABLE;
/// `MAP_TYPE`: see [`MapFlags::TYPE`].
pub const MAP_TYPE: MapFlags = MapFlags::TYPE;
/// `MAP_FIXED`: see [`MapFlags::FIXED`].
pub const MAP_FIXED: MapFlags = MapFlags::FIXED;
/// `MAP_ANONYMOUS`: see [`MapFlags::ANONYMOUS`].
pub const MAP_ANONYMOUS: MapFlags = MapFlags::ANONYMOUS;
/// `MAP_32BIT`: see [`MapFlags::BIT32`].
pub const MAP_32BIT: MapFlags = MapFlags::BIT32;
/// `MAP_GROWSDOWN`: see [`MapFlags::GROWSDOWN`].
pub const MAP_GROWSDOWN: MapFlags = MapFlags::GROWSDOWN;
/// `MAP_DENYWRITE`: see [`MapFlags::DENYWRITE`].
pub const MAP_DENYWRITE: MapFlags = MapFlags::DENYWRITE;
/// `MAP_EXECUTABLE`: see [`MapFlags::EXECUTABLE`].
pub const MAP_EXECUTABLE: MapFlags = MapFlags::EXECUTABLE;
/// `MAP_LOCKED`: see [`MapFlags::LOCKED`].
pub const MAP_LOCKED: MapFlags = MapFlags::LOCKED;
/// `MAP_NORESERVE`: see [`MapFlags::NORESERVE`].
pub const MAP_NORESERVE: MapFlags = MapFlags::NORESERVE;
/// `MAP_POPULATE`: see [`MapFlags::POPULATE`].
pub const MAP_POPULATE: MapFlags = MapFlags::POPULATE;
/// `MAP_NONBLOCK`: see [`MapFlags::NONBLOCK`].
pub const MAP_NONBLOCK: MapFlags = MapFlags::NONBLOCK;
/// `MAP_STACK`: see [`MapFlags::STACK`].
pub const MAP_STACK: MapFlags = MapFlags::STACK;
/// `MAP_HUGETLB`: see [`MapFlags::HUGETLB`].
pub const MAP_HUGETLB: MapFlags = MapFlags::HUGETLB;
/// `MAP_SYNC`: see [`MapFlags::SYNC`].
pub const MAP_SYNC: MapFlags = MapFlags::SYNC;
/// `MAP_FIXED_NOREPLACE`: see [`MapFlags::FIXED_NOREPLACE`].
pub const MAP_FIXED_NOREPLACE: MapFlags = MapFlags::FIXED_NOREPLACE;
/// `MAP_UNINITIALIZED`: see [`MapFlags::UNINITIALIZED`].
pub const MAP_UNINITIALIZED: MapFlags = MapFlags::UNINITIALIZED;

/// A `MADV_*` advice as passed to `madvise`: the values the kernel knows, and
/// [`Advice::Other`] for any other (which `madvise` refuses with `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Advice {
    /// `MADV_NORMAL` (0): clear `sr`/`rr`.
    Normal,
    /// `MADV_RANDOM` (1): set `rr`.
    Random,
    /// `MADV_SEQUENTIAL` (2): set `sr`.
    Sequential,
    /// `MADV_WILLNEED` (3): read ahead (no VMA change).
    Willneed,
    /// `MADV_DONTNEED` (4): zap the pages.
    Dontneed,
    /// `MADV_FREE` (8): pages may be freed lazily.
    Free,
    /// `MADV_REMOVE` (9): punch a hole in the backing (shared memory only).
    Remove,
    /// `MADV_DONTFORK` (10): set `dc`.
    Dontfork,
    /// `MADV_DOFORK` (11): clear `dc`.
    Dofork,
    /// `MADV_MERGEABLE` (12): set `mg` (KSM).
    Mergeable,
    /// `MADV_UNMERGEABLE` (13): clear `mg`.
    Unmergeable,
    /// `MADV_HUGEPAGE` (14): set `hg`, clear `nh`.
    Hugepage,
    /// `MADV_NOHUGEPAGE` (15): set `nh`, clear `hg`.
    Nohugepage,
    /// `MADV_DONTDUMP` (16): set `dd`.
    Dontdump,
    /// `MADV_DODUMP` (17): clear `dd`.
    Dodump,
    /// `MADV_WIPEONFORK` (18): set `wf` (private anonymous only).
    Wipeonfork,
    /// `MADV_KEEPONFORK` (19): clear `wf`.
    Keeponfork,
    /// `MADV_COLD` (20): deactivate the pages.
    Cold,
    /// `MADV_PAGEOUT` (21): reclaim the pages.
    Pageout,
    /// `MADV_POPULATE_READ` (22): prefault readable.
    PopulateRead,
    /// `MADV_POPULATE_WRITE` (23): prefault writable.
    PopulateWrite,
    /// `MADV_DONTNEED_LOCKED` (24): like `MADV_DONTNEED`, also on `mlock`ed VMAs.
    DontneedLocked,
    /// `MADV_COLLAPSE` (25): synchronous THP collapse.
    Collapse,
    /// `MADV_HWPOISON` (100): poison a page (needs `CAP_SYS_ADMIN`; not modelled).
    Hwpoison,
    /// `MADV_SOFT_OFFLINE` (101): soft-offline a page (not modelled).
    SoftOffline,
    /// `MADV_GUARD_INSTALL` (102): install guard markers.
    GuardInstall,
    /// `MADV_GUARD_REMOVE` (103): remove guard markers.
    GuardRemove,
    /// A value the kernel does not know.
    Other(i32),
}

impl Advice {
    /// Returns the advice for the raw value `madvise` receives.
    pub const fn from_raw(v: i32) -> Advice {
        match v {
            0 => Advice::Normal,
            1 => Advice::Random,
            2 => Advice::Sequential,
            3 => Advice::Willneed,
            4 => Advice::Dontneed,
            8 => Advice::Free,
            9 => Advice::Remove,
            10 => Advice::Dontfork,
            11 => Advice::Dofork,
            12 => Advice::Mergeable,
            13 => Advice::Unmergeable,
            14 => Advice::Hugepage,
            15 => Advice::Nohugepage,
            16 => Advice::Dontdump,
            17 => Advice::Dodump,
            18 => Advice::Wipeonfork,
            19 => Advice::Keeponfork,
            20 => Advice::Cold,
            21 => Advice::Pageout,
            22 => Advice::PopulateRead,
            23 => Advice::PopulateWrite,
            24 => Advice::DontneedLocked,
            25 => Advice::Collapse,
            100 => Advice::Hwpoison,
            101 => Advice::SoftOffline,
            102 => Advice::GuardInstall,
            103 => Advice::GuardRemove,
            other => Advice::Other(other),
        }
    }

    /// Returns the raw value.
    pub const fn raw(self) -> i32 {
        match self {
            Advice::Normal => 0,
            Advice::Random => 1,
            Advice::Sequential => 2,
            Advice::Willneed => 3,
            Advice::Dontneed => 4,
            Advice::Free => 8,
            Advice::Remove => 9,
            Advice::Dontfork => 10,
            Advice::Dofork => 11,
            Advice::Mergeable => 12,
            Advice::Unmergeable => 13,
            Advice::Hugepage => 14,
            Advice::Nohugepage => 15,
            Advice::Dontdump => 16,
            Advice::Dodump => 17,
            Advice::Wipeonfork => 18,
            Advice::Keeponfork => 19,
            Advice::Cold => 20,
            Advice::Pageout => 21,
            Advice::PopulateRead => 22,
            Advice::PopulateWrite => 23,
            Advice::DontneedLocked => 24,
            Advice::Collapse => 25,
            Advice::Hwpoison => 100,
            Advice::SoftOffline => 101,
            Advice::GuardInstall => 102,
            Advice::GuardRemove => 103,
            Advice::Other(v) => v,
        }
    }
}

/// `MADV_NORMAL`: see [`Advice::Normal`].
pub const MADV_NORMAL: Advice = Advice::Normal;
/// `MADV_RANDOM`: see [`Advice::Random`].
pub const MADV_RANDOM: Advice = Advice::Random;
/// `MADV_SEQUENTIAL`: see [`Advice::Sequential`].
pub const MADV_SEQUENTIAL: Advice = Advice::Sequential;
/// `MADV_WILLNEED`: see [`Advice::Willneed`].
pub const MADV_WILLNEED: Advice = Advice::Willneed;
/// `MADV_DONTNEED`: see [`Advice::Dontneed`].
pub const MADV_DONTNEED: Advice = Advice::Dontneed;
/// `MADV_FREE`: see [`Advice::Free`].
pub const MADV_FREE: Advice = Advice::Free;
/// `MADV_REMOVE`: see [`Advice::Remove`].
pub const MADV_REMOVE: Advice = Advice::Remove;
/// `MADV_DONTFORK`: see [`Advice::Dontfork`].
pub const MADV_DONTFORK: Advice = Advice::Dontfork;
/// `MADV_DOFORK`: see [`Advice::Dofork`].
pub const MADV_DOFORK: Advice = Advice::Dofork;
/// `MADV_MERGEABLE`: see [`Advice::Mergeable`].
pub const MADV_MERGEABLE: Advice = Advice::Mergeable;
/// `MADV_UNMERGEABLE`: see [`Advice::Unmergeable`].
pub const MADV_UNMERGEABLE: Advice = Advice::Unmergeable;
/// `MADV_HUGEPAGE`: see [`Advice::Hugepage`].
pub const MADV_HUGEPAGE: Advice = Advice::Hugepage;
/// `MADV_NOHUGEPAGE`: see [`Advice::Nohugepage`].
pub const MADV_NOHUGEPAGE: Advice = Advice::Nohugepage;
/// `MADV_DONTDUMP`: see [`Advice::Dontdump`].
pub const MADV_DONTDUMP: Advice = Advice::Dontdump;
/// `MADV_DODUMP`: see [`Advice::Dodump`].
pub const MADV_DODUMP: Advice = Advice::Dodump;
/// `MADV_WIPEONFORK`: see [`Advice::Wipeonfork`].
pub const MADV_WIPEONFORK: Advice = Advice::Wipeonfork;
/// `MADV_KEEPONFORK`: see [`Advice::Keeponfork`].
pub const MADV_KEEPONFORK: Advice = Advice::Keeponfork;
/// `MADV_COLD`: see [`Advice::Cold`].
pub const MADV_COLD: Advice = Advice::Cold;
/// `MADV_PAGEOUT`: see [`Advice::Pageout`].
pub const MADV_PAGEOUT: Advice = Advice::Pageout;
/// `MADV_POPULATE_READ`: see [`Advice::PopulateRead`].
pub const MADV_POPULATE_READ: Advice = Advice::PopulateRead;
/// `MADV_POPULATE_WRITE`: see [`Advice::PopulateWrite`].
pub const MADV_POPULATE_WRITE: Advice = Advice::PopulateWrite;
/// `MADV_DONTNEED_LOCKED`: see [`Advice::DontneedLocked`].
pub const MADV_DONTNEED_LOCKED: Advice = Advice::DontneedLocked;
/// `MADV_COLLAPSE`: see [`Advice::Collapse`].
pub const MADV_COLLAPSE: Advice = Advice::Collapse;
/// `MADV_HWPOISON`: see [`Advice::Hwpoison`].
pub const MADV_HWPOISON: Advice = Advice::Hwpoison;
/// `MADV_SOFT_OFFLINE`: see [`Advice::SoftOffline`].
pub const MADV_SOFT_OFFLINE: Advice = Advice::SoftOffline;
/// `MADV_GUARD_INSTALL`: see [`Advice::GuardInstall`].
pub const MADV_GUARD_INSTALL: Advice = Advice::GuardInstall;
/// `MADV_GUARD_REMOVE`: see [`Advice::GuardRemove`].
pub const MADV_GUARD_REMOVE: Advice = Advice::GuardRemove;

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
