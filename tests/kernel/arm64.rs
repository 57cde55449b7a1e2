//! The arm64 guests of the cross-check: Debian's arm64 kernels booted under
//! `qemu-system-aarch64` (TCG), with `tests/kernel/arm64/init.c` as `/init` of an initramfs
//! this file writes. The init routes the driver's requests, sent over a virtio-serial port,
//! to executors inside the guest, so the harness runs the same checks there as on this
//! machine's kernel.
//!
//! The kernels come from `tests/kernel/arm64/fetch-kernels.sh` (CI runs it); the test finds
//! them in `PAGESIM_ARM64_KERNELS` or the script's default cache directory.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;

use super::driver::Reply;

/// Router operations (see init.c).
pub mod op {
    pub const SPAWN: u32 = 100;
    pub const READ: u32 = 101;
    pub const PAGEMAP: u32 = 102;
    pub const STAT: u32 = 103;
    pub const FILES: u32 = 104;
    pub const EXEC_STOP: u32 = 105;
    pub const POWEROFF: u32 = 106;
    pub const PROBE: u32 = 107;
    pub const RUN: u32 = 108;
}

/// The router's own channel.
const ROUTER: u32 = u32::MAX;

/// Where the guest keeps the harness files (on its ext4 disk); maps show this path.
pub const FILES_DIR: &str = "/mnt/pagesim-harness-arm64";

/// A booted guest: its virtio-serial port, both ways.
pub struct Guest {
    child: Child,
    tx: ChildStdin,
    rx: ChildStdout,
    next_channel: u32,
    /// The kernel's name (`6.1`, `6.12`, `6.12-16k`) and release.
    pub name: String,
    pub release: String,
    scratch: PathBuf,
}

/// A shared handle on the running guest.
#[derive(Clone)]
pub struct Link(Rc<RefCell<Guest>>);

thread_local! {
    static CURRENT: RefCell<Option<Link>> = const { RefCell::new(None) };
}

/// Returns the guest the harness runs in now, if any (else it runs on this machine).
pub fn current() -> Option<Link> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Makes `link` the guest the harness runs in (`None`: this machine).
pub fn set_current(link: Option<Link>) {
    CURRENT.with(|c| *c.borrow_mut() = link);
}

/// What a machine lacks to run the arm64 part, or the kernels it has.
pub enum Readiness {
    Missing(String),
    Ready(Vec<PathBuf>),
}

/// The kernels directory: `PAGESIM_ARM64_KERNELS`, else the fetch script's cache.
pub fn kernels_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PAGESIM_ARM64_KERNELS") {
        return d.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("pagesim/arm64-kernels")
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks the tools and finds the kernels (6.1, 6.12, 6.12-16k, in that order).
pub fn readiness() -> Readiness {
    for (cmd, pkg) in [
        ("qemu-system-aarch64", "qemu-system-arm"),
        ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        ("mkfs.ext4", "e2fsprogs"),
    ] {
        if !have(cmd) && !Path::new("/usr/sbin").join(cmd).exists() {
            return Readiness::Missing(format!("no {cmd} (Debian package {pkg})"));
        }
    }
    let dir = kernels_dir();
    let kernels: Vec<PathBuf> = ["6.1", "6.12", "6.12-16k"]
        .iter()
        .map(|k| dir.join(k))
        .filter(|d| d.join("vmlinuz").exists() && d.join("modules/order").exists())
        .collect();
    if kernels.is_empty() {
        return Readiness::Missing(format!(
            "no arm64 kernels in {} (run tests/kernel/arm64/fetch-kernels.sh)",
            dir.display()
        ));
    }
    Readiness::Ready(kernels)
}

/// Compiles init.c for arm64, statically.
fn build_init(out: &Path) -> Result<(), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel/arm64/init.c");
    let st = Command::new("aarch64-linux-gnu-gcc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .map_err(|e| format!("aarch64-linux-gnu-gcc: {e}"))?;
    if !st.success() {
        return Err("aarch64-linux-gnu-gcc failed on init.c".into());
    }
    Ok(())
}

/// Writes a newc cpio archive of `entries` (path in the archive, mode, contents; a
/// directory has mode 0o040755 and no contents).
pub fn write_cpio(out: &Path, entries: &[(String, u32, Vec<u8>)]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let pad = |w: &mut dyn Write, n: usize| w.write_all(&[0u8; 4][..(4 - n % 4) % 4]);
    let mut ino = 1u32;
    let mut entry = |w: &mut std::io::BufWriter<std::fs::File>,
                     name: &str,
                     mode: u32,
                     data: &[u8]|
     -> std::io::Result<()> {
        let head = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        ino += 1;
        w.write_all(head.as_bytes())?;
        w.write_all(name.as_bytes())?;
        w.write_all(&[0])?;
        pad(w, head.len() + name.len() + 1)?;
        w.write_all(data)?;
        pad(w, data.len())
    };
    for (name, mode, data) in entries {
        entry(&mut w, name, *mode, data)?;
    }
    entry(&mut w, "TRAILER!!!", 0, &[])?;
    w.flush()
}

