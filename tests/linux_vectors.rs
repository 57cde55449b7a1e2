//! Spec vectors of `linux-anon-mmap.md` §15 (x86_64 6.18) and §18.7 (arm64 6.1, 6.12,
//! 6.12/16K) for the VMA-level address-space model, plus property tests.

use pagesim::linux::mm::mman::*;
use pagesim::linux::mm::vma_tree::VmaSlot;
use pagesim::linux::mm::vmflags::VmFlags;
use pagesim::linux::mm::{
    AddressSpace, Errno, ImportHints, KernelVersion, LayoutParams, PageOps, ThpMode,
};

const RW: Prot = PROT_READ.union(PROT_WRITE);
const PA: MapFlags = MAP_PRIVATE.union(MAP_ANONYMOUS);
const K: u64 = 0x400;
const M: u64 = 1 << 20;

fn slots(n: usize) -> &'static mut [VmaSlot] {
    Box::leak(vec![VmaSlot::EMPTY; n].into_boxed_slice())
}

fn fresh(p: LayoutParams) -> AddressSpace<'static> {
    AddressSpace::fresh_process(slots(p.max_map_count.min(70_000) + 3), p, "<exe>").unwrap()
}

fn x86() -> AddressSpace<'static> {
    fresh(LayoutParams::x86_64_6_18())
}

/// The maps lines whose start lies in `[lo, hi)`.
fn window(mm: &AddressSpace<'_>, lo: u64, hi: u64) -> String {
    mm.maps_string()
        .lines()
        .filter(|l| {
            let s = u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap();
            lo <= s && s < hi
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Lines as written in the spec (each with its trailing space where unnamed).
fn lines(s: &[&str]) -> String {
    s.iter().map(|l| format!("{l}\n")).collect()
}

fn no_exe(s: &str) -> String {
    s.lines()
        .filter(|l| !l.ends_with("<exe>"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn vmflags_of(mm: &AddressSpace<'_>, addr: u64) -> String {
    let v = mm.vma_lookup(addr).unwrap();
    let mut s = String::new();
    v.vm_flags
        .write_mnemonics(&mut s, mm.params().maps.mnemonics)
        .unwrap();
    s
}

const X86_LO: u64 = 0x7ff0_0000_0000;
const X86_HI: u64 = 0x7fff_f7ff_7000;

// ----- §15 (x86_64 6.18) -----------------------------------------------------------------

#[test]
fn tv0_initial_state() {
    let mm = x86();
    let want = lines(&[
        "00400000-00401000 r--p 00000000 fe:00 10010772                           <exe>",
        "00401000-0047a000 r-xp 00001000 fe:00 10010772                           <exe>",
        "0047a000-004a2000 r--p 0007a000 fe:00 10010772                           <exe>",
        "004a2000-004a6000 r--p 000a2000 fe:00 10010772                           <exe>",
        "004a6000-004a9000 rw-p 000a6000 fe:00 10010772                           <exe>",
        "004a9000-009be000 rw-p 00000000 00:00 0 ",
        "009be000-009e0000 rw-p 00000000 00:00 0                                  [heap]",
        "7ffff7ff7000-7ffff7ffb000 r--p 00000000 00:00 0                          [vvar]",
        "7ffff7ffb000-7ffff7ffd000 r--p 00000000 00:00 0                          [vvar_vclock]",
        "7ffff7ffd000-7ffff7fff000 r-xp 00000000 00:00 0                          [vdso]",
        "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]",
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
    ]);
    assert_eq!(mm.maps_string(), want);
    assert_eq!(mm.mmap_base(), 0x7ffff7fff000);
    assert_eq!(mm.map_count(), 11);
    assert_eq!(vmflags_of(&mm, 0x9be000), "rd wr mr mw me ac ");
    assert_eq!(vmflags_of(&mm, 0x7ffffffde000), "rd wr mr mw me gd ac ");
}

#[test]
fn tv1_small_maps_merge_downward() {
    let mut mm = x86();
    for want in [0x7ffff7ff6000, 0x7ffff7ff5000, 0x7ffff7ff4000] {
        assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(want));
    }
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&["7ffff7ff4000-7ffff7ff7000 rw-p 00000000 00:00 0 "])
    );
}

#[test]
fn tv2_different_protections() {
    let mut mm = x86();
    assert_eq!(mm.mmap(0, 4 * K, PROT_READ, PA), Ok(0x7ffff7ff6000));
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(0x7ffff7ff5000));
    assert_eq!(mm.mmap(0, 4 * K, PROT_READ, PA), Ok(0x7ffff7ff4000));
    assert_eq!(mm.mmap(0, 4 * K, PROT_NONE, PA), Ok(0x7ffff7ff3000));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff3000-7ffff7ff4000 ---p 00000000 00:00 0 ",
            "7ffff7ff4000-7ffff7ff5000 r--p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff6000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 r--p 00000000 00:00 0 ",
        ])
    );
}

#[test]
fn tv3_mprotect_split_and_remerge() {
    let mut mm = x86();
    let a = mm.mmap(0, 12 * K, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7ff4000);
    assert_eq!(mm.mprotect(a + 4 * K, 4 * K, PROT_READ), Ok(()));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff5000 rw-p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff6000 r--p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(mm.mprotect(a + 4 * K, 4 * K, RW), Ok(()));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&["7ffff7ff4000-7ffff7ff7000 rw-p 00000000 00:00 0 "])
    );
}

#[test]
fn tv4_account_survives_with_anon_vma() {
    let mut mm = x86();
    let a = mm.mmap(0, 12 * K, RW, PA).unwrap();
    mm.touch(a + 4 * K, true).unwrap();
    mm.mprotect(a + 4 * K, 4 * K, PROT_READ).unwrap();
    mm.mprotect(a + 8 * K, 4 * K, PROT_READ).unwrap();
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff5000 rw-p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff7000 r--p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, a), "rd wr mr mw me ac ");
    assert_eq!(vmflags_of(&mm, a + 4 * K), "rd mr mw me ac ");
}

#[test]
fn tv5_hole_is_highest_gap() {
    let mut mm = x86();
    let a = mm.mmap(0, 12 * K, RW, PA).unwrap();
    assert_eq!(mm.munmap(a + 4 * K, 4 * K), Ok(()));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff5000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(0x7ffff7ff5000));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&["7ffff7ff4000-7ffff7ff7000 rw-p 00000000 00:00 0 "])
    );
}

#[test]
fn tv6_thp_alignment() {
    let mut mm = x86();
    assert_eq!(mm.mmap(0, 2 * M, RW, PA), Ok(0x7ffff7c00000));
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(0x7ffff7ff6000));
    assert_eq!(mm.mmap(0, 4 * M, RW, PA), Ok(0x7ffff7800000));
    assert_eq!(mm.mmap(0, 2 * M + 4 * K, RW, PA), Ok(0x7ffff75ff000));
    assert_eq!(mm.mmap(0, 3 * M, RW, PA), Ok(0x7ffff72ff000));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff72ff000-7ffff7e00000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
}

#[test]
fn s1_6_thp_sequence_shape() {
    // §1.6's sequence below a 36 KiB hole: check the PMD rule on a synthetic layout.
    let mut mm = x86();
    let top = 0x7ffff7dd2000;
    mm.mmap(top, 0x7ffff7ff7000 - top, PROT_NONE, PA | MAP_FIXED)
        .unwrap();
    assert_eq!(mm.mmap(0, 0x300000, RW, PA), Ok(0x7ffff7ad2000));
    assert_eq!(mm.mmap(0, 0x200000, RW, PA), Ok(0x7ffff7800000));
    assert_eq!(mm.mmap(0, 0x400000, RW, PA), Ok(0x7ffff7400000));
    assert_eq!(mm.mmap(0, 0x6400000, RW, PA), Ok(0x7ffff1000000));
    assert_eq!(mm.mmap(0, 0x201000, RW, PA), Ok(0x7ffff0dff000));
    assert_eq!(mm.mmap(0, 0x600000, RW, PA), Ok(0x7ffff0600000));
}

#[test]
fn tv7_grows_down_guard_gap() {
    let mut mm = x86();
    let g = mm.mmap(0, 4 * K, RW, PA | MAP_GROWSDOWN).unwrap();
    assert_eq!(g, 0x7ffff7ff6000);
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(g - M - 4 * K));
    assert_eq!(mm.mmap(g - 4 * K, 4 * K, RW, PA), Ok(0x7ffff7ef4000));
    assert_eq!(mm.mmap(g - M - 4 * K, 4 * K, RW, PA), Ok(0x7ffff7ef3000));
    assert_eq!(
        mm.mmap(g - 4 * K, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
        Ok(0x7ffff7ff5000)
    );
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ef3000-7ffff7ef6000 rw-p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff6000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
    // A 2 MiB request keeps the gap too (§6).
    let mut mm = x86();
    let g = mm.mmap(0, 4 * K, RW, PA | MAP_GROWSDOWN).unwrap();
    assert_eq!(
        mm.mmap(0, 2 * M, RW, PA),
        Ok((g - M - 2 * M) & !(2 * M - 1))
    );
}

