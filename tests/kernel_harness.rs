//! The real-kernel cross-check (spec §14): the same call scripts run on the kernel of the
//! machine the tests run on (in a fresh exec'd executor process, ASLR off, fixed stack
//! rlimit) and on pagesim's simulated process imported from the executor's own smaps.
//! After every call the return value or errno, the complete /proc/PID/maps text (byte for
//! byte), every smaps line of each anonymous VMA and mincore over them must be equal; every
//! access that faults is replayed in a throwaway executor to compare the signal. Referenced
//! may be higher in the kernel only on pages the machine's DAMON sampled (`compare.rs`).
//!
//! The calls are `pagesim run` scripts: the hand-written vectors in `tests/kernel/vectors/`
//! (the seed notes' 100 MiB mmap, the spec's §15 vectors, merges, splits, errno precedence,
//! THP, stack growth, brk, dirty state, LazyFree batches) and random sequences
//! (`tests/kernel/random.rs`); a failing random sequence is shrunk and printed as a script.
//!
//! Runs as its own binary (harness = false): the executor is this binary re-exec'd.

#[path = "kernel/arm64.rs"]
mod arm64;
#[path = "kernel/compare.rs"]
mod compare;
#[path = "kernel/driver.rs"]
mod driver;
#[path = "kernel/emu_outputs.rs"]
mod emu_outputs;
#[path = "kernel/exec.rs"]
mod exec;
#[path = "kernel/executor.rs"]
mod executor;
#[path = "kernel/random.rs"]
mod random;

use std::collections::HashMap;

use driver::Kernel;
use executor::op;
use pagesim::arch::AccessKind;
use pagesim::linux::mm::maps_text::SmapsParser;
use pagesim::linux::mm::vma::{DevId, VmaKind};
use pagesim::linux::mm::{Errno, ImportHints, KernelVersion, LayoutParams, ThpMode};
use pagesim::linux::paging::{Bus, Touch};
use pagesim::linux::script::{self, Addr, Call, BRK0};
use pagesim::linux::storage::{ProcessStorage, SimProcess, SimSystem, Start};
use pagesim::VirtAddr;

/// The base-2 logarithm of the page size of the kernel the harness runs on now.
static PAGE_SHIFT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(12);

/// Returns the page shift of the kernel under test.
pub fn page_shift() -> u32 {
    PAGE_SHIFT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Returns the page size of the kernel under test.
pub fn page() -> u64 {
    1 << page_shift()
}

/// The directory of the files the harness maps (`f0` … `f7`), as the executors see it:
/// on this machine, the host directory; in an arm64 guest, the guest's.
fn files_dir() -> std::path::PathBuf {
    if arm64::current().is_some() {
        return arm64::FILES_DIR.into();
    }
    host_files_dir()
}

/// The host directory of the harness files (pagesim reads the guest's files from copies
/// here).
fn host_files_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pagesim-harness-{}", std::process::id()))
}

/// The sizes of the harness files in bytes: a partial last page (SIGBUS past it), and
/// whole pages of several lengths.
pub const FILE_SIZES: [u64; 4] = [5 * 4096 + 100, 8 * 4096, 16 * 4096, 40 * 4096];

/// Creates the harness files, written 4 KiB at a time (order-0 page cache, spec §0.4),
/// each page filled with a byte of its own.
fn create_files() -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    let dir = host_files_dir();
    std::fs::create_dir_all(&dir)?;
    for (i, size) in FILE_SIZES.iter().enumerate() {
        let path = dir.join(format!("f{i}"));
        // A new inode (the old one lives on while a mapping holds it).
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::File::create(&path)?;
        let mut left = *size;
        let mut page = 0u8;
        while left > 0 {
            let n = left.min(4096);
            f.write_all(&vec![b'a' + page % 26; n as usize])?;
            left -= n;
            page = page.wrapping_add(1);
        }
        f.sync_all()?;
        // A copy for the throwaway executors that replay a sequence to see a signal:
        // their accesses then mark no folio of the files the live executor maps (a
        // populate there sets PG_referenced on the shared page-cache folio).
        let replay = dir.join("replay");
        std::fs::create_dir_all(&replay)?;
        let copy = replay.join(format!("f{i}"));
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&path, &copy)?;
    }
    Ok(dir)
}

/// Makes the harness files anew in the guest (the same bytes as [`create_files`] writes
/// here) and has `storage` open this machine's copies under the guest's paths, devices
/// and inodes.
fn create_guest_files(link: &arm64::Link, storage: &mut ProcessStorage) -> Result<(), String> {
    let host = create_files().map_err(|e| format!("the harness files: {e}"))?;
    let mut args = vec![FILE_SIZES.len() as u64];
    args.extend(FILE_SIZES);
    let r = link
        .router(arm64::op::FILES, &args, b"")
        .map_err(|e| e.to_string())?;
    if r.ret != 0 {
        return Err(format!("the guest's harness files: errno {}", r.errno));
    }
    for (i, want) in FILE_SIZES.iter().enumerate() {
        let shown = format!("{}/f{i}", arm64::FILES_DIR);
        let (major, minor, ino, size) = link.stat(&shown).map_err(|e| format!("{shown}: {e}"))?;
        if size != *want {
            return Err(format!("{shown} has {size} bytes"));
        }
        storage.files_mut().alias(
            &shown,
            host.join(format!("f{i}")),
            DevId { major, minor },
            ino,
        );
    }
    Ok(())
}

/// Returns `N` of a harness file path `…/fN`.
fn harness_file_index(path: &str) -> Result<u64, String> {
    path.rsplit_once("/f")
        .and_then(|(_, n)| n.parse().ok())
        .filter(|&n: &u64| (n as usize) < executor::FILES)
        .ok_or_else(|| format!("{path} is not a harness file"))
}

