//! The driver side: spawns the executor and talks to it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::executor::{op, Request};

/// A live executor process: one the driver spawned, or one an executor forked; on this
/// machine's kernel, or inside an arm64 guest ([`super::arm64::Guest`]) when one is
/// [`super::arm64::current`].
pub struct Kernel {
    child: Option<Child>,
    pid: u32,
    tx: Box<dyn Write>,
    rx: Box<dyn Read>,
    /// The guest channel, for an executor inside an arm64 guest.
    guest: Option<(super::arm64::Link, u32)>,
    exited: bool,
}

/// The fork channels handed out so far (FIFO names are unique per driver).
static CHANNELS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub ret: i64,
    pub errno: i32,
    pub payload: Vec<u8>,
}

/// The stack rlimit the executor runs with.
pub const STACK_RLIMIT: u64 = 8 << 20;

/// The CPUs this process could run on before [`pin_driver`] narrowed them.
fn allowed_cpus() -> Vec<usize> {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(affinity).clone()
}

fn affinity() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes into the zeroed set it is given.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![];
        }
        set
    };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: reads a bit of a valid set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// The CPU every executor runs on, when there are two or more: the last allowed one. The
/// driver pins itself to another ([`pin_driver`]), so that its own munmaps never drain the
/// executor's per-CPU folio batches (`lru_add_drain` is per CPU), which decide when
/// MADV_FREE'd pages count as LazyFree.
pub fn executor_cpu() -> Option<usize> {
    let cpus = allowed_cpus();
    (cpus.len() >= 2).then(|| cpus[cpus.len() - 1])
}

/// Pins the driver to the first allowed CPU (see [`executor_cpu`]); returns false when
/// there is only one CPU, so that executor and driver share its folio batches.
pub fn pin_driver() -> bool {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        return false;
    }
    // SAFETY: sched_setaffinity reads the set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[0], &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

impl Kernel {
    /// Spawns a fresh executor: this test binary re-exec'd with PAGESIM_EXECUTOR=1, address
    /// randomisation off and an 8 MiB stack rlimit, on [`executor_cpu`].
    pub fn spawn() -> std::io::Result<Kernel> {
        if let Some(link) = super::arm64::current() {
            return Kernel::spawn_guest(link, false);
        }
        Kernel::spawn_on(executor_cpu(), false)
    }

    /// Spawns an executor inside the guest (its router pins it, as [`Kernel::spawn_on`]
    /// does here).
    fn spawn_guest(link: super::arm64::Link, throwaway: bool) -> std::io::Result<Kernel> {
        let chan = link.new_channel();
        let r = link.router(
            super::arm64::op::SPAWN,
            &[chan.into(), throwaway.into()],
            b"",
        )?;
        if r.ret <= 0 {
            return Err(std::io::Error::other(format!(
                "the guest could not spawn an executor (errno {})",
                r.errno
            )));
        }
        Ok(Kernel::on_guest(link, chan, r.ret as u32))
    }

    fn on_guest(link: super::arm64::Link, chan: u32, pid: u32) -> Kernel {
        Kernel {
            child: None,
            pid,
            tx: Box::new(link.writer(chan)),
            rx: Box::new(link.reader()),
            guest: Some((link, chan)),
            exited: false,
        }
    }

    /// Spawns a throwaway executor (one that replays a sequence to see a signal) on the
    /// driver's CPU, so that its exit, which drains that CPU's folio batches, leaves the
    /// batches of the executor on [`executor_cpu`] alone.
    pub fn spawn_throwaway() -> std::io::Result<Kernel> {
        if let Some(link) = super::arm64::current() {
            return Kernel::spawn_guest(link, true);
        }
        Kernel::spawn_on(
            allowed_cpus()
                .first()
                .copied()
                .filter(|_| executor_cpu().is_some()),
            true,
        )
    }