impl Guest {
    /// Boots the kernel in `dir` (a fetch-kernels.sh directory) with `extra` files in the
    /// initramfs (archive path, host file), and waits for the router.
    pub fn boot(dir: &Path, extra: &[(String, PathBuf)]) -> Result<Guest, String> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let release = std::fs::read_to_string(dir.join("release"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let scratch =
            std::env::temp_dir().join(format!("pagesim-arm64-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
        let init = scratch.join("init");
        build_init(&init)?;
        let mut entries: Vec<(String, u32, Vec<u8>)> = vec![
            (
                "init".into(),
                0o100755,
                std::fs::read(&init).map_err(|e| e.to_string())?,
            ),
            ("modules".into(), 0o040755, vec![]),
        ];
        let order =
            std::fs::read_to_string(dir.join("modules/order")).map_err(|e| e.to_string())?;
        for m in order.lines().filter(|l| !l.is_empty()) {
            let data =
                std::fs::read(dir.join("modules").join(m)).map_err(|e| format!("{m}: {e}"))?;
            entries.push((format!("modules/{m}"), 0o100644, data));
        }
        entries.push(("modules/order".into(), 0o100644, order.into_bytes()));
        for (path, host) in extra {
            // Parent directories first.
            let mut parent = String::new();
            for part in path
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map_or(&[][..], |x| x.1)
            {
                parent = if parent.is_empty() {
                    part.to_string()
                } else {
                    format!("{parent}/{part}")
                };
                if !entries.iter().any(|e| e.0 == parent) {
                    entries.push((parent.clone(), 0o040755, vec![]));
                }
            }
            let data = std::fs::read(host).map_err(|e| format!("{}: {e}", host.display()))?;
            entries.push((path.clone(), 0o100755, data));
        }
        let initrd = scratch.join("initrd.cpio");
        write_cpio(&initrd, &entries).map_err(|e| e.to_string())?;
        let disk = scratch.join("disk.img");
        let _ = std::fs::remove_file(&disk);
        let mkfs = if have("mkfs.ext4") {
            "mkfs.ext4".to_string()
        } else {
            "/usr/sbin/mkfs.ext4".into()
        };
        // Blocks as large as a page: with smaller blocks the page holding EOF of a file
        // written by write() is not uptodate in the page cache (its buffers past EOF were
        // never read), so fault-around skips it where the host's file system maps it.
        let block = if dir.to_string_lossy().ends_with("16k") {
            "16384"
        } else {
            "4096"
        };
        // (mkfs warns that 16 KiB blocks exceed this machine's page size: they are for the
        // guest.)
        let out = Command::new(mkfs)
            .args(["-q", "-F", "-b", block])
            .arg(&disk)
            .arg("64M")
            .output()
            .map_err(|e| format!("mkfs.ext4: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.ext4 failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let console = scratch.join("console.log");
        let mut child = Command::new("qemu-system-aarch64")
            .args(["-M", "virt", "-cpu", "max", "-smp", "2", "-m", "1G"])
            .args(["-display", "none", "-nodefaults", "-no-reboot"])
            // The kernel's console goes to a file; the driver speaks over a virtio-serial
            // port (the PL011 takes an interrupt per 16 bytes under TCG).
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-device", "virtio-serial-device"])
            .args(["-chardev", "stdio,id=c1,signal=off"])
            .args(["-device", "virtserialport,chardev=c1,name=pagesim"])
            .arg("-kernel")
            .arg(dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(&initrd)
            .arg("-drive")
            .arg(format!("file={},if=none,format=raw,id=d0", disk.display()))
            .args(["-device", "virtio-blk-device,drive=d0"])
            .args(["-append", "console=ttyAMA0 loglevel=0 quiet norandmaps"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(scratch.join("qemu.err")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("qemu-system-aarch64: {e}"))?;
        let tx = child.stdin.take().expect("piped");
        let mut rx = child.stdout.take().expect("piped");
        // Wait for the router's line (anything before it is the kernel's or init's text).
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        const READY: &[u8] = b"PAGESIM-ROUTER-READY\n";
        while !seen.ends_with(READY) {
            match rx.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the {name} guest did not come up: {}{}",
                        String::from_utf8_lossy(&seen[seen.len().saturating_sub(2000)..]),
                        std::fs::read_to_string(&console).unwrap_or_default()
                            + &std::fs::read_to_string(scratch.join("qemu.err"))
                                .unwrap_or_default()
                    ));
                }
            }
        }
        Ok(Guest {
            child,
            tx,
            rx,
            next_channel: 0,
            name,
            release,
            scratch,
        })
    }

    /// Sends one request: the 64-byte record and its trailing bytes.
    fn send(&mut self, raw: &[u8; 64], extra: &[u8]) -> std::io::Result<()> {
        let mut msg = Vec::with_capacity(64 + extra.len());
        msg.extend_from_slice(raw);
        msg.extend_from_slice(extra);
        self.tx.write_all(&msg)?;
        self.tx.flush()
    }

    fn receive(&mut self) -> std::io::Result<Reply> {
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
}

impl Link {
    /// Wraps a booted guest.
    pub fn new(g: Guest) -> Link {
        Link(Rc::new(RefCell::new(g)))
    }

    /// Returns the kernel's name and release.
    pub fn names(&self) -> (String, String) {
        let g = self.0.borrow();
        (g.name.clone(), g.release.clone())
    }

    /// Hands out a fresh channel number.
    pub fn new_channel(&self) -> u32 {
        let mut g = self.0.borrow_mut();
        g.next_channel += 1;
        g.next_channel % 4096
    }

    /// Makes a router request.
    pub fn router(&self, op: u32, args: &[u64], extra: &[u8]) -> std::io::Result<Reply> {
        let mut raw = [0u8; 64];
        raw[0..4].copy_from_slice(&op.to_le_bytes());
        raw[4..8].copy_from_slice(&ROUTER.to_le_bytes());
        for (i, a) in args.iter().take(5).enumerate() {
            raw[8 + i * 8..16 + i * 8].copy_from_slice(&a.to_le_bytes());
        }
        raw[48..56].copy_from_slice(&(extra.len() as u64).to_le_bytes());
        let mut g = self.0.borrow_mut();
        g.send(&raw, extra)?;
        g.receive()
    }

    /// Reads a file of the guest.
    pub fn read_file(&self, path: &str) -> std::io::Result<String> {
        let r = self.router(op::READ, &[], path.as_bytes())?;
        if r.ret < 0 {
            return Err(std::io::Error::from_raw_os_error(r.errno));
        }
        Ok(String::from_utf8_lossy(&r.payload).into_owned())
    }

    /// Returns (major, minor, inode, size) of a guest file.
    pub fn stat(&self, path: &str) -> std::io::Result<(u32, u32, u64, u64)> {
        let r = self.router(op::STAT, &[], path.as_bytes())?;
        if r.ret < 0 || r.payload.len() != 32 {
            return Err(std::io::Error::from_raw_os_error(r.errno));
        }
        let w = |i: usize| u64::from_le_bytes(r.payload[i * 8..i * 8 + 8].try_into().unwrap());
        Ok((w(0) as u32, w(1) as u32, w(2), w(3)))
    }

    /// Returns a writer of executor requests on `chan` (64-byte records).
    pub fn writer(&self, chan: u32) -> ChannelTx {
        ChannelTx {
            link: self.clone(),
            chan,
            pending: Vec::new(),
        }
    }

    /// Returns a reader of the replies (every executor's: the driver waits for one at a
    /// time).
    pub fn reader(&self) -> ChannelRx {
        ChannelRx(self.clone())
    }

    /// Powers the guest off and waits for QEMU.
    pub fn power_off(&self) {
        let _ = self.router(op::POWEROFF, &[], b"");
        let mut g = self.0.borrow_mut();
        for _ in 0..200 {
            if g.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = g.child.kill();
        let _ = g.child.wait();
        let _ = std::fs::remove_dir_all(&g.scratch);
    }
}

/// Executor requests on one channel, sent as they are completed.
pub struct ChannelTx {
    link: Link,
    chan: u32,
    pending: Vec<u8>,
}

impl Write for ChannelTx {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while self.pending.len() >= 64 {
            let mut raw = [0u8; 64];
            raw.copy_from_slice(&self.pending[..64]);
            self.pending.drain(..64);
            raw[4..8].copy_from_slice(&self.chan.to_le_bytes());
            self.link.0.borrow_mut().send(&raw, b"")?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The reply stream of the guest's port.
pub struct ChannelRx(Link);

impl Read for ChannelRx {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0 .0.borrow_mut().rx.read(buf)
    }
}