/// Host layout parameters, read from the machine.
fn host_params() -> Option<LayoutParams> {
    let mut p = match std::env::consts::ARCH {
        "x86_64" => LayoutParams::x86_64_6_18(),
        "aarch64" => LayoutParams::arm64(KernelVersion::V6_12, 12, false),
        _ => return None,
    };
    let read = |f: &str| std::fs::read_to_string(f).ok();
    if let Some(v) = read("/proc/sys/vm/max_map_count").and_then(|s| s.trim().parse().ok()) {
        p.max_map_count = v;
    }
    // The sysctl is the DAC value; the effective one is the larger of it and
    // CONFIG_LSM_MMAP_MIN_ADDR, which shows only in where a low hint lands.
    if let Some(v) = read("/proc/sys/vm/mmap_min_addr").and_then(|s| s.trim().parse::<u64>().ok()) {
        p.dac_mmap_min_addr = v;
        p.mmap_min_addr = v.max(p.mmap_min_addr);
    }
    if let Some(v) = host_effective_mmap_min_addr(p.page_size()) {
        p.mmap_min_addr = v;
    }
    if let Some(t) = read("/sys/kernel/mm/transparent_hugepage/enabled") {
        p.thp = if t.contains("[always]") {
            ThpMode::Always
        } else if t.contains("[madvise]") {
            ThpMode::Madvise
        } else {
            ThpMode::Never
        };
    }
    p.rlimit_stack = driver::STACK_RLIMIT;
    if let Some(m) = read("/proc/meminfo") {
        p.commit_limit = commit_limit(&m, read("/proc/sys/vm/overcommit_memory").as_deref());
    }
    Some(p)
}

/// Returns the effective `mmap_min_addr` of this machine: where a one-page map hinted at
/// the first page lands (`round_hint_to_min` raises a lower hint to it).
fn host_effective_mmap_min_addr(page: u64) -> Option<u64> {
    // SAFETY: a fresh private anonymous mapping nothing else refers to, unmapped at once.
    unsafe {
        let p = libc::mmap(
            page as *mut libc::c_void,
            page as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return None;
        }
        libc::munmap(p, page as usize);
        let a = p as u64;
        // Anything far up means the low pages were taken: no answer.
        (a < 1 << 24).then_some(a)
    }
}

/// Returns [`LayoutParams::commit_limit`] from /proc/meminfo and vm.overcommit_memory.
fn commit_limit(meminfo: &str, overcommit: Option<&str>) -> u64 {
    if overcommit.map(str::trim) == Some("1") {
        return u64::MAX;
    }
    let kib = |field: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("MemTotal:") + kib("SwapTotal:")) << 10
}

/// How many SIGSEGVs were compared with the kernel's (si_code and si_addr).
static SIGNAL_CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One call made to the kernel by process `pid` (pagesim's numbering), with resolved
/// arguments (to replay in a throwaway executor).
#[derive(Clone, Debug)]
enum Raw {
    Call(u32, u32, Vec<u64>),
    Touch(u32, u64, u64, bool),
    /// The first process forked the second.
    Fork(u32, u32),
    Exit(u32),
}

/// A script being run on both sides.
struct Session<'s> {
    /// The executor of each live process, by pagesim's pid.
    ks: Vec<(u32, Kernel)>,
    sys: SimSystem<'s>,
    params: LayoutParams,
    /// Names bound by successful mmaps, and `brk0`.
    names: HashMap<String, u64>,
    /// Every call made to the kernel so far.
    log: Vec<Raw>,
    /// The executor's own anonymous VMAs at the start: left out of the residency
    /// comparisons once it forked (a child writes its TLS and library data as it runs).
    own: Vec<(u64, u64)>,
    forked: bool,
}

impl<'s> Session<'s> {
    /// Returns the current process's executor.
    fn k(&mut self) -> &mut Kernel {
        let cur = self.sys.current();
        &mut self
            .ks
            .iter_mut()
            .find(|(p, _)| *p == cur)
            .expect("every live process has an executor")
            .1
    }

