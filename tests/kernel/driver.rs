//! The driver side: spawns the executor and talks to it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::executor::{op, Request};

/// A live executor process.
pub struct Kernel {
    child: Child,
    tx: ChildStdin,
    rx: ChildStdout,
}

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub ret: i64,
    pub errno: i32,
    pub payload: Vec<u8>,
}

/// The stack rlimit the executor runs with.
pub const STACK_RLIMIT: u64 = 8 << 20;

impl Kernel {
    /// Spawns a fresh executor: this test binary re-exec'd with PAGESIM_EXECUTOR=1, address
    /// randomisation off and an 8 MiB stack rlimit.
    pub fn spawn() -> std::io::Result<Kernel> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.env("PAGESIM_EXECUTOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: only async-signal-safe calls (personality, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
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
        let tx = child.stdin.take().expect("piped");
        let rx = child.stdout.take().expect("piped");
        Ok(Kernel { child, tx, rx })
    }

    /// Returns the executor's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a request and reads the reply.
    pub fn call(&mut self, op: u32, args: &[u64]) -> std::io::Result<Reply> {
        let mut r = Request { op, args: [0; 6] };
        r.args[..args.len()].copy_from_slice(args);
        self.tx.write_all(&r.encode())?;
        let mut head = [0u8; 16];
        self.rx.read_exact(&mut head)?;
        let ret = i64::from_le_bytes(head[0..8].try_into().unwrap());
        let errno = i32::from_le_bytes(head[8..12].try_into().unwrap());
        let n = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; n];
        self.rx.read_exact(&mut payload)?;
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

    /// Touches one byte of every page of `[addr, addr + len)` from outside the process
    /// (process_vm_readv / writev), which faults pages in like a user access but reports
    /// EFAULT instead of raising SIGSEGV. Returns how many pages completed before a fault.
    pub fn touch(&mut self, addr: u64, len: u64, write: bool) -> (u64, bool) {
        let pages = len.div_ceil(4096);
        for i in 0..pages {
            let mut byte = [0u8; 1];
            let local = libc::iovec {
                iov_base: byte.as_mut_ptr() as *mut _,
                iov_len: 1,
            };
            let remote = libc::iovec {
                iov_base: (addr + i * 4096) as *mut _,
                iov_len: 1,
            };
            // SAFETY: the local iovec points at a live 1-byte buffer; the remote one is only
            // interpreted by the kernel in the executor's address space.
            let n = unsafe {
                if write {
                    libc::process_vm_writev(self.pid() as i32, &local, 1, &remote, 1, 0)
                } else {
                    libc::process_vm_readv(self.pid() as i32, &local, 1, &remote, 1, 0)
                }
            };
            if n != 1 {
                return (i, true);
            }
        }
        (pages, false)
    }

    /// Reads /proc/PID/pagemap entries for the pages of `[start, end)`.
    pub fn pagemap(&self, start: u64, end: u64) -> std::io::Result<Vec<u64>> {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::open(format!("/proc/{}/pagemap", self.pid()))?;
        f.seek(SeekFrom::Start((start >> 12) * 8))?;
        let n = ((end - start) >> 12) as usize;
        let mut buf = vec![0u8; n * 8];
        f.read_exact(&mut buf)?;
        Ok(buf
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// Reads start_brk, brk and start_stack from /proc/PID/stat (fields 47, 48 and 28).
    pub fn stat_fields(&self) -> std::io::Result<(u64, u64, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
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
        let _ = self.tx.write_all(
            &Request {
                op: op::EXIT,
                args: [0; 6],
            }
            .encode(),
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