#[test]
fn tv8_brk() {
    let mut mm = x86();
    let heap = |mm: &AddressSpace<'_>| window(mm, 0x9b0000, 0xa00000);
    assert_eq!(mm.brk(0), 0x9e0000);
    assert_eq!(mm.brk(0x9e1800), 0x9e1800);
    assert_eq!(
        heap(&mm),
        lines(&["009be000-009e2000 rw-p 00000000 00:00 0                                  [heap]"])
    );
    assert_eq!(mm.brk(0x9e0800), 0x9e0800);
    assert_eq!(
        heap(&mm),
        lines(&["009be000-009e1000 rw-p 00000000 00:00 0                                  [heap]"])
    );
    assert_eq!(
        mm.mmap(0x9e3000, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
        Ok(0x9e3000)
    );
    assert_eq!(mm.brk(0x9e2000), 0x9e2000);
    assert_eq!(mm.brk(0x9e2001), 0x9e2000);
    assert_eq!(
        heap(&mm),
        lines(&[
            "009be000-009e2000 rw-p 00000000 00:00 0                                  [heap]",
            "009e3000-009e4000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(mm.mmap(0x9e2000, 4 * K, RW, PA | MAP_FIXED), Ok(0x9e2000));
    assert_eq!(
        heap(&mm),
        lines(&["009be000-009e4000 rw-p 00000000 00:00 0                                  [heap]"])
    );
}

#[derive(Default, Debug)]
struct Log(Vec<String>);

impl PageOps for Log {
    fn unmapped(&mut self, s: u64, e: u64, _: VmFlags) {
        self.0.push(format!("unmapped {s:x}-{e:x}"));
    }
    fn protection_changed(&mut self, s: u64, e: u64, f: VmFlags) {
        self.0.push(format!("prot {s:x}-{e:x} {:?}", f.perms()));
    }
    fn zap(&mut self, s: u64, e: u64, _: VmFlags) {
        self.0.push(format!("zap {s:x}-{e:x}"));
    }
    fn populate(&mut self, s: u64, e: u64, w: bool) {
        self.0.push(format!("populate {s:x}-{e:x} {w}"));
    }
    fn advise(&mut self, s: u64, e: u64, a: Advice) {
        self.0.push(format!("advise {s:x}-{e:x} {}", a.raw()));
    }
}

#[test]
fn tv9_map_fixed_over_faulted_middle() {
    let mut mm = x86();
    let a = mm.mmap(0, 16 * K, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7ff3000);
    for i in 0..4 {
        mm.touch(a + i * 4 * K, true).unwrap();
    }
    let mut log = Log::default();
    assert_eq!(
        mm.mmap_with(a + 4 * K, 8 * K, RW, PA | MAP_FIXED, 0, &mut log),
        Ok(0x7ffff7ff4000)
    );
    assert_eq!(log.0, ["unmapped 7ffff7ff4000-7ffff7ff6000"]);
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&["7ffff7ff3000-7ffff7ff7000 rw-p 00000000 00:00 0 "])
    );
    assert_eq!(
        mm.mmap(a + 4 * K, 4 * K, PROT_READ, PA | MAP_FIXED),
        Ok(0x7ffff7ff4000)
    );
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff3000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
            "7ffff7ff4000-7ffff7ff5000 r--p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
}

#[test]
fn tv10_dontneed_keeps_vma() {
    let mut mm = x86();
    let a = mm.mmap(0, 16 * K, RW, PA).unwrap();
    mm.touch(a, false).unwrap();
    mm.touch(a + 4 * K, true).unwrap();
    mm.touch(a + 8 * K, true).unwrap();
    let before = mm.maps_string();
    let mut log = Log::default();
    assert_eq!(mm.madvise_with(a, 8 * K, MADV_DONTNEED, &mut log), Ok(()));
    assert_eq!(log.0, ["zap 7ffff7ff3000-7ffff7ff5000"]);
    assert_eq!(mm.maps_string(), before);
}

#[test]
fn tv11_thp_madvise_split() {
    let mut mm = x86();
    let a = mm.mmap(0, 4 * M, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7a00000);
    assert_eq!(mm.madvise(a + 2 * M, 2 * M, MADV_HUGEPAGE), Ok(()));
    mm.touch(a, true).unwrap();
    mm.touch(a + 2 * M, true).unwrap();
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7a00000-7ffff7c00000 rw-p 00000000 00:00 0 ",
            "7ffff7c00000-7ffff7e00000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, a), "rd wr mr mw me ac ");
    assert_eq!(vmflags_of(&mm, a + 2 * M), "rd wr mr mw me ac hg ");
    let v1 = *mm.vma_lookup(a).unwrap();
    let v2 = *mm.vma_lookup(a + 2 * M).unwrap();
    assert!(!mm.thp_eligible(&v1));
    assert!(mm.thp_eligible(&v2));
    let smaps = mm.smaps_string();
    assert!(smaps.contains(
        "7ffff7c00000-7ffff7e00000 rw-p 00000000 00:00 0 \nSize:               2048 kB\n"
    ));
}

#[test]
fn tv12_left_only_merge() {
    let mut mm = x86();
    let a = mm.mmap(0, 4 * K, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7ff6000);
    mm.touch(a, true).unwrap();
    let c = mm.mmap(a - 8 * K, 4 * K, RW, PA).unwrap();
    assert_eq!(c, 0x7ffff7ff4000);
    mm.touch(c, true).unwrap();
    assert_eq!(
        mm.mmap(a - 4 * K, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
        Ok(0x7ffff7ff5000)
    );
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff6000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
}

#[test]
fn tv13_hidden_account() {
    let mut mm = x86();
    assert_eq!(mm.mmap(0, 4 * K, PROT_READ, PA), Ok(0x7ffff7ff6000));
    let b = mm.mmap(0, 4 * K, RW, PA).unwrap();
    assert_eq!(b, 0x7ffff7ff5000);
    mm.touch(b, true).unwrap();
    mm.mprotect(b, 4 * K, PROT_READ).unwrap();
    let c = mm.mmap(0, 4 * K, RW, PA).unwrap();
    assert_eq!(c, 0x7ffff7ff4000);
    mm.mprotect(c, 4 * K, PROT_READ).unwrap();
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff5000 r--p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff6000 r--p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 r--p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, c), "rd mr mw me ");
    assert_eq!(vmflags_of(&mm, b), "rd mr mw me ac ");
    assert_eq!(vmflags_of(&mm, 0x7ffff7ff6000), "rd mr mw me ");
}

#[test]
fn tv14_hints() {
    let mut mm = x86();
    assert_eq!(mm.mmap(0x7ffff8000000, 4 * K, RW, PA), Ok(0x7ffff8000000));
    assert_eq!(mm.mmap(0x1000, 4 * K, RW, PA), Ok(0x10000));
    assert_eq!(mm.mmap(0x5e0000, 4 * K, RW, PA), Ok(0x7ffff7ff6000));
    let want = lines(&[
        "00010000-00011000 rw-p 00000000 00:00 0 ",
        "004a9000-009be000 rw-p 00000000 00:00 0 ",
        "009be000-009e0000 rw-p 00000000 00:00 0                                  [heap]",
        "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        "7ffff7ff7000-7ffff7ffb000 r--p 00000000 00:00 0                          [vvar]",
        "7ffff7ffb000-7ffff7ffd000 r--p 00000000 00:00 0                          [vvar_vclock]",
        "7ffff7ffd000-7ffff7fff000 r-xp 00000000 00:00 0                          [vdso]",
        "7ffff8000000-7ffff8001000 rw-p 00000000 00:00 0 ",
        "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]",
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
    ]);
    assert_eq!(no_exe(&mm.maps_string()), want);
}

#[test]
fn tv15_madvise_flag_splits() {
    let mut mm = x86();
    let a = mm.mmap(0, 20 * K, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7ff2000);
    assert_eq!(mm.madvise(a + 4 * K, 4 * K, MADV_DONTFORK), Ok(()));
    assert_eq!(mm.madvise(a + 12 * K, 4 * K, MADV_HUGEPAGE), Ok(()));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff2000-7ffff7ff3000 rw-p 00000000 00:00 0 ",
            "7ffff7ff3000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
            "7ffff7ff4000-7ffff7ff5000 rw-p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff6000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(mm.madvise(a + 4 * K, 4 * K, MADV_DOFORK), Ok(()));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff2000-7ffff7ff5000 rw-p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff6000 rw-p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 rw-p 00000000 00:00 0 ",
        ])
    );
}

