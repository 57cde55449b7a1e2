//! The executor: a fresh process (exec'd with address randomisation off and a fixed stack
//! rlimit) that performs raw memory syscalls on request and reports /proc/self/maps and
//! smaps, allocating nothing after its start (spec §14).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::FromRawFd;

/// Operation codes of the fixed 64-byte request records.
pub mod op {
    /// mmap(a0, a1, a2, a3, -1, 0).
    pub const MMAP: u32 = 1;
    /// munmap(a0, a1).
    pub const MUNMAP: u32 = 2;
    /// mprotect(a0, a1, a2).
    pub const MPROTECT: u32 = 3;
    /// madvise(a0, a1, a2).
    pub const MADVISE: u32 = 4;
    /// brk(a0) (the raw syscall: returns the new break).
    pub const BRK: u32 = 5;
    /// mincore(a0, a1) → payload of one byte per page.
    pub const MINCORE: u32 = 6;
    /// Snapshot of /proc/self/maps → payload.
    pub const MAPS: u32 = 7;
    /// Snapshot of /proc/self/smaps → payload.
    pub const SMAPS: u32 = 8;
    /// Stop.
    pub const EXIT: u32 = 9;
    /// Touch a0 itself (a1 != 0: write) with a SIGSEGV handler installed: the reply is
    /// ret 0 when the access completed, or ret -2 with errno = si_code and an 8-byte payload
    /// si_addr, after which the executor exits (it is a throwaway process).
    pub const TOUCH_SIGNAL: u32 = 10;
    /// Touch one byte of each of the a1 pages from a0 itself (a2 != 0: write a zero, else
    /// read), as a program does: the hardware sets the accessed and dirty bits, and a fault
    /// below a grows-down VMA grows it. The driver asks only for pages pagesim completed; a
    /// SIGSEGV ends the executor (or, after TOUCH_SIGNAL installed its handler, reports).
    pub const TOUCH: u32 = 11;
    /// open("$PAGESIM_FILES_DIR/f{a4}", O_RDWR), mmap(a0, a1, a2, a3, fd, a5), close(fd).
    pub const MMAP_FILE: u32 = 12;
    /// mremap(a0, a1, a2, a3, a4).
    pub const MREMAP: u32 = 13;
    /// fork(): the parent replies with the child's pid; the child serves requests from
    /// the FIFO `$PAGESIM_CHANNELS_DIR/req{a0}` and replies on `resp{a0}`.
    pub const FORK: u32 = 14;
}

/// Returns the FIFOs of fork channel `k`: (requests, replies).
pub fn channel_paths(k: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::path::PathBuf::from(std::env::var("PAGESIM_CHANNELS_DIR").unwrap_or_default());
    (dir.join(format!("req{k}")), dir.join(format!("resp{k}")))
}

/// How many harness files the executor can open (`f0` … `f7`).
pub const FILES: usize = 8;

/// The SIGSEGV handler of TOUCH_SIGNAL: reports si_code and si_addr on fd 1 and exits.
extern "C" fn on_segv(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers; write(2) and
    // _exit(2) are async-signal-safe.
    unsafe {
        let code = (*info).si_code;
        let addr = (*info).si_addr() as u64;
        let signo = (*info).si_signo as u64;
        let mut msg = [0u8; 32];
        msg[0..8].copy_from_slice(&(-2i64).to_le_bytes());
        msg[8..12].copy_from_slice(&code.to_le_bytes());
        msg[12..16].copy_from_slice(&16u32.to_le_bytes());
        msg[16..24].copy_from_slice(&addr.to_le_bytes());
        msg[24..32].copy_from_slice(&signo.to_le_bytes());
        libc::write(1, msg.as_ptr() as *const libc::c_void, 32);
        libc::_exit(0);
    }
}

/// A request: op, and up to six arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    pub op: u32,
    pub args: [u64; 6],
}

impl Request {
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.op.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&a.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8; 64]) -> Request {
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64::from_le_bytes(b[8 + i * 8..16 + i * 8].try_into().unwrap());
        }
        Request {
            op: u32::from_le_bytes(b[0..4].try_into().unwrap()),
            args,
        }
    }
}

