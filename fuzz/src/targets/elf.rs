//! The `elf` target: arbitrary bytes as an ELF program for `Process::exec`.

use super::*;
use pagesim::linux::exec::elf::{Elf, EM_AARCH64, EM_X86_64};
use pagesim::linux::exec::{AuxValues, ExecArgs, ExecError, ExecFile};
use pagesim::linux::mm::vma::{vma_name, DevId, FileId};
use pagesim::linux::mm::{Errno, OpenFile};
use pagesim::linux::paging::FileStore;

/// The fuzz input as the only file there is.
struct OneFile<'d>(&'d [u8]);

impl FileStore for OneFile<'_> {
    fn size(&self, _: FileId) -> Option<u64> {
        Some(self.0.len() as u64)
    }

    fn read(&mut self, _: FileId, offset: u64, buf: &mut [u8]) {
        buf.fill(0);
        if let Some(rest) = usize::try_from(offset).ok().and_then(|o| self.0.get(o..)) {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
        }
    }
}

/// Fuzz target `elf`: the input (after a first layout byte, as `mm_ops`'s config) is an
/// ELF file. The header parser never panics and its views stay inside the file; `exec` of
/// it (with itself as the interpreter when it names one) either is refused with nothing
/// changed, or leaves a process whose invariants hold (killed or not); a successful exec
/// gives a 16-byte aligned stack pointer inside `[stack]`.
pub fn elf(data: &[u8]) {
    let Some((&cfg, image)) = data.split_first() else {
        return;
    };
    let (params, _) = mm_layout(cfg, 0, 0);
    let machine = match params.arch {
        pagesim::linux::mm::Arch::X86_64 => EM_X86_64,
        pagesim::linux::mm::Arch::Arm64 => EM_AARCH64,
    };
    if let Ok(e) = Elf::parse(image, machine) {
        assert!(e.phdrs().count() <= usize::from(e.e_phnum));
        let _ = (e.interp(), e.bti(), e.exec_stack(), e.loads().count());
    }
    let _ = Elf::parse_interp(image, machine);
    let mut files = OneFile(image);
    let mut storage = ProcessStorage::new(&params, 16 << 20);
    let Ok(mut p) = storage.build(params, Start::Fresh, ImportHints::default()) else {
        return;
    };
    p.set_files(&mut files);
    let file = OpenFile {
        id: FileId(1),
        dev: DevId { major: 8, minor: 1 },
        ino: 12,
        path: vma_name("/fuzz/exe").expect("short"),
        readable: true,
        writable: false,
    };
    let exe = ExecFile { file, bytes: image };
    let args = ExecArgs {
        filename: "/fuzz/exe",
        argv: &["/fuzz/exe", "a"],
        envp: &["X=1"],
        rlimit_stack: 8 << 20,
        personality: pagesim::linux::exec::ADDR_NO_RANDOMIZE
            | (u32::from(cfg >> 7) * pagesim::linux::exec::ADDR_COMPAT_LAYOUT),
        random: [7; 16],
        aux: AuxValues::observed(params.arch),
    };
    let before = p.maps_string();
    match p.exec(&exe, Some(&exe), &args) {
        Err(ExecError::Refused(e)) => {
            assert_ne!(e, Errno::ENOMEM, "a refusal that needs memory");
            assert_eq!(
                p.maps_string(),
                before,
                "a refused exec ({e:?}) changed the process"
            );
        }
        Err(ExecError::Killed(_)) => {}
        Ok(info) => {
            assert_eq!(info.sp % 16, 0, "unaligned stack pointer");
            let v = p.space().vma_lookup(info.sp).expect("sp outside every VMA");
            assert!(p.space().is_stack(v), "sp outside [stack]");
        }
    }
    if let Err(e) = p.validate() {
        panic!("process invariant broken after exec: {e}");
    }
}