#[test]
fn tv16_error_returns() {
    use Errno::*;
    let mut mm = x86();
    let base = 0x7fff_0000_0000u64;
    assert_eq!(mm.mmap(0, 0, RW, PA), Err(EINVAL));
    assert!(mm.mmap(0, 1, RW, PA).is_ok());
    for len in [0u64.wrapping_sub(4096), 1 << 47, 0x7ffffffff000, u64::MAX] {
        assert_eq!(mm.mmap(0, len, RW, PA), Err(ENOMEM), "len {len:#x}");
    }
    for fl in [
        MAP_ANONYMOUS,
        MAP_SHARED_VALIDATE | MAP_ANONYMOUS,
        MapFlags::from_bits_retain(0x0f) | MAP_ANONYMOUS,
    ] {
        assert_eq!(mm.mmap(0, 4 * K, RW, fl), Err(EINVAL));
    }
    assert!(mm
        .mmap(0, 4 * K, Prot::from_bits_retain(0x10) | RW, PA)
        .is_ok());
    assert!(mm.mmap(0, 4 * K, PROT_GROWSDOWN | RW, PA).is_ok());
    assert!(mm
        .mmap(0, 4 * K, RW, PA | MapFlags::from_bits_retain(0x4000_0000))
        .is_ok());
    let mut nop = pagesim::linux::mm::NoPageOps;
    assert!(mm.mmap_with(0, 4 * K, RW, PA, 4096, &mut nop).is_ok());
    assert_eq!(mm.mmap_with(0, 4 * K, RW, PA, 1, &mut nop), Err(EINVAL));
    assert_eq!(mm.mmap(base + 1, 4 * K, RW, PA | MAP_FIXED), Err(EINVAL));
    assert_eq!(
        mm.mmap(base + 1, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
        Err(EINVAL)
    );
    assert_eq!(mm.mmap(base + 0x1234, 4 * K, RW, PA), Ok(base + 0x1000));
    assert_eq!(
        mm.mmap(base + 0x1000, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
        Err(EEXIST)
    );
    assert_eq!(
        mm.mmap(base + 0x2000, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
        Ok(base + 0x2000)
    );
    assert_eq!(
        mm.mmap(0x7ffffffff000, 4 * K, RW, PA | MAP_FIXED),
        Err(ENOMEM)
    );
    assert_eq!(
        mm.mmap(0x800000000000, 4 * K, RW, PA | MAP_FIXED),
        Err(ENOMEM)
    );
    assert_eq!(mm.mmap(0, 4 * K, RW, PA | MAP_FIXED), Err(EPERM));
    let mut root = LayoutParams::x86_64_6_18();
    root.cap_sys_rawio = true;
    assert_eq!(fresh(root).mmap(0, 4 * K, RW, PA | MAP_FIXED), Ok(0));
    // munmap
    assert_eq!(mm.munmap(base, 0), Err(EINVAL));
    assert_eq!(mm.munmap(base + 1, 4 * K), Err(EINVAL));
    assert_eq!(mm.munmap(base, 0u64.wrapping_sub(4096)), Err(EINVAL));
    assert_eq!(mm.munmap(0x7ffffffff000, 4 * K), Err(EINVAL));
    assert_eq!(mm.munmap(base + 0x100000, 4 * K), Ok(()));
    // mprotect
    let a = mm.mmap(0, 8 * K, RW, PA).unwrap();
    assert_eq!(mm.mprotect(a, 0, PROT_READ), Ok(()));
    assert_eq!(mm.mprotect(a, 1, PROT_READ), Ok(()));
    assert_eq!(vmflags_of(&mm, a), "rd mr mw me ");
    assert_eq!(mm.mprotect(a + 1, 4 * K, PROT_READ), Err(EINVAL));
    assert_eq!(
        mm.mprotect(a, 4 * K, Prot::from_bits_retain(0x10)),
        Err(EINVAL)
    );
    assert_eq!(
        mm.mprotect(a, 4 * K, PROT_READ | PROT_GROWSDOWN),
        Err(EINVAL)
    );
    assert_eq!(
        mm.mprotect(a, 4 * K, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP),
        Err(EINVAL)
    );
    assert_eq!(mm.mprotect(a, 4 * K, PROT_READ | PROT_SEM), Ok(()));
    assert_eq!(mm.mprotect(base + 0x100000, 4 * K, PROT_READ), Err(ENOMEM));
    assert_eq!(mm.mprotect(a - 4 * K, 8 * K, PROT_READ), Err(ENOMEM));
    assert_eq!(mm.mprotect(a, u64::MAX - a, PROT_READ), Err(ENOMEM));
    // ending in a hole: the mapped prefix is applied
    let h = mm.mmap(0x6000_0000_0000, 4 * K, RW, PA).unwrap();
    assert_eq!(mm.mprotect(h, 8 * K, PROT_READ), Err(ENOMEM));
    assert_eq!(vmflags_of(&mm, h), "rd mr mw me ");
    // madvise
    assert_eq!(mm.madvise(a, 0, MADV_DONTNEED), Ok(()));
    assert_eq!(mm.madvise(a + 1, 4 * K, MADV_DONTNEED), Err(EINVAL));
    assert_eq!(mm.madvise(a, 4 * K, Advice::Other(12345)), Err(EINVAL));
    for adv in [MADV_DONTNEED, MADV_HUGEPAGE, MADV_NORMAL, MADV_WILLNEED] {
        assert_eq!(mm.madvise(base + 0x100000, 4 * K, adv), Err(ENOMEM));
        assert_eq!(mm.madvise(h, 8 * K, adv), Err(ENOMEM));
    }
    // MADV_HUGEPAGE over [mapped, hole) still set hg on the mapped page (§8)
    assert_eq!(vmflags_of(&mm, h), "rd mr mw me hg ");
    let l = mm.mmap(0, 4 * K, RW, PA | MAP_LOCKED).unwrap();
    assert_eq!(mm.madvise(l, 4 * K, MADV_DONTNEED), Err(EINVAL));
    assert_eq!(Errno::EINVAL.strerror(), "Invalid argument");
}

#[test]
fn tv17_bottom_up_fallback() {
    let mut p = LayoutParams::x86_64_6_18();
    p.rlimit_stack = RLIM_INFINITY;
    let mut mm = fresh(p);
    assert_eq!(mm.mmap_base(), 0x155555556000);
    assert_eq!(
        mm.mmap(0, 30 * (1 << 40) + 4 * K, PROT_NONE, PA),
        Ok(0x2aaaaaaab000)
    );
    let mut mm = fresh(p);
    assert_eq!(
        mm.mmap(0, 30 * (1 << 40), PROT_NONE, PA),
        Ok(0x2aaaaac00000)
    );
}

#[test]
fn tv17_stack_and_heap_naming() {
    let mut mm = x86();
    mm.mprotect(0x7ffffffde000, 4 * K, PROT_READ).unwrap();
    assert_eq!(
        window(&mm, 0x7ffffff00000, 0x7ffffffff000),
        lines(&[
            "7ffffffde000-7ffffffdf000 r--p 00000000 00:00 0 ",
            "7ffffffdf000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]",
        ])
    );
    // Adapted to the static layout: empty the heap first, then the spec's steps.
    let sb = mm.start_brk();
    assert_eq!(mm.brk(sb), sb);
    assert_eq!(mm.brk(sb + 0x5000), sb + 0x5000);
    mm.mprotect(sb + 0x1000, 4 * K, PROT_READ).unwrap();
    mm.mmap(sb + 0x3000, 4 * K, PROT_NONE, PA | MAP_FIXED)
        .unwrap();
    assert_eq!(
        window(&mm, sb, sb + M),
        lines(&[
            "009be000-009bf000 rw-p 00000000 00:00 0                                  [heap]",
            "009bf000-009c0000 r--p 00000000 00:00 0                                  [heap]",
            "009c0000-009c1000 rw-p 00000000 00:00 0                                  [heap]",
            "009c1000-009c2000 ---p 00000000 00:00 0                                  [heap]",
            "009c2000-009c3000 rw-p 00000000 00:00 0                                  [heap]",
        ])
    );
    assert_eq!(mm.brk(sb + 0x2000), sb + 0x2000);
    assert_eq!(
        window(&mm, sb, sb + M),
        lines(&[
            "009be000-009bf000 rw-p 00000000 00:00 0                                  [heap]",
            "009bf000-009c0000 r--p 00000000 00:00 0                                  [heap]",
        ])
    );
}

// ----- §7 max_map_count --------------------------------------------------------------------

fn x86_max(max: usize) -> AddressSpace<'static> {
    let mut p = LayoutParams::x86_64_6_18();
    p.max_map_count = max;
    fresh(p)
}

#[test]
fn s7_mmap_threshold() {
    let mut mm = x86_max(13);
    assert_eq!(mm.map_count(), 11);
    let a = mm.mmap(0, 4 * K, RW, PA).unwrap();
    mm.mmap(a - 8 * K, 4 * K, PROT_READ, PA | MAP_FIXED)
        .unwrap();
    assert_eq!(mm.map_count(), 13);
    // map_count == max: allowed, reaching max + 1
    mm.mmap(a - 16 * K, 4 * K, PROT_READ, PA | MAP_FIXED)
        .unwrap();
    assert_eq!(mm.map_count(), 14);
    // at max + 1 every mmap fails, even one that would merge
    let before = mm.maps_string();
    assert_eq!(
        mm.mmap(a - 4 * K, 4 * K, RW, PA | MAP_FIXED),
        Err(Errno::ENOMEM)
    );
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Err(Errno::ENOMEM));
    assert_eq!(mm.maps_string(), before);
}

#[test]
fn s7_munmap_hole_punch() {
    let mut mm = x86_max(12);
    let a = mm.mmap(0, 12 * K, RW, PA).unwrap();
    assert_eq!(mm.map_count(), 12);
    let before = mm.maps_string();
    assert_eq!(mm.munmap(a + 4 * K, 4 * K), Err(Errno::ENOMEM));
    assert_eq!(mm.maps_string(), before);
    assert_eq!(mm.munmap(a, 4 * K), Ok(()));
    assert_eq!(mm.map_count(), 12);
}

#[test]
fn s7_mprotect_partial_failure() {
    let mut mm = x86_max(13);
    let a = mm.mmap(0, 12 * K, PROT_READ, PA).unwrap();
    assert_eq!(mm.map_count(), 12); // max - 1
    assert_eq!(mm.mprotect(a + 4 * K, 4 * K, PROT_NONE), Err(Errno::ENOMEM));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff5000 r--p 00000000 00:00 0 ",
            "7ffff7ff5000-7ffff7ff7000 r--p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, a), "rd mr mw me ");
    assert_eq!(vmflags_of(&mm, a + 4 * K), "rd mr mw me ");
    assert_eq!(mm.map_count(), 13);
    // A partial merge needs no new VMA: fine at map_count == max.
    let mut mm = x86_max(13);
    let a = mm.mmap(0, 8 * K, PROT_READ, PA).unwrap();
    mm.mmap(a - 4 * K, 4 * K, PROT_NONE, PA | MAP_FIXED)
        .unwrap();
    assert_eq!(mm.map_count(), 13);
    assert_eq!(mm.mprotect(a, 4 * K, PROT_NONE), Ok(()));
    assert_eq!(
        window(&mm, X86_LO, X86_HI),
        lines(&[
            "7ffff7ff4000-7ffff7ff6000 ---p 00000000 00:00 0 ",
            "7ffff7ff6000-7ffff7ff7000 r--p 00000000 00:00 0 ",
        ])
    );
    // madvise reports a refused split as EAGAIN.
    assert_eq!(mm.madvise(a + 4 * K, 4 * K, MADV_DONTFORK), Ok(()));
    let mut mm = x86_max(12);
    let a = mm.mmap(0, 12 * K, RW, PA).unwrap();
    assert_eq!(
        mm.madvise(a + 4 * K, 4 * K, MADV_DONTFORK),
        Err(Errno::EAGAIN)
    );
}

// ----- §18.7 arm64 --------------------------------------------------------------------------

fn a61() -> AddressSpace<'static> {
    fresh(LayoutParams::arm64_6_1())
}
fn a612() -> AddressSpace<'static> {
    fresh(LayoutParams::arm64_6_12())
}
fn a16k() -> AddressSpace<'static> {
    fresh(LayoutParams::arm64_6_12_16k())
}

