//! `Process::exec` against the spec's arm64 exec-stop listings (`linux-exec.md` §12 V-A1,
//! V-A2, V-A3, V-A5, V-A8: Linux 6.1 and 6.12, 4 KiB and 16 KiB pages) and its error table
//! (§10). The programs are synthetic ELF files with the segment layout those listings
//! imply (sizes, offsets and alignments); pagesim derives every address from the rules.

use std::path::PathBuf;

use pagesim::linux::exec::elf::{EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X};
use pagesim::linux::exec::{ExecError, ADDR_NO_RANDOMIZE};
use pagesim::linux::mm::{Errno, ImportHints, LayoutParams};
use pagesim::linux::storage::{exec_host, ProcessStorage, SimProcess, Start};

/// One PT_LOAD: flags, offset, vaddr, filesz, memsz, align.
type Load = (u32, u64, u64, u64, u64, u64);

/// Builds an ELF64 file: header, program headers (PT_INTERP first when given, then the
/// loads, then PT_GNU_STACK and a BTI property note when asked), the interpreter path
/// and the note after them, and zeros up to the end of the last segment's file part.
fn elf(machine: u16, e_type: u16, entry: u64, loads: &[Load], interp: Option<&str>) -> Vec<u8> {
    let phnum = loads.len() + usize::from(interp.is_some());
    let interp_off = 64 + 56 * phnum;
    let interp_bytes = interp.map(|s| format!("{s}\0")).unwrap_or_default();
    let file_end = loads
        .iter()
        .map(|l| (l.1 + l.3) as usize)
        .max()
        .unwrap_or(0)
        .max(interp_off + interp_bytes.len());
    let mut b = vec![0u8; file_end];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // little-endian
    b[6] = 1;
    b[16..18].copy_from_slice(&e_type.to_le_bytes());
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut ph = 64;
    let mut put = |b: &mut Vec<u8>, t: u32, f: u32, o: u64, v: u64, fs: u64, ms: u64, a: u64| {
        b[ph..ph + 4].copy_from_slice(&t.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&f.to_le_bytes());
        for (i, x) in [o, v, v, fs, ms, a].iter().enumerate() {
            b[ph + 8 + 8 * i..ph + 16 + 8 * i].copy_from_slice(&x.to_le_bytes());
        }
        ph += 56;
    };
    if interp.is_some() {
        let n = interp_bytes.len() as u64;
        put(
            &mut b,
            3,
            PF_R,
            interp_off as u64,
            interp_off as u64,
            n,
            n,
            1,
        );
    }
    for &(f, o, v, fs, ms, a) in loads {
        put(&mut b, 1, f, o, v, fs, ms, a);
    }
    b[interp_off..interp_off + interp_bytes.len()].copy_from_slice(interp_bytes.as_bytes());
    b
}

const RX: u32 = PF_R | PF_X;
const RW: u32 = PF_R | PF_W;

/// Debian arm64 `cat`'s layout (§12 V-A2/V-A8): RX at 0, RW at 0x1fc70, both 64 KiB aligned.
const CAT: [Load; 2] = [
    (RX, 0, 0, 0x8f00, 0x8f00, 0x10000),
    (RW, 0xfc70, 0x1fc70, 0x5a0, 0x11f0, 0x10000),
];
/// Its `ld-linux-aarch64.so.1` (§5): RX 0x26058 at 0, RW at 0x3eda0, span 0x42000.
const LD: [Load; 2] = [
    (RX, 0, 0, 0x26058, 0x26058, 0x10000),
    (RW, 0x2eda0, 0x3eda0, 0x2400, 0x3200, 0x10000),
];

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("pagesim-exec-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        Files { dir }
    }

    fn put(&self, rel: &str, bytes: &[u8]) -> String {
        let p = self.dir.join(rel);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The maps of `p` as (range, perms, offset, name) with file paths cut to their last
/// component (the temporary directory and inode vary).
fn columns(p: &SimProcess<'_>) -> Vec<String> {
    p.maps_string()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f.get(5).map_or("", |n| n.rsplit('/').next().unwrap_or(n));
            format!("{} {} {} {name}", f[0], f[1], f[2])
                .trim_end()
                .to_string()
        })
        .collect()
}

