//! `create_elf_tables` (spec `linux-exec.md` §11): the strings at the top of the stack,
//! the platform string and `AT_RANDOM` bytes below them, then argc, argv, envp and the
//! auxiliary vector at the 16-byte aligned stack pointer.

use super::elf::{Elf, PHDR_SIZE};
use super::{ExecArgs, ExecInfo};
use crate::linux::mm::{Arch, Errno, KernelVersion};
use crate::linux::process::Process;
use crate::phys::PhysMemory;

/// `AT_*` tags.
pub mod at {
    /// `AT_NULL`.
    pub const NULL: u64 = 0;
    /// `AT_PHDR`.
    pub const PHDR: u64 = 3;
    /// `AT_PHENT`.
    pub const PHENT: u64 = 4;
    /// `AT_PHNUM`.
    pub const PHNUM: u64 = 5;
    /// `AT_PAGESZ`.
    pub const PAGESZ: u64 = 6;
    /// `AT_BASE`.
    pub const BASE: u64 = 7;
    /// `AT_FLAGS`.
    pub const FLAGS: u64 = 8;
    /// `AT_ENTRY`.
    pub const ENTRY: u64 = 9;
    /// `AT_UID`.
    pub const UID: u64 = 11;
    /// `AT_EUID`.
    pub const EUID: u64 = 12;
    /// `AT_GID`.
    pub const GID: u64 = 13;
    /// `AT_EGID`.
    pub const EGID: u64 = 14;
    /// `AT_PLATFORM`.
    pub const PLATFORM: u64 = 15;
    /// `AT_HWCAP`.
    pub const HWCAP: u64 = 16;
    /// `AT_CLKTCK`.
    pub const CLKTCK: u64 = 17;
    /// `AT_SECURE`.
    pub const SECURE: u64 = 23;
    /// `AT_RANDOM`.
    pub const RANDOM: u64 = 25;
    /// `AT_HWCAP2`.
    pub const HWCAP2: u64 = 26;
    /// `AT_RSEQ_FEATURE_SIZE`.
    pub const RSEQ_FEATURE_SIZE: u64 = 27;
    /// `AT_RSEQ_ALIGN`.
    pub const RSEQ_ALIGN: u64 = 28;
    /// `AT_EXECFN`.
    pub const EXECFN: u64 = 31;
    /// `AT_SYSINFO_EHDR`.
    pub const SYSINFO_EHDR: u64 = 33;
    /// `AT_MINSIGSTKSZ`.
    pub const MINSIGSTKSZ: u64 = 51;
}

impl<M: PhysMemory, const N: usize> Process<'_, '_, M, N> {
    /// Writes the initial stack; returns the stack pointer (at `argc`).
    pub(super) fn create_elf_tables(
        &mut self,
        args: &ExecArgs<'_>,
        e: &Elf<'_>,
        info: &ExecInfo,
    ) -> Result<u64, Errno> {
        let params = *self.space().params();
        let fail = |_| Errno::EFAULT;
        // The strings, from the top down: 8 zero bytes, the filename, envp, argv.
        let mut p = params.stack_top - 8;
        self.write_user(p, &[0u8; 8]).map_err(fail)?;
        p -= args.filename.len() as u64 + 1;
        let execfn = p;
        self.write_cstr(p, args.filename)?;
        for s in args.envp.iter().rev() {
            p -= s.len() as u64 + 1;
            self.write_cstr(p, s)?;
        }
        let env_start = p;
        for s in args.argv.iter().rev() {
            p -= s.len() as u64 + 1;
            self.write_cstr(p, s)?;
        }
        debug_assert_eq!(p, info.arg_start);
        let arg_start = p;
        let mut sp = arg_start & !15;
        let platform = match params.arch {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        };
        sp -= platform.len() as u64 + 1;
        let u_platform = sp;
        self.write_cstr(sp, platform)?;
        sp -= 16;
        let u_rand = sp;
        self.write_user(sp, &args.random).map_err(fail)?;
        let a = &args.aux;
        let mut auxv = [
            (at::SYSINFO_EHDR, info.vdso),
            (at::MINSIGSTKSZ, a.minsigstksz),
            (at::HWCAP, a.hwcap),
            (at::PAGESZ, params.page_size()),
            (at::CLKTCK, 100),
            (at::PHDR, info.phdr),
            (at::PHENT, PHDR_SIZE as u64),
            (at::PHNUM, u64::from(e.e_phnum)),
            (at::BASE, info.base),
            (at::FLAGS, 0),
            (at::ENTRY, info.entry),
            (at::UID, a.ids[0]),
            (at::EUID, a.ids[1]),
            (at::GID, a.ids[2]),
            (at::EGID, a.ids[3]),
            (at::SECURE, a.secure),
            (at::RANDOM, u_rand),
            (at::HWCAP2, a.hwcap2),
            (at::EXECFN, execfn),
            (at::PLATFORM, u_platform),
            (at::RSEQ_FEATURE_SIZE, 0x1c),
            (at::RSEQ_ALIGN, 0x20),
            (at::NULL, 0),
        ];
        let n_aux = if params.version == KernelVersion::V6_1 {
            // No rseq entries before 6.3.
            auxv[20] = (at::NULL, 0);
            21
        } else {
            23
        };
        let (argc, envc) = (args.argv.len() as u64, args.envp.len() as u64);
        let items = argc + envc + 3;
        let sp = (u_rand - 16 * n_aux - 8 * items) & !15;
        let mut at = sp;
        let mut word = |me: &mut Self, v: u64| -> Result<(), Errno> {
            me.write_user(at, &v.to_le_bytes()).map_err(fail)?;
            at += 8;
            Ok(())
        };
        word(self, argc)?;
        let mut s = arg_start;
        for a in args.argv {
            word(self, s)?;
            s += a.len() as u64 + 1;
        }
        word(self, 0)?;
        let mut s = env_start;
        for v in args.envp {
            word(self, s)?;
            s += v.len() as u64 + 1;
        }
        word(self, 0)?;
        for &(k, v) in &auxv[..n_aux as usize] {
            word(self, k)?;
            word(self, v)?;
        }
        Ok(sp)
    }

    /// Writes `s` and a NUL at `va`.
    fn write_cstr(&mut self, va: u64, s: &str) -> Result<(), Errno> {
        self.write_user(va, s.as_bytes())
            .and_then(|()| self.write_user(va + s.len() as u64, &[0]))
            .map_err(|_| Errno::EFAULT)
    }
}
