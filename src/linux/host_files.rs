//! Files of the host as a process's [`FileStore`]: `mmap` of real files in `pagesim run`
//! and the kernel cross-check, with the host's device and inode numbers.

use std::fs::File;
use std::string::String;
use std::vec::Vec;

use crate::linux::mm::vma::{vma_name, DevId, FileId};
use crate::linux::mm::{Errno, OpenFile};
use crate::linux::paging::FileStore;

/// The host files a process opened, one entry per `open` (each a [`FileId`] of its own),
/// held read-only.
#[derive(Debug, Default)]
pub struct HostFiles {
    files: Vec<File>,
    /// The opens made for imported mappings, by device and inode.
    resolved: Vec<(DevId, u64, FileId)>,
    /// Paths shown to the process that name other host files (see [`HostFiles::alias`]).
    aliases: Vec<Alias>,
}

/// A file the process sees at one path whose bytes come from another host file.
#[derive(Debug)]
struct Alias {
    shown: String,
    host: std::path::PathBuf,
    dev: DevId,
    ino: u64,
}

impl HostFiles {
    /// Creates a store with nothing open.
    pub fn new() -> Self {
        HostFiles::default()
    }

    /// Makes `shown` open the host file `host`, reported with device `dev` and inode `ino`:
    /// the file as another machine has it (a guest's disk, an emulator's sysroot), whose
    /// maps lines must read as that machine prints them. A later alias of the same path
    /// replaces the earlier one.
    ///
    /// ```
    /// use pagesim::linux::host_files::HostFiles;
    /// use pagesim::linux::mm::vma::DevId;
    /// use pagesim::linux::paging::FileStore;
    ///
    /// let host = std::env::temp_dir().join(format!("pagesim-alias-doc-{}", std::process::id()));
    /// std::fs::write(&host, b"data").unwrap();
    /// let mut files = HostFiles::new();
    /// let dev = DevId { major: 254, minor: 0 };
    /// files.alias("/mnt/guest/f0", &host, dev, 12);
    /// let f = files.open("/mnt/guest/f0").unwrap();
    /// assert_eq!((f.dev, f.ino, f.path.as_str()), (dev, 12, "/mnt/guest/f0"));
    /// assert_eq!(files.size(f.id), Some(4));
    /// std::fs::remove_file(&host).unwrap();
    /// ```
    pub fn alias(
        &mut self,
        shown: &str,
        host: impl Into<std::path::PathBuf>,
        dev: DevId,
        ino: u64,
    ) {
        let host = host.into();
        match self.aliases.iter_mut().find(|a| a.shown == shown) {
            Some(a) => {
                a.host = host;
                a.dev = dev;
                a.ino = ino;
            }
            None => self.aliases.push(Alias {
                shown: shown.into(),
                host,
                dev,
                ino,
            }),
        }
        // An imported mapping resolved under the old identity no longer names this file.
        self.resolved.retain(|r| !(r.0 == dev && r.1 == ino));
    }

    fn get(&self, id: FileId) -> Option<&File> {
        (id.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.files.get(i))
    }
}

/// Returns the errno of an I/O error.
fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .and_then(Errno::from_number)
        .unwrap_or(match e.kind() {
            std::io::ErrorKind::NotFound => Errno::ENOENT,
            std::io::ErrorKind::PermissionDenied => Errno::EACCES,
            _ => Errno::EINVAL,
        })
}

/// Splits a Linux `dev_t` into major and minor as `MAJOR()`/`MINOR()` of glibc do.
pub const fn dev_of(rdev: u64) -> DevId {
    DevId {
        major: (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32,
        minor: ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32,
    }
}

impl FileStore for HostFiles {
    fn open(&mut self, path: &str) -> Result<OpenFile, Errno> {
        if let Some(a) = self.aliases.iter().find(|a| a.shown == path) {
            let (dev, ino, shown) = (a.dev, a.ino, a.shown.clone());
            let host = a.host.clone();
            let host = host.to_str().ok_or(Errno::ENOENT)?;
            let mut f = self.open(host)?;
            f.dev = dev;
            f.ino = ino;
            f.path = vma_name(&shown).map_err(|_| Errno::EINVAL)?;
            return Ok(f);
        }
        // pagesim never writes to a host file: it keeps a read-only descriptor (one open for
        // writing would make an exec of the file fail with ETXTBSY), and only probes whether
        // the file could be opened for writing, which decides MAP_SHARED's rules.
        let file = File::open(path).map_err(|e| errno_of(&e))?;
        let writable = File::options().read(true).write(true).open(path).is_ok();
        let meta = file.metadata().map_err(|e| errno_of(&e))?;
        if meta.is_dir() {
            return Err(Errno::ENODEV);
        }
        let (dev, ino) = dev_ino(&meta);
        let id = FileId(u32::try_from(self.files.len() + 1).map_err(|_| Errno::ENOMEM)?);
        // The path maps prints: absolute, as the kernel's d_path.
        let shown: String = std::fs::canonicalize(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.into());
        let path = vma_name(&shown).map_err(|_| Errno::EINVAL)?;
        self.files.push(file);
        Ok(OpenFile {
            id,
            dev,
            ino,
            path,
            readable: true,
            writable,
        })
    }

    fn resolve(&mut self, dev: DevId, ino: u64, path: &str) -> Option<FileId> {
        if let Some(&(_, _, id)) = self.resolved.iter().find(|r| r.0 == dev && r.1 == ino) {
            return Some(id);
        }
        // Only the inode the import saw: the path may name another file here.
        let f = self.open(path).ok()?;
        if (f.dev, f.ino) != (dev, ino) {
            return None;
        }
        self.resolved.push((dev, ino, f.id));
        Some(f.id)
    }

    fn size(&self, file: FileId) -> Option<u64> {
        self.get(file)?.metadata().ok().map(|m| m.len())
    }

    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]) {
        buf.fill(0);
        if let Some(f) = self.get(file) {
            read_at(f, offset, buf);
        }
    }
}

#[cfg(unix)]
fn dev_ino(meta: &std::fs::Metadata) -> (DevId, u64) {
    use std::os::unix::fs::MetadataExt;
    (dev_of(meta.dev()), meta.ino())
}

#[cfg(not(unix))]
fn dev_ino(_: &std::fs::Metadata) -> (DevId, u64) {
    (DevId::default(), 0)
}

/// Reads what the file holds at `offset` into `buf` (the rest stays zero).
#[cfg(unix)]
fn read_at(f: &File, offset: u64, buf: &mut [u8]) {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
}

#[cfg(not(unix))]
fn read_at(f: &File, offset: u64, buf: &mut [u8]) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = f;
    if f.seek(SeekFrom::Start(offset)).is_ok() {
        let _ = f.read(buf);
    }
}