const A_LO: u64 = 0xff00_0000_0000;
const A_HI: u64 = 0xffff_f800_0000;
const B_LO: u64 = 0x7f00_0000_0000;

#[test]
fn a1_initial_state() {
    let exe = [
        "00400000-00480000 r-xp 00000000 00:02 7                                  <exe>",
        "0048c000-00490000 r--p 0008c000 00:02 7                                  <exe>",
    ];
    let mut w61 = lines(&exe);
    w61 += &lines(&[
        "00490000-00493000 rw-p 00090000 00:02 7                                  <exe>",
        "00493000-004a9000 rw-p 00000000 00:00 0                                  [heap]",
        "004a9000-004cb000 rw-p 00000000 00:00 0                                  [heap]",
        "fffff7ffd000-fffff7fff000 r--p 00000000 00:00 0                          [vvar]",
        "fffff7fff000-fffff8000000 r-xp 00000000 00:00 0                          [vdso]",
        "fffffffdf000-1000000000000 rw-p 00000000 00:00 0                         [stack]",
    ]);
    assert_eq!(a61().maps_string(), w61);
    let mut w612 = lines(&exe);
    w612 += &lines(&[
        "00490000-00493000 rw-p 00090000 00:02 7                                  <exe>",
        "00493000-004a9000 rw-p 00000000 00:00 0 ",
        "004a9000-004cb000 rw-p 00000000 00:00 0                                  [heap]",
        "fffff7ffc000-fffff7ffe000 r--p 00000000 00:00 0                          [vvar]",
        "fffff7ffe000-fffff8000000 r-xp 00000000 00:00 0                          [vdso]",
        "fffffffdf000-1000000000000 rw-p 00000000 00:00 0                         [stack]",
    ]);
    assert_eq!(a612().maps_string(), w612);
    let mut w16 = lines(&exe);
    w16 += &lines(&[
        "00490000-00494000 rw-p 00090000 00:02 7                                  <exe>",
        "00494000-004ac000 rw-p 00000000 00:00 0 ",
        "004ac000-004d4000 rw-p 00000000 00:00 0                                  [heap]",
        "7ffff7ff4000-7ffff7ffc000 r--p 00000000 00:00 0                          [vvar]",
        "7ffff7ffc000-7ffff8000000 r-xp 00000000 00:00 0                          [vdso]",
        "7ffffffdc000-800000000000 rw-p 00000000 00:00 0                          [stack]",
    ]);
    assert_eq!(a16k().maps_string(), w16);
    // the 100 MiB probe
    assert_eq!(a61().mmap(0, 100 * M, RW, PA), Ok(0xfffff1bfd000));
    assert_eq!(a612().mmap(0, 100 * M, RW, PA), Ok(0xfffff1a00000));
    assert_eq!(a16k().mmap(0, 100 * M, RW, PA), Ok(0x7ffff1bf4000));
    // first mmap(0, 1P)
    assert_eq!(a61().mmap(0, 1, RW, PA), Ok(0xfffff7ffc000));
    assert_eq!(a612().mmap(0, 1, RW, PA), Ok(0xfffff7ffb000));
    assert_eq!(a16k().mmap(0, 1, RW, PA), Ok(0x7ffff7ff0000));
    // smaps of the special mappings
    let mm = a612();
    assert_eq!(vmflags_of(&mm, 0xfffff7ffc000), "rd mr pf de ");
    assert_eq!(vmflags_of(&mm, 0xfffff7ffe000), "rd ex mr mw me de ");
    assert_eq!(vmflags_of(&mm, 0xfffffffdf000), "rd wr mr mw me gd ac ");
}

#[test]
fn a2_thp_interleaved() {
    let mut mm = a61();
    for (len, want) in [
        (2 * M, 0xfffff7dfd000u64),
        (4 * K, 0xfffff7dfc000),
        (4 * M, 0xfffff79fc000),
        (2 * M + 4 * K, 0xfffff77fb000),
        (3 * M, 0xfffff74fb000),
        (6 * M, 0xfffff6efb000),
    ] {
        assert_eq!(mm.mmap(0, len, RW, PA), Ok(want));
    }
    assert_eq!(
        window(&mm, A_LO, A_HI),
        lines(&[
            "fffff6efb000-fffff7ffd000 rw-p 00000000 00:00 0 ",
            "fffff7ffd000-fffff7fff000 r--p 00000000 00:00 0                          [vvar]",
            "fffff7fff000-fffff8000000 r-xp 00000000 00:00 0                          [vdso]",
        ])
    );
    let mut mm = a612();
    for (len, want) in [
        (2 * M, 0xfffff7c00000u64),
        (4 * K, 0xfffff7ffb000),
        (4 * M, 0xfffff7800000),
        (2 * M + 4 * K, 0xfffff75ff000),
        (3 * M, 0xfffff72ff000),
        (6 * M, 0xfffff6c00000),
    ] {
        assert_eq!(mm.mmap(0, len, RW, PA), Ok(want));
    }
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&[
            "fffff6c00000-fffff7200000 rw-p 00000000 00:00 0 ",
            "fffff72ff000-fffff7e00000 rw-p 00000000 00:00 0 ",
            "fffff7ffb000-fffff7ffc000 rw-p 00000000 00:00 0 ",
        ])
    );
    let mut mm = a16k();
    for (len, want) in [
        (32 * M, 0x7ffff4000000u64),
        (16 * K, 0x7ffff7ff0000),
        (64 * M, 0x7ffff0000000),
        (32 * M + 16 * K, 0x7fffedffc000),
        (48 * M, 0x7fffeaffc000),
        (96 * M, 0x7fffe4000000),
        (2 * M, 0x7ffff7df0000),
    ] {
        assert_eq!(mm.mmap(0, len, RW, PA), Ok(want));
    }
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7fffe4000000-7fffea000000 rw-p 00000000 00:00 0 ",
            "7fffeaffc000-7ffff6000000 rw-p 00000000 00:00 0 ",
            "7ffff7df0000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
}

fn a3(mm: &mut AddressSpace<'_>, write: bool, p: u64) -> u64 {
    let a = mm.mmap(0, p, PROT_READ, PA).unwrap();
    let b = mm.mmap(0, p, RW, PA).unwrap();
    if write {
        mm.touch(b, true).unwrap();
    }
    mm.mprotect(b, p, PROT_READ).unwrap();
    if write {
        let c = mm.mmap(0, p, RW, PA).unwrap();
        mm.mprotect(c, p, PROT_READ).unwrap();
    }
    a
}

#[test]
fn a3_hidden_account() {
    let mut mm = a61();
    assert_eq!(a3(&mut mm, true, K * 4), 0xfffff7ffc000);
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffd000),
        lines(&[
            "fffff7ffa000-fffff7ffc000 r--p 00000000 00:00 0 ",
            "fffff7ffc000-fffff7ffd000 r--p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, 0xfffff7ffa000), "rd mr mw me ac ");
    assert_eq!(vmflags_of(&mm, 0xfffff7ffc000), "rd mr mw me ");
    let mut mm = a612();
    assert_eq!(a3(&mut mm, true, K * 4), 0xfffff7ffb000);
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&[
            "fffff7ff9000-fffff7ffa000 r--p 00000000 00:00 0 ",
            "fffff7ffa000-fffff7ffb000 r--p 00000000 00:00 0 ",
            "fffff7ffb000-fffff7ffc000 r--p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, 0xfffff7ff9000), "rd mr mw me ");
    assert_eq!(vmflags_of(&mm, 0xfffff7ffa000), "rd mr mw me ac ");
    assert_eq!(vmflags_of(&mm, 0xfffff7ffb000), "rd mr mw me ");
    let mut mm = a16k();
    a3(&mut mm, true, 16 * K);
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7fe8000-7ffff7fec000 r--p 00000000 00:00 0 ",
            "7ffff7fec000-7ffff7ff0000 r--p 00000000 00:00 0 ",
            "7ffff7ff0000-7ffff7ff4000 r--p 00000000 00:00 0 ",
        ])
    );
    // variant without the write
    let mut mm = a61();
    a3(&mut mm, false, 4 * K);
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffd000),
        lines(&[
            "fffff7ffb000-fffff7ffc000 r--p 00000000 00:00 0 ",
            "fffff7ffc000-fffff7ffd000 r--p 00000000 00:00 0 ",
        ])
    );
    let mut mm = a612();
    a3(&mut mm, false, 4 * K);
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&["fffff7ffa000-fffff7ffc000 r--p 00000000 00:00 0 "])
    );
}

