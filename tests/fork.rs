//! Several processes on one machine: copy-on-write after fork, THPs shared whole, the
//! DONTFORK/WIPEONFORK rules, shmem shared through the page cache, vfork and exec, exit,
//! and, over random multi-process scripts, isolation (a written private page is no other
//! process's) and frame conservation (every frame in use is accounted for by the tables,
//! the zero pages, the page cache and the pages the processes map).

use std::collections::HashMap;

use pagesim::arch::AccessKind;
use pagesim::linux::mm::vmflags::VmFlags;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::Touch;
use pagesim::linux::storage::{ProcessStorage, SimSystem, Start};
use pagesim::linux::system::SystemError;
use pagesim::phys::PhysMemory;
use pagesim::strategies::linux_calls;
use pagesim::{PhysAddr, VirtAddr};
use proptest::prelude::*;

const RW: mman::Prot = mman::PROT_READ.union(mman::PROT_WRITE);
const PA: mman::MapFlags = mman::MAP_PRIVATE.union(mman::MAP_ANONYMOUS);

fn params() -> LayoutParams {
    let mut p = LayoutParams::arm64_6_12();
    p.thp = ThpMode::Madvise;
    p
}

fn system(storage: &mut ProcessStorage) -> SimSystem<'_> {
    storage
        .build_system(params(), Start::Fresh, ImportHints::default())
        .unwrap()
}

/// Reads the word at `va` in the current process.
fn read(sys: &mut SimSystem<'_>, va: u64) -> (u64, u64) {
    let Touch::Done(pa) = sys
        .process_mut()
        .access(VirtAddr::new(va), AccessKind::Read)
    else {
        panic!("read at {va:#x} faulted");
    };
    let w = sys
        .process()
        .paging()
        .mmu()
        .memory()
        .read_u64(PhysAddr::new(pa.as_u64() & !7))
        .unwrap();
    (w, pa.as_u64() & !0xfff)
}

fn store(sys: &mut SimSystem<'_>, va: u64, v: u64) -> u64 {
    sys.process_mut()
        .write_user(va, &v.to_le_bytes())
        .unwrap_or_else(|t| panic!("store at {va:#x}: {t:?}"));
    read(sys, va).1
}

fn field(smaps: &str, start: u64, name: &str) -> u64 {
    let head = format!("{start:x}-");
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
    assert!(lines.next().is_some(), "no VMA at {start:#x}");
    lines
        .take_while(|l| !l.starts_with("VmFlags:"))
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {name} at {start:#x}"))
}

#[test]
fn a_write_after_fork_copies_in_either_process_and_an_exit_makes_pages_private() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(2);
    let mut sys = system(&mut storage);
    let a = sys.process_mut().mmap(0, 4 << 12, RW, PA).unwrap();
    for i in 0..4 {
        store(&mut sys, a + i * 4096, 100 + i);
    }
    let child = sys.fork().unwrap();
    let s = sys.smaps_of(child).unwrap();
    assert_eq!(field(&s, a, "Rss"), 16);
    assert_eq!(field(&s, a, "Pss"), 8);
    assert_eq!(field(&s, a, "Shared_Dirty"), 16);
    assert_eq!(field(&s, a, "Referenced"), 0, "the child's entries are old");
    // The child sees the parent's data, on the same frames.
    let (v_parent, f_parent) = read(&mut sys, a);
    sys.switch(child).unwrap();
    let (v_child, f_child) = read(&mut sys, a);
    assert_eq!((v_child, f_child), (v_parent, f_parent));
    // A store in the child copies its page; the parent keeps its value.
    let copied = store(&mut sys, a, 7);
    assert_ne!(copied, f_parent);
    sys.switch(1).unwrap();
    assert_eq!(read(&mut sys, a), (100, f_parent));
    let s = sys.smaps_of(1).unwrap();
    assert_eq!(field(&s, a, "Private_Dirty"), 4);
    assert_eq!(field(&s, a, "Shared_Dirty"), 12);
    assert_eq!(field(&s, a, "Pss"), 4 + 6);
    // A store in the parent on a page still shared copies it too.
    let f1 = read(&mut sys, a + 4096).1;
    assert_ne!(store(&mut sys, a + 4096, 9), f1);
    sys.switch(child).unwrap();
    assert_eq!(read(&mut sys, a + 4096), (101, f1));
    sys.validate().unwrap();
    let free_before_exit = sys.process().paging().frames().free_frames();
    sys.exit().unwrap();
    assert_eq!(sys.current(), 1);
    assert!(
        sys.process().paging().frames().free_frames() > free_before_exit,
        "the child's copies and tables are free again"
    );
    let s = sys.smaps_of(1).unwrap();
    assert_eq!(field(&s, a, "Private_Dirty"), 16);
    assert_eq!(field(&s, a, "Shared_Dirty"), 0);
    // The last process's pages are exclusive: a store reuses its frame.
    let f2 = read(&mut sys, a + 2 * 4096).1;
    assert_eq!(store(&mut sys, a + 2 * 4096, 1), f2);
    sys.validate().unwrap();
    assert_eq!(
        sys.exit(),
        Err(SystemError::Errno(pagesim::linux::mm::Errno::EINVAL))
    );
}