    /// Returns the current process in pagesim.
    fn p(&mut self) -> &mut SimProcess<'s> {
        self.sys.process_mut()
    }

    fn resolve(&self, a: &Addr) -> Option<u64> {
        match a {
            Addr::Num(n) => Some(*n),
            Addr::Name(n, off) => self.names.get(n).map(|b| b.wrapping_add(*off as u64)),
        }
    }

    /// Makes a call on the executor and records it.
    fn kcall(&mut self, op: u32, args: &[u64]) -> Result<driver::Reply, String> {
        self.log
            .push(Raw::Call(self.sys.current(), op, args.to_vec()));
        self.k().call(op, args).map_err(|e| e.to_string())
    }

    /// Runs one call on both sides and compares what it returned; `Ok(false)` when it was
    /// skipped (it names a mapping whose mmap failed).
    fn step(&mut self, call: &Call) -> Result<bool, String> {
        let errno_of = |r: &Result<(), Errno>| r.as_ref().err().map_or(0, |e| e.number());
        let same = |kr: &driver::Reply, sr: &Result<(), Errno>| {
            (kr.ret, kr.errno) == (if sr.is_ok() { 0 } else { -1 }, errno_of(sr))
        };
        match call {
            Call::Mmap {
                bind,
                addr,
                len,
                prot,
                flags,
                file,
            } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let (kr, sr) = match file {
                    Some((path, off)) => {
                        let idx = harness_file_index(path)?;
                        let kr = self.kcall(
                            op::MMAP_FILE,
                            &[a, *len, prot.bits().into(), flags.bits().into(), idx, *off],
                        )?;
                        let f = self
                            .p()
                            .open(path)
                            .map_err(|e| format!("pagesim open {path}: {e:?}"))?;
                        (kr, self.p().mmap_file(a, *len, *prot, *flags, &f, *off))
                    }
                    None => {
                        let kr = self.kcall(
                            op::MMAP,
                            &[a, *len, prot.bits().into(), flags.bits().into()],
                        )?;
                        (kr, self.p().mmap(a, *len, *prot, *flags))
                    }
                };
                let s = match sr {
                    Ok(v) => (v as i64, 0),
                    Err(e) => (-1, e.number()),
                };
                if (kr.ret, kr.errno) != s {
                    return Err(format!(
                        "kernel {} errno {}, pagesim {sr:?}",
                        kr.ret, kr.errno
                    ));
                }
                if let (Some(b), Ok(v)) = (bind, sr) {
                    self.names.insert(b.clone(), v);
                }
            }
            Call::Mremap {
                bind,
                addr,
                old_len,
                new_len,
                flags,
                new_addr,
            } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let na = match new_addr {
                    Some(n) => match self.resolve(n) {
                        Some(v) => v,
                        None => return Ok(false),
                    },
                    None => 0,
                };
                let kr = self.kcall(
                    op::MREMAP,
                    &[a, *old_len, *new_len, flags.bits().into(), na],
                )?;
                let sr = self.p().mremap(a, *old_len, *new_len, *flags, na);
                let s = match sr {
                    Ok(v) => (v as i64, 0),
                    Err(e) => (-1, e.number()),
                };
                if (kr.ret, kr.errno) != s {
                    return Err(format!(
                        "kernel {:#x} errno {}, pagesim {sr:x?}",
                        kr.ret, kr.errno
                    ));
                }
                if let (Some(b), Ok(v)) = (bind, sr) {
                    self.names.insert(b.clone(), v);
                }
            }
            Call::Munmap { addr, len } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let kr = self.kcall(op::MUNMAP, &[a, *len])?;
                let sr = self.p().munmap(a, *len);
                if !same(&kr, &sr) {
                    return Err(format!("kernel {}/{}, pagesim {sr:?}", kr.ret, kr.errno));
                }
            }
            Call::Mprotect { addr, len, prot } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let kr = self.kcall(op::MPROTECT, &[a, *len, prot.bits().into()])?;
                let sr = self.p().mprotect(a, *len, *prot);
                if !same(&kr, &sr) {
                    return Err(format!("kernel {}/{}, pagesim {sr:?}", kr.ret, kr.errno));
                }
            }
            Call::Madvise { addr, len, advice } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let kr = self.kcall(op::MADVISE, &[a, *len, advice.raw() as u64])?;
                let sr = self.p().madvise(a, *len, *advice);
                if !same(&kr, &sr) {
                    return Err(format!("kernel {}/{}, pagesim {sr:?}", kr.ret, kr.errno));
                }
            }
            Call::Brk { addr } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let kr = self.kcall(op::BRK, &[a])?;
                let sr = self
                    .p()
                    .brk(a)
                    .map_err(|e| format!("pagesim brk failed: {e:?}"))?;
                if kr.ret as u64 != sr {
                    return Err(format!("kernel {:#x}, pagesim {sr:#x}", kr.ret));
                }
            }
            Call::Touch { kind, addr, len } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                self.touch(*kind, a, *len)?;
            }
            Call::Mincore { addr, len } => {
                let Some(a) = self.resolve(addr) else {
                    return Ok(false);
                };
                let kr = self
                    .k()
                    .call(op::MINCORE, &[a, *len])
                    .map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; (len.div_ceil(page()) as usize).min(1 << 20)];
                let sr = self.sys.process().mincore(a, *len, &mut buf);
                let agree = match sr {
                    Ok(n) => {
                        // Pages of files and shmem report the page cache (see
                        // compare::residency): those are not compared.
                        let file_page = |i: usize| {
                            let va = a + i as u64 * page();
                            self.sys
                                .process()
                                .space()
                                .vma_lookup(va)
                                .is_some_and(|v| matches!(v.kind, VmaKind::File { .. }))
                        };
                        kr.ret == 0
                            && kr.payload.len() == n
                            && (0..n).all(|i| file_page(i) || kr.payload[i] & 1 == buf[i])
                    }
                    Err(e) => kr.ret == -1 && kr.errno == e.number(),
                };
                if !agree {
                    return Err(format!(
                        "mincore: kernel {}/{}, pagesim {sr:?}",
                        kr.ret, kr.errno
                    ));
                }
            }
            // Maps and smaps are compared after every call anyway.
            Call::Maps { .. } | Call::Smaps { .. } => {}
            Call::Fork { vfork: true, .. } => {
                return Err(
                    "vfork is not in the harness's sequences (the parent would wait)".into(),
                )
            }
            Call::Fork { bind, .. } => {
                let parent = self.sys.current();
                let child_k = self.k().fork().map_err(|e| format!("kernel fork: {e}"))?;
                let pid = self
                    .sys
                    .fork()
                    .map_err(|e| format!("pagesim fork failed: {e}"))?;
                self.ks.push((pid, child_k));
                self.log.push(Raw::Fork(parent, pid));
                self.forked = true;
                if let Some(b) = bind {
                    self.names.insert(b.clone(), u64::from(pid));
                }
            }
            Call::Exit { .. } => {
                if self.ks.len() < 2 {
                    return Ok(false);
                }
                let pid = self.sys.current();
                let i = self
                    .ks
                    .iter()
                    .position(|(p, _)| *p == pid)
                    .expect("a live process");
                let (_, k) = self.ks.remove(i);
                k.exit().map_err(|e| e.to_string())?;
                self.sys
                    .exit()
                    .map_err(|e| format!("pagesim exit failed: {e}"))?;
                self.log.push(Raw::Exit(pid));
            }
            Call::Switch { pid } => {
                let Some(pid) = self.resolve(pid) else {
                    return Ok(false);
                };
                let pid = pid as u32;
                if !self.ks.iter().any(|(p, _)| *p == pid) {
                    return Ok(false);
                }
                self.sys.switch(pid).map_err(|e| e.to_string())?;
            }
        }
        self.compare_all()?;
        Ok(true)
    }

    /// Compares every live process's maps and residency (every call can change them in
    /// each: munmap, mprotect, madvise, brk, MAP_FIXED and MAP_POPULATE as much as
    /// touches, and a write or an exit in one changes the map counts the other sees), and
    /// checks pagesim's own invariants over all of them.
    fn compare_all(&mut self) -> Result<(), String> {
        let cur = self.sys.current();
        let pids: Vec<u32> = self.ks.iter().map(|(p, _)| *p).collect();
        for pid in pids {
            self.sys.switch(pid).map_err(|e| e.to_string())?;
            let Session {
                ks,
                sys,
                params,
                own,
                forked,
                ..
            } = self;
            let skip: &[(u64, u64)] = if *forked { own } else { &[] };
            let k = &mut ks.iter_mut().find(|(p, _)| *p == pid).expect("live").1;
            let tag = |e: String| {
                if pid == 1 {
                    e
                } else {
                    format!("in process {pid}: {e}")
                }
            };
            compare::maps(k, sys.process()).map_err(|e| tag(format!("maps: {e}")))?;
            compare::residency(k, sys.process(), &params.maps, skip).map_err(tag)?;
        }
        self.sys.switch(cur).map_err(|e| e.to_string())?;
        self.sys
            .validate()
            .map_err(|e| format!("pagesim invariant: {e}"))?;
        Ok(())
    }

    /// Touches one byte of each page of `[a, a + len)` in order on pagesim, then makes the
    /// same accesses as the executor's own loads and stores (so a fault below a
    /// grows-down VMA grows it, and the hardware sets the accessed and dirty bits); an
    /// access pagesim faults is replayed in a throwaway executor to compare the signal.
    fn touch(&mut self, kind: AccessKind, a: u64, len: u64) -> Result<(), String> {
        let write = match kind {
            AccessKind::Read => false,
            AccessKind::Write => true,
            AccessKind::Fetch => return Err("the harness makes no instruction fetches".into()),
        };
        let page = page();
        let pages = len.div_ceil(page);
        let mut done = 0;
        let mut segv = None;
        while done < pages {
            match self.p().access(VirtAddr::new(a + done * page), kind) {
                Touch::Done(_) => done += 1,
                Touch::Segv(s) => {
                    segv = Some((libc::SIGSEGV, s.code as i32, s.addr.as_u64()));
                    break;
                }
                Touch::Bus(b) => {
                    segv = Some((libc::SIGBUS, Bus::BUS_ADRERR, b.addr.as_u64()));
                    break;
                }
                Touch::OutOfMemory { .. } => return Err("pagesim ran out of memory".into()),
            }
        }
        // The pages pagesim completed: the executor must complete them too (a SIGSEGV
        // there ends it, and the call then fails).
        if done > 0 {
            let r = self
                .k()
                .call(op::TOUCH, &[a, done, write as u64])
                .map_err(|e| format!("the kernel faulted where pagesim did not ({e})"))?;
            if r.ret != 0 {
                return Err(format!(
                    "the kernel faulted (si_code {}) where pagesim did not",
                    r.errno
                ));
            }
        }
        let pid = self.sys.current();
        self.log.push(Raw::Touch(pid, a, done * page, write));
        if let Some(s) = segv {
            let fa = a + done * page;
            let k = signal_of(&self.log, pid, fa, write)?;
            if k != s {
                return Err(format!(
                    "kernel signal {} si_code {} si_addr {:#x}, pagesim {} {} {:#x}",
                    k.0, k.1, k.2, s.0, s.1, s.2
                ));
            }
        }
        Ok(())
    }
}