fn a4(mm: &mut AddressSpace<'_>, p: u64) -> (u64, u64, u64) {
    let rwx = RW | PROT_EXEC;
    let a = mm.mmap(0, p, RW, PA).unwrap();
    let b = mm.mmap(0, p, rwx, PA).unwrap();
    assert_eq!(b, a - p);
    mm.mprotect(b, p, RW).unwrap();
    let c = mm.mmap(0, p, rwx, PA).unwrap();
    assert_eq!(c, b - p);
    mm.touch(c, true).unwrap();
    mm.mprotect(c, p, RW).unwrap();
    (a, b, c)
}

#[test]
fn a4_anon_vma_direction() {
    let mut mm = a612();
    let rwx = RW | PROT_EXEC;
    let a = mm.mmap(0, 4 * K, RW, PA).unwrap();
    let b = mm.mmap(0, 4 * K, rwx, PA).unwrap();
    mm.mprotect(b, 4 * K, RW).unwrap();
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&["fffff7ffa000-fffff7ffc000 rw-p 00000000 00:00 0 "])
    );
    let c = mm.mmap(0, 4 * K, rwx, PA).unwrap();
    mm.touch(c, true).unwrap();
    mm.mprotect(c, 4 * K, RW).unwrap();
    let _ = a;
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&[
            "fffff7ff9000-fffff7ffa000 rw-p 00000000 00:00 0 ",
            "fffff7ffa000-fffff7ffc000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, c), "rd wr mr mw me ac ");
    let mut mm = a61();
    a4(&mut mm, 4 * K);
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffd000),
        lines(&[
            "fffff7ffa000-fffff7ffb000 rw-p 00000000 00:00 0 ",
            "fffff7ffb000-fffff7ffd000 rw-p 00000000 00:00 0 ",
        ])
    );
    let mut mm = a16k();
    a4(&mut mm, 16 * K);
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7fe8000-7ffff7fec000 rw-p 00000000 00:00 0 ",
            "7ffff7fec000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
    // 6.18 rules merge the same sequence (§4.1).
    let mut mm = fresh(LayoutParams::arm64(KernelVersion::V6_18, 12, true));
    a4(&mut mm, 4 * K);
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&["fffff7ff9000-fffff7ffc000 rw-p 00000000 00:00 0 "])
    );
}

#[test]
fn a5_map_fixed_16k() {
    let p = 16 * K;
    let mut mm = a16k();
    let a = mm.mmap(0, 4 * p, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7fe4000);
    for i in 0..4 {
        mm.touch(a + i * p, true).unwrap();
    }
    assert_eq!(
        mm.mmap(a + p, 2 * p, RW, PA | MAP_FIXED),
        Ok(0x7ffff7fe8000)
    );
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&["7ffff7fe4000-7ffff7ff4000 rw-p 00000000 00:00 0 "])
    );
    assert_eq!(
        mm.mmap(a + p, p, PROT_READ, PA | MAP_FIXED),
        Ok(0x7ffff7fe8000)
    );
    assert_eq!(
        mm.mmap(a + p, p, PROT_READ, PA | MAP_FIXED_NOREPLACE),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        mm.mmap(a + 2 * p, p, PROT_READ, PA | MAP_FIXED_NOREPLACE),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        mm.mmap(a - p, p, PROT_READ, PA | MAP_FIXED_NOREPLACE),
        Ok(0x7ffff7fe0000)
    );
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7fe0000-7ffff7fe4000 r--p 00000000 00:00 0 ",
            "7ffff7fe4000-7ffff7fe8000 rw-p 00000000 00:00 0 ",
            "7ffff7fe8000-7ffff7fec000 r--p 00000000 00:00 0 ",
            "7ffff7fec000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
}

#[test]
fn a6_brk_and_heap() {
    for v61 in [true, false] {
        let mut mm = if v61 { a61() } else { a612() };
        let w = |mm: &AddressSpace<'_>| window(mm, 0x493000, 0x500000);
        assert_eq!(mm.brk(0), 0x4cb000);
        assert_eq!(mm.brk(0x4cc800), 0x4cc800);
        let bss = if v61 {
            "00493000-004a9000 rw-p 00000000 00:00 0                                  [heap]"
        } else {
            "00493000-004a9000 rw-p 00000000 00:00 0 "
        };
        assert_eq!(
            w(&mm),
            lines(&[
                bss,
                "004a9000-004cd000 rw-p 00000000 00:00 0                                  [heap]"
            ])
        );
        assert_eq!(mm.brk(0x4ca800), 0x4ca800);
        assert_eq!(
            mm.mmap(0x4cd000, 4 * K, RW, PA | MAP_FIXED_NOREPLACE),
            Ok(0x4cd000)
        );
        assert_eq!(mm.brk(0x4cc000), 0x4cc000);
        assert_eq!(
            w(&mm),
            lines(&[
                bss,
                "004a9000-004cc000 rw-p 00000000 00:00 0                                  [heap]",
                "004cd000-004ce000 rw-p 00000000 00:00 0 ",
            ])
        );
        assert_eq!(mm.brk(0x4cc001), 0x4cc000);
        assert_eq!(
            mm.mmap(0x4cc000, 4 * K, PROT_READ, PA | MAP_FIXED_NOREPLACE),
            Ok(0x4cc000)
        );
        let named = if v61 {
            "004cc000-004cd000 r--p 00000000 00:00 0                                  [heap]"
        } else {
            "004cc000-004cd000 r--p 00000000 00:00 0 "
        };
        assert!(w(&mm).contains(named));
        mm.munmap(0x4cc000, 4 * K).unwrap();
        assert_eq!(mm.mmap(0x4cc000, 4 * K, RW, PA | MAP_FIXED), Ok(0x4cc000));
        let last = if v61 {
            "004cc000-004ce000 rw-p 00000000 00:00 0                                  [heap]"
        } else {
            "004cc000-004ce000 rw-p 00000000 00:00 0 "
        };
        assert_eq!(
            w(&mm),
            lines(&[
                bss,
                "004a9000-004cc000 rw-p 00000000 00:00 0                                  [heap]",
                last,
            ])
        );
    }
    let mut mm = a16k();
    let p = 16 * K;
    assert_eq!(mm.brk(0x4da000), 0x4da000);
    assert_eq!(mm.brk(0x4d2000), 0x4d2000);
    mm.mmap(0x4dc000, p, RW, PA | MAP_FIXED_NOREPLACE).unwrap();
    assert_eq!(mm.brk(0x4d8000), 0x4d8000);
    assert_eq!(mm.brk(0x4d8001), 0x4d8000);
    mm.mmap(0x4d8000, p, RW, PA | MAP_FIXED).unwrap();
    assert_eq!(
        window(&mm, 0x4ac000, 0x500000),
        lines(&[
            "004ac000-004d8000 rw-p 00000000 00:00 0                                  [heap]",
            "004d8000-004e0000 rw-p 00000000 00:00 0 ",
        ])
    );
    // With an MTE CPU the page joins the heap (§18.3 item 8 cross-check).
    let mut p = LayoutParams::arm64_6_1();
    p.cpu_mte = true;
    let mut mm = fresh(p);
    mm.mmap(0x4cb000, 4 * K, RW, PA | MAP_FIXED_NOREPLACE)
        .unwrap();
    assert!(window(&mm, 0x4a9000, 0x500000).starts_with(
        "004a9000-004cc000 rw-p 00000000 00:00 0                                  [heap]"
    ));
}

#[test]
fn a7_guard_gap() {
    let mut mm = a16k();
    let p = 16 * K;
    let g = mm.mmap(0, p, RW, PA | MAP_GROWSDOWN).unwrap();
    assert_eq!(g, 0x7ffff7ff0000);
    assert_eq!(mm.mmap(0, p, RW, PA), Ok(0x7ffff7bec000));
    assert_eq!(mm.mmap(g - p, p, RW, PA), Ok(0x7ffff7be8000));
    assert_eq!(mm.mmap(0x7ffff7bec000, p, RW, PA), Ok(0x7ffff7be4000));
    assert_eq!(
        mm.mmap(g - p, p, RW, PA | MAP_FIXED_NOREPLACE),
        Ok(0x7ffff7fec000)
    );
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7be4000-7ffff7bf0000 rw-p 00000000 00:00 0 ",
            "7ffff7fec000-7ffff7ff0000 rw-p 00000000 00:00 0 ",
            "7ffff7ff0000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, g), "rd wr mr mw me gd ac ");
    let mut mm = a612();
    let g = mm.mmap(0, 4 * K, RW, PA | MAP_GROWSDOWN).unwrap();
    assert_eq!(g, 0xfffff7ffb000);
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(0xfffff7efa000));
}