#[test]
fn a_thp_is_shared_whole_and_a_write_splits_the_writer_s_mapping() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(2);
    let mut sys = system(&mut storage);
    let a = sys.process_mut().mmap(0, 8 << 20, RW, PA).unwrap();
    let huge = (a + (2 << 20) - 1) & !((2 << 20) - 1);
    sys.process_mut()
        .madvise(a, 8 << 20, mman::MADV_HUGEPAGE)
        .unwrap();
    store(&mut sys, huge, 1);
    let child = sys.fork().unwrap();
    for pid in [1, child] {
        let s = sys.smaps_of(pid).unwrap();
        assert_eq!(field(&s, a, "AnonHugePages"), 2048, "pid {pid}");
        assert_eq!(field(&s, a, "Shared_Dirty"), 2048, "pid {pid}");
    }
    sys.switch(child).unwrap();
    store(&mut sys, huge + 4096, 2);
    let s = sys.smaps_of(child).unwrap();
    assert_eq!(
        field(&s, a, "AnonHugePages"),
        0,
        "the child's PMD was split"
    );
    assert_eq!(field(&s, a, "Private_Dirty"), 4);
    assert_eq!(field(&s, a, "Shared_Dirty"), 2044);
    let s = sys.smaps_of(1).unwrap();
    assert_eq!(
        field(&s, a, "AnonHugePages"),
        2048,
        "the parent keeps its block"
    );
    sys.validate().unwrap();
}

#[test]
fn dontfork_vmas_stay_behind_and_wipeonfork_vmas_start_empty() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(2);
    let mut sys = system(&mut storage);
    let p = sys.process_mut();
    let keep = p.mmap(0, 2 << 12, RW, PA).unwrap();
    let wipe = p.mmap(0, 2 << 12, mman::PROT_READ, PA).unwrap();
    let gone = p.mmap(0, 2 << 12, mman::PROT_EXEC, PA).unwrap();
    p.madvise(wipe, 2 << 12, mman::MADV_WIPEONFORK).unwrap();
    p.madvise(gone, 2 << 12, mman::MADV_DONTFORK).unwrap();
    sys.process_mut().mprotect(wipe, 2 << 12, RW).unwrap();
    store(&mut sys, keep, 5);
    store(&mut sys, wipe, 6);
    let child = sys.fork().unwrap();
    let maps = sys.maps_of(child).unwrap();
    assert!(!maps.contains(&format!("{gone:x}-")), "{maps}");
    let s = sys.smaps_of(child).unwrap();
    assert!(s.contains("VmFlags: rd wr mr mw me ac wf"), "{s}");
    assert_eq!(field(&s, wipe, "Rss"), 0);
    assert_eq!(field(&s, keep, "Rss"), 4);
    sys.switch(child).unwrap();
    assert_eq!(read(&mut sys, wipe).0, 0, "wiped");
    assert_eq!(read(&mut sys, keep).0, 5);
    let v = sys.process().space().vma_lookup(wipe).unwrap();
    assert!(v.vm_flags.contains(VmFlags::VM_WIPEONFORK));
    sys.validate().unwrap();
}