fn run(
    params: LayoutParams,
    files: &Files,
    exe: &str,
    argv: &[&str],
) -> (Vec<String>, Result<pagesim::linux::exec::ExecInfo, String>) {
    let mut storage = ProcessStorage::new(&params, 64 << 20);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let r = exec_host(
        &mut p,
        exe,
        argv,
        &[],
        &files.dir,
        8 << 20,
        ADDR_NO_RANDOMIZE,
    );
    p.validate().unwrap();
    (columns(&p), r)
}

fn expect(got: &[String], want: &str) {
    let want: Vec<String> = want
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(got, want.as_slice());
}

#[test]
fn v_a2_arm64_6_1_dynamic_pie_with_vdso_in_the_interpreter_hole() {
    let f = Files::new("a2");
    f.put(
        "lib/ld-linux-aarch64.so.1",
        &elf(EM_AARCH64, ET_DYN, 0x1c40, &LD, None),
    );
    let cat = f.put(
        "cat",
        &elf(
            EM_AARCH64,
            ET_DYN,
            0x2000,
            &CAT,
            Some("/lib/ld-linux-aarch64.so.1"),
        ),
    );
    let (maps, info) = run(LayoutParams::arm64_6_1(), &f, &cat, &[&cat]);
    let info = info.unwrap();
    expect(
        &maps,
        "aaaaaaaa0000-aaaaaaaa9000 r-xp 00000000 cat
         aaaaaaabf000-aaaaaaac1000 rw-p 0000f000 cat
         fffff7fbe000-fffff7fe5000 r-xp 00000000 ld-linux-aarch64.so.1
         fffff7ff9000-fffff7ffb000 r--p 00000000 [vvar]
         fffff7ffb000-fffff7ffc000 r-xp 00000000 [vdso]
         fffff7ffc000-fffff8000000 rw-p 0002e000 ld-linux-aarch64.so.1
         fffffffdf000-1000000000000 rw-p 00000000 [stack]",
    );
    assert_eq!(info.base, 0xfffff7fbe000);
    assert_eq!(info.pc, 0xfffff7fbe000 + 0x1c40);
    assert_eq!(info.entry, 0xaaaaaaaa0000 + 0x2000);
    assert_eq!(info.vdso, 0xfffff7ffb000);
    assert_eq!(info.phdr, 0xaaaaaaaa0000 + 64);
    assert_eq!(info.start_brk, 0xaaaaaaac1000);
}

#[test]
fn v_a8_arm64_16k_dynamic_pie() {
    let f = Files::new("a8");
    f.put(
        "lib/ld-linux-aarch64.so.1",
        &elf(EM_AARCH64, ET_DYN, 0x1c40, &LD, None),
    );
    let cat = f.put(
        "cat",
        &elf(
            EM_AARCH64,
            ET_DYN,
            0x2000,
            &CAT,
            Some("/lib/ld-linux-aarch64.so.1"),
        ),
    );
    let (maps, info) = run(LayoutParams::arm64_6_12_16k(), &f, &cat, &[&cat]);
    info.unwrap();
    expect(
        &maps,
        "555555550000-55555555c000 r-xp 00000000 cat
         55555556c000-555555574000 rw-p 0000c000 cat
         7ffff7fbc000-7ffff7fe4000 r-xp 00000000 ld-linux-aarch64.so.1
         7ffff7fec000-7ffff7ff4000 r--p 00000000 [vvar]
         7ffff7ff4000-7ffff7ff8000 r-xp 00000000 [vdso]
         7ffff7ff8000-7ffff8000000 rw-p 0002c000 ld-linux-aarch64.so.1
         7ffffffdc000-800000000000 rw-p 00000000 [stack]",
    );
}