/// Replays `log` in a fresh executor (forking and exiting as the log did), then makes
/// the access at `addr` from inside process `pid` with a SIGSEGV handler: returns
/// `(signal, si_code, si_addr)`.
fn signal_of(log: &[Raw], pid: u32, addr: u64, write: bool) -> Result<(i32, i32, u64), String> {
    SIGNAL_CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let first = Kernel::spawn_throwaway().map_err(|e| format!("spawn: {e}"))?;
    let mut ks: Vec<(u32, Kernel)> = vec![(1, first)];
    let at = |ks: &mut Vec<(u32, Kernel)>, p: u32| -> Result<usize, String> {
        ks.iter()
            .position(|(q, _)| *q == p)
            .ok_or_else(|| format!("replay: no process {p}"))
    };
    let _ = ks[0]
        .1
        .smaps()
        .map_err(|e| format!("the replay executor's first smaps: {e}"))?;
    for r in log {
        match r {
            Raw::Call(p, op, args) => {
                let i = at(&mut ks, *p)?;
                ks[i]
                    .1
                    .call(*op, args)
                    .map_err(|e| format!("replay of op {op} {args:x?}: {e}"))?;
            }
            Raw::Touch(p, a, len, w) => {
                if *len > 0 {
                    let i = at(&mut ks, *p)?;
                    ks[i]
                        .1
                        .call(op::TOUCH, &[*a, len / page(), *w as u64])
                        .map_err(|e| format!("replay of a touch at {a:#x}: {e}"))?;
                }
            }
            Raw::Fork(p, c) => {
                let i = at(&mut ks, *p)?;
                let k = ks[i].1.fork().map_err(|e| e.to_string())?;
                ks.push((*c, k));
            }
            Raw::Exit(p) => {
                let i = at(&mut ks, *p)?;
                let (_, k) = ks.remove(i);
                k.exit().map_err(|e| e.to_string())?;
            }
        }
    }
    let i = at(&mut ks, pid)?;
    let r = ks[i]
        .1
        .call(op::TOUCH_SIGNAL, &[addr, write as u64])
        .map_err(|e| format!("TOUCH_SIGNAL in the replay: {e}"))?;
    if r.ret != -2 || r.payload.len() != 16 {
        return Err(format!(
            "the access at {addr:#x} did not fault inside the executor (ret {})",
            r.ret
        ));
    }
    Ok((
        u64::from_le_bytes(r.payload[8..16].try_into().unwrap()) as i32,
        r.errno,
        u64::from_le_bytes(r.payload[..8].try_into().unwrap()),
    ))
}