#[test]
fn a8_hints_and_52bit_window() {
    let mut mm = a612();
    assert_eq!(mm.mmap(0xfffff8000000, 4 * K, RW, PA), Ok(0xfffff8000000));
    assert_eq!(mm.mmap(0x5000, 4 * K, RW, PA), Ok(0x8000));
    assert_eq!(mm.mmap(0x4a0000, 4 * K, RW, PA), Ok(0xfffff7ffb000));
    assert_eq!(mm.mmap(0x4a0000, 2 * M, RW, PA), Ok(0xfffff7dfb000));
    let want = lines(&[
        "00008000-00009000 rw-p 00000000 00:00 0 ",
        "00493000-004a9000 rw-p 00000000 00:00 0 ",
        "004a9000-004cb000 rw-p 00000000 00:00 0                                  [heap]",
        "fffff7dfb000-fffff7ffc000 rw-p 00000000 00:00 0 ",
        "fffff7ffc000-fffff7ffe000 r--p 00000000 00:00 0                          [vvar]",
        "fffff7ffe000-fffff8000000 r-xp 00000000 00:00 0                          [vdso]",
        "fffff8000000-fffff8001000 rw-p 00000000 00:00 0 ",
        "fffffffdf000-1000000000000 rw-p 00000000 00:00 0                         [stack]",
    ]);
    assert_eq!(no_exe(&mm.maps_string()), want);
    let mut mm = a61();
    assert_eq!(mm.mmap(0xfffff8000000, 4 * K, RW, PA), Ok(0xfffff8000000));
    assert_eq!(mm.mmap(0x5000, 4 * K, RW, PA), Ok(0x8000));
    assert_eq!(mm.mmap(0x4a0000, 4 * K, RW, PA), Ok(0xfffff7ffc000));
    assert_eq!(mm.mmap(0x4a0000, 2 * M, RW, PA), Ok(0xfffff7dfc000));
    assert_eq!(
        mm.mmap(1 << 48, 4 * K, RW, PA | MAP_FIXED),
        Err(Errno::ENOMEM)
    );
    // 6.12/16K above 2^47
    let mut mm = a16k();
    let p = 16 * K;
    assert_eq!(mm.mmap(1 << 48, p, RW, PA | MAP_FIXED), Ok(1 << 48));
    assert_eq!(
        mm.mmap(0xfffffffffc000, p, RW, PA | MAP_FIXED),
        Ok(0xfffffffffc000)
    );
    assert_eq!(mm.mmap(1 << 52, p, RW, PA | MAP_FIXED), Err(Errno::ENOMEM));
    assert_eq!(mm.mmap(0x2000000000000, p, RW, PA), Ok(0x2000000000000));
    assert_eq!(mm.mmap(1 << 48, p, RW, PA), Ok(0xffffff7ffc000));
    assert_eq!(mm.mmap(1 << 48, 32 * M, RW, PA), Ok(0xffffff5ffc000));
    assert_eq!(
        mm.mmap(0x3000000004000, 64 * M, RW, PA),
        Ok(0x3000000004000)
    );
    assert_eq!(mm.mmap(0, 32 * M, RW, PA), Ok(0x7ffff4000000));
    assert_eq!(
        window(&mm, B_LO, u64::MAX),
        lines(&[
            "7ffff4000000-7ffff6000000 rw-p 00000000 00:00 0 ",
            "7ffff7ff4000-7ffff7ffc000 r--p 00000000 00:00 0                          [vvar]",
            "7ffff7ffc000-7ffff8000000 r-xp 00000000 00:00 0                          [vdso]",
            "7ffffffdc000-800000000000 rw-p 00000000 00:00 0                          [stack]",
            "1000000000000-1000000004000 rw-p 00000000 00:00 0 ",
            "2000000000000-2000000004000 rw-p 00000000 00:00 0 ",
            "3000000004000-3000004004000 rw-p 00000000 00:00 0 ",
            "ffffff5ffc000-ffffff8000000 rw-p 00000000 00:00 0 ",
            "fffffffffc000-10000000000000 rw-p 00000000 00:00 0 ",
        ])
    );
    let mut mm = a16k();
    let top = mm.mmap(0x1000, p, RW, PA).unwrap();
    assert_eq!(top, 0x7ffff7ff0000);
    assert_eq!(mm.mmap(0x5000, p, RW, PA), Ok(0x8000));
    assert_eq!(mm.mmap(0x1000, p, RW, PA | MAP_FIXED), Err(Errno::EINVAL));
    assert_eq!(mm.mprotect(0x1000, p, PROT_READ), Err(Errno::EINVAL));
    // 6.12/4K above 2^48
    let mut mm = a612();
    assert_eq!(
        mm.mmap(0x2000000000000, 4 * K, RW, PA | MAP_FIXED),
        Ok(0x2000000000000)
    );
    assert_eq!(mm.mmap(0x2000000000000, 4 * K, RW, PA), Ok(0xffffff7fff000));
    assert_eq!(mm.mmap(0x2000000000000, 2 * M, RW, PA), Ok(0xffffff7dff000));
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(0xfffff7ffb000));
    assert_eq!(
        window(&mm, A_LO, u64::MAX),
        lines(&[
            "fffff7ffb000-fffff7ffc000 rw-p 00000000 00:00 0 ",
            "fffff7ffc000-fffff7ffe000 r--p 00000000 00:00 0                          [vvar]",
            "fffff7ffe000-fffff8000000 r-xp 00000000 00:00 0                          [vdso]",
            "fffffffdf000-1000000000000 rw-p 00000000 00:00 0                         [stack]",
            "2000000000000-2000000001000 rw-p 00000000 00:00 0 ",
            "ffffff7dff000-ffffff8000000 rw-p 00000000 00:00 0 ",
        ])
    );
    let mut mm = a612();
    mm.mmap(1 << 48, 4 * K, RW, PA | MAP_FIXED).unwrap();
    assert_eq!(mm.mmap(1 << 48, 4 * K, RW, PA), Ok(0xfffff7ffb000));
    assert_eq!(mm.mmap(0x1000000001000, 2 * M, RW, PA), Ok(0x1000000001000));
    assert_eq!(mm.mmap(0, 1 << 48, RW, PA), Err(Errno::ENOMEM));
}

#[test]
fn a9_thp_always_shapes() {
    let mut mm = a612();
    let a = mm.mmap(0, 4 * M, RW, PA).unwrap();
    assert_eq!(a, 0xfffff7a00000);
    mm.madvise(a + 2 * M, 2 * M, MADV_NOHUGEPAGE).unwrap();
    mm.touch(a, true).unwrap();
    mm.touch(a + 2 * M, true).unwrap();
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffc000),
        lines(&[
            "fffff7a00000-fffff7c00000 rw-p 00000000 00:00 0 ",
            "fffff7c00000-fffff7e00000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert!(mm.thp_eligible(&mm.vma_lookup(a).copied().unwrap()));
    assert!(!mm.thp_eligible(&mm.vma_lookup(a + 2 * M).copied().unwrap()));
    assert_eq!(vmflags_of(&mm, a + 2 * M), "rd wr mr mw me ac nh ");
    assert_eq!(mm.mmap(0, 2 * M, RW, PA), Ok(0xfffff7800000));
    assert_eq!(
        window(&mm, A_LO, 0xfffff7c00000),
        lines(&["fffff7800000-fffff7c00000 rw-p 00000000 00:00 0 "])
    );
    let mut mm = a16k();
    let a = mm.mmap(0, 64 * M, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff2000000);
    mm.madvise(a + 32 * M, 32 * M, MADV_NOHUGEPAGE).unwrap();
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff2000000-7ffff4000000 rw-p 00000000 00:00 0 ",
            "7ffff4000000-7ffff6000000 rw-p 00000000 00:00 0 ",
        ])
    );
    let mut mm = a61();
    let a = mm.mmap(0, 6 * M, RW, PA).unwrap();
    assert_eq!(a, 0xfffff79fd000);
    mm.touch(a, true).unwrap();
    mm.touch(a + 0x3000, true).unwrap();
    mm.madvise(a + 0x203000, 2 * M, MADV_NOHUGEPAGE).unwrap();
    mm.touch(a + 0x203000, true).unwrap();
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffd000),
        lines(&[
            "fffff79fd000-fffff7c00000 rw-p 00000000 00:00 0 ",
            "fffff7c00000-fffff7e00000 rw-p 00000000 00:00 0 ",
            "fffff7e00000-fffff7ffd000 rw-p 00000000 00:00 0 ",
        ])
    );
    let e: Vec<bool> = mm
        .iter()
        .filter(|v| v.vm_start >= a && v.vm_end <= a + 6 * M)
        .map(|v| mm.thp_eligible(v))
        .collect();
    assert_eq!(e, [true, false, false]);
    let smaps = mm.smaps_string();
    assert!(smaps.contains("THPeligible:    1\nVmFlags: rd wr mr mw me ac \n"));
    let mut mm = a612();
    let _ = mm.mmap(0, 4 * M, RW, PA).unwrap();
    assert!(mm
        .smaps_string()
        .contains("THPeligible:           1\nVmFlags: rd wr mr mw me ac \n"));
}

