//! The emulated machine: Unicorn's AArch64 CPU (QEMU's TCG, `-cpu max`) in its
//! virtual-TLB mode, whose every TLB miss pagesim answers, over the RAM pagesim manages.

use std::path::{Path, PathBuf};

use pagesim::arch::AccessKind;
use pagesim::linux::mm::vma::DevId;
use pagesim::linux::mm::{ImportHints, KernelVersion, LayoutParams};
use pagesim::linux::storage::{ProcessStorage, Start, RAM_BASE};
use unicorn_engine::{
    Arch, Arm64CpuModel, MemType, Mode, Prot, RegisterARM64, RegisterARM64CP, TlbEntry, TlbType,
    Unicorn,
};

use crate::kernel::{Exit, Kernel, Switch};
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

/// Processes the program may have at once besides itself (`system()` needs two: the shell
/// and its command).
const MAX_PROCESSES: usize = 6;

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

/// Puts another process on the CPU, or a new image in the running one.
fn switch(uc: &mut Unicorn<'_, Kernel>, sw: Switch) -> Result<(), unicorn_engine::uc_error> {
    match sw {
        Switch::To {
            from, to, child_sp, ..
        } => {
            if let Some(c) = uc.get_data_mut().contexts.remove(&to) {
                uc.context_restore(&c)?;
            } else {
                // A new child: its parent's registers, x0 = 0, its own stack if given.
                let k = uc.get_data_mut();
                let c = k.contexts.remove(&from);
                if let Some(c) = c {
                    uc.context_restore(&c)?;
                    uc.get_data_mut().contexts.insert(from, c);
                }
                uc.reg_write(RegisterARM64::X0, 0)?;
                if let Some(sp) = child_sp {
                    uc.reg_write(RegisterARM64::SP, sp)?;
                }
            }
        }
        Switch::Exited { to, x0 } => {
            if let Some(c) = uc.get_data_mut().contexts.remove(&to) {
                uc.context_restore(&c)?;
            }
            if let Some(v) = x0 {
                uc.reg_write(RegisterARM64::X0, v)?;
            }
        }
        Switch::Exec { pc, sp, then } => {
            for r in 0..29 {
                uc.reg_write(RegisterARM64::X0 as i32 + r, 0)?;
            }
            uc.reg_write(RegisterARM64::FP, 0)?;
            uc.reg_write(RegisterARM64::LR, 0)?;
            uc.reg_write(RegisterARM64::TPIDR_EL0, 0)?;
            uc.reg_write(RegisterARM64::SP, sp)?;
            uc.reg_write(RegisterARM64::PC, pc)?;
            if let Some((child, parent)) = then {
                let mut c = uc.context_alloc()?;
                uc.context_save(&mut c)?;
                let k = uc.get_data_mut();
                k.contexts.insert(child, c);
                if let Some(p) = k.contexts.remove(&parent) {
                    uc.context_restore(&p)?;
                }
            }
        }
    }
    uc.ctl_flush_tlb()
}

/// Runs `program` with `args` to its end; returns how it ended and, with `opts.stats`,
/// the counters' report.
pub fn run(program: &str, args: &[String], opts: &Options) -> Result<(Exit, String), String> {
    let params = LayoutParams::arm64(
        opts.kernel,
        opts.page_shift,
        opts.kernel != KernelVersion::V6_1,
    );
    let raw = Box::into_raw(Box::new(
        ProcessStorage::with_flat_ram(&params, opts.phys_mem).with_processes(MAX_PROCESSES),
    ));
    // SAFETY: `raw` is a live, unaliased allocation; the reference (and everything built
    // from it: the process model, the emulator holding it) lives only inside `run_on`,
    // which drops all of it before it returns; then the storage is freed, once.
    let r = run_on(unsafe { &mut *raw }, params, program, args, opts);
    drop(unsafe { Box::from_raw(raw) });
    r
}