/// Gives pagesim's imported anonymous VMAs the executor's resident pages: exclusively mapped
/// pages become private pages (write faults), shared-zero-page mappings read faults
/// (/proc/PID/pagemap bits 63 and 56). The VMAs come from the library's smaps parser.
fn import_residency(
    k: &Kernel,
    p: &mut SimProcess<'_>,
    smaps: &str,
    params: &LayoutParams,
) -> Result<(), String> {
    for e in SmapsParser::new(smaps, &params.maps) {
        let v = e.map_err(|e| format!("smaps: {e}"))?.vma;
        let anon = matches!(v.kind, VmaKind::Anonymous | VmaKind::Heap | VmaKind::Stack);
        if !anon
            || !v
                .vm_flags
                .contains(pagesim::linux::mm::vmflags::VmFlags::VM_WRITE)
        {
            continue;
        }
        let pm = k
            .pagemap(v.vm_start, v.vm_end)
            .map_err(|e| format!("pagemap: {e}"))?;
        for (i, entry) in pm.iter().enumerate() {
            if entry >> 63 & 1 == 1 {
                let kind = if entry >> 56 & 1 == 1 {
                    AccessKind::Write
                } else {
                    AccessKind::Read
                };
                let _ = p.access(VirtAddr::new(v.vm_start + i as u64 * page()), kind);
            }
        }
    }
    Ok(())
}

/// Runs `calls` on a fresh executor and on pagesim; returns the first difference, with
/// the script so far.
fn check(params: LayoutParams, calls: &[Call]) -> Result<(), String> {
    // The host's page cache outlives a script: pages an earlier script dirtied through a
    // shared mapping would start the next one dirty, and folio flags carry over.
    // The files are made anew for every script: fresh inodes whose page-cache folios carry
    // no flag of an earlier script (PG_referenced, set when a young entry is zapped, shows
    // through a forked child's old entries).
    let guest = arm64::current();
    if guest.is_none() {
        create_files().map_err(|e| format!("the harness files: {e}"))?;
    }
    let mut k = Kernel::spawn().map_err(|e| format!("spawn: {e}"))?;
    let smaps = k.smaps().map_err(|e| format!("smaps: {e}"))?;
    let (start_brk, _, start_stack) = k.stat_fields().map_err(|e| format!("stat: {e}"))?;
    let brk0 = k.call(op::BRK, &[0]).map_err(|e| e.to_string())?.ret as u64;
    let maps0 = k.maps().map_err(|e| e.to_string())?;
    let hints = ImportHints {
        start_brk: Some(start_brk),
        brk: Some(brk0),
        start_stack: Some(start_stack),
        mmap_base: None,
    };
    let mut params = params;
    // PKU-capable CPUs print a ProtectionKey: line in smaps.
    params.maps.smaps_protection_key = smaps.contains("\nProtectionKey:");
    let mut storage = ProcessStorage::new(&params, 512 << 20).with_processes(4);
    if let Some(link) = &guest {
        create_guest_files(link, &mut storage)?;
    }
    let mut sys = storage.build_system(params, Start::Smaps(&smaps), hints)?;
    let p = sys.process_mut();
    if p.maps_string() != maps0 {
        return Err(format!(
            "import differs\n--- kernel ---\n{maps0}\n--- pagesim ---\n{}",
            p.maps_string()
        ));
    }
    import_residency(&k, p, &smaps, &params)?;
    let own = SmapsParser::new(&smaps, &params.maps)
        .filter_map(Result::ok)
        .filter(|e| matches!(e.vma.kind, VmaKind::Anonymous))
        .map(|e| (e.vma.vm_start, e.vma.vm_end))
        .collect();
    let mut s = Session {
        own,
        forked: false,
        ks: vec![(1, k)],
        sys,
        params,
        names: HashMap::from([(BRK0.to_string(), brk0)]),
        log: vec![],
    };
    let mut script = String::new();
    for call in calls {
        script.push_str(&call.to_string());
        match s.step(call) {
            Ok(true) => script.push('\n'),
            Ok(false) => script.push_str("  # skipped: its mapping's mmap failed\n"),
            Err(what) => {
                return Err(format!(
                    "after `{call}`: {what}\nreproduce with `pagesim run` on the executor's smaps:\n{script}"
                ))
            }
        }
    }
    Ok(())
}

/// Runs a script that failed up to twice more; returns whether a run passed. The kernel
/// drains its per-CPU folio batches when other processes on the executor's CPU exit or
/// khugepaged scans, which moves LazyFree early at times no model of one process can see.
fn again(params: LayoutParams, calls: &[Call]) -> bool {
    (0..2).any(|_| check(params, calls).is_ok())
}

/// Shrinks a failing sequence by dropping calls (never the first, the arena) while it
/// still fails.
fn shrink(params: LayoutParams, mut calls: Vec<Call>) -> Vec<Call> {
    let mut i = 1;
    while i < calls.len() {
        let mut t = calls.clone();
        t.remove(i);
        if check(params, &t).is_err() {
            calls = t;
        } else {
            i += 1;
        }
    }
    calls
}

/// The hand-written vectors: every script in `tests/kernel/vectors/`, by file name.
fn vectors() -> Vec<(String, Vec<Call>)> {
    // PAGESIM_KERNEL_VECTORS_DIR=DIR runs the vectors of DIR instead (experiments).
    let dir = std::env::var_os("PAGESIM_KERNEL_VECTORS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel/vectors")
        });
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f)
                .unwrap()
                .replace("$FILES", &files_dir().to_string_lossy());
            let calls = script::parse(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            (f.file_stem().unwrap().to_string_lossy().into_owned(), calls)
        })
        .collect()
}

/// What the checks came to.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    retried: usize,
}