#[test]
fn a10_madvise_16k() {
    let p = 16 * K;
    let mut mm = a16k();
    let a = mm.mmap(0, 5 * p, RW, PA).unwrap();
    assert_eq!(a, 0x7ffff7fe0000);
    mm.madvise(a + p, p, MADV_DONTFORK).unwrap();
    mm.madvise(a + 3 * p, p, MADV_HUGEPAGE).unwrap();
    let flags: Vec<String> = (0..5).map(|i| vmflags_of(&mm, a + i * p)).collect();
    assert_eq!(
        flags,
        [
            "rd wr mr mw me ac ",
            "rd wr mr mw me dc ac ",
            "rd wr mr mw me ac ",
            "rd wr mr mw me ac hg ",
            "rd wr mr mw me ac "
        ]
    );
    assert_eq!(mm.map_count(), 13);
    mm.madvise(a + p, p, MADV_DOFORK).unwrap();
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7fe0000-7ffff7fec000 rw-p 00000000 00:00 0 ",
            "7ffff7fec000-7ffff7ff0000 rw-p 00000000 00:00 0 ",
            "7ffff7ff0000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
    mm.madvise(a + 3 * p, p, MADV_NOHUGEPAGE).unwrap();
    mm.madvise(a + 2 * p, p, MADV_NOHUGEPAGE).unwrap();
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7fe0000-7ffff7fe8000 rw-p 00000000 00:00 0 ",
            "7ffff7fe8000-7ffff7ff0000 rw-p 00000000 00:00 0 ",
            "7ffff7ff0000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, a + 2 * p), "rd wr mr mw me ac nh ");
    mm.madvise(a + 2 * p, 2 * p, MADV_HUGEPAGE).unwrap();
    mm.madvise(a + 4 * p, p, MADV_HUGEPAGE).unwrap();
    assert_eq!(
        window(&mm, B_LO, 0x7ffff7ff4000),
        lines(&[
            "7ffff7fe0000-7ffff7fe8000 rw-p 00000000 00:00 0 ",
            "7ffff7fe8000-7ffff7ff4000 rw-p 00000000 00:00 0 ",
        ])
    );
    assert_eq!(vmflags_of(&mm, a + 2 * p), "rd wr mr mw me ac hg ");
}

#[test]
fn v6_1_map_stack_merges() {
    // §18.4 item 3
    let mut mm = a61();
    mm.mmap(0, 4 * K, RW, PA).unwrap();
    mm.mmap(0, 4 * K, RW, PA | MAP_STACK).unwrap();
    assert_eq!(
        window(&mm, A_LO, 0xfffff7ffd000),
        lines(&["fffff7ffb000-fffff7ffd000 rw-p 00000000 00:00 0 "])
    );
    let mut mm = a612();
    mm.mmap(0, 4 * K, RW, PA).unwrap();
    let s = mm.mmap(0, 4 * K, RW, PA | MAP_STACK).unwrap();
    assert_eq!(mm.map_count(), 10);
    assert_eq!(vmflags_of(&mm, s), "rd wr mr mw me ac nh ");
}

#[test]
fn legacy_layout_arm64() {
    // §18.2: RLIMIT_STACK unlimited -> bottom-up from TASK_UNMAPPED_BASE.
    for (params, want) in [
        (LayoutParams::arm64_6_1(), 0x400000003000u64),
        (LayoutParams::arm64_6_12(), 0x400000200000),
        (LayoutParams::arm64_6_12_16k(), 0x20000000c000),
    ] {
        let mut p = params;
        p.rlimit_stack = RLIM_INFINITY;
        let mut mm = fresh(p);
        assert_eq!(mm.mmap(0, 100 * M, RW, PA), Ok(want));
    }
}

