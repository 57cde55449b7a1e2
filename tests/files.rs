#![cfg(unix)]

//! File mappings without the live kernel: the spec's A vectors (`linux-files-mremap-fork.md`
//! §D) on files this test writes, and imported maps whose file VMAs fault in from the files
//! they name.

use std::os::unix::fs::MetadataExt;

use pagesim::arch::AccessKind;
use pagesim::linux::host_files::dev_of;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams};
use pagesim::linux::paging::Touch;
use pagesim::linux::storage::{ProcessStorage, SimProcess, Start};
use pagesim::phys::PhysMemory;
use pagesim::VirtAddr;

const P: u64 = 4096;

/// Writes a file of `pages` pages (and `extra` bytes), page `i` filled with `b'a' + i`.
fn file(name: &str, pages: u64, extra: u64) -> String {
    let path = std::env::temp_dir().join(format!("pagesim-files-{name}-{}", std::process::id()));
    let mut data = vec![];
    for i in 0..pages {
        data.extend(std::iter::repeat_n(b'a' + i as u8, P as usize));
    }
    data.extend(std::iter::repeat_n(b'z', extra as usize));
    std::fs::write(&path, data).unwrap();
    path.to_string_lossy().into_owned()
}

fn read_byte(p: &mut SimProcess<'_>, va: u64) -> Result<u8, Touch> {
    match p.access(VirtAddr::new(va), AccessKind::Read) {
        Touch::Done(pa) => {
            // Memory is read a word at an aligned address.
            let a = pagesim::PhysAddr::new(pa.as_u64() & !7);
            let w = p.paging().mmu().memory().read_u64(a).unwrap();
            Ok((w >> (8 * (pa.as_u64() & 7))) as u8)
        }
        t => Err(t),
    }
}

fn smaps_of(p: &SimProcess<'_>, start: u64) -> String {
    let s = p.smaps_string().unwrap();
    let head = format!("{start:x}-");
    let i = s.find(&head).unwrap();
    s[i..].split("VmFlags").next().unwrap().to_string()
}

fn field(entry: &str, name: &str) -> u64 {
    let l = entry.lines().find(|l| l.starts_with(name)).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a1_partial_last_page_reads_zeros_past_eof_then_sigbus() {
    let f = file("a1", 5, 100);
    let params = LayoutParams::x86_64_6_18();
    let mut st = ProcessStorage::new(&params, 64 << 20);
    let mut p = st
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let of = p.open(&f).unwrap();
    let a = p
        .mmap_file(0, 8 * P, mman::PROT_READ, mman::MAP_PRIVATE, &of, 0)
        .unwrap();
    assert_eq!(read_byte(&mut p, a), Ok(b'a'));
    // Fault-around mapped every page up to the one holding EOF.
    assert_eq!(field(&smaps_of(&p, a), "Rss:"), 24);
    assert_eq!(read_byte(&mut p, a + 5 * P + 99), Ok(b'z'));
    assert_eq!(read_byte(&mut p, a + 5 * P + 100), Ok(0));
    match read_byte(&mut p, a + 7 * P + 5) {
        Err(Touch::Bus(b)) => assert_eq!(b.addr.as_u64(), a + 7 * P + 5),
        t => panic!("{t:?}"),
    }
    p.validate().unwrap();
}

#[test]
fn a2_a7_private_copies_and_a_page_in_three_vmas() {
    let f = file("a7", 4, 0);
    let params = LayoutParams::x86_64_6_18();
    let mut st = ProcessStorage::new(&params, 64 << 20);
    let mut p = st
        .build(params, Start::Fresh, ImportHints::default())
        .unwrap();
    let of = p.open(&f).unwrap();
    let rw = mman::PROT_READ | mman::PROT_WRITE;
    let v1 = p.mmap_file(0, 2 * P, rw, mman::MAP_SHARED, &of, 0).unwrap();
    read_byte(&mut p, v1).unwrap();
    assert!(matches!(
        p.access(VirtAddr::new(v1 + P), AccessKind::Write),
        Touch::Done(_)
    ));
    let v2 = p.mmap_file(0, 2 * P, rw, mman::MAP_SHARED, &of, 0).unwrap();
    read_byte(&mut p, v2).unwrap();
    read_byte(&mut p, v2 + P).unwrap();
    let e = smaps_of(&p, v1);
    assert_eq!(
        [
            "Rss:",
            "Pss:",
            "Pss_Dirty:",
            "Shared_Clean:",
            "Shared_Dirty:"
        ]
        .map(|n| field(&e, n)),
        [8, 4, 2, 4, 4]
    );
    let v3 = p
        .mmap_file(0, 2 * P, rw, mman::MAP_PRIVATE, &of, 0)
        .unwrap();
    read_byte(&mut p, v3).unwrap();
    assert!(matches!(
        p.access(VirtAddr::new(v3 + P), AccessKind::Write),
        Touch::Done(_)
    ));
    let e3 = smaps_of(&p, v3);
    // 4/3 + 4 = 5.33 -> 5; the copy is Anonymous and Private_Dirty.
    assert_eq!(
        [
            "Rss:",
            "Pss:",
            "Shared_Clean:",
            "Private_Dirty:",
            "Anonymous:"
        ]
        .map(|n| field(&e3, n)),
        [8, 5, 4, 4, 4]
    );
    // 4/3 + 4/2 = 3.33 -> 3.
    assert_eq!(field(&smaps_of(&p, v1), "Pss:"), 3);
    // The private copy holds the file's byte; the file page is untouched.
    assert_eq!(read_byte(&mut p, v3 + P), Ok(b'b'));
    p.validate().unwrap();
}

#[test]
fn imported_file_vmas_fault_in_from_the_files_they_name() {
    let f = file("import", 3, 0);
    let meta = std::fs::metadata(&f).unwrap();
    let dev = dev_of(meta.dev());
    let maps = format!(
        "10000000-10003000 r--p 00000000 {:02x}:{:02x} {} {f}\n\
         7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]\n",
        dev.major,
        dev.minor,
        meta.ino()
    );
    let params = LayoutParams::x86_64_6_18();
    let mut st = ProcessStorage::new(&params, 64 << 20);
    let mut p = st
        .build(params, Start::Maps(&maps), ImportHints::default())
        .unwrap();
    assert_eq!(read_byte(&mut p, 0x1000_2000), Ok(b'c'));
    // The file has three pages: the fault-around stopped at its end.
    assert_eq!(field(&smaps_of(&p, 0x1000_0000), "Rss:"), 12);
    p.validate().unwrap();
}