#[test]
fn v_a5_arm64_6_12_dynamic_non_pie_and_two_page_vdso() {
    let f = Files::new("a5");
    f.put(
        "lib/ld-linux-aarch64.so.1",
        &elf(EM_AARCH64, ET_DYN, 0x1c40, &LD, None),
    );
    let loads = [
        (RX, 0, 0x400000, 0x900, 0x900, 0x10000),
        (RW, 0xfdd8, 0x41fdd8, 0x260, 0x4b1f8, 0x10000),
    ];
    let nopie = f.put(
        "nopie",
        &elf(
            EM_AARCH64,
            ET_EXEC,
            0x400600,
            &loads,
            Some("/lib/ld-linux-aarch64.so.1"),
        ),
    );
    let (maps, _) = run(LayoutParams::arm64_6_12(), &f, &nopie, &[&nopie]);
    expect(
        &maps,
        "00400000-00401000 r-xp 00000000 nopie
         0041f000-00421000 rw-p 0000f000 nopie
         00421000-0046b000 rw-p 00000000
         fffff7fbe000-fffff7fe5000 r-xp 00000000 ld-linux-aarch64.so.1
         fffff7ff8000-fffff7ffa000 r--p 00000000 [vvar]
         fffff7ffa000-fffff7ffc000 r-xp 00000000 [vdso]
         fffff7ffc000-fffff8000000 rw-p 0002e000 ld-linux-aarch64.so.1
         fffffffdf000-1000000000000 rw-p 00000000 [stack]",
    );
}

#[test]
fn v_a1_a3_arm64_6_1_static_and_static_pie() {
    let f = Files::new("a1");
    let st = f.put(
        "static",
        &elf(
            EM_AARCH64,
            ET_EXEC,
            0x400640,
            &[
                (RX, 0, 0x400000, 0x7e500, 0x7e500, 0x10000),
                (RW, 0x8c100, 0x48c100, 0x6000, 0x55000, 0x10000),
            ],
            None,
        ),
    );
    let (maps, info) = run(LayoutParams::arm64_6_1(), &f, &st, &[&st]);
    // 6.1 names the bss VMA that ends at start_brk [heap].
    expect(
        &maps,
        "00400000-0047f000 r-xp 00000000 static
         0048c000-00493000 rw-p 0008c000 static
         00493000-004e2000 rw-p 00000000 [heap]
         fffff7ffd000-fffff7fff000 r--p 00000000 [vvar]
         fffff7fff000-fffff8000000 r-xp 00000000 [vdso]
         fffffffdf000-1000000000000 rw-p 00000000 [stack]",
    );
    assert_eq!(info.unwrap().start_brk, 0x4e2000);
    let spie = f.put(
        "spie",
        &elf(
            EM_AARCH64,
            ET_DYN,
            0x640,
            &[
                (RX, 0, 0, 0x88f00, 0x88f00, 0x10000),
                (RW, 0x8c100, 0x9c100, 0x6800, 0x55e00, 0x10000),
            ],
            None,
        ),
    );
    let (maps, info) = run(LayoutParams::arm64_6_1(), &f, &spie, &[&spie]);
    expect(
        &maps,
        "fffff7f00000-fffff7f89000 r-xp 00000000 spie
         fffff7f9c000-fffff7fa3000 rw-p 0008c000 spie
         fffff7fa3000-fffff7ff2000 rw-p 00000000
         fffff7ffd000-fffff7fff000 r--p 00000000 [vvar]
         fffff7fff000-fffff8000000 r-xp 00000000 [vdso]
         fffffffdf000-1000000000000 rw-p 00000000 [stack]",
    );
    // A static PIE's brk moves to ELF_ET_DYN_BASE even without randomisation.
    assert_eq!(info.unwrap().start_brk, 0xaaaaaaaab000);
}

