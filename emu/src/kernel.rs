//! The simulated kernel under the emulated CPU: pagesim's process model answers every
//! translation the CPU misses and every memory system call, and a small Linux system-call
//! layer serves the rest (files from the sysroot and /proc from the model, the console
//! from the host).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use pagesim::arch::AccessKind;
use pagesim::linux::mm::mman::{Advice, MapFlags, Prot};
use pagesim::linux::mm::mremap::MremapFlags;
use pagesim::linux::mm::{Errno, LayoutParams, OpenFile};
use pagesim::linux::paging::Touch;
use pagesim::linux::storage::{SimProcess, SimSystem};
use pagesim::VirtAddr;

use crate::ram::Ram;

/// A system call's error: the errno it returns (negated in x0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E(pub i32);

impl E {
    pub const EPERM: E = E(1);
    pub const ENOENT: E = E(2);
    pub const EIO: E = E(5);
    pub const EBADF: E = E(9);
    pub const EACCES: E = E(13);
    pub const EFAULT: E = E(14);
    pub const ENODEV: E = E(19);
    pub const EISDIR: E = E(21);
    pub const EINVAL: E = E(22);
    pub const ENOTTY: E = E(25);
    pub const ESPIPE: E = E(29);
    pub const EROFS: E = E(30);
    pub const ENAMETOOLONG: E = E(36);
    pub const ENOSYS: E = E(38);
}

impl From<Errno> for E {
    fn from(e: Errno) -> E {
        E(e.number())
    }
}

impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit_group(code)`.
    Code(i32),
    /// Killed by a signal (`SIGSEGV` = 11, `SIGBUS` = 7, `SIGILL` = 4, `SIGKILL` = 9).
    Signal(i32),
}

impl Exit {
    /// Returns the shell's `$?` for this end: the code, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c & 0xff,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// The counters `--stats` prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// TLB fills the CPU asked for (its own TLB missed).
    pub tlb_fills: u64,
    /// System calls made.
    pub syscalls: u64,
}

/// An open file descriptor.
#[derive(Clone)]
enum Fd {
    /// The host's standard input, output or error.
    Host(i32),
    /// A file: its bytes (read when opened), the read offset, and for sysroot files the
    /// open file pagesim maps.
    File(Box<OpenFd>),
}

/// A file opened for reading.
#[derive(Clone)]
struct OpenFd {
    data: Vec<u8>,
    pos: u64,
    stat: FileStat,
    mappable: Option<OpenFile>,
}

/// What `fstat` reports of a file.
#[derive(Clone, Copy, Debug)]
struct FileStat {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    /// `st_blksize`: the C library sizes its stdio buffers by it.
    blksize: u32,
}

/// A process the kernel runs (besides the one on the CPU, whose state is in [`Kernel`]).
struct Task {
    pid: u32,
    ppid: u32,
    state: TaskState,
    /// Its file descriptors while it is off the CPU.
    fds: Vec<Option<Fd>>,
}

/// Where a process stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    /// Can run (its registers are saved).
    Ready,
    /// On the CPU.
    Running,
    /// In `wait4` for `pid` (-1: any child), the status to go to `status_va`.
    Waiting { pid: i64, status_va: u64 },
    /// A vfork parent, until the child execs or exits.
    VforkParent { child: u32 },
    /// Exited with this wait status, not yet reaped.
    Zombie(i32),
}

/// What the machine must do with the CPU after a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Save the running process's registers (its x0 set to `ret`), put `to` on the CPU:
    /// with its saved registers, or for a new child its parent's (`from`) with x0 = 0 and,
    /// if `sp` is not 0, that stack.
    To {
        /// The process leaving the CPU (still alive).
        from: u32,
        /// The process to run.
        to: u32,
        /// For a new child: the stack it starts on (0: its parent's).
        child_sp: Option<u64>,
        /// The value the leaving process's x0 gets.
        ret: u64,
    },
    /// The running process ended; put `to` on the CPU with x0 = `x0` (a wait4 answered),
    /// or, with `None`, as it was saved.
    Exited {
        /// The process to run.
        to: u32,
        /// Its x0.
        x0: Option<u64>,
    },
    /// The running process exec'd a new image: start it at `pc` with `sp`; with `then`
    /// (child, parent), save it so and run its vfork parent, which the exec released.
    Exec {
        /// Entry.
        pc: u64,
        /// Initial stack pointer.
        sp: u64,
        /// The exec'ing vfork child and the parent to run now.
        then: Option<(u32, u32)>,
    },
}

/// The simulated kernel of one process.
pub struct Kernel {
    /// pagesim's processes (one, for now).
    pub sys: SimSystem<'static>,
    /// The simulated RAM.
    pub ram: Ram,
    /// The layout pagesim models.
    pub params: LayoutParams,
    /// Where the program's files (its interpreter, the libraries, /bin/sh) come from.
    pub sysroot: PathBuf,
    /// Print each fault and system call on stderr.
    pub trace: bool,
    /// Counters for `--stats`.
    pub stats: Stats,
    /// Set once the program ended.
    pub exit: Option<Exit>,
    /// Set when the emulator's cached translations must go before the CPU runs on.
    pub flush: bool,
    /// Which of fds 0, 1 and 2 are terminals to the program (`TCGETS` succeeds on them,
    /// so the C library line-buffers stdout).
    pub ttys: [bool; 3],
    fds: Vec<Option<Fd>>,
    random: u64,
    /// Every process; the running one is `running`.
    tasks: Vec<Task>,
    /// The pid on the CPU.
    pub running: u32,
    /// The first process: its end is the program's.
    pub first: u32,
    /// Set by a system call that takes the CPU from the running process.
    pub switch: Option<Switch>,
    /// The saved registers of the processes off the CPU.
    pub contexts: std::collections::HashMap<u32, unicorn_engine::Context>,
}

/// The system-call numbers of arm64 Linux (asm-generic) that the layer serves.
mod nr {
    pub const GETCWD: u64 = 17;
    pub const IOCTL: u64 = 29;
    pub const FACCESSAT: u64 = 48;
    pub const OPENAT: u64 = 56;
    pub const CLOSE: u64 = 57;
    pub const LSEEK: u64 = 62;
    pub const READ: u64 = 63;
    pub const WRITE: u64 = 64;
    pub const WRITEV: u64 = 66;
    pub const PREAD64: u64 = 67;
    pub const READLINKAT: u64 = 78;
    pub const NEWFSTATAT: u64 = 79;
    pub const FSTAT: u64 = 80;
    pub const EXIT: u64 = 93;
    pub const EXIT_GROUP: u64 = 94;
    pub const SET_TID_ADDRESS: u64 = 96;
    pub const FUTEX: u64 = 98;
    pub const SET_ROBUST_LIST: u64 = 99;
    pub const CLOCK_GETTIME: u64 = 113;
    pub const TGKILL: u64 = 131;
    pub const RT_SIGACTION: u64 = 134;
    pub const RT_SIGPROCMASK: u64 = 135;
    pub const UNAME: u64 = 160;
    pub const GETPID: u64 = 172;
    pub const GETPPID: u64 = 173;
    pub const GETUID: u64 = 174;
    pub const GETEUID: u64 = 175;
    pub const GETGID: u64 = 176;
    pub const GETEGID: u64 = 177;
    pub const GETTID: u64 = 178;
    pub const BRK: u64 = 214;
    pub const MUNMAP: u64 = 215;
    pub const MREMAP: u64 = 216;
    pub const MMAP: u64 = 222;
    pub const MPROTECT: u64 = 226;
    pub const MADVISE: u64 = 233;
    pub const PRLIMIT64: u64 = 261;
    pub const GETRANDOM: u64 = 278;
    pub const RSEQ: u64 = 293;
    pub const CLONE: u64 = 220;
    pub const EXECVE: u64 = 221;
    pub const WAIT4: u64 = 260;
    pub const CLONE3: u64 = 435;
    pub const DUP3: u64 = 24;
    pub const FCNTL: u64 = 25;
}

/// `AT_FDCWD`.
const AT_FDCWD: i64 = -100;

impl Kernel {
    /// Wraps a process that exec'd its program.
    pub fn new(sys: SimSystem<'static>, ram: Ram, params: LayoutParams, sysroot: PathBuf) -> Self {
        Kernel {
            sys,
            ram,
            params,
            sysroot,
            trace: false,
            stats: Stats::default(),
            exit: None,
            flush: false,
            ttys: [false; 3],
            fds: vec![Some(Fd::Host(0)), Some(Fd::Host(1)), Some(Fd::Host(2))],
            random: 0x9e37_79b9_7f4a_7c15,
            tasks: vec![Task {
                pid: 1,
                ppid: 0,
                state: TaskState::Running,
                fds: vec![],
            }],
            running: 1,
            first: 1,
            switch: None,
            contexts: std::collections::HashMap::new(),
        }
    }

    /// Returns the process.
    pub fn process(&mut self) -> &mut SimProcess<'static> {
        self.sys.process_mut()
    }

    /// Answers a TLB miss of the CPU at `va` for `kind`: the physical address of its page
    /// after pagesim's walk and, where the walk faults, its fault handler; `Err` with the
    /// signal the kernel would send.
    pub fn fill(&mut self, va: u64, kind: AccessKind) -> Result<u64, Exit> {
        if let Some(e) = self.exit {
            // Ended: the CPU runs on to the end of its block; nothing more happens.
            return Err(e);
        }
        self.stats.tlb_fills += 1;
        let before = self.process().paging().stats().faults;
        let inv = self.invalidations();
        let r = self.process().access(VirtAddr::new(va), kind);
        if self.invalidations() != inv {
            // The fault changed entries the CPU may hold (a COW, a THP in place of the
            // huge zero page): they go before it runs on.
            self.flush = true;
        }
        let faulted = self.process().paging().stats().faults != before;
        if self.trace && faulted {
            eprintln!("[pagesim] fault {kind:?} {va:#x}: {r:?}");
        }
        match r {
            Touch::Done(pa) => Ok(pa.as_u64() & !(self.params.page_size() - 1)),
            Touch::Segv(_) => Err(Exit::Signal(11)),
            Touch::Bus(_) => Err(Exit::Signal(7)),
            Touch::OutOfMemory { .. } => Err(Exit::Signal(9)),
        }
    }

    /// Copies `len` bytes from the process at `va` (faulting pages in as the kernel's
    /// `copy_from_user` does); `EFAULT` where it cannot.
    pub fn copy_from_user(&mut self, va: u64, len: usize) -> Result<Vec<u8>, E> {
        let mut out = vec![0u8; len];
        self.user_pages(va, len, AccessKind::Read, |ram, pa, range, out_off| {
            ram.read(pa, &mut out[out_off..out_off + range])
        })?;
        Ok(out)
    }

    /// Copies `data` to the process at `va`; `EFAULT` where it cannot.
    pub fn copy_to_user(&mut self, va: u64, data: &[u8]) -> Result<(), E> {
        self.user_pages(va, data.len(), AccessKind::Write, |ram, pa, range, off| {
            ram.write(pa, &data[off..off + range])
        })
    }

    /// Runs `f(ram, pa, bytes, offset)` over the pages of `[va, va + len)`.
    fn user_pages(
        &mut self,
        va: u64,
        len: usize,
        kind: AccessKind,
        mut f: impl FnMut(&Ram, u64, usize, usize) -> bool,
    ) -> Result<(), E> {
        let page = self.params.page_size();
        let mut done = 0usize;
        while done < len {
            let a = va.checked_add(done as u64).ok_or(E::EFAULT)?;
            let in_page = (page - (a & (page - 1))) as usize;
            let n = in_page.min(len - done);
            let pa = match self.process().access(VirtAddr::new(a), kind) {
                Touch::Done(pa) => pa.as_u64(),
                _ => return Err(E::EFAULT),
            };
            if !f(&self.ram, pa, n, done) {
                return Err(E::EFAULT);
            }
            done += n;
        }
        Ok(())
    }

    /// Reads a NUL-terminated string of at most 4096 bytes.
    fn user_string(&mut self, va: u64) -> Result<String, E> {
        let mut s = Vec::new();
        for i in 0..4096u64 {
            let b = self.copy_from_user(va + i, 1)?[0];
            if b == 0 {
                return String::from_utf8(s).map_err(|_| E::ENOENT);
            }
            s.push(b);
        }
        Err(E::ENAMETOOLONG)
    }

    /// Makes system call `nr` with `a`; returns the value for x0 (a negative errno on
    /// failure).
    pub fn syscall(&mut self, nr: u64, a: [u64; 6]) -> i64 {
        self.stats.syscalls += 1;
        if self.exit.is_some() {
            return 0;
        }
        let r = self.dispatch(nr, a);
        if self.trace {
            match r {
                Ok(v) => eprintln!(
                    "[pagesim] syscall {nr}({:#x}, {:#x}, {:#x}) = {v:#x}",
                    a[0], a[1], a[2]
                ),
                Err(e) => eprintln!(
                    "[pagesim] syscall {nr}({:#x}, {:#x}, {:#x}) = -{}",
                    a[0], a[1], a[2], e.0
                ),
            }
        }
        match r {
            Ok(v) => v,
            Err(e) => -(e.0 as i64),
        }
    }

    fn dispatch(&mut self, n: u64, a: [u64; 6]) -> Result<i64, E> {
        match n {
            nr::WRITE => self.write(a[0], a[1], a[2]),
            nr::WRITEV => self.writev(a[0], a[1], a[2]),
            nr::READ => self.read(a[0], a[1], a[2], None),
            nr::PREAD64 => self.read(a[0], a[1], a[2], Some(a[3])),
            nr::OPENAT => self.openat(a[0] as i64, a[1], a[2]),
            nr::CLOSE => {
                self.fd_mut(a[0])?;
                self.fds[a[0] as usize] = None;
                Ok(0)
            }
            nr::LSEEK => self.lseek(a[0], a[1] as i64, a[2]),
            nr::FSTAT => {
                let st = self.fstat_of(a[0])?;
                self.put_stat(a[1], st)
            }
            nr::NEWFSTATAT => self.newfstatat(a[0] as i64, a[1], a[2], a[3]),
            nr::FACCESSAT => {
                let path = self.user_string(a[1])?;
                self.host_path(&path)
                    .filter(|p| p.exists())
                    .map(|_| 0)
                    .ok_or(E::ENOENT)
            }
            nr::READLINKAT => Err(E::EINVAL),
            nr::GETCWD => {
                self.copy_to_user(a[0], b"/\0")?;
                Ok(2)
            }
            nr::IOCTL => self.ioctl(a[0], a[1], a[2]),
            nr::EXIT | nr::EXIT_GROUP => {
                self.end(Exit::Code(a[0] as i32));
                Ok(0)
            }
            nr::SET_TID_ADDRESS | nr::GETPID | nr::GETTID => Ok(self.running as i64),
            nr::GETPPID => Ok(self.task(self.running).map_or(0, |t| t.ppid) as i64),
            nr::CLONE => self.clone_(a[0], a[1]),
            nr::CLONE3 => Err(E::ENOSYS),
            nr::EXECVE => self.execve(a[0], a[1], a[2]),
            nr::WAIT4 => self.wait4(a[0] as i64, a[1], a[2]),
            nr::FCNTL => Ok(0),
            nr::DUP3 => {
                let f = self.fd_mut(a[0])?.clone();
                let n = a[1] as usize;
                if n >= 1024 {
                    return Err(E::EBADF);
                }
                if self.fds.len() <= n {
                    self.fds.resize_with(n + 1, || None);
                }
                self.fds[n] = Some(f);
                Ok(n as i64)
            }
            nr::GETUID | nr::GETEUID | nr::GETGID | nr::GETEGID => Ok(0),
            nr::SET_ROBUST_LIST | nr::RT_SIGACTION | nr::RT_SIGPROCMASK | nr::FUTEX => Ok(0),
            nr::RSEQ => Err(E::ENOSYS),
            nr::TGKILL => {
                self.end(Exit::Signal(a[2] as i32));
                Ok(0)
            }
            nr::CLOCK_GETTIME => {
                let mut ts = [0u8; 16];
                ts[..8].copy_from_slice(&1_700_000_000u64.to_le_bytes());
                self.copy_to_user(a[1], &ts)?;
                Ok(0)
            }
            nr::UNAME => self.uname(a[0]),
            nr::PRLIMIT64 => {
                if a[2] != 0 {
                    return Err(E::EPERM);
                }
                if a[3] != 0 {
                    let lim: u64 = if a[1] == 3 { 8 << 20 } else { u64::MAX };
                    let mut b = [0u8; 16];
                    b[..8].copy_from_slice(&lim.to_le_bytes());
                    b[8..].copy_from_slice(&u64::MAX.to_le_bytes());
                    self.copy_to_user(a[3], &b)?;
                }
                Ok(0)
            }
            nr::GETRANDOM => {
                let mut b = vec![0u8; a[1].min(256) as usize];
                for x in b.iter_mut() {
                    self.random ^= self.random << 13;
                    self.random ^= self.random >> 7;
                    self.random ^= self.random << 17;
                    *x = self.random as u8;
                }
                self.copy_to_user(a[0], &b)?;
                Ok(b.len() as i64)
            }
            nr::BRK => self.mm(|p| p.brk(a[0])),
            nr::MMAP => self.mmap(a),
            nr::MUNMAP => self.mm(|p| p.munmap(a[0], a[1]).map(|_| 0)),
            nr::MPROTECT => self.mm(|p| {
                p.mprotect(a[0], a[1], Prot::from_bits_retain(a[2] as u32))
                    .map(|_| 0)
            }),
            nr::MADVISE => self.mm(|p| {
                p.madvise(a[0], a[1], Advice::from_raw(a[2] as i32))
                    .map(|_| 0)
            }),
            nr::MREMAP => self.mm(|p| {
                p.mremap(
                    a[0],
                    a[1],
                    a[2],
                    MremapFlags::from_bits_retain(a[3] as u32),
                    a[4],
                )
            }),
            _ => Err(E::ENOSYS),
        }
    }

    /// Runs a memory call and has the emulator drop its cached translations.
    fn mm(
        &mut self,
        f: impl FnOnce(&mut SimProcess<'static>) -> Result<u64, Errno>,
    ) -> Result<i64, E> {
        let before = self.invalidations();
        let r = f(self.process());
        // The CPU's translations go exactly when pagesim's Flush records invalidated some
        // of its own TLB (Unicorn's host API flushes all of them).
        if self.invalidations() != before {
            self.flush = true;
        }
        r.map(|v| v as i64).map_err(E::from)
    }

    /// Returns how many TLB invalidations pagesim's MMU has made (its Flush records).
    pub fn invalidations(&self) -> u64 {
        self.sys.process().paging().mmu().stats().invalidations
    }

    fn mmap(&mut self, a: [u64; 6]) -> Result<i64, E> {
        let prot = Prot::from_bits_retain(a[2] as u32);
        let flags = MapFlags::from_bits_retain(a[3] as u32);
        if flags.contains(MapFlags::ANONYMOUS) {
            return self.mm(|p| p.mmap(a[0], a[1], prot, flags));
        }
        let file = match self.fds.get(a[4] as usize) {
            Some(Some(Fd::File(f))) if f.mappable.is_some() => f.mappable.unwrap(),
            Some(Some(_)) => return Err(E::ENODEV),
            _ => return Err(E::EBADF),
        };
        self.mm(|p| p.mmap_file(a[0], a[1], prot, flags, &file, a[5]))
    }

    fn fd_mut(&mut self, fd: u64) -> Result<&mut Fd, E> {
        self.fds
            .get_mut(fd as usize)
            .and_then(|f| f.as_mut())
            .ok_or(E::EBADF)
    }

    fn write(&mut self, fd: u64, buf: u64, len: u64) -> Result<i64, E> {
        let data = self.copy_from_user(buf, len.min(1 << 20) as usize)?;
        match self.fd_mut(fd)? {
            Fd::Host(h) => {
                use std::io::Write;
                let r = if *h == 2 {
                    std::io::stderr().write_all(&data)
                } else {
                    let mut o = std::io::stdout();
                    o.write_all(&data).and_then(|_| o.flush())
                };
                r.map_err(|_| E::EIO)?;
                Ok(data.len() as i64)
            }
            Fd::File(_) => Err(E::EBADF),
        }
    }

    fn writev(&mut self, fd: u64, iov: u64, cnt: u64) -> Result<i64, E> {
        let mut total = 0i64;
        for i in 0..cnt.min(1024) {
            let v = self.copy_from_user(iov + i * 16, 16)?;
            let base = u64::from_le_bytes(v[..8].try_into().unwrap());
            let len = u64::from_le_bytes(v[8..].try_into().unwrap());
            if len > 0 {
                total += self.write(fd, base, len)?;
            }
        }
        Ok(total)
    }

    fn read(&mut self, fd: u64, buf: u64, len: u64, at: Option<u64>) -> Result<i64, E> {
        let chunk = match self.fd_mut(fd)? {
            Fd::Host(0) => {
                use std::io::Read;
                let mut b = vec![0u8; len.min(1 << 16) as usize];
                let n = std::io::stdin().read(&mut b).map_err(|_| E::EIO)?;
                b.truncate(n);
                b
            }
            Fd::Host(_) => return Err(E::EBADF),
            Fd::File(f) => {
                let OpenFd { data, pos, .. } = &mut **f;
                let start = at.unwrap_or(*pos).min(data.len() as u64) as usize;
                let end = (start as u64 + len).min(data.len() as u64) as usize;
                if at.is_none() {
                    *pos = end as u64;
                }
                data[start..end].to_vec()
            }
        };
        self.copy_to_user(buf, &chunk)?;
        Ok(chunk.len() as i64)
    }

    fn lseek(&mut self, fd: u64, off: i64, whence: u64) -> Result<i64, E> {
        match self.fd_mut(fd)? {
            Fd::File(f) => {
                let OpenFd { data, pos, .. } = &mut **f;
                let base = match whence {
                    0 => 0,
                    1 => *pos as i64,
                    2 => data.len() as i64,
                    _ => return Err(E::EINVAL),
                };
                let new = base.checked_add(off).filter(|&n| n >= 0).ok_or(E::EINVAL)?;
                *pos = new as u64;
                Ok(new)
            }
            Fd::Host(_) => Err(E::ESPIPE),
        }
    }

    /// Maps a guest path to the host: the sysroot's copy. The host's own files stay out of
    /// sight (its /etc/ld.so.cache, say, describes another machine's libraries).
    fn host_path(&self, path: &str) -> Option<PathBuf> {
        let in_root = self.sysroot.join(path.trim_start_matches('/'));
        in_root.exists().then_some(in_root)
    }

    /// Renders a /proc file of the model, if `path` names one (`self` or a live pid).
    fn proc_file(&mut self, path: &str) -> Option<Result<Vec<u8>, E>> {
        let rest = path.strip_prefix("/proc/")?;
        let (who, file) = rest.split_once('/')?;
        let pid = match who {
            "self" => self.running,
            n => match n.parse::<u32>() {
                Ok(p)
                    if self
                        .task(p)
                        .is_some_and(|t| !matches!(t.state, TaskState::Zombie(_))) =>
                {
                    p
                }
                _ => return Some(Err(E::ENOENT)),
            },
        };
        // The process's address space is on the CPU while it renders.
        let back = self.running;
        if pid != back && self.sys.switch(pid).is_err() {
            return Some(Err(E::ENOENT));
        }
        let r = match file {
            "maps" => Ok(self.process().maps_string().into_bytes()),
            "smaps" => self
                .process()
                .smaps_string()
                .map(String::into_bytes)
                .map_err(|_| E::EIO),
            _ => Err(E::ENOENT),
        };
        if pid != back {
            let _ = self.sys.switch(back);
        }
        Some(r)
    }

    fn openat(&mut self, dirfd: i64, path_va: u64, flags: u64) -> Result<i64, E> {
        let path = self.user_string(path_va)?;
        if dirfd != AT_FDCWD && !path.starts_with('/') {
            return Err(E::ENOENT);
        }
        if flags & 3 != 0 {
            // Writing to files is not modelled.
            return Err(E::EROFS);
        }
        let fd = if let Some(r) = self.proc_file(&path) {
            // A seq file: rendered when opened, size 0 in fstat as the kernel reports it.
            Fd::File(Box::new(OpenFd {
                data: r?,
                pos: 0,
                stat: FileStat {
                    dev: 0x16,
                    ino: 1,
                    mode: 0o100444,
                    size: 0,
                    blksize: 1024,
                },
                mappable: None,
            }))
        } else {
            let host = self.host_path(&path).ok_or(E::ENOENT)?;
            let meta = std::fs::metadata(&host).map_err(|_| E::ENOENT)?;
            let page = self.params.page_size();
            if meta.is_dir() {
                return Err(E::EISDIR);
            }
            let data = std::fs::read(&host).map_err(|_| E::EACCES)?;
            // The sysroot's files were given their guest paths before the process was
            // built (see `machine::sysroot_aliases`), so maps shows those.
            let mappable = self.process().open(&path).ok();
            Fd::File(Box::new(OpenFd {
                data,
                pos: 0,
                stat: FileStat {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    mode: meta.mode(),
                    size: meta.len(),
                    blksize: page as u32,
                },
                mappable,
            }))
        };
        let slot = match self.fds.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.fds.push(None);
                self.fds.len() - 1
            }
        };
        self.fds[slot] = Some(fd);
        Ok(slot as i64)
    }

    fn fstat_of(&mut self, fd: u64) -> Result<FileStat, E> {
        let page = self.params.page_size() as u32;
        let ttys = self.ttys;
        Ok(match self.fd_mut(fd)? {
            // A terminal (devpts), else a pipe (pipefs: blocks of a page).
            Fd::Host(h) if ttys.get(*h as usize).copied().unwrap_or(false) => FileStat {
                dev: 0x16,
                ino: 3,
                mode: 0o20620,
                size: 0,
                blksize: 1024,
            },
            Fd::Host(_) => FileStat {
                dev: 0xe,
                ino: 4,
                mode: 0o10600,
                size: 0,
                blksize: page,
            },
            Fd::File(f) => f.stat,
        })
    }

    fn newfstatat(&mut self, dirfd: i64, path_va: u64, st: u64, flags: u64) -> Result<i64, E> {
        const AT_EMPTY_PATH: u64 = 0x1000;
        let path = self.user_string(path_va)?;
        if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
            let s = self.fstat_of(dirfd as u64)?;
            return self.put_stat(st, s);
        }
        let host = self.host_path(&path).ok_or(E::ENOENT)?;
        let meta = std::fs::metadata(host).map_err(|_| E::ENOENT)?;
        let blksize = self.params.page_size() as u32;
        self.put_stat(
            st,
            FileStat {
                dev: meta.dev(),
                ino: meta.ino(),
                mode: meta.mode(),
                size: meta.len(),
                blksize,
            },
        )
    }

    /// Writes an arm64 `struct stat` (asm-generic, 128 bytes).
    fn put_stat(&mut self, va: u64, s: FileStat) -> Result<i64, E> {
        let mut b = [0u8; 128];
        b[0..8].copy_from_slice(&s.dev.to_le_bytes());
        b[8..16].copy_from_slice(&s.ino.to_le_bytes());
        b[16..20].copy_from_slice(&s.mode.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[48..56].copy_from_slice(&s.size.to_le_bytes());
        b[56..60].copy_from_slice(&s.blksize.to_le_bytes());
        b[64..72].copy_from_slice(&s.size.div_ceil(512).to_le_bytes());
        self.copy_to_user(va, &b)?;
        Ok(0)
    }

    fn uname(&mut self, va: u64) -> Result<i64, E> {
        let release = match self.params.version {
            pagesim::linux::mm::KernelVersion::V6_1 => "6.1.0-pagesim",
            _ => "6.12.0-pagesim",
        };
        let mut b = vec![0u8; 65 * 6];
        for (i, f) in ["Linux", "pagesim", release, "#1 SMP", "aarch64", "(none)"]
            .iter()
            .enumerate()
        {
            b[i * 65..i * 65 + f.len()].copy_from_slice(f.as_bytes());
        }
        self.copy_to_user(va, &b)?;
        Ok(0)
    }
}

impl Kernel {
    /// `ioctl`: `TCGETS` and `TIOCGWINSZ` on a terminal; `ENOTTY` elsewhere.
    fn ioctl(&mut self, fd: u64, req: u64, arg: u64) -> Result<i64, E> {
        const TCGETS: u64 = 0x5401;
        const TIOCGWINSZ: u64 = 0x5413;
        let host = match self.fd_mut(fd)? {
            Fd::Host(h) => Some(*h as usize),
            Fd::File(_) => None,
        };
        let tty = host.is_some_and(|h| self.ttys.get(h).copied().unwrap_or(false));
        match req {
            TCGETS | TIOCGWINSZ if !tty => Err(E::ENOTTY),
            TCGETS => {
                // struct termios (asm-generic): iflag, oflag, cflag, lflag, line, cc[19].
                let mut t = [0u8; 36];
                t[0..4].copy_from_slice(&0o2400u32.to_le_bytes()); // ICRNL | IXON
                t[4..8].copy_from_slice(&0o5u32.to_le_bytes()); // OPOST | ONLCR
                t[8..12].copy_from_slice(&0o277u32.to_le_bytes()); // B38400 | CS8 | CREAD
                t[12..16].copy_from_slice(&0o105073u32.to_le_bytes()); // ISIG | ICANON | ECHO…
                self.copy_to_user(arg, &t)?;
                Ok(0)
            }
            TIOCGWINSZ => {
                let mut w = [0u8; 8];
                w[0..2].copy_from_slice(&24u16.to_le_bytes());
                w[2..4].copy_from_slice(&80u16.to_le_bytes());
                self.copy_to_user(arg, &w)?;
                Ok(0)
            }
            _ => Err(E::ENOTTY),
        }
    }

    /// Returns the counters `--stats` prints, one per line.
    pub fn report(&mut self, instructions: u64) -> String {
        let Stats {
            tlb_fills,
            syscalls,
        } = self.stats;
        let p = self.process();
        let s = *p.paging().stats();
        let frames = p.paging().frames();
        let used = frames.total_frames() - frames.free_frames();
        let tables = p
            .paging()
            .mapper()
            .tables_per_level(p.paging().mmu().memory())
            .map(|t| {
                (0..5)
                    .filter(|&i| t[i] > 0)
                    .map(|i| format!("L{} {}", i as i32 - 1, t[i]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|e| format!("unreadable ({e:?})"));
        format!(
            "guest instructions: {instructions}\n\
             TLB fills: {tlb_fills}\n\
             system calls: {syscalls}\n\
             page faults: {} (anonymous pages {}, zero page {}, huge zero page {}, COW {}, THP {}, SIGSEGV {}, SIGBUS {})\n\
             frames in use: {used} of {}\n\
             page-table frames: {tables}\n",
            s.faults,
            s.anon_pages,
            s.zero_page_maps,
            s.huge_zero_maps,
            s.cow,
            s.thp,
            s.segv,
            s.sigbus,
            frames.total_frames(),
        )
    }
}

/// `clone` flags the layer looks at.
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;

impl Kernel {
    fn task(&self, pid: u32) -> Option<&Task> {
        self.tasks.iter().find(|t| t.pid == pid)
    }

    fn task_mut(&mut self, pid: u32) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.pid == pid)
    }

    /// Puts `to` on the CPU in the model: its address space current, its descriptors in
    /// place; the process leaving keeps its own.
    fn put_on_cpu(&mut self, to: u32) {
        let from = self.running;
        if from == to {
            return;
        }
        let fds = std::mem::take(&mut self.fds);
        if let Some(t) = self.task_mut(from) {
            t.fds = fds;
            if t.state == TaskState::Running {
                t.state = TaskState::Ready;
            }
        }
        if let Some(t) = self.tasks.iter_mut().find(|t| t.pid == to) {
            self.fds = std::mem::take(&mut t.fds);
            t.state = TaskState::Running;
        }
        self.running = to;
        let _ = self.sys.switch(to);
        self.flush = true;
    }

    /// A process to run next other than `not`: a ready child of the running process first.
    fn pick_ready(&self, not: u32) -> Option<u32> {
        let ready = |t: &&Task| t.pid != not && t.state == TaskState::Ready;
        self.tasks
            .iter()
            .filter(ready)
            .find(|t| t.ppid == self.running)
            .or_else(|| self.tasks.iter().find(ready))
            .map(|t| t.pid)
    }

    /// Ends the running process: the program's end if it is the first, else it becomes a
    /// zombie and its parent (if it waits for it, or vforked it) or another process runs.
    pub fn end(&mut self, e: Exit) {
        let pid = self.running;
        if pid == self.first {
            self.exit.get_or_insert(e);
            return;
        }
        let status = match e {
            Exit::Code(c) => (c & 0xff) << 8,
            Exit::Signal(s) => s & 0x7f,
        };
        let ppid = self.task(pid).map_or(self.first, |t| t.ppid);
        // The address space goes (pagesim makes the parent current).
        let _ = self.sys.exit();
        self.fds.clear();
        if let Some(t) = self.task_mut(pid) {
            t.state = TaskState::Zombie(status);
        }
        let parent = self.task(ppid).map(|t| t.state);
        match parent {
            Some(TaskState::VforkParent { child }) if child == pid => {
                self.running = ppid;
                self.task_mut(ppid).unwrap().state = TaskState::Ready;
                self.resume(ppid, None);
            }
            Some(TaskState::Waiting { pid: w, status_va }) if w == -1 || w == pid as i64 => {
                self.running = ppid;
                self.task_mut(ppid).unwrap().state = TaskState::Ready;
                self.reap(pid, status_va);
                self.resume(ppid, Some(pid as u64));
            }
            _ => match self.pick_ready(pid) {
                Some(next) => {
                    self.running = next;
                    self.resume(next, None);
                }
                None => {
                    // Nothing can run: the program is stuck, as the kernel would leave it.
                    self.exit.get_or_insert(Exit::Signal(9));
                }
            },
        }
    }

    /// Puts `to` back on the CPU after the running process ended (`self.running` already
    /// names `to`), with x0 = `x0` when given.
    fn resume(&mut self, to: u32, x0: Option<u64>) {
        if let Some(t) = self.tasks.iter_mut().find(|t| t.pid == to) {
            self.fds = std::mem::take(&mut t.fds);
            t.state = TaskState::Running;
        }
        let _ = self.sys.switch(to);
        self.flush = true;
        self.switch = Some(Switch::Exited { to, x0 });
    }

    /// Reaps zombie `pid`: its status to `status_va` of the running process (0: nowhere).
    fn reap(&mut self, pid: u32, status_va: u64) {
        let status = match self.task(pid).map(|t| t.state) {
            Some(TaskState::Zombie(s)) => s,
            _ => return,
        };
        self.tasks.retain(|t| t.pid != pid);
        if status_va != 0 {
            let _ = self.copy_to_user(status_va, &status.to_le_bytes());
        }
    }

    /// `clone`: `fork` without `CLONE_VM`, else a vfork child (the parent waits until it
    /// execs or exits). The child runs first.
    fn clone_(&mut self, flags: u64, newsp: u64) -> Result<i64, E> {
        let parent = self.running;
        let vm = flags & CLONE_VM != 0;
        let child = if vm {
            self.sys.vfork()
        } else {
            self.sys.fork()
        }
        .map_err(|_| E(11))?;
        let fds = self.fds.clone();
        self.tasks.push(Task {
            pid: child,
            ppid: parent,
            state: TaskState::Ready,
            fds,
        });
        if vm || flags & CLONE_VFORK != 0 {
            self.task_mut(parent).unwrap().state = TaskState::VforkParent { child };
        }
        self.put_on_cpu(child);
        self.switch = Some(Switch::To {
            from: parent,
            to: child,
            child_sp: Some(newsp).filter(|&s| s != 0),
            ret: child as u64,
        });
        Ok(child as i64)
    }

    /// Reads a NULL-terminated array of string pointers (argv, envp).
    fn user_strings(&mut self, mut va: u64) -> Result<Vec<String>, E> {
        let mut out = vec![];
        if va == 0 {
            return Ok(out);
        }
        loop {
            let p = u64::from_le_bytes(self.copy_from_user(va, 8)?.try_into().unwrap());
            if p == 0 || out.len() >= 4096 {
                return Ok(out);
            }
            out.push(self.user_string(p)?);
            va += 8;
        }
    }

    /// `execve`: a program of the sysroot replaces the running process's image.
    fn execve(&mut self, path_va: u64, argv_va: u64, envp_va: u64) -> Result<i64, E> {
        let path = self.user_string(path_va)?;
        let argv = self.user_strings(argv_va)?;
        let envp = self.user_strings(envp_va)?;
        let host = self.host_path(&path).ok_or(E::ENOENT)?;
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let envp: Vec<&str> = envp.iter().map(String::as_str).collect();
        let info = match self.exec_image(&path, &host, &argv, &envp) {
            Ok(i) => i,
            Err(ExecFailure::Errno(e)) => return Err(e),
            Err(ExecFailure::Killed(_)) => {
                self.end(Exit::Signal(9));
                return Ok(0);
            }
        };
        // The exec releases a vfork parent, which runs first (until it waits), as the
        // kernel's wakeup of it lets it run on another CPU while the child starts.
        let me = self.running;
        let parent = self
            .tasks
            .iter()
            .find(|t| t.state == TaskState::VforkParent { child: me })
            .map(|t| t.pid);
        if let Some(p) = parent {
            self.task_mut(p).unwrap().state = TaskState::Ready;
            self.put_on_cpu(p);
        }
        self.flush = true;
        self.switch = Some(Switch::Exec {
            pc: info.pc,
            sp: info.sp,
            then: parent.map(|p| (me, p)),
        });
        Ok(0)
    }

    /// `wait4`: reaps a zombie child, or blocks until one ends.
    fn wait4(&mut self, pid: i64, status_va: u64, options: u64) -> Result<i64, E> {
        const WNOHANG: u64 = 1;
        let me = self.running;
        let mine = |t: &&Task| t.ppid == me && (pid == -1 || t.pid as i64 == pid);
        if !self.tasks.iter().any(|t| mine(&t)) {
            return Err(E(10)); // ECHILD
        }
        if let Some(z) = self
            .tasks
            .iter()
            .filter(mine)
            .find(|t| matches!(t.state, TaskState::Zombie(_)))
            .map(|t| t.pid)
        {
            self.reap(z, status_va);
            return Ok(z as i64);
        }
        if options & WNOHANG != 0 {
            return Ok(0);
        }
        let Some(next) = self.pick_ready(me) else {
            return Err(E(10));
        };
        self.task_mut(me).unwrap().state = TaskState::Waiting { pid, status_va };
        self.put_on_cpu(next);
        if let Some(t) = self.task_mut(me) {
            t.state = TaskState::Waiting { pid, status_va };
        }
        self.switch = Some(Switch::To {
            from: me,
            to: next,
            child_sp: None,
            ret: 0,
        });
        Ok(0)
    }

    /// Loads a program (shown at `path`, its bytes from `host`) into the running process,
    /// with its interpreter from the sysroot, and hides the vDSO from it.
    ///
    /// # Errors
    /// The errno before the point of no return; [`ExecFailure::Killed`] after it.
    pub fn exec_image(
        &mut self,
        path: &str,
        host: &std::path::Path,
        argv: &[&str],
        envp: &[&str],
    ) -> Result<pagesim::linux::exec::ExecInfo, ExecFailure> {
        use pagesim::linux::exec::{
            elf, AuxValues, ExecArgs, ExecError, ExecFile, ADDR_NO_RANDOMIZE,
        };
        let exe_bytes = std::fs::read(host).map_err(|_| ExecFailure::Errno(E::ENOENT))?;
        let parsed =
            elf::Elf::parse(&exe_bytes, elf::EM_AARCH64).map_err(|_| ExecFailure::Errno(E(8)))?; // ENOEXEC
        let interp_path = parsed.interp().ok().flatten().map(String::from);
        let interp_bytes = match &interp_path {
            Some(ip) => Some(
                std::fs::read(self.sysroot.join(ip.trim_start_matches('/')))
                    .map_err(|_| ExecFailure::Errno(E::ENOENT))?,
            ),
            None => None,
        };
        let arch = self.params.arch;
        let p = self.process();
        let exe = ExecFile {
            file: p.open(path).map_err(|e| ExecFailure::Errno(e.into()))?,
            bytes: &exe_bytes,
        };
        let interp = match (&interp_path, &interp_bytes) {
            (Some(ip), Some(b)) => Some(ExecFile {
                file: p.open(ip).map_err(|e| ExecFailure::Errno(e.into()))?,
                bytes: b,
            }),
            _ => None,
        };
        let args = ExecArgs {
            filename: path,
            argv,
            envp,
            rlimit_stack: 8 << 20,
            personality: ADDR_NO_RANDOMIZE,
            random: [0x5a; 16],
            aux: AuxValues::observed(arch),
        };
        let info = self
            .sys
            .exec(&exe, interp.as_ref(), &args)
            .map_err(|e| match e {
                ExecError::Refused(e) => ExecFailure::Errno(e.into()),
                other => ExecFailure::Killed(format!("{other:?}")),
            })?;
        self.hide_vdso(info.sp).map_err(ExecFailure::Killed)?;
        Ok(info)
    }

    /// Hides the vDSO from the program (`AT_SYSINFO_EHDR` → `AT_IGNORE`): its pages hold no
    /// code in the model, so the C library must make real system calls.
    fn hide_vdso(&mut self, sp: u64) -> Result<(), String> {
        const AT_SYSINFO_EHDR: u64 = 33;
        const AT_IGNORE: u64 = 1;
        let word = |k: &mut Kernel, a: u64| -> Result<u64, String> {
            let b = k
                .copy_from_user(a, 8)
                .map_err(|e| format!("the initial stack at {a:#x}: {e}"))?;
            Ok(u64::from_le_bytes(b.try_into().unwrap()))
        };
        let argc = word(self, sp)?;
        let mut a = sp + 8 * (argc + 2);
        while word(self, a)? != 0 {
            a += 8;
        }
        a += 8;
        loop {
            let t = word(self, a)?;
            if t == 0 {
                return Ok(());
            }
            if t == AT_SYSINFO_EHDR {
                self.copy_to_user(a, &AT_IGNORE.to_le_bytes())
                    .map_err(|e| e.to_string())?;
            }
            a += 16;
        }
    }
}

/// Why an exec failed.
#[derive(Debug)]
pub enum ExecFailure {
    /// Refused before the point of no return: the call returns this errno.
    Errno(E),
    /// Failed after it: the process is killed.
    Killed(String),
}