const SNAP_CAP: usize = 4 << 20;

/// Runs the executor loop on fds 0 (requests) and 1 (responses). Never returns.
pub fn run() -> ! {
    // Pre-touch stack so that the [stack] VMA does not grow during the sequence.
    let pad = std::hint::black_box([0u8; 256 * 1024]);
    std::hint::black_box(&pad);
    // SAFETY: fds 0 and 1 are the pipes the driver set up; they stay open for the process.
    let mut input = unsafe { File::from_raw_fd(0) };
    let mut output = unsafe { File::from_raw_fd(1) };
    let dir = std::env::var("PAGESIM_FILES_DIR").unwrap_or_default();
    let paths: Vec<std::ffi::CString> = (0..FILES)
        .map(|i| std::ffi::CString::new(format!("{dir}/f{i}")).unwrap())
        .collect();
    let mut maps = File::open("/proc/self/maps").expect("open maps");
    let mut smaps = File::open("/proc/self/smaps").expect("open smaps");
    // The snapshot buffer is a shared memfd mapping, which the comparisons leave out: a
    // forked child writes into it without copying anything (a private buffer would be
    // copied on write, changing anonymous memory the sequence did not touch).
    // SAFETY: a fresh memfd of SNAP_CAP bytes, mapped shared once and never unmapped; the
    // slice covers exactly the mapping.
    let buf: &mut [u8] = unsafe {
        let fd = libc::memfd_create(c"pagesim-snapshots".as_ptr(), 0);
        assert!(fd >= 0, "memfd_create");
        assert_eq!(libc::ftruncate(fd, SNAP_CAP as libc::off_t), 0, "ftruncate");
        let p = libc::mmap(
            std::ptr::null_mut(),
            SNAP_CAP,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap of the snapshot buffer");
        libc::close(fd);
        std::slice::from_raw_parts_mut(p as *mut u8, SNAP_CAP)
    };
    // Make every page of the buffer resident and dirty now, so later snapshots change no
    // residency.
    for i in (0..SNAP_CAP).step_by(4096) {
        buf[i] = 1;
    }
    std::hint::black_box(&buf);
    let mut req = [0u8; 64];
    loop {
        if input.read_exact(&mut req).is_err() {
            // SAFETY: ends the process.
            unsafe { libc::_exit(0) }
        }
        let r = Request::decode(&req);
        let a = r.args;
        let (ret, errno, payload): (i64, i32, usize) = match r.op {
            op::MMAP => sys(
                || unsafe {
                    libc::mmap(
                        a[0] as *mut _,
                        a[1] as usize,
                        a[2] as i32,
                        a[3] as i32,
                        -1,
                        0,
                    ) as i64
                },
                0,
            ),
            op::MMAP_FILE => match paths.get(a[4] as usize) {
                // SAFETY: a path built at start; the fd is closed after the mmap, which
                // holds its own reference to the file.
                Some(path) => unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_RDWR);
                    let r = sys(
                        || {
                            libc::mmap(
                                a[0] as *mut _,
                                a[1] as usize,
                                a[2] as i32,
                                a[3] as i32,
                                fd,
                                a[5] as libc::off_t,
                            ) as i64
                        },
                        0,
                    );
                    libc::close(fd);
                    r
                },
                None => (-1, libc::EBADF, 0),
            },
            op::FORK => {
                // SAFETY: this process has one thread; the child only reopens its channel
                // and its /proc files, then serves requests as before.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let (req, resp) = channel_paths(a[0]);
                    let (Ok(i), Ok(o)) = (
                        File::open(&req),
                        std::fs::OpenOptions::new().write(true).open(&resp),
                    ) else {
                        // SAFETY: ends the child at once.
                        unsafe { libc::_exit(3) }
                    };
                    // The channel becomes fds 0 and 1 (the SIGSEGV handler writes to 1),
                    // behind the same File objects.
                    // SAFETY: dup2 onto the fds `input` and `output` own; the originals
                    // close when `i` and `o` drop.
                    unsafe {
                        use std::os::fd::AsRawFd;
                        libc::dup2(i.as_raw_fd(), 0);
                        libc::dup2(o.as_raw_fd(), 1);
                    }
                    drop((i, o));
                    maps = File::open("/proc/self/maps").expect("open maps");
                    smaps = File::open("/proc/self/smaps").expect("open smaps");
                    continue;
                }
                if pid < 0 {
                    (
                        -1,
                        std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                        0,
                    )
                } else {
                    (pid as i64, 0, 0)
                }
            }
            op::MREMAP => sys(
                || unsafe { libc::syscall(libc::SYS_mremap, a[0], a[1], a[2], a[3], a[4]) },
                0,
            ),
            op::MUNMAP => sys(
                || unsafe { libc::munmap(a[0] as *mut _, a[1] as usize) as i64 },
                0,
            ),
            op::MPROTECT => sys(
                || unsafe { libc::mprotect(a[0] as *mut _, a[1] as usize, a[2] as i32) as i64 },
                0,
            ),
            op::MADVISE => sys(
                || unsafe { libc::madvise(a[0] as *mut _, a[1] as usize, a[2] as i32) as i64 },
                0,
            ),
            op::BRK => sys(|| unsafe { libc::syscall(libc::SYS_brk, a[0]) }, 0),
            op::MINCORE => {
                let pages = (a[1] as usize).div_ceil(4096).min(SNAP_CAP);
                let (ret, errno, _) = sys(
                    || unsafe {
                        libc::mincore(a[0] as *mut _, a[1] as usize, buf.as_mut_ptr()) as i64
                    },
                    0,
                );
                (ret, errno, if ret == 0 { pages } else { 0 })
            }
            op::MAPS | op::SMAPS => {
                let f = if r.op == op::MAPS {
                    &mut maps
                } else {
                    &mut smaps
                };
                let n = read_all(f, buf);
                (n as i64, 0, n)
            }
            op::TOUCH_SIGNAL => {
                // SAFETY: installs a SA_SIGINFO handler that only writes and exits; the
                // access itself may fault, which is the point.
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = on_segv as *const () as usize;
                    sa.sa_flags = libc::SA_SIGINFO;
                    libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
                    libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
                    let p = a[0] as *mut u8;
                    if a[1] != 0 {
                        // A store alone, as TOUCH makes it (a load first would fault
                        // as a read: SIGBUS past a file's end before the write's SIGSEGV).
                        std::ptr::write_volatile(p, 0);
                    } else {
                        std::hint::black_box(std::ptr::read_volatile(p));
                    }
                }
                (0, 0, 0)
            }
            op::TOUCH => {
                for i in 0..a[1] {
                    let p = (a[0] + i * 4096) as *mut u8;
                    // SAFETY: the driver asks only for pages inside VMAs that allow the
                    // access, and only for memory the sequence mapped (never the executor's).
                    unsafe {
                        if a[2] != 0 {
                            std::ptr::write_volatile(p, 0);
                        } else {
                            std::hint::black_box(std::ptr::read_volatile(p));
                        }
                    }
                }
                (0, 0, 0)
            }
            // SAFETY: ends the process without running anything of the parent's.
            _ => unsafe { libc::_exit(0) },
        };
        let mut head = [0u8; 16];
        head[0..8].copy_from_slice(&ret.to_le_bytes());
        head[8..12].copy_from_slice(&errno.to_le_bytes());
        head[12..16].copy_from_slice(&(payload as u32).to_le_bytes());
        if output.write_all(&head).is_err() || output.write_all(&buf[..payload]).is_err() {
            // SAFETY: ends the process.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Calls `f` and returns its result with errno (read immediately) when it signals failure
/// by -1 (or MAP_FAILED).
fn sys(f: impl FnOnce() -> i64, _: u8) -> (i64, i32, usize) {
    let r = f();
    if r == -1 {
        (
            -1,
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            0,
        )
    } else {
        (r, 0, 0)
    }
}

fn read_all(f: &mut File, buf: &mut [u8]) -> usize {
    if f.seek(SeekFrom::Start(0)).is_err() {
        return 0;
    }
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if std::env::var_os("PAGESIM_HARNESS_DUMP").is_some() {
                    eprintln!("executor: read error after {n} bytes: {e}");
                }
                break;
            }
            Ok(k) => n += k,
        }
    }
    n
}