/// Adds a program header (type, flags) whose contents are `data`, appended to the file.
fn with_phdr(mut b: Vec<u8>, p_type: u32, p_flags: u32, data: &[u8]) -> Vec<u8> {
    let phnum = u16::from_le_bytes([b[56], b[57]]) as usize;
    // Move the file after a new header slot: the tests' images keep 0x1000 of room.
    let at = 64 + 56 * phnum;
    assert!(
        b[at..at + 56].iter().all(|&x| x == 0),
        "no room for a program header"
    );
    let off = b.len() as u64;
    b[at..at + 4].copy_from_slice(&p_type.to_le_bytes());
    b[at + 4..at + 8].copy_from_slice(&p_flags.to_le_bytes());
    b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
    b[at + 32..at + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b[56..58].copy_from_slice(&((phnum + 1) as u16).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// A `NT_GNU_PROPERTY_TYPE_0` note with `GNU_PROPERTY_AARCH64_FEATURE_1_AND` = BTI.
fn bti_note() -> Vec<u8> {
    let mut n = vec![];
    for w in [4u32, 16, 5] {
        n.extend_from_slice(&w.to_le_bytes());
    }
    n.extend_from_slice(b"GNU\0");
    for w in [0xc000_0000u32, 4, 1, 0] {
        n.extend_from_slice(&w.to_le_bytes());
    }
    n
}

#[test]
fn v_a4_bti_marked_static_and_an_executable_stack() {
    let f = Files::new("a4");
    // A bss-only RW segment (p_filesz 0) at 0x41ffe8, memsz 0x2710 (§4).
    let img = elf(
        EM_AARCH64,
        ET_EXEC,
        0x400100,
        &[
            (RX, 0, 0x400000, 0x1000, 0x1000, 0x10000),
            (RW, 0x1000, 0x41ffe8, 0, 0x2710, 0x10000),
        ],
        None,
    );
    let img = with_phdr(img, 0x6474_e553, PF_R, &bti_note());
    let img = with_phdr(img, 0x6474_e551, PF_R | PF_W | PF_X, &[]);
    let bti = f.put("bti", &img);
    let mut params = LayoutParams::arm64_6_1();
    params.cpu_bti = true;
    let (maps, r) = run(params, &f, &bti, &[&bti]);
    r.unwrap();
    expect(
        &maps,
        "00400000-00401000 r-xp 00000000 bti
         0041f000-00423000 rw-p 00000000 [heap]
         fffff7ffd000-fffff7fff000 r--p 00000000 [vvar]
         fffff7fff000-fffff8000000 r-xp 00000000 [vdso]
         fffffffdf000-1000000000000 rwxp 00000000 [stack]",
    );
    let mut storage = ProcessStorage::new(&params, 64 << 20);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    exec_host(
        &mut p,
        &bti,
        &[&bti],
        &[],
        &f.dir,
        8 << 20,
        ADDR_NO_RANDOMIZE,
    )
    .unwrap();
    let smaps = p.smaps_string().unwrap();
    let text = smaps.split("00400000-00401000").nth(1).unwrap();
    let flags = text.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
    assert_eq!(flags.trim_end(), "VmFlags: rd ex mr mw me bt");
    let stack = smaps.split("[stack]").nth(1).unwrap();
    let flags = stack.lines().find(|l| l.starts_with("VmFlags:")).unwrap();
    assert_eq!(flags.trim_end(), "VmFlags: rd wr ex mr mw me gd ac");
}

#[test]
fn the_initial_stack_holds_argc_argv_envp_and_auxv() {
    let f = Files::new("stack");
    let st = f.put(
        "static",
        &elf(
            EM_AARCH64,
            ET_EXEC,
            0x400640,
            &[(RX, 0, 0x400000, 0x1000, 0x1000, 0x10000)],
            None,
        ),
    );
    let params = LayoutParams::arm64_6_1();
    let mut storage = ProcessStorage::new(&params, 64 << 20);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let info = exec_host(
        &mut p,
        &st,
        &[&st, "a", "b"],
        &["X=1", "Y=2"],
        &f.dir,
        8 << 20,
        ADDR_NO_RANDOMIZE,
    )
    .unwrap();
    let read = |p: &mut SimProcess<'_>, va: u64| -> u64 {
        let pa = match p.access(pagesim::VirtAddr::new(va), pagesim::arch::AccessKind::Read) {
            pagesim::linux::paging::Touch::Done(pa) => pa,
            t => panic!("{t:?}"),
        };
        use pagesim::phys::PhysMemory;
        p.paging().mmu().memory().read_u64(pa).unwrap()
    };
    // The spec's worked example (§11): 21 auxv pairs on 6.1, sp 16-aligned below AT_RANDOM.
    assert_eq!(info.sp % 16, 0);
    assert_eq!(read(&mut p, info.sp), 3, "argc");
    let argv0 = read(&mut p, info.sp + 8);
    assert_eq!(argv0, info.arg_start);
    assert_eq!(read(&mut p, info.sp + 32), 0, "argv ends");
    assert_eq!(read(&mut p, info.sp + 56), 0, "envp ends");
    let mut aux = vec![];
    let mut at = info.sp + 64;
    loop {
        let (k, v) = (read(&mut p, at), read(&mut p, at + 8));
        aux.push((k, v));
        at += 16;
        if k == 0 {
            break;
        }
    }
    let keys: Vec<u64> = aux.iter().map(|x| x.0).collect();
    assert_eq!(
        keys,
        [33, 51, 16, 6, 17, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 23, 25, 26, 31, 15, 0]
    );
    let get = |k: u64| aux.iter().find(|x| x.0 == k).unwrap().1;
    assert_eq!(get(9), 0x400640, "AT_ENTRY");
    assert_eq!(get(6), 4096, "AT_PAGESZ");
    assert_eq!(get(33), info.vdso, "AT_SYSINFO_EHDR");
    assert_eq!(get(7), 0, "AT_BASE without an interpreter");
    // sp = (AT_RANDOM - 16 * 21 - 8 * (3 + 2 + 3)) & ~15.
    assert_eq!(info.sp, (get(25) - 16 * 21 - 8 * 8) & !15);
    // The bytes of argv[0] are the path (memory is read a word at an aligned address).
    let bytes: Vec<u8> = (argv0..argv0 + st.len() as u64)
        .map(|va| read(&mut p, va & !7).to_le_bytes()[(va & 7) as usize])
        .collect();
    assert_eq!(bytes, st.as_bytes());
}

#[test]
fn errors_before_the_point_of_no_return_change_nothing() {
    let f = Files::new("errors");
    let params = LayoutParams::x86_64_6_18();
    let good_loads = [(RX, 0, 0x400000, 0x1000, 0x1000, 0x1000)];
    let good = elf(EM_X86_64, ET_EXEC, 0x400100, &good_loads, None);
    let mut cases: Vec<(&str, Vec<u8>, Errno)> = vec![];
    cases.push(("short", good[..40].to_vec(), Errno::ENOEXEC));
    let mut m = good.clone();
    m[0] = b'x';
    cases.push(("magic", m, Errno::ENOEXEC));
    cases.push((
        "machine",
        elf(EM_AARCH64, ET_EXEC, 0, &good_loads, None),
        Errno::ENOEXEC,
    ));
    cases.push((
        "et_rel",
        elf(EM_X86_64, 1, 0, &good_loads, None),
        Errno::ENOEXEC,
    ));
    let mut m = good.clone();
    m[54] = 32;
    cases.push(("phentsize", m, Errno::ENOEXEC));
    let mut m = good.clone();
    m[56] = 0;
    cases.push(("phnum 0", m, Errno::ENOEXEC));
    let mut m = good.clone();
    m[32..40].copy_from_slice(&0x10_0000u64.to_le_bytes());
    cases.push(("phdrs past EOF", m, Errno::ENOEXEC));
    cases.push((
        "missing interpreter",
        elf(EM_X86_64, ET_DYN, 0, &good_loads, Some("/lib/none.so")),
        Errno::ENOENT,
    ));
    let mut m = elf(EM_X86_64, ET_DYN, 0, &good_loads, Some("/lib/x.so"));
    let at = 64 + 2 * 56 + "/lib/x.so".len();
    m[at] = b'!';
    cases.push(("interp without NUL", m, Errno::ENOEXEC));
    f.put("lib/short.so", b"\x7fELF");
    cases.push((
        "short interpreter",
        elf(EM_X86_64, ET_DYN, 0, &good_loads, Some("/lib/short.so")),
        Errno::EIO,
    ));
    f.put("lib/arm.so", &elf(EM_AARCH64, ET_DYN, 0, &good_loads, None));
    cases.push((
        "foreign interpreter",
        elf(EM_X86_64, ET_DYN, 0, &good_loads, Some("/lib/arm.so")),
        Errno::ELIBBAD,
    ));
    for (name, bytes, want) in cases {
        let path = f.put(name, &bytes);
        let mut storage = ProcessStorage::new(&params, 64 << 20);
        let mut p = storage
            .build(params, Start::Fresh, ImportHints::default())
            .unwrap();
        let before = p.maps_string();
        let r = exec_host(
            &mut p,
            &path,
            &[&path],
            &[],
            &f.dir,
            8 << 20,
            ADDR_NO_RANDOMIZE,
        );
        assert_eq!(
            r.err(),
            Some(ExecError::Refused(want).to_string()),
            "{name}"
        );
        assert_eq!(p.maps_string(), before, "{name} changed the process");
        p.validate().unwrap();
    }
    // E2BIG: one string of MAX_ARG_STRLEN bytes with its NUL passes, one more does not.
    let path = f.put("good", &good);
    for (len, ok) in [(131071, true), (131072, false)] {
        let arg = "a".repeat(len);
        let mut storage = ProcessStorage::new(&params, 64 << 20);
        let mut p = storage
            .build(params, Start::Fresh, ImportHints::default())
            .unwrap();
        let r = exec_host(
            &mut p,
            &path,
            &[&path, &arg],
            &[],
            &f.dir,
            8 << 20,
            ADDR_NO_RANDOMIZE,
        );
        assert_eq!(r.is_ok(), ok, "{len}: {r:?}");
        if !ok {
            assert_eq!(r.err(), Some(ExecError::Refused(Errno::E2BIG).to_string()));
        }
    }
}

#[test]
fn errors_after_the_point_of_no_return_kill_with_the_state_of_the_kernel() {
    let f = Files::new("killed");
    let params = LayoutParams::x86_64_6_18();
    // §12 V-X8: the first PT_LOAD's p_offset not congruent to its p_vaddr: only [stack].
    let bad = elf(
        EM_X86_64,
        ET_EXEC,
        0x400100,
        &[(RX, 1, 0x400000, 0x1000, 0x1000, 0x1000)],
        None,
    );
    let path = f.put("bad", &bad);
    let (maps, r) = run(params, &f, &path, &[&path]);
    assert_eq!(r.err(), Some(ExecError::Killed(Errno::EINVAL).to_string()));
    expect(
        &maps,
        "7ffffffde000-7ffffffff000 rw-p 00000000 [stack]
         ffffffffff600000-ffffffffff601000 --xp 00000000 [vsyscall]",
    );
    // An entry point past TASK_SIZE: all segments, no vDSO.
    let far = elf(
        EM_X86_64,
        ET_EXEC,
        0x8000_0000_0000,
        &[(RX, 0, 0x400000, 0x1000, 0x1000, 0x1000)],
        None,
    );
    let path = f.put("far", &far);
    let (maps, r) = run(params, &f, &path, &[&path]);
    assert_eq!(r.err(), Some(ExecError::Killed(Errno::EINVAL).to_string()));
    expect(
        &maps,
        "00400000-00401000 r-xp 00000000 far
         7ffffffde000-7ffffffff000 rw-p 00000000 [stack]
         ffffffffff600000-ffffffffff601000 --xp 00000000 [vsyscall]",
    );
    // An interpreter that is not ET_EXEC or ET_DYN.
    f.put(
        "lib/rel.so",
        &elf(EM_X86_64, 1, 0, &[(RX, 0, 0, 0x1000, 0x1000, 0x1000)], None),
    );
    let pie = f.put(
        "pie",
        &elf(
            EM_X86_64,
            ET_DYN,
            0x100,
            &[(RX, 0, 0, 0x1000, 0x1000, 0x1000)],
            Some("/lib/rel.so"),
        ),
    );
    let (_, r) = run(params, &f, &pie, &[&pie]);
    assert_eq!(r.err(), Some(ExecError::Killed(Errno::EINVAL).to_string()));
}

#[test]
fn the_compat_layout_personality_maps_bottom_up() {
    use pagesim::linux::exec::{AuxValues, ExecArgs, ExecFile, ADDR_COMPAT_LAYOUT};
    let f = Files::new("compat");
    let img = elf(
        EM_X86_64,
        ET_EXEC,
        0x400100,
        &[(RX, 0, 0x400000, 0x1000, 0x1000, 0x1000)],
        None,
    );
    let path = f.put("static", &img);
    let params = LayoutParams::x86_64_6_18();
    let mut storage = ProcessStorage::new(&params, 64 << 20);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let file = p.open(&path).unwrap();
    let args = ExecArgs {
        filename: &path,
        argv: &[&path],
        envp: &[],
        rlimit_stack: 8 << 20,
        personality: ADDR_COMPAT_LAYOUT,
        random: [0; 16],
        aux: AuxValues::observed(params.arch),
    };
    let info = p
        .exec(&ExecFile { file, bytes: &img }, None, &args)
        .unwrap();
    // mmap_legacy_base: PAGE_ALIGN(TASK_SIZE / 3), searched upwards.
    assert_eq!(p.space().mmap_base(), 0x2aaa_aaaa_b000);
    assert_eq!(info.vdso, 0x2aaa_aaaa_b000 + 6 * 4096);
    p.validate().unwrap();
}

#[test]
fn exec_in_a_forked_or_vforked_child_replaces_only_the_child_s_address_space() {
    use pagesim::linux::exec::{AuxValues, ExecArgs, ExecFile};
    use pagesim::linux::mm::mman;
    let f = Files::new("fork-exec");
    let img = elf(
        EM_AARCH64,
        ET_EXEC,
        0x400100,
        &[(RX, 0, 0x400000, 0x1000, 0x1000, 0x1000)],
        None,
    );
    let path = f.put("static", &img);
    let params = LayoutParams::arm64_6_1();
    let mut storage = ProcessStorage::new(&params, 64 << 20).with_processes(2);
    let mut sys = storage
        .build_system(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let rw = mman::PROT_READ | mman::PROT_WRITE;
    let a = sys
        .process_mut()
        .mmap(0, 8 << 12, rw, mman::MAP_PRIVATE | mman::MAP_ANONYMOUS)
        .unwrap();
    sys.process_mut().write_user(a, &[7u8; 8 << 12]).unwrap();
    let parent_maps = sys.maps_of(1).unwrap();
    let args = ExecArgs {
        filename: &path,
        argv: &[&path],
        envp: &[],
        rlimit_stack: 8 << 20,
        personality: ADDR_NO_RANDOMIZE,
        random: [0; 16],
        aux: AuxValues::observed(params.arch),
    };
    let private_dirty = |sys: &mut pagesim::linux::storage::SimSystem<'_>| {
        let s = sys.smaps_of(1).unwrap();
        let head = format!("{a:x}-");
        s.lines()
            .skip_while(|l| !l.starts_with(&head))
            .find_map(|l| l.strip_prefix("Private_Dirty:"))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    for vfork in [false, true] {
        let child = if vfork { sys.vfork() } else { sys.fork() }.unwrap();
        if !vfork {
            assert_eq!(private_dirty(&mut sys), "0 kB", "shared with the child");
        }
        sys.switch(child).unwrap();
        let file = sys.process_mut().open(&path).unwrap();
        sys.exec(&ExecFile { file, bytes: &img }, None, &args)
            .unwrap();
        // The parent's address space is as it was, its pages its own again.
        assert_eq!(sys.maps_of(1).unwrap(), parent_maps);
        assert_eq!(private_dirty(&mut sys), "32 kB");
        let child_maps = sys.maps_of(child).unwrap();
        assert!(
            child_maps.starts_with("00400000-00401000 r-xp"),
            "{child_maps}"
        );
        assert!(!child_maps.contains(&format!("{a:x}-")));
        sys.validate().unwrap();
        sys.exit().unwrap();
        assert_eq!(sys.current(), 1);
        sys.validate().unwrap();
    }
}