/// [`run`] on storage that outlives the run.
fn run_on(
    storage: &'static mut ProcessStorage,
    params: LayoutParams,
    program: &str,
    args: &[String],
    opts: &Options,
) -> Result<(Exit, String), String> {
    sysroot_aliases(storage, &opts.sysroot);
    let (ptr, len) = storage.ram_host_range().ok_or("the RAM holds no data")?;
    // SAFETY: the storage outlives this function (see `run`), so the range stays valid;
    // pagesim reaches the bytes only inside its calls and Unicorn only inside emu_start,
    // never at once.
    let ram = unsafe { Ram::new(ptr, len) };
    let sys = storage.build_system(params, Start::Fresh, ImportHints::default())?;
    let mut k = Kernel::new(sys, ram, params, opts.sysroot.clone());
    k.trace = opts.trace;
    k.ttys = opts.ttys;
    let mut argv: Vec<&str> = vec![program];
    argv.extend(args.iter().map(String::as_str));
    let info = k
        .exec_image(program, Path::new(program), &argv, ENVP)
        .map_err(|e| format!("exec {program}: {e:?}"))?;

    let mut uc = Unicorn::new_with_data(Arch::ARM64, Mode::LITTLE_ENDIAN, k)
        .map_err(|e| format!("unicorn: {e:?}"))?;
    uc.ctl_set_cpu_model(Arm64CpuModel::MAX as i32)
        .map_err(|e| format!("cpu model: {e:?}"))?;
    uc.ctl_set_page_size(params.page_size() as u32)
        .map_err(|e| format!("page size: {e:?}"))?;
    uc.ctl_set_tlb_type(TlbType::VIRTUAL)
        .map_err(|e| format!("virtual TLB: {e:?}"))?;
    // SAFETY: as for `ram` above: the storage outlives the emulator.
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
            // A flush the fault asked for waits for the next system call or stop: Unicorn
            // cannot flush inside its own fill, and this entry replaces the faulting
            // page's.
            Ok(pa) => Some(TlbEntry { paddr: pa, perms }),
            Err(e) => {
                // The running process dies of it (the program's end if it is the first).
                if k.exit.is_none() && k.switch.is_none() {
                    k.end(e);
                }
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
        let (flush, sw, done) = (std::mem::take(&mut k.flush), k.switch, k.exit.is_some());
        let _ = uc.reg_write(RegisterARM64::X0, ret as u64);
        if let Some(Switch::To { from, ret, .. }) = sw {
            // The caller leaves the CPU with its result in x0.
            let _ = uc.reg_write(RegisterARM64::X0, ret);
            if let Ok(mut c) = uc.context_alloc() {
                if uc.context_save(&mut c).is_ok() {
                    uc.get_data_mut().contexts.insert(from, c);
                }
            }
        }
        if flush {
            let _ = uc.ctl_flush_tlb();
        }
        if done || sw.is_some() {
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
    uc.reg_write(RegisterARM64::PC, info.pc)
        .map_err(|e| format!("pc: {e:?}"))?;
    loop {
        let pc = uc.pc_read().map_err(|e| format!("pc: {e:?}"))?;
        let r = uc.emu_start(pc, u64::MAX, 0, 0);
        if uc.get_data().exit.is_some() {
            if opts.trace {
                let at = uc.pc_read().unwrap_or(0);
                eprintln!("[pagesim] the program ended at pc {at:#x}");
            }
            break;
        }
        if let Some(sw) = uc.get_data_mut().switch.take() {
            switch(&mut uc, sw).map_err(|e| format!("switching processes: {e:?}"))?;
            uc.get_data_mut().flush = false;
            continue;
        }
        if std::mem::take(&mut uc.get_data_mut().flush) {
            uc.ctl_flush_tlb()
                .map_err(|e| format!("flushing the TLB: {e:?}"))?;
            if r.is_ok() {
                continue;
            }
        }
        if let Err(e) = r {
            let at = uc.pc_read().unwrap_or(0);
            return Err(format!("the CPU stopped at {at:#x}: {e:?}"));
        }
    }
    let exit = uc.get_data().exit.expect("the loop ends with an exit");
    let report = if opts.stats {
        uc.get_data_mut().report(instructions.get())
    } else {
        String::new()
    };
    // The emulator and the process model go before the storage they live in.
    drop(uc);
    Ok((exit, report))
}