    /// Spawns an executor on `cpu`; a `throwaway` one maps the copies of the harness
    /// files in `replay/` (its accesses leave the live executor's page cache alone).
    fn spawn_on(cpu: Option<usize>, throwaway: bool) -> std::io::Result<Kernel> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        if throwaway {
            if let Some(d) = std::env::var_os("PAGESIM_FILES_DIR") {
                cmd.env("PAGESIM_FILES_DIR", std::path::Path::new(&d).join("replay"));
            }
        }
        cmd.env("PAGESIM_EXECUTOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: only async-signal-safe calls (personality, setrlimit, sched_setaffinity)
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(c) = cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(c, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                }
                libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong);
                let lim = libc::rlimit {
                    rlim_cur: STACK_RLIMIT,
                    rlim_max: STACK_RLIMIT,
                };
                libc::setrlimit(libc::RLIMIT_STACK, &lim);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let tx: ChildStdin = child.stdin.take().expect("piped");
        let rx: ChildStdout = child.stdout.take().expect("piped");
        Ok(Kernel {
            pid: child.id(),
            child: Some(child),
            tx: Box::new(tx),
            rx: Box::new(rx),
            guest: None,
            exited: false,
        })
    }

    /// Forks the executor (FORK): returns the child, which talks over its own FIFOs.
    pub fn fork(&mut self) -> std::io::Result<Kernel> {
        if let Some((link, _)) = &self.guest {
            // The guest's router makes the FIFOs and serves the child on a new channel.
            let link = link.clone();
            let k = link.new_channel();
            let r = self.call(op::FORK, &[k.into()])?;
            if r.ret <= 0 {
                return Err(std::io::Error::other(format!("fork: errno {}", r.errno)));
            }
            return Ok(Kernel::on_guest(link, k, r.ret as u32));
        }
        let k = CHANNELS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (req, resp) = super::executor::channel_paths(k);
        for f in [&req, &resp] {
            let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: mkfifo reads the NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let r = self.call(op::FORK, &[k])?;
        if r.ret <= 0 {
            return Err(std::io::Error::other(format!("fork: errno {}", r.errno)));
        }
        // The same order as the child's opens (requests, then replies): each open waits
        // for the other end.
        let tx = std::fs::OpenOptions::new().write(true).open(&req)?;
        let rx = std::fs::File::open(&resp)?;
        let _ = std::fs::remove_file(&req);
        let _ = std::fs::remove_file(&resp);
        Ok(Kernel {
            child: None,
            pid: r.ret as u32,
            tx: Box::new(tx),
            rx: Box::new(rx),
            guest: None,
            exited: false,
        })
    }

    /// Ends the executor (EXIT) and waits until its address space is gone (the process
    /// is a zombie, or reaped).
    pub fn exit(mut self) -> std::io::Result<()> {
        if self.guest.is_some() {
            // The router replies once the process is gone or a zombie.
            self.exited = true;
            return self.call(op::EXIT, &[]).map(|_| ());
        }
        self.send_exit();
        let stat = format!("/proc/{}/stat", self.pid);
        for _ in 0..5000 {
            match std::fs::read_to_string(&stat) {
                Err(_) => return Ok(()),
                Ok(s) => {
                    let state = s[s.rfind(')').map_or(0, |i| i + 2)..].chars().next();
                    if state == Some('Z') || state == Some('X') {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(std::io::Error::other(format!(
            "process {} did not exit",
            self.pid
        )))
    }

    fn send_exit(&mut self) {
        if self.guest.is_some() {
            if !std::mem::replace(&mut self.exited, true) {
                let _ = self.call(op::EXIT, &[]);
            }
            return;
        }
        let _ = self.tx.write_all(
            &Request {
                op: op::EXIT,
                args: [0; 6],
            }
            .encode(),
        );
        let _ = self.tx.flush();
    }

    /// Returns the executor's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends a request and reads the reply.
    pub fn call(&mut self, op: u32, args: &[u64]) -> std::io::Result<Reply> {
        let mut r = Request { op, args: [0; 6] };
        r.args[..args.len()].copy_from_slice(args);
        self.tx.write_all(&r.encode())?;
        let mut head = [0u8; 16];
        if let Err(e) = self.rx.read_exact(&mut head) {
            // Name how the executor ended, if it did.
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .map_or_else(String::new, |s| format!(" (executor {s})"));
            return Err(std::io::Error::new(e.kind(), format!("{e}{status}")));
        }
        let ret = i64::from_le_bytes(head[0..8].try_into().unwrap());
        let errno = i32::from_le_bytes(head[8..12].try_into().unwrap());
        let n = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; n];
        self.rx.read_exact(&mut payload).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{e}: the reply to op {op} promised {n} bytes (ret {ret})"),
            )
        })?;
        Ok(Reply {
            ret,
            errno,
            payload,
        })
    }

    /// Returns /proc/PID/maps.
    pub fn maps(&mut self) -> std::io::Result<String> {
        Ok(String::from_utf8_lossy(&self.call(op::MAPS, &[])?.payload).into_owned())
    }

    /// Returns /proc/PID/smaps.
    pub fn smaps(&mut self) -> std::io::Result<String> {
        Ok(String::from_utf8_lossy(&self.call(op::SMAPS, &[])?.payload).into_owned())
    }

    /// Reads /proc/PID/pagemap entries for the pages of `[start, end)`.
    pub fn pagemap(&self, start: u64, end: u64) -> std::io::Result<Vec<u64>> {
        use std::io::{Seek, SeekFrom};
        let buf = if let Some((link, _)) = &self.guest {
            let r = link.router(
                super::arm64::op::PAGEMAP,
                &[self.pid.into(), start, end],
                b"",
            )?;
            if r.ret < 0 {
                return Err(std::io::Error::from_raw_os_error(r.errno));
            }
            r.payload
        } else {
            let shift = super::page_shift();
            let mut f = std::fs::File::open(format!("/proc/{}/pagemap", self.pid()))?;
            f.seek(SeekFrom::Start((start >> shift) * 8))?;
            let n = ((end - start) >> shift) as usize;
            let mut buf = vec![0u8; n * 8];
            f.read_exact(&mut buf)?;
            buf
        };
        Ok(buf
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// Counts the present pages of `[start, end)` whose folio carries PG_idle
    /// (`KPF_IDLE`, bit 25 of /proc/kpageflags): pages an access sampler made old. The
    /// machine's DAMON (a kdamond on physical addresses) does that to a random page of
    /// every region every sampling interval: it clears the young bit of each entry that
    /// maps the folio, sets PG_young on the folio if one was young, and sets PG_idle. A
    /// folio's PG_young counts as Referenced in smaps for every process that maps it, so
    /// a forked child's old entry to a page its parent had young turns Referenced at a time
    /// no model of the processes can see. Returns 0 inside a guest (no sampler runs there)
    /// or where /proc/kpageflags cannot be read (it needs root).
    pub fn idle_pages(&self, start: u64, end: u64) -> usize {
        use std::io::{Seek, SeekFrom};
        const PRESENT: u64 = 1 << 63;
        const PFN: u64 = (1 << 55) - 1;
        const KPF_IDLE: u64 = 1 << 25;
        if self.guest.is_some() {
            return 0;
        }
        let (Ok(entries), Ok(mut flags)) = (
            self.pagemap(start, end),
            std::fs::File::open("/proc/kpageflags"),
        ) else {
            return 0;
        };
        let mut word = [0u8; 8];
        entries
            .iter()
            .filter(|&&e| e & PRESENT != 0 && e & PFN != 0)
            .filter(|&&e| {
                flags.seek(SeekFrom::Start((e & PFN) * 8)).is_ok()
                    && flags.read_exact(&mut word).is_ok()
                    && u64::from_le_bytes(word) & KPF_IDLE != 0
            })
            .count()
    }

    /// Reads start_brk, brk and start_stack from /proc/PID/stat (fields 47, 48 and 28).
    pub fn stat_fields(&self) -> std::io::Result<(u64, u64, u64)> {
        let path = format!("/proc/{}/stat", self.pid());
        let s = match &self.guest {
            Some((link, _)) => link.read_file(&path)?,
            None => std::fs::read_to_string(path)?,
        };
        let after = &s[s.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (state).
        let get = |n: usize| {
            f.get(n - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((get(47), get(48), get(28)))
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.send_exit();
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