#[test]
fn shared_memory_is_one_object_for_parent_and_child() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(2);
    let mut sys = system(&mut storage);
    let shared = mman::MAP_SHARED | mman::MAP_ANONYMOUS;
    let s0 = sys.process_mut().mmap(0, 4 << 12, RW, shared).unwrap();
    let f = store(&mut sys, s0, 11);
    let child = sys.fork().unwrap();
    assert_eq!(
        field(&sys.smaps_of(child).unwrap(), s0, "Rss"),
        0,
        "not copied"
    );
    sys.switch(child).unwrap();
    assert_eq!(
        read(&mut sys, s0),
        (11, f),
        "the child maps the parent's page"
    );
    store(&mut sys, s0 + 4096, 12);
    sys.switch(1).unwrap();
    assert_eq!(
        read(&mut sys, s0 + 4096).0,
        12,
        "and the parent sees the child's"
    );
    // MADV_DONTNEED drops the mapping, not the page.
    sys.process_mut()
        .madvise(s0, 4 << 12, mman::MADV_DONTNEED)
        .unwrap();
    assert_eq!(read(&mut sys, s0), (11, f));
    // Once no process maps the object, its pages are freed.
    let free = sys.process().paging().frames().free_frames();
    sys.process_mut().munmap(s0, 4 << 12).unwrap();
    sys.switch(child).unwrap();
    sys.process_mut().munmap(s0, 4 << 12).unwrap();
    sys.switch(1).unwrap();
    assert!(sys.process().paging().frames().free_frames() >= free + 2);
    assert!(sys.process().paging().cached_pages().is_empty());
    sys.validate().unwrap();
}

#[test]
fn shared_memory_made_after_a_fork_is_each_process_s_own() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(1);
    let mut sys = system(&mut storage);
    let shared = mman::MAP_SHARED | mman::MAP_ANONYMOUS;
    let child = sys.fork().unwrap();
    let a = sys.process_mut().mmap(0, 4096, RW, shared).unwrap();
    store(&mut sys, a, 1);
    sys.switch(child).unwrap();
    let b = sys.process_mut().mmap(0, 4096, RW, shared).unwrap();
    assert_eq!(a, b, "the same address in both");
    assert_eq!(
        read(&mut sys, b).0,
        0,
        "another object: no data of the parent's"
    );
    store(&mut sys, b, 2);
    sys.switch(1).unwrap();
    assert_eq!(read(&mut sys, a).0, 1);
    sys.validate().unwrap();
}

#[test]
fn an_access_past_the_end_of_a_grown_shared_mapping_is_sigbus() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20);
    let mut p = storage
        .build(params(), Start::Fresh, ImportHints::default())
        .unwrap();
    let shared = mman::MAP_SHARED | mman::MAP_ANONYMOUS;
    let a = p.mmap(0, 2 << 12, RW, shared).unwrap();
    let b = p
        .mremap(
            a,
            2 << 12,
            4 << 12,
            pagesim::linux::mm::mremap::MREMAP_MAYMOVE,
            0,
        )
        .unwrap();
    assert!(matches!(
        p.access(VirtAddr::new(b + 4096), AccessKind::Write),
        Touch::Done(_)
    ));
    match p.access(VirtAddr::new(b + 2 * 4096), AccessKind::Read) {
        Touch::Bus(bus) => assert_eq!(bus.addr.as_u64(), b + 2 * 4096),
        t => panic!("{t:?}"),
    }
    p.validate().unwrap();
}

#[test]
fn madv_remove_punches_a_hole_in_shared_memory_and_dontneed_does_not() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(1);
    let mut sys = system(&mut storage);
    let shared = mman::MAP_SHARED | mman::MAP_ANONYMOUS;
    let s0 = sys.process_mut().mmap(0, 4 << 12, RW, shared).unwrap();
    for i in 0..4 {
        store(&mut sys, s0 + i * 4096, 20 + i);
    }
    let p = sys.process_mut();
    p.madvise(s0, 4096, mman::MADV_DONTNEED).unwrap();
    p.madvise(s0 + 4096, 2 << 12, mman::MADV_REMOVE).unwrap();
    assert_eq!(read(&mut sys, s0).0, 20, "DONTNEED keeps the page");
    assert_eq!(read(&mut sys, s0 + 4096).0, 0, "REMOVE freed it");
    assert_eq!(read(&mut sys, s0 + 2 * 4096).0, 0);
    assert_eq!(read(&mut sys, s0 + 3 * 4096).0, 23);
    // MADV_REMOVE needs a shared mapping.
    let a = sys.process_mut().mmap(0, 4096, RW, PA).unwrap();
    assert_eq!(
        sys.process_mut().madvise(a, 4096, mman::MADV_REMOVE),
        Err(pagesim::linux::mm::Errno::EINVAL)
    );
    sys.validate().unwrap();
}