/// Runs the vectors and `sequences` random sequences on the kernel under test (this
/// machine's, or the current arm64 guest); returns how many vectors ran and failures.
fn suite(
    params: LayoutParams,
    sequences: usize,
    host_dir: &std::path::Path,
    t: &mut Tally,
) -> (usize, usize) {
    let failed_before = t.failed;
    let vectors = vectors();
    // The kernel drains its per-CPU folio batches at times pagesim cannot see (khugepaged's
    // scan, every 10 s while a process that used MADV_HUGEPAGE lives, drains every CPU), so
    // a LazyFree count can move early. A script that fails is run up to twice more; one
    // that then passes is counted as passed and reported as retried.
    // PAGESIM_KERNEL_VECTOR=PREFIX runs the vectors whose names start with it.
    let only_vector = std::env::var("PAGESIM_KERNEL_VECTOR").ok();
    let on = arm64::current()
        .map(|l| format!(" on arm64 {}", l.names().0))
        .unwrap_or_default();
    for (name, calls) in &vectors {
        if only_vector
            .as_ref()
            .is_some_and(|v| !name.starts_with(v.as_str()))
        {
            continue;
        }
        match check(params, calls) {
            Ok(()) => t.passed += 1,
            Err(_) if again(params, calls) => {
                t.passed += 1;
                t.retried += 1;
            }
            Err(e) => {
                t.failed += 1;
                println!("FAILED vector `{name}`{on}: {e}");
            }
        }
    }
    // PAGESIM_KERNEL_ONLY=N runs random sequence N alone (after the vectors).
    let only: Option<u64> = std::env::var("PAGESIM_KERNEL_ONLY")
        .ok()
        .and_then(|s| s.parse().ok());
    let _ = host_dir;
    let dir = files_dir();
    for s in 0..sequences as u64 {
        if only.is_some_and(|o| o != s) {
            continue;
        }
        let calls = random::sequence(0x9e37_79b9_7f4a_7c15 ^ (s * 0x1000_0001), 30, &dir);
        match check(params, &calls) {
            Ok(()) => t.passed += 1,
            Err(_) if again(params, &calls) => {
                t.passed += 1;
                t.retried += 1;
            }
            Err(_) => {
                t.failed += 1;
                let small = shrink(params, calls);
                let e = check(params, &small).err().unwrap_or_default();
                println!(
                    "FAILED random sequence {s}{on} (shrunk to {} calls): {e}",
                    small.len()
                );
            }
        }
    }
    (vectors.len(), t.failed - failed_before)
}

/// Returns pagesim's parameters for the guest's kernel, from what the guest reports.
fn guest_params(link: &arm64::Link) -> Result<LayoutParams, String> {
    let (name, release) = link.names();
    let version = if release.starts_with("6.1.") {
        KernelVersion::V6_1
    } else {
        KernelVersion::V6_12
    };
    let shift = if name.ends_with("16k") { 14 } else { 12 };
    let va52 = link
        .router(arm64::op::PROBE, &[], b"")
        .map_err(|e| e.to_string())?
        .ret
        == 1;
    let mut p = LayoutParams::arm64(version, shift, va52);
    let read = |f: &str| link.read_file(f).ok();
    if let Some(v) = read("/proc/sys/vm/max_map_count").and_then(|s| s.trim().parse().ok()) {
        p.max_map_count = v;
    }
    if let Some(v) = read("/proc/sys/vm/mmap_min_addr").and_then(|s| s.trim().parse::<u64>().ok()) {
        p.dac_mmap_min_addr = v;
        p.mmap_min_addr = v.max(p.mmap_min_addr);
    }
    // The effective value (CONFIG_LSM_MMAP_MIN_ADDR may raise it above the sysctl): where
    // the guest's hint at the first page lands.
    let low = link
        .router(arm64::op::PROBE, &[1], b"")
        .map_err(|e| e.to_string())?;
    if low.ret > 0 && (low.ret as u64) < 1 << 24 {
        p.mmap_min_addr = low.ret as u64;
    }
    let thp = read("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    p.thp = if thp.contains("[always]") {
        ThpMode::Always
    } else if thp.contains("[madvise]") {
        ThpMode::Madvise
    } else {
        ThpMode::Never
    };
    // Per-size (mTHP) settings below the PMD size: pagesim models PMD-sized THPs only, so
    // a guest with a smaller size enabled is reported rather than compared wrongly.
    let pmd_kib = (1u64 << (p.page_shift + p.page_shift - 3)) >> 10;
    let mut kib = (p.page_size() >> 10) * 2;
    while kib < pmd_kib {
        let f = format!("/sys/kernel/mm/transparent_hugepage/hugepages-{kib}kB/enabled");
        if let Some(v) = read(&f) {
            if std::env::var_os("PAGESIM_ARM64_PROBE").is_some() {
                println!("{f}: {}", v.trim());
            }
            if !v.contains("[never]") {
                return Err(format!(
                    "{kib} KiB anonymous mTHP is enabled ({}); pagesim models PMD-sized THPs only",
                    v.trim()
                ));
            }
        }
        kib *= 2;
    }
    if std::env::var_os("PAGESIM_ARM64_PROBE").is_some() {
        for f in [
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
            "/sys/kernel/mm/transparent_hugepage/hugepages-32768kB/enabled",
            "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled",
            "/sys/kernel/mm/transparent_hugepage/shmem_enabled",
            "/sys/kernel/mm/transparent_hugepage/use_zero_page",
            "/proc/self/smaps",
        ] {
            println!("{f}: {}", read(f).unwrap_or_default().trim());
        }
    }
    let features = read("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Features"))
        .unwrap_or_default()
        .to_string();
    let has = |f: &str| features.split_whitespace().any(|w| w == f);
    p.cpu_bti = has("bti");
    p.cpu_mte = has("mte");
    p.rlimit_stack = driver::STACK_RLIMIT;
    if let Some(m) = read("/proc/meminfo") {
        p.commit_limit = commit_limit(&m, read("/proc/sys/vm/overcommit_memory").as_deref());
    }
    Ok(p)
}

/// Compares the maps at the exec stop of each program of `extra` in `progs/` (the guest's
/// files, with their copies here) in the guest and in pagesim; returns the runs made and
/// the failures.
fn guest_exec_stops(
    link: &arm64::Link,
    params: LayoutParams,
    extra: &[(String, std::path::PathBuf)],
) -> (usize, Vec<String>) {
    let mut files = vec![];
    for (path, host) in extra {
        let shown = format!("/{path}");
        match link.stat(&shown) {
            Ok((major, minor, ino, _)) => files.push(exec::GuestFile {
                shown,
                host: host.clone(),
                dev: DevId { major, minor },
                ino,
            }),
            Err(e) => return (1, vec![format!("{shown} in the guest: {e}")]),
        }
    }
    let programs: Vec<String> = files
        .iter()
        .filter(|f| f.shown.starts_with(&format!("/{}/", exec::GUEST_PROGRAMS)))
        .map(|f| f.shown.clone())
        .collect();
    exec::check_with(
        &programs,
        |path, argv, envp, pers| exec::guest_exec_maps(link, path, argv, envp, pers),
        |path, argv, envp, pers| exec::pagesim_exec_guest(params, &files, path, argv, envp, pers),
    )
}

