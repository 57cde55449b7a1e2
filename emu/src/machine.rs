//! The emulated machine: Unicorn's AArch64 CPU (QEMU's TCG, `-cpu max`) in its
//! virtual-TLB mode, whose every TLB miss pagesim answers, over the RAM pagesim manages.

use std::path::{Path, PathBuf};

use pagesim::arch::AccessKind;
use pagesim::linux::exec::{elf, AuxValues, ExecArgs, ExecFile, ExecInfo, ADDR_NO_RANDOMIZE};
use pagesim::linux::mm::vma::DevId;
use pagesim::linux::mm::{ImportHints, KernelVersion, LayoutParams};
use pagesim::linux::storage::{ProcessStorage, Start, RAM_BASE};
use unicorn_engine::{
    Arch, Arm64CpuModel, MemType, Mode, Prot, RegisterARM64, RegisterARM64CP, TlbEntry, TlbType,
    Unicorn,
};

use crate::kernel::{Exit, Kernel};
use crate::ram::Ram;

/// What `pagesim-emu run` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The kernel pagesim models.
    pub kernel: KernelVersion,
    /// 12 (4 KiB pages) or 14 (16 KiB).
    pub page_shift: u32,
    /// The program's root: its interpreter and libraries come from here.
    pub sysroot: PathBuf,
    /// Simulated RAM.
    pub phys_mem: u64,
    /// Print each fault and system call.
    pub trace: bool,
    /// Print counters at exit.
    pub stats: bool,
    /// Which of stdin, stdout and stderr the program sees as a terminal (by default,
    /// those that are terminals here).
    pub ttys: [bool; 3],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kernel: KernelVersion::V6_12,
            page_shift: 12,
            sysroot: PathBuf::from("/usr/aarch64-linux-gnu"),
            phys_mem: 1 << 30,
            trace: false,
            stats: false,
            ttys: {
                use std::io::IsTerminal;
                [
                    std::io::stdin().is_terminal(),
                    std::io::stdout().is_terminal(),
                    std::io::stderr().is_terminal(),
                ]
            },
        }
    }
}

/// The environment the program starts with.
const ENVP: &[&str] = &["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "LANG=C"];

/// `AT_SYSINFO_EHDR` and `AT_IGNORE` (auxv types).
const AT_SYSINFO_EHDR: u64 = 33;
const AT_IGNORE: u64 = 1;

/// Gives every regular file under `sysroot` its guest path (the path below the sysroot)
/// in the storage's file store, with the host's device and inode, so that maps shows the
/// guest's paths.
fn sysroot_aliases(storage: &mut ProcessStorage, sysroot: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![sysroot.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if e.file_type().is_ok_and(|t| !t.is_symlink()) {
                    stack.push(p);
                }
            } else if meta.is_file() {
                let Ok(rel) = p.strip_prefix(sysroot) else {
                    continue;
                };
                let dev = DevId {
                    major: ((meta.dev() >> 8) & 0xfff) as u32,
                    minor: ((meta.dev() & 0xff) | ((meta.dev() >> 12) & 0xfff00)) as u32,
                };
                let shown = format!("/{}", rel.display());
                storage.files_mut().alias(&shown, &p, dev, meta.ino());
            }
        }
    }
}

/// Execs `program` (a host path, shown as given) in pagesim, with its interpreter from the
/// sysroot; returns where it starts.
fn exec(k: &mut Kernel, program: &str, argv: &[&str], sysroot: &Path) -> Result<ExecInfo, String> {
    let exe_bytes = std::fs::read(program).map_err(|e| format!("{program}: {e}"))?;
    let interp_path = elf::Elf::parse(&exe_bytes, elf::EM_AARCH64)
        .map_err(|e| format!("{program}: not an arm64 ELF program ({e:?})"))?
        .interp()
        .ok()
        .flatten()
        .map(String::from);
    let interp_bytes = match &interp_path {
        Some(ip) => {
            let host = sysroot.join(ip.trim_start_matches('/'));
            Some(std::fs::read(&host).map_err(|e| format!("{}: {e}", host.display()))?)
        }
        None => None,
    };
    let arch = k.params.arch;
    let p = k.process();
    let exe = ExecFile {
        file: p.open(program).map_err(|e| format!("{program}: {e}"))?,
        bytes: &exe_bytes,
    };
    let interp = match (&interp_path, &interp_bytes) {
        (Some(ip), Some(b)) => Some(ExecFile {
            file: p
                .open(ip)
                .map_err(|e| format!("{ip} (in the sysroot): {e}"))?,
            bytes: b,
        }),
        _ => None,
    };
    let args = ExecArgs {
        filename: program,
        argv,
        envp: ENVP,
        rlimit_stack: 8 << 20,
        personality: ADDR_NO_RANDOMIZE,
        random: [0x5a; 16],
        aux: AuxValues::observed(arch),
    };
    p.exec(&exe, interp.as_ref(), &args)
        .map_err(|e| format!("exec {program}: {e}"))
}