#[test]
fn a_vfork_child_runs_in_its_parent_s_address_space_until_it_exits() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(2);
    let mut sys = system(&mut storage);
    let a = sys.process_mut().mmap(0, 4096, RW, PA).unwrap();
    let child = sys.vfork().unwrap();
    sys.switch(child).unwrap();
    store(&mut sys, a, 3);
    let b = sys.process_mut().mmap(0, 4096, RW, PA).unwrap();
    assert_eq!(sys.maps_of(1).unwrap(), sys.maps_of(child).unwrap());
    sys.exit().unwrap();
    assert_eq!(sys.current(), 1);
    assert_eq!(read(&mut sys, a).0, 3);
    assert!(sys.process().space().vma_lookup(b).is_some());
    sys.validate().unwrap();
    // The parent exiting first leaves the address space to its vfork child.
    let c = sys.vfork().unwrap();
    let d = sys.fork().unwrap();
    sys.switch(1).unwrap();
    sys.exit().unwrap();
    assert_eq!(sys.current(), c, "the first process left");
    assert_eq!(read(&mut sys, a).0, 3);
    assert!(sys.pids().eq([c, d]));
    sys.validate().unwrap();
}

#[test]
fn fork_fails_cleanly_without_vma_storage() {
    let mut storage = ProcessStorage::new(&params(), 64 << 20).with_processes(1);
    let mut sys = system(&mut storage);
    let a = sys.process_mut().mmap(0, 4096, RW, PA).unwrap();
    store(&mut sys, a, 1);
    let child = sys.fork().unwrap();
    assert_eq!(
        sys.fork(),
        Err(SystemError::Errno(pagesim::linux::mm::Errno::ENOMEM))
    );
    assert!(sys.pids().eq([1, child]));
    assert_eq!(sys.switch(99), Err(SystemError::NoSuchProcess(99)));
    sys.validate().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// After random multi-process scripts, a store to the first page of every private
    /// writable VMA of every process lands in a frame no other process maps there, and no
    /// other process sees the value; the machine's frame accounting holds throughout.
    #[test]
    fn private_pages_are_isolated_and_frames_are_conserved(calls in linux_calls(24)) {
        let mut storage = ProcessStorage::new(&params(), 48 << 20).with_processes(3);
        let mut sys = system(&mut storage);
        let numbered: Vec<_> = calls.into_iter().enumerate().map(|(i, c)| (i + 1, c)).collect();
        let mut out = String::new();
        let _ = pagesim::linux::script::run::run(&mut sys, &numbered, true, &mut out);
        sys.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        // One process per address space (a vfork child runs in its parent's).
        let pids: Vec<u32> = sys.pids().filter(|&p| sys.owner_of(p) == Ok(p)).collect();
        // (pid, va) → the frame written and the value.
        let mut written: HashMap<(u32, u64), (u64, u64)> = HashMap::new();
        for &pid in &pids {
            sys.switch(pid).unwrap();
            let vmas: Vec<_> = sys
                .process()
                .space()
                .iter()
                .filter(|v| v.vm_flags.contains(VmFlags::VM_WRITE)
                    && !v.vm_flags.contains(VmFlags::VM_SHARED)
                    && v.kind.file().is_none())
                .map(|v| v.vm_start)
                .collect();
            for va in vmas {
                let value = (u64::from(pid) << 48) | va;
                if sys.process_mut().write_user(va, &value.to_le_bytes()).is_ok() {
                    let frame = read(&mut sys, va).1;
                    written.insert((pid, va), (frame, value));
                }
            }
            sys.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        for (&(pid, va), &(frame, value)) in &written {
            for (&(other, ova), &(oframe, _)) in &written {
                if other != pid {
                    prop_assert!(
                        oframe != frame,
                        "pid {} at {:#x} and pid {} at {:#x} share frame {:#x}",
                        pid, va, other, ova, frame
                    );
                }
            }
            sys.switch(pid).unwrap();
            prop_assert_eq!(read(&mut sys, va).0, value);
        }
        // Exiting every process but one returns every frame it alone held.
        let all: Vec<u32> = sys.pids().collect();
        for &pid in all.iter().skip(1) {
            sys.switch(pid).unwrap();
            sys.exit().unwrap();
            sys.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
}