/// Builds (or finds) pagesim-emu's sysroot with emu/sysroot.sh; returns its directory.
fn emu_sysroot() -> Result<std::path::PathBuf, String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("emu/sysroot.sh");
    let out = std::process::Command::new(&script)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().into())
}

/// Where pagesim-emu's test programs go in the guests.
const EMU_PROGRAMS: &str = "emu-progs";
const _: () = assert!(emu_outputs::GUEST_DIR.len() == EMU_PROGRAMS.len() + 1);

/// Builds emu/tests/programs for arm64 into `dir`: (name, host file) of each.
fn build_emu_programs(dir: &std::path::Path) -> Result<Vec<(String, std::path::PathBuf)>, String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("emu/tests/programs");
    let mut out = vec![];
    for prog in emu_outputs::PROGRAMS {
        for (kind, flags) in emu_outputs::KINDS {
            let name = format!("{prog}-{kind}");
            let exe = dir.join(format!("emu-{name}"));
            exec::compile(
                "aarch64-linux-gnu-gcc",
                flags,
                &src.join(format!("{prog}.c")),
                &exe,
            )?;
            out.push((name, exe));
        }
    }
    Ok(out)
}

/// Runs pagesim-emu's test programs in the guest and holds their output to
/// emu/tests/expected/<kernel>/ (`PAGESIM_EMU_EXPECTED_WRITE=1` writes the files instead,
/// for a new program or kernel); returns the runs made and the failures.
fn emu_expected_outputs(
    link: &arm64::Link,
    kernel: &str,
    programs: &[(String, std::path::PathBuf)],
) -> (usize, Vec<String>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("emu/tests/expected")
        .join(kernel);
    let write = std::env::var_os("PAGESIM_EMU_EXPECTED_WRITE").is_some();
    let mut failures = vec![];
    for (name, _) in programs {
        let path = format!("/{EMU_PROGRAMS}/{name}");
        let run = format!("./{name}");
        let mut req = Vec::new();
        for s in [run.as_str(), run.as_str(), "--"]
            .into_iter()
            .chain(emu_outputs::ENVP.iter().copied())
        {
            req.extend_from_slice(s.as_bytes());
            req.push(0);
        }
        let r = match link.router(arm64::op::RUN, &[], &req) {
            Ok(r) if r.ret >= 0 => r,
            Ok(r) => {
                failures.push(format!("running {path}: errno {}", r.errno));
                continue;
            }
            Err(e) => {
                failures.push(format!("running {path}: {e}"));
                continue;
            }
        };
        let ws = r.ret as i32;
        let status = if ws & 0x7f == 0 {
            (ws >> 8) & 0xff
        } else {
            128 + (ws & 0x7f)
        };
        let got = emu_outputs::normalise(&String::from_utf8_lossy(&r.payload), &path, status);
        let file = dir.join(format!("{name}.txt"));
        if write {
            let _ = std::fs::create_dir_all(&dir);
            if let Err(e) = std::fs::write(&file, &got) {
                failures.push(format!("{}: {e}", file.display()));
            }
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{name} on the kernel differs from {}:\n{}",
                file.display(),
                compare::diff(&got, &want)
            )),
            Err(e) => failures.push(format!("{}: {e}", file.display())),
        }
    }
    (programs.len(), failures)
}

