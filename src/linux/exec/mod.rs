//! `execve` of an ELF64 program (spec `linux-exec.md`): the address space
//! `load_elf_binary` builds (segments, bss, the interpreter, brk, the vDSO, the stack) and
//! the initial stack `create_elf_tables` writes, so that an emulator can start the program
//! at its first instruction.
//!
//! * [`elf`]: the ELF header and program headers, checked as the kernel checks them.
//! * `load`: [`crate::linux::process::Process::exec`].
//! * `stack`: argc, argv, envp and the auxiliary vector.
//!
//! The layout is the one of `ADDR_NO_RANDOMIZE` (address randomisation is not modelled);
//! the legacy bottom-up layout follows [`crate::linux::mm::LayoutParams::legacy_layout`].

pub mod elf;
mod load;
mod stack;

use crate::linux::mm::{Arch, Errno, LayoutParams, OpenFile};

/// An ELF file to execute: the open file (for the mappings) and its bytes (at least the
/// headers, the program headers and the `PT_INTERP` and `PT_GNU_PROPERTY` contents; the
/// pages themselves come through the process's [`crate::linux::paging::FileStore`]).
#[derive(Clone, Copy, Debug)]
pub struct ExecFile<'b> {
    /// The open file.
    pub file: OpenFile,
    /// Its contents.
    pub bytes: &'b [u8],
}

/// The values of the auxiliary vector that come from the CPU and the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuxValues {
    /// `AT_HWCAP`.
    pub hwcap: u64,
    /// `AT_HWCAP2`.
    pub hwcap2: u64,
    /// `AT_MINSIGSTKSZ`.
    pub minsigstksz: u64,
    /// `AT_UID`, `AT_EUID`, `AT_GID`, `AT_EGID`.
    pub ids: [u64; 4],
    /// `AT_SECURE`.
    pub secure: u64,
}

impl AuxValues {
    /// Returns the values observed for `arch` (spec §11): x86_64 `AT_HWCAP` 0x178bfbff,
    /// `AT_HWCAP2` 2, `AT_MINSIGSTKSZ` 0xd30; arm64 on QEMU `-cpu max` 0xfdffffff, 0x3ffff,
    /// 0x2700; root credentials.
    pub const fn observed(arch: Arch) -> AuxValues {
        match arch {
            Arch::X86_64 => AuxValues {
                hwcap: 0x178b_fbff,
                hwcap2: 2,
                minsigstksz: 0xd30,
                ids: [0; 4],
                secure: 0,
            },
            Arch::Arm64 => AuxValues {
                hwcap: 0xfdff_ffff,
                hwcap2: 0x3_ffff,
                minsigstksz: 0x2700,
                ids: [0; 4],
                secure: 0,
            },
        }
    }
}

/// `ADDR_NO_RANDOMIZE`: no address space randomisation (the only layout pagesim builds).
pub const ADDR_NO_RANDOMIZE: u32 = 0x004_0000;
/// `ADDR_COMPAT_LAYOUT`: the legacy bottom-up mmap layout.
pub const ADDR_COMPAT_LAYOUT: u32 = 0x020_0000;

/// What `execve` is given besides the files.
#[derive(Clone, Copy, Debug)]
pub struct ExecArgs<'x> {
    /// The path as passed to `execve` (`bprm->filename`, `AT_EXECFN`).
    pub filename: &'x str,
    /// `argv`.
    pub argv: &'x [&'x str],
    /// `envp`.
    pub envp: &'x [&'x str],
    /// `RLIMIT_STACK` (soft limit, bytes).
    pub rlimit_stack: u64,
    /// The personality (`personality(2)`): [`ADDR_COMPAT_LAYOUT`] selects the legacy
    /// bottom-up layout. Address randomisation is not modelled: every layout is the one of
    /// [`ADDR_NO_RANDOMIZE`].
    pub personality: u32,
    /// The 16 bytes behind `AT_RANDOM` (a seed of the caller's: pagesim has no entropy).
    pub random: [u8; 16],
    /// CPU and credential values of the auxiliary vector.
    pub aux: AuxValues,
}

/// Where the new program starts, and the values an emulator or debugger wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecInfo {
    /// The first instruction: the interpreter's entry, or the program's.
    pub pc: u64,
    /// The initial stack pointer (pointing at `argc`).
    pub sp: u64,
    /// `AT_ENTRY`: the program's entry point.
    pub entry: u64,
    /// `AT_BASE`: the interpreter's load address (0 without one).
    pub base: u64,
    /// `AT_PHDR`.
    pub phdr: u64,
    /// `AT_SYSINFO_EHDR`: the vDSO.
    pub vdso: u64,
    /// The load bias of the program (0 for `ET_EXEC`).
    pub load_bias: u64,
    /// `mm->start_brk` (= `brk`).
    pub start_brk: u64,
    /// `mm->arg_start`: argv\[0\].
    pub arg_start: u64,
}

/// Why `execve` did not produce a running program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecError {
    /// Refused before the point of no return: `execve` returns this errno and the
    /// process is unchanged.
    Refused(Errno),
    /// Failed after the point of no return: the old address space is gone and the task
    /// dies of SIGSEGV; the process holds what was mapped by then.
    Killed(Errno),
}

impl ExecError {
    /// Returns the errno behind the failure.
    pub const fn errno(self) -> Errno {
        match self {
            ExecError::Refused(e) | ExecError::Killed(e) => e,
        }
    }
}

impl core::fmt::Display for ExecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ExecError::Refused(e) => write!(f, "execve failed: {} ({e})", e.name()),
            ExecError::Killed(e) => write!(
                f,
                "execve failed after the point of no return ({}): killed by SIGSEGV",
                e.name()
            ),
        }
    }
}

impl core::error::Error for ExecError {}

/// `MAX_ARG_STRLEN`: the longest argument or environment string, NUL included (32 pages).
pub const fn max_arg_strlen(params: &LayoutParams) -> u64 {
    32 * params.page_size()
}