/// Hides the vDSO from the program (`AT_SYSINFO_EHDR` → `AT_IGNORE`): its pages hold no
/// code in the model, so the C library must make real system calls.
fn hide_vdso(k: &mut Kernel, sp: u64) -> Result<(), String> {
    let word = |k: &mut Kernel, a: u64| -> Result<u64, String> {
        let b = k
            .copy_from_user(a, 8)
            .map_err(|e| format!("the initial stack at {a:#x}: {e}"))?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    };
    let argc = word(k, sp)?;
    let mut a = sp + 8 * (argc + 2);
    while word(k, a)? != 0 {
        a += 8;
    }
    a += 8;
    loop {
        let t = word(k, a)?;
        if t == 0 {
            return Ok(());
        }
        if t == AT_SYSINFO_EHDR {
            k.copy_to_user(a, &AT_IGNORE.to_le_bytes())
                .map_err(|e| e.to_string())?;
        }
        a += 16;
    }
}

/// Runs `program` with `args` to its end; returns how it ended and, with `opts.stats`,
/// the counters' report.
pub fn run(program: &str, args: &[String], opts: &Options) -> Result<(Exit, String), String> {
    let params = LayoutParams::arm64(
        opts.kernel,
        opts.page_shift,
        opts.kernel != KernelVersion::V6_1,
    );
    // The storage lives as long as the run (the program's whole life in this process).
    let storage: &'static mut ProcessStorage =
        Box::leak(Box::new(ProcessStorage::new(&params, opts.phys_mem)));
    sysroot_aliases(storage, &opts.sysroot);
    let (ptr, len) = storage.ram_host_range().ok_or("the RAM holds no data")?;
    // SAFETY: the storage is leaked, so the range stays valid; pagesim reaches the bytes
    // only inside its calls and Unicorn only inside emu_start, never at once.
    let ram = unsafe { Ram::new(ptr, len) };
    let sys = storage.build_system(params, Start::Fresh, ImportHints::default())?;
    let mut k = Kernel::new(sys, ram, params, opts.sysroot.clone());
    k.trace = opts.trace;
    k.ttys = opts.ttys;
    let mut argv: Vec<&str> = vec![program];
    argv.extend(args.iter().map(String::as_str));
    let info = exec(&mut k, program, &argv, &opts.sysroot)?;
    hide_vdso(&mut k, info.sp)?;

    let mut uc = Unicorn::new_with_data(Arch::ARM64, Mode::LITTLE_ENDIAN, k)
        .map_err(|e| format!("unicorn: {e:?}"))?;
    uc.ctl_set_cpu_model(Arm64CpuModel::MAX as i32)
        .map_err(|e| format!("cpu model: {e:?}"))?;
    uc.ctl_set_page_size(params.page_size() as u32)
        .map_err(|e| format!("page size: {e:?}"))?;
    uc.ctl_set_tlb_type(TlbType::VIRTUAL)
        .map_err(|e| format!("virtual TLB: {e:?}"))?;
    // SAFETY: as for `ram` above: the leaked storage outlives the emulator.
    unsafe { uc.mem_map_ptr(RAM_BASE, len as u64, Prot::ALL, ptr.cast()) }
        .map_err(|e| format!("mapping the RAM: {e:?}"))?;
    uc.add_tlb_hook(0, u64::MAX, |uc, va, ty| {
        let (kind, perms) = match ty {
            MemType::WRITE => (AccessKind::Write, Prot::READ | Prot::WRITE),
            MemType::FETCH => (AccessKind::Fetch, Prot::EXEC),
            _ => (AccessKind::Read, Prot::READ),
        };
        let k = uc.get_data_mut();
        match k.fill(va, kind) {
            Ok(pa) => Some(TlbEntry { paddr: pa, perms }),
            Err(e) => {
                k.exit.get_or_insert(e);
                None
            }
        }
    })
    .map_err(|e| format!("TLB hook: {e:?}"))?;
    uc.add_intr_hook(|uc, intno| {
        // EXCP_SWI: `svc #0`, with PC past it.
        if intno != 2 {
            uc.get_data_mut().exit = Some(Exit::Signal(4));
            let _ = uc.emu_stop();
            return;
        }
        let mut a = [0u64; 6];
        for (i, r) in [
            RegisterARM64::X0,
            RegisterARM64::X1,
            RegisterARM64::X2,
            RegisterARM64::X3,
            RegisterARM64::X4,
            RegisterARM64::X5,
        ]
        .into_iter()
        .enumerate()
        {
            a[i] = uc.reg_read(r).unwrap_or(0);
        }
        let nr = uc.reg_read(RegisterARM64::X8).unwrap_or(u64::MAX);
        let k = uc.get_data_mut();
        let ret = k.syscall(nr, a);
        let (flush, done) = (std::mem::take(&mut k.flush), k.exit.is_some());
        let _ = uc.reg_write(RegisterARM64::X0, ret as u64);
        if flush {
            let _ = uc.ctl_flush_tlb();
        }
        if done {
            let _ = uc.emu_stop();
        }
    })
    .map_err(|e| format!("interrupt hook: {e:?}"))?;
    // Guest instructions, counted per translation block run (only for --stats: the hook
    // costs a call per block).
    let instructions = std::rc::Rc::new(std::cell::Cell::new(0u64));
    if opts.stats {
        let n = instructions.clone();
        uc.add_block_hook(1, 0, move |_, _, size| n.set(n.get() + u64::from(size) / 4))
            .map_err(|e| format!("block hook: {e:?}"))?;
    }
    // FP/SIMD and SVE usable, as Linux leaves them for a process (the C library picks its
    // SVE string functions from the HWCAPs it is given). The CPU starts at EL3: CPTR_EL3.EZ
    // lets SVE through there, and CPACR_EL1's FPEN and ZEN open both at EL1 and EL0.
    uc.reg_write(RegisterARM64::CPACR_EL1, (3 << 20) | (3 << 16))
        .map_err(|e| format!("cpacr: {e:?}"))?;
    let cptr_el3 = RegisterARM64CP {
        op0: 3,
        op1: 6,
        crn: 1,
        crm: 1,
        op2: 2,
        val: 1 << 8,
    };
    uc.reg_write_arm64_coproc(&cptr_el3)
        .map_err(|e| format!("cptr_el3: {e:?}"))?;
    uc.reg_write(RegisterARM64::SP, info.sp)
        .map_err(|e| format!("sp: {e:?}"))?;
    let mut pc = info.pc;
    loop {
        let r = uc.emu_start(pc, u64::MAX, 0, 0);
        if let Some(e) = uc.get_data().exit {
            if let Exit::Signal(s) = e {
                if opts.trace {
                    let at = uc.pc_read().unwrap_or(0);
                    eprintln!("[pagesim] signal {s} at pc {at:#x}");
                }
            }
            break;
        }
        match r {
            // emu_start returns when it is stopped; carry on where it stopped.
            Ok(()) => pc = uc.pc_read().map_err(|e| format!("pc: {e:?}"))?,
            Err(e) => {
                let at = uc.pc_read().unwrap_or(0);
                return Err(format!("the CPU stopped at {at:#x}: {e:?}"));
            }
        }
    }
    let exit = uc.get_data().exit.expect("the loop ends with an exit");
    let report = if opts.stats {
        uc.get_data_mut().report(instructions.get())
    } else {
        String::new()
    };
    Ok((exit, report))
}