/// Boots each arm64 kernel and runs the suite in it. Without the tools or kernels the
/// part is skipped with the reason, unless `PAGESIM_ARM64_REQUIRED` is set (CI), where
/// that is a failure.
fn arm64_suites(host_dir: &std::path::Path, t: &mut Tally) {
    let required = std::env::var_os("PAGESIM_ARM64_REQUIRED").is_some();
    let kernels = match arm64::readiness() {
        arm64::Readiness::Ready(k) => k,
        arm64::Readiness::Missing(why) => {
            if required {
                println!("FAILED: the arm64 cross-check cannot run: {why}");
                t.failed += 1;
            } else {
                println!("arm64 cross-check skipped: {why}");
            }
            return;
        }
    };
    let sequences: usize = std::env::var("PAGESIM_ARM64_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let only = std::env::var("PAGESIM_ARM64_KERNEL").ok();
    // The exec-stop programs: built once, placed in every guest's initramfs with the
    // dynamic loader their PT_INTERP names.
    let programs = match exec::build_arm64_programs(host_dir) {
        Ok(p) => p,
        Err(e) => {
            println!("FAILED: the arm64 exec-stop programs: {e}");
            t.failed += 1;
            vec![]
        }
    };
    let mut extra: Vec<(String, std::path::PathBuf)> = programs
        .iter()
        .map(|(name, host)| (format!("{}/{name}", exec::GUEST_PROGRAMS), host.clone()))
        .collect();
    if !programs.is_empty() {
        extra.push((
            exec::ARM64_INTERP.trim_start_matches('/').to_string(),
            exec::ARM64_LOADER.into(),
        ));
    }
    // pagesim-emu's test programs (emu/tests/programs), whose outputs on these kernels
    // emu/tests/expected holds; with them the C library their dynamic builds load.
    let emu_programs = match build_emu_programs(host_dir) {
        Ok(p) => p,
        Err(e) => {
            println!("FAILED: pagesim-emu's test programs: {e}");
            t.failed += 1;
            vec![]
        }
    };
    for (name, host) in &emu_programs {
        extra.push((format!("{EMU_PROGRAMS}/{name}"), host.clone()));
    }
    extra.push((
        "lib/libc.so.6".into(),
        "/usr/aarch64-linux-gnu/lib/libc.so.6".into(),
    ));
    // The shell and cat that the seed program's system() runs: Debian's arm64 dash and
    // coreutils, from the sysroot emu/sysroot.sh builds (pagesim-emu runs the same ones).
    match emu_sysroot() {
        Ok(root) => {
            extra.push(("bin/sh".into(), root.join("bin/dash")));
            extra.push(("bin/cat".into(), root.join("bin/cat")));
        }
        Err(e) => {
            println!("FAILED: the arm64 sysroot for the shell and cat: {e}");
            t.failed += 1;
        }
    }
    for dir in kernels {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // PAGESIM_ARM64_KERNEL=6.1,6.12 runs those kernels only.
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|k| k.trim() == name))
        {
            continue;
        }
        let link = match arm64::Guest::boot(&dir, &extra) {
            Ok(g) => arm64::Link::new(g),
            Err(e) => {
                println!("FAILED: arm64 {name}: {e}");
                t.failed += 1;
                continue;
            }
        };
        let params = match guest_params(&link) {
            Ok(p) => p,
            Err(e) => {
                println!("FAILED: arm64 {name}: {e}");
                t.failed += 1;
                link.power_off();
                continue;
            }
        };
        let (mut exec_runs, mut exec_failures) = guest_exec_stops(&link, params, &extra);
        let (runs, failures) = emu_expected_outputs(&link, &name, &emu_programs);
        exec_runs += runs;
        exec_failures.extend(failures);
        t.passed += exec_runs - exec_failures.len();
        t.failed += exec_failures.len();
        for f in &exec_failures {
            println!("FAILED on arm64 {name}: {f}");
        }
        PAGE_SHIFT.store(params.page_shift, std::sync::atomic::Ordering::Relaxed);
        arm64::set_current(Some(link.clone()));
        let signals = SIGNAL_CHECKS.load(std::sync::atomic::Ordering::Relaxed);
        let (n, failed) = suite(params, sequences, host_dir, t);
        arm64::set_current(None);
        PAGE_SHIFT.store(12, std::sync::atomic::Ordering::Relaxed);
        let (_, release) = link.names();
        link.power_off();
        println!(
            "kernel cross-check on arm64 {release} ({} KiB pages, {}-bit user VA, THP {:?}, mmap_min_addr {:#x} (sysctl {:#x}), BTI {}): {exec_runs} exec stops and runs of {} programs, {n} vectors + {sequences} random sequences of 30 calls, {} SIGSEGVs compared, {} failed",
            params.page_size() >> 10,
            u64::BITS - 1 - params.task_size.leading_zeros(),
            params.thp,
            params.mmap_min_addr,
            params.dac_mmap_min_addr,
            params.cpu_bti,
            programs.len() + emu_programs.len(),
            SIGNAL_CHECKS.load(std::sync::atomic::Ordering::Relaxed) - signals,
            failed + exec_failures.len(),
        );
    }
}

fn main() {
    if std::env::var_os("PAGESIM_EXECUTOR").is_some() {
        executor::run();
    }
    if !cfg!(target_os = "linux") || !std::path::Path::new("/proc/self/maps").exists() {
        println!("kernel cross-check skipped: needs Linux with /proc (this host has neither)");
        println!("test result: ok. 0 passed; 0 failed; 1 skipped");
        return;
    }
    compare::check_sampled_only();
    let Some(params) = host_params() else {
        println!(
            "kernel cross-check skipped: no pagesim layout for host architecture {}",
            std::env::consts::ARCH
        );
        println!("test result: ok. 0 passed; 0 failed; 1 skipped");
        return;
    };
    let dir = match create_files() {
        Ok(d) => d,
        Err(e) => {
            println!("FAILED: cannot create the harness files: {e}");
            std::process::exit(1);
        }
    };
    // The executors inherit it.
    std::env::set_var("PAGESIM_FILES_DIR", &dir);
    std::env::set_var("PAGESIM_CHANNELS_DIR", &dir);
    if !driver::pin_driver() {
        println!("note: one CPU only: the driver shares the executor's per-CPU folio batches");
    }
    let sequences: usize = std::env::var("PAGESIM_KERNEL_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut t = Tally::default();
    if std::env::var_os("PAGESIM_ARM64_ONLY").is_none() {
        // Exec stops: the test program built four ways, and /usr/bin/env.
        let mut programs: Vec<String> = exec::build_programs(&dir)
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if std::path::Path::new("/usr/bin/env").exists() {
            programs.push("/usr/bin/env".into());
        }
        let (exec_runs, exec_failures) = exec::check_all(params, &programs);
        t.passed += exec_runs - exec_failures.len();
        t.failed += exec_failures.len();
        for f in &exec_failures {
            println!("FAILED {f}");
        }
        let signals = SIGNAL_CHECKS.load(std::sync::atomic::Ordering::Relaxed);
        let (n, _) = suite(params, sequences, &dir, &mut t);
        println!(
            "kernel cross-check on {} {}: {exec_runs} exec stops of {} programs, {n} vectors + {sequences} random sequences of 30 calls, {} SIGSEGVs compared",
            std::env::consts::ARCH,
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim(),
            programs.len(),
            SIGNAL_CHECKS.load(std::sync::atomic::Ordering::Relaxed) - signals,
        );
    }
    arm64_suites(&dir, &mut t);
    let sampled = compare::SAMPLED.load(std::sync::atomic::Ordering::Relaxed);
    if sampled > 0 {
        println!(
            "{sampled} smaps comparisons differed only in Referenced, by no more than the \
             pages the machine's DAMON had sampled (made old, KPF_IDLE) in each VMA"
        );
    }
    if t.retried > 0 {
        println!(
            "{} scripts passed when run again (a kernel-side drain of the per-CPU \
             folio batches moved LazyFree early the first time)",
            t.retried
        );
    }
    println!(
        "test result: {}. {} passed; {} failed",
        if t.failed == 0 { "ok" } else { "FAILED" },
        t.passed,
        t.failed
    );
    let _ = std::fs::remove_dir_all(&dir);
    if t.failed > 0 {
        std::process::exit(1);
    }
}