#[test]
fn shared_anonymous() {
    let mut mm = a612();
    let a = mm.mmap(0, 8 * K, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    let b = mm.mmap(0, 4 * K, RW, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    assert_eq!(b, a - 4 * K);
    mm.mprotect(a + 4 * K, 4 * K, PROT_READ).unwrap();
    let w = window(&mm, A_LO, 0xfffff7ffc000);
    assert_eq!(
        w,
        lines(&[
            "fffff7ff9000-fffff7ffa000 rw-s 00000000 00:01 2                          /dev/zero (deleted)",
            "fffff7ffa000-fffff7ffb000 rw-s 00000000 00:01 1                          /dev/zero (deleted)",
            "fffff7ffb000-fffff7ffc000 r--s 00001000 00:01 1                          /dev/zero (deleted)",
        ])
    );
    assert_eq!(
        mm.mmap(0, 4 * K, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.madvise(a, 4 * K, MADV_WIPEONFORK), Err(Errno::EINVAL));
    assert_eq!(mm.madvise(a, 4 * K, MADV_FREE), Err(Errno::EINVAL));
    assert_eq!(mm.madvise(a, 4 * K, MADV_REMOVE), Ok(()));
}

#[test]
fn page_ops_reporting() {
    let mut mm = a612();
    let mut log = Log::default();
    let a = mm
        .mmap_with(0, 12 * K, RW, PA | MAP_POPULATE, 0, &mut log)
        .unwrap();
    mm.mprotect_with(a + 4 * K, 4 * K, PROT_READ, &mut log)
        .unwrap();
    mm.madvise_with(a, 12 * K, MADV_POPULATE_READ, &mut log)
        .unwrap();
    assert_eq!(
        mm.madvise_with(a, 12 * K, MADV_POPULATE_WRITE, &mut log),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.munmap_with(a + 4 * K, 12 * K, &mut log),
        Err(Errno::EINVAL)
    );
    mm.munmap_with(a + 4 * K, 8 * K, &mut log).unwrap();
    assert_eq!(
        log.0,
        [
            "populate fffff7ff9000-fffff7ffc000 true",
            "prot fffff7ffa000-fffff7ffb000 [114, 45, 45, 112]",
            "populate fffff7ff9000-fffff7ffa000 false",
            "populate fffff7ffa000-fffff7ffb000 false",
            "populate fffff7ffb000-fffff7ffc000 false",
            "populate fffff7ff9000-fffff7ffa000 true",
            "unmapped fffff7ffa000-fffff7ffb000",
            "unmapped fffff7ffb000-fffff7ffc000",
        ]
    );
    // MAP_POPULATE gave the VMA an anon_vma.
    assert!(mm.vma_lookup(a).unwrap().anon_vma.is_some());
}

#[test]
fn import_round_trip() {
    let src = a612();
    let text = src.maps_string();
    let mut mm = AddressSpace::from_maps(
        slots(64),
        LayoutParams::arm64_6_12(),
        &text,
        ImportHints::default(),
    )
    .unwrap();
    assert_eq!(mm.maps_string(), text);
    assert_eq!(mm.mmap_base(), 0xfffff8000000);
    assert_eq!(mm.start_brk(), 0x4a9000);
    assert_eq!(mm.current_brk(), 0x4cb000);
    assert_eq!(mm.mmap(0, 4 * K, RW, PA), Ok(0xfffff7ffb000));
    assert_eq!(vmflags_of(&mm, 0xfffffffdf000), "rd wr mr mw me gd ac ");
    // A6 on the imported state: the page after the heap stays separate (VM_MTE_ALLOWED).
    mm.mmap(0x4cb000, 4 * K, RW, PA | MAP_FIXED).unwrap();
    assert!(window(&mm, 0x4cb000, 0x4cc000).starts_with("004cb000-004cc000 rw-p"));
    // 6.1: two [heap] lines, the first is the BSS
    let text = a61().maps_string();
    let mm = AddressSpace::from_maps(
        slots(64),
        LayoutParams::arm64_6_1(),
        &text,
        ImportHints::default(),
    )
    .unwrap();
    assert_eq!(mm.start_brk(), 0x4a9000);
    assert_eq!(mm.maps_string(), text);
    // smaps import keeps the full flags
    let src = {
        let mut m = a612();
        let a = m.mmap(0, 8 * K, RW, PA).unwrap();
        m.madvise(a, 4 * K, MADV_DONTFORK).unwrap();
        m
    };
    let s = src.smaps_string();
    let mm = AddressSpace::from_smaps(
        slots(64),
        LayoutParams::arm64_6_12(),
        &s,
        ImportHints::default(),
    )
    .unwrap();
    assert_eq!(mm.smaps_string(), s);
}

#[test]
fn seed_notes_100mib() {
    // The seed notes' arm64 process (ASLR on): the 100 MiB map lands directly below libc.
    let text = "aaaabbfc0000-aaaabbfc1000 r-xp 00000000 fd:00 1125982 /home/vagrant/dev/work/stackmachine/main
aaaabbfd0000-aaaabbfd1000 r--p 00000000 fd:00 1125982 /home/vagrant/dev/work/stackmachine/main
aaaabbfd1000-aaaabbfd2000 rw-p 00001000 fd:00 1125982 /home/vagrant/dev/work/stackmachine/main
aaaac367f000-aaaac36a0000 rw-p 00000000 00:00 0 [heap]
ffff8fed0000-ffff90058000 r-xp 00000000 fd:00 788338 /usr/lib/aarch64-linux-gnu/libc.so.6
ffff90058000-ffff90067000 ---p 00188000 fd:00 788338 /usr/lib/aarch64-linux-gnu/libc.so.6
ffff90067000-ffff9006b000 r--p 00187000 fd:00 788338 /usr/lib/aarch64-linux-gnu/libc.so.6
ffff9006b000-ffff9006d000 rw-p 0018b000 fd:00 788338 /usr/lib/aarch64-linux-gnu/libc.so.6
ffff9006d000-ffff90079000 rw-p 00000000 00:00 0
ffff9008c000-ffff900b7000 r-xp 00000000 fd:00 788335 /usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1
ffff900c1000-ffff900c3000 rw-p 00000000 00:00 0
ffff900c3000-ffff900c5000 r--p 00000000 00:00 0 [vvar]
ffff900c5000-ffff900c6000 r-xp 00000000 00:00 0 [vdso]
ffff900c6000-ffff900c8000 r--p 0002a000 fd:00 788335 /usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1
ffff900c8000-ffff900ca000 rw-p 0002c000 fd:00 788335 /usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1
ffffd9144000-ffffd9165000 rw-p 00000000 00:00 0 [stack]
";
    let mut p = LayoutParams::arm64_48bit();
    p.version = KernelVersion::V6_1;
    p.maps = pagesim::linux::mm::maps_text::MapsFormat::ARM64_6_1;
    let mut mm = AddressSpace::from_maps(slots(64), p, text, ImportHints::default()).unwrap();
    assert_eq!(mm.mmap_base(), 0xffff900ca000);
    let a = mm.mmap(0, 100 * M, RW, PA).unwrap();
    assert_eq!(a, 0xffff89ad0000);
    assert!(mm
        .maps_string()
        .contains("ffff89ad0000-ffff8fed0000 rw-p 00000000 00:00 0 \n"));
    assert_eq!(mm.munmap(a, 100 * M), Ok(()));
    assert_eq!(mm.map_count(), 16);
    let _ = ThpMode::Always;
}

// ----- property tests -----------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Mmap(u64, u64, Prot, MapFlags),
        Munmap(u64, u64),
        Mprotect(u64, u64, Prot),
        Madvise(u64, u64, Advice),
        Brk(i64),
        Touch(u64),
    }

    const PAGES: u64 = 64;

    fn op() -> impl Strategy<Value = Op> {
        let off = 0..PAGES;
        let len = 1..8u64;
        let prot = prop::sample::select(vec![PROT_NONE, PROT_READ, RW, RW | PROT_EXEC]);
        let fl = prop::sample::select(vec![
            PA,
            PA | MAP_FIXED,
            PA | MAP_FIXED_NOREPLACE,
            PA | MAP_NORESERVE,
            PA | MAP_STACK | MAP_FIXED,
            PA | MAP_GROWSDOWN,
            MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
            MAP_ANONYMOUS,
            PA | MAP_POPULATE,
        ]);
        let adv = prop::sample::select(vec![
            MADV_HUGEPAGE,
            MADV_NOHUGEPAGE,
            MADV_DONTFORK,
            MADV_DOFORK,
            MADV_DONTNEED,
            MADV_RANDOM,
            MADV_NORMAL,
            MADV_POPULATE_WRITE,
            Advice::Other(999),
        ]);
        prop_oneof![
            (off.clone(), len.clone(), prot.clone(), fl)
                .prop_map(|(o, l, p, f)| Op::Mmap(o, l, p, f)),
            (off.clone(), len.clone()).prop_map(|(o, l)| Op::Munmap(o, l)),
            (off.clone(), len.clone(), prot).prop_map(|(o, l, p)| Op::Mprotect(o, l, p)),
            (off.clone(), len, adv).prop_map(|(o, l, a)| Op::Madvise(o, l, a)),
            (-8i64..8).prop_map(Op::Brk),
            off.prop_map(Op::Touch),
        ]
    }

    fn params() -> impl Strategy<Value = (LayoutParams, usize)> {
        (
            prop::sample::select(vec![0usize, 1, 2, 3]),
            prop::sample::select(vec![16usize, 20, 30, 65530]),
        )
            .prop_map(|(k, max)| {
                let mut p = match k {
                    0 => LayoutParams::x86_64_6_18(),
                    1 => LayoutParams::arm64_6_1(),
                    2 => LayoutParams::arm64_6_12(),
                    _ => LayoutParams::arm64(KernelVersion::V6_18, 12, true),
                };
                p.max_map_count = max;
                (p, k)
            })
    }

    /// Adjacent VMAs the 6.18 kernel would always have merged: equal flags, anonymous,
    /// same anon_vma, not special, the upper one not the heap created at start_brk.
    fn unmerged_pair(mm: &AddressSpace<'_>) -> Option<(u64, u64)> {
        let v: Vec<_> = mm.iter().copied().collect();
        v.windows(2).find_map(|w| {
            let (l, r) = (&w[0], &w[1]);
            let ok = l.vm_end == r.vm_start
                && l.vm_flags.eq_ignoring_sticky(r.vm_flags)
                && l.kind.is_anonymous()
                && r.kind.is_anonymous()
                && l.anon_vma == r.anon_vma
                && r.vm_start != mm.start_brk()
                && !l.vm_flags.intersects(VmFlags::VM_SPECIAL);
            ok.then_some((l.vm_start, r.vm_start))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn invariants((p, kind) in params(), ops in prop::collection::vec(op(), 1..60)) {
            let mut mm = AddressSpace::fresh_process(slots(p.max_map_count.min(200) + 3), p, "<exe>").unwrap();
            let pg = p.page_size();
            let top = mm.iter().find(|v| v.kind == pagesim::linux::mm::vma::VmaKind::Vvar).unwrap().vm_start;
            let base = top - (PAGES + 16) * pg;
            let strict_merge = kind == 0 || kind == 3;
            for op in ops {
                let before = mm.maps_string();
                let count_before = mm.map_count();
                let (res, atomic) = match op {
                    Op::Mmap(o, l, pr, f) => {
                        let addr = if f.intersects(MAP_FIXED | MAP_FIXED_NOREPLACE) || o % 3 == 0 { base + o * pg } else { 0 };
                        (mm.mmap(addr, l * pg, pr, f).map(|_| ()), true)
                    }
                    Op::Munmap(o, l) => (mm.munmap(base + o * pg, l * pg), true),
                    Op::Mprotect(o, l, pr) => {
                        let r = mm.mprotect(base + o * pg, l * pg, pr);
                        let atomic = !matches!(r, Err(Errno::ENOMEM));
                        (r, atomic)
                    }
                    Op::Madvise(o, l, a) => {
                        let r = mm.madvise(base + o * pg, l * pg, a);
                        let atomic = matches!(r, Err(Errno::EINVAL)) && a == Advice::Other(999);
                        (r, atomic)
                    }
                    Op::Brk(d) => {
                        let cur = mm.current_brk();
                        let nb = cur.wrapping_add_signed(d * pg as i64 / 2);
                        let r = mm.brk(nb);
                        (if r == nb { Ok(()) } else { Err(Errno::ENOMEM) }, true)
                    }
                    Op::Touch(o) => (mm.touch(base + o * pg, true), true),
                };
                if res.is_err() && atomic {
                    prop_assert_eq!(&mm.maps_string(), &before);
                    prop_assert_eq!(mm.map_count(), count_before);
                }
                prop_assert!(mm.tree().validate().is_ok());
                prop_assert!(mm.map_count() <= p.max_map_count + 1);
                let v: Vec<_> = mm.iter().copied().collect();
                for w in v.windows(2) {
                    prop_assert!(w[0].vm_end <= w[1].vm_start);
                }
                if strict_merge && p.max_map_count > 1000 {
                    prop_assert_eq!(unmerged_pair(&mm), None, "{}", mm.maps_string());
                }
            }
        }
    }
}

// ----- §18.6: residency of a page written, then write-protected (arm64) ----------------------

/// §18.6's byte-exact smaps: `a = mmap(0, 3P, RW)`, write a+1P, `mprotect(a+1P, 1P, R)`,
/// `mprotect(a+2P, 1P, R)`. The page written stays dirty through the mprotect (the kernel's
/// software PTE_DIRTY), so the `r--p` VMA shows `Private_Dirty` of one page, not clean.
#[test]
fn s18_6_written_page_stays_dirty_through_mprotect() {
    use pagesim::arch::AccessKind;
    use pagesim::linux::storage::{ProcessStorage, Start};
    use pagesim::VirtAddr;
    for (params, want) in [
        (
            LayoutParams::arm64_6_1(),
            include_str!("../src/linux/mm/maps_text/testdata/smaps_arm64_6_1.txt"),
        ),
        (
            LayoutParams::arm64_6_12_16k(),
            include_str!("../src/linux/mm/maps_text/testdata/smaps_arm64_6_12_16k.txt"),
        ),
    ] {
        let page = params.page_size();
        let mut storage = ProcessStorage::new(&params, 64 << 20);
        let mut p = storage
            .build(params, Start::Fresh, ImportHints::default())
            .unwrap();
        let a = p.mmap(0, 3 * page, RW, PA).unwrap();
        let t = p.access(VirtAddr::new(a + page), AccessKind::Write);
        assert!(matches!(t, pagesim::linux::paging::Touch::Done(_)), "{t:?}");
        p.mprotect(a + page, page, PROT_READ).unwrap();
        p.mprotect(a + 2 * page, page, PROT_READ).unwrap();
        let smaps = p.smaps_string().unwrap();
        let header = want.lines().next().unwrap();
        let start = smaps
            .find(header)
            .unwrap_or_else(|| panic!("{header}\n{smaps}"));
        assert_eq!(&smaps[start..start + want.len()], want);
    }
}
