//! The `pagesim` command-line tool.

mod at;
mod demo;
mod json;

use std::io::{self, BufWriter};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pagesim::arch::{Compat, Cpu};
use pagesim::linux::exec::{ADDR_COMPAT_LAYOUT, ADDR_NO_RANDOMIZE};
use pagesim::linux::paging::DataMode;

#[derive(Parser)]
#[command(
    name = "pagesim",
    version,
    about = "Simulate the AArch64 MMU and Linux anonymous memory, exactly",
    long_about = "pagesim simulates AArch64 VMSAv8-64 stage-1 address translation (walks, \
                  permissions, faults, AF/dirty updates) exactly as the architecture defines it.\n\
                  Run without a subcommand for the demo."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum CpuArg {
    /// Every feature pagesim models, with a 52-bit physical address space (FEAT_LPA).
    Max,
    /// Armv8.0: a 48-bit physical address space, no optional features.
    #[value(name = "v8.0")]
    V8_0,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompatArg {
    /// The Arm architecture (default).
    Arch,
    /// QEMU's TCG where it departs from the architecture.
    Qemu,
}

#[derive(Subcommand)]
enum Command {
    /// Answer AT queries given as JSON lines on stdin with PAR_EL1 values on stdout.
    #[command(
        long_about = "Reads one JSON object per line on stdin: tcr, ttbr0, ttbr1, sctlr, mair, va \
        (hex strings), op (S1E1R, S1E1W, S1E0R, S1E0W, S1E1RP, S1E1WP; the P forms run with PSTATE.PAN=1), \
        writes ([[pa, value], ...]: the only non-zero words of physical memory) and optional ram_base/ram_size \
        (default RAM 0x40000000..0x80000000; walks outside it are external aborts).\n\
        Writes one line per query: {\"par\": \"0x...\", \"updates\": [[\"0x...pa\", \"0x...new\"], ...]}, \
        or {\"error\": \"...\"} for a malformed line.\n\n\
        Example:\n  echo '{\"tcr\":\"0x580100010\",\"sctlr\":\"0x1\",\"ttbr0\":\"0x40000000\",\"ttbr1\":\"0x0\",\
        \"mair\":\"0xff\",\"va\":\"0x0\",\"op\":\"S1E1R\"}' | pagesim at"
    )]
    At {
        /// Which behaviour to follow where QEMU and the architecture differ.
        #[arg(long, value_enum, default_value = "arch")]
        compat: CompatArg,
        /// The CPU model: `max` (every feature, 52-bit PA: FEAT_LPA, LPA2, HAFDBS, PAN3 …)
        /// or `v8.0` (Armv8.0: 48-bit PA, no optional features).
        #[arg(long, value_enum, default_value = "max")]
        cpu: CpuArg,
    },
    /// Replay the seed notes' two programs on a simulated arm64 process (the default).
    #[command(
        long_about = "Replays the two programs of the seed notes on a simulated arm64 process whose \
starting map is the notes' \"before\" listing, under Linux 6.1 rules: the NULL-pointer write (the MMU's \
translation fault with its ESR and FAR, then the kernel's SIGSEGV), and the 100 MiB anonymous mmap with \
/proc/PID/maps before and after, in the kernel's exact format. Then it touches every page of the 100 MiB \
and reports what demand paging did (faults, pages and huge pages, frames, page-table frames per level, \
Rss, TLB hit rate), and shows one translation level by level."
    )]
    Demo {
        /// Whether data pages hold data (`none`: page tables only; reads give zeros).
        #[arg(long, value_enum, default_value = "stored")]
        data: DataArg,
    },
    /// Run a script of mmap/munmap/mprotect/madvise/brk calls and memory touches on a
    /// simulated Linux process, printing results like strace and maps/smaps like the kernel.
    #[command(long_about = RUN_HELP)]
    Run(Box<RunArgs>),
}

const RUN_HELP: &str = "Runs SCRIPT (a file, or - for stdin) on a simulated Linux process whose memory lives in \
AArch64 page tables. One call per line, # comments; numbers decimal or 0x-hex with optional K/M/G suffix:

  [NAME =] mmap ADDR LEN PROT FLAGS    PROT: r,w,x letters or none (rw, r-x); FLAGS: comma list of
                                       private,shared,anonymous,fixed,fixed_noreplace,noreserve,
                                       populate,stack,growsdown
  munmap ADDR LEN | mprotect ADDR LEN PROT | madvise ADDR LEN ADVICE | brk ADDR
  read ADDR [LEN] | write ADDR [LEN] | exec ADDR [LEN]   touch one byte per page; stop at a fault
  maps | smaps

ADDR is a number, NULL, a NAME bound by an earlier mmap, or NAME+OFF / NAME-OFF.

Example:
  printf 'buf = mmap NULL 100M rw private,anonymous\\nwrite buf 1M\\nmaps\\n' | pagesim run -";

#[derive(clap::Args)]
struct RunArgs {
    /// Start from a captured /proc/PID/smaps (VmFlags and Anonymous decide merges).
    #[arg(long, value_name = "FILE", conflicts_with = "maps_in")]
    smaps_in: Option<std::path::PathBuf>,
    /// Start from a captured /proc/PID/maps.
    #[arg(long, value_name = "FILE")]
    maps_in: Option<std::path::PathBuf>,
    /// Architecture layout.
    #[arg(long, value_enum, default_value = "arm64")]
    arch: ArchArg,
    /// Kernel behaviour version.
    #[arg(long, value_enum, default_value = "6.12")]
    kernel: KernelArg,
    /// Base page size (16k: arm64 16K-page kernels).
    #[arg(long, value_enum, default_value = "4k")]
    page_size: PageSizeArg,
    /// RLIMIT_STACK in bytes (decides mmap_base).
    #[arg(long, value_parser = num)]
    stack_rlimit: Option<u64>,
    /// mmap_base (default: computed, or inferred from an imported map).
    #[arg(long, value_parser = num)]
    mmap_base: Option<u64>,
    /// Effective mmap_min_addr.
    #[arg(long, value_parser = num)]
    mmap_min_addr: Option<u64>,
    /// start_brk (with --brk).
    #[arg(long, value_parser = num, requires = "brk")]
    start_brk: Option<u64>,
    /// The current break (with --start-brk).
    #[arg(long, value_parser = num, requires = "start_brk")]
    brk: Option<u64>,
    /// Transparent huge page mode.
    #[arg(long, value_enum)]
    thp: Option<ThpArg>,
    /// vm.max_map_count.
    #[arg(long, value_parser = num)]
    max_map_count: Option<u64>,
    /// Simulated physical memory (default 1G).
    #[arg(long, value_parser = num, default_value = "1G")]
    phys_mem: u64,
    /// Start by execve of this ELF file of the host (argv[0] is PATH).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["maps_in", "smaps_in"])]
    exec: Option<String>,
    /// An argument after argv[0] for --exec (repeatable, in order).
    #[arg(
        long = "arg",
        value_name = "A",
        requires = "exec",
        allow_hyphen_values = true
    )]
    args: Vec<String>,
    /// An environment string K=V for --exec (repeatable, in order; none by default).
    #[arg(long = "env", value_name = "K=V", requires = "exec")]
    env: Vec<String>,
    /// Where the interpreter of --exec is looked up.
    #[arg(long, value_name = "DIR", default_value = "/", requires = "exec")]
    sysroot: std::path::PathBuf,
    /// Exec with the `ADDR_COMPAT_LAYOUT` personality (`setarch -L`): mmap bottom-up from
    /// `TASK_UNMAPPED_BASE`.
    #[arg(long, requires = "exec")]
    legacy_layout: bool,
    /// Whether data pages hold data (`none`: page tables only, reads give zeros, writes are
    /// dropped: simulated machines larger than the host).
    #[arg(long, value_enum, default_value = "stored")]
    data: DataArg,
    /// Print only maps/smaps text and SIGSEGV lines.
    #[arg(long)]
    quiet: bool,
    /// The script file, or - for stdin.
    script: String,
}

/// The processes a script may have besides the first.
const FORKS: usize = 7;

fn num(s: &str) -> Result<u64, String> {
    pagesim::linux::script::parse_number(s)
}

#[derive(Clone, Copy, ValueEnum)]
enum DataArg {
    /// Data pages are stored in host memory.
    Stored,
    /// Only page tables are stored.
    None,
}

impl From<DataArg> for DataMode {
    fn from(d: DataArg) -> DataMode {
        match d {
            DataArg::Stored => DataMode::Stored,
            DataArg::None => DataMode::None,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ArchArg {
    /// arm64, 48-bit VA (52-bit on 6.12 with 4K pages).
    Arm64,
    /// x86_64, 47-bit VA with the [vsyscall] gate.
    #[value(name = "x86_64")]
    X86_64,
}

#[derive(Clone, Copy, ValueEnum)]
enum KernelArg {
    /// Linux 6.1.
    #[value(name = "6.1")]
    V6_1,
    /// Linux 6.12.
    #[value(name = "6.12")]
    V6_12,
    /// Linux 6.18.
    #[value(name = "6.18")]
    V6_18,
}

#[derive(Clone, Copy, ValueEnum)]
enum PageSizeArg {
    /// 4 KiB.
    #[value(name = "4k")]
    K4,
    /// 16 KiB.
    #[value(name = "16k")]
    K16,
}

#[derive(Clone, Copy, ValueEnum)]
enum ThpArg {
    /// never.
    Never,
    /// madvise.
    Madvise,
    /// always.
    Always,
}

fn run_script(a: RunArgs) -> Result<(), String> {
    use pagesim::linux::mm::{ImportHints, KernelVersion, LayoutParams, ThpMode};
    use pagesim::linux::storage::{ProcessStorage, Start};
    let version = match a.kernel {
        KernelArg::V6_1 => KernelVersion::V6_1,
        KernelArg::V6_12 => KernelVersion::V6_12,
        KernelArg::V6_18 => KernelVersion::V6_18,
    };
    let shift = match a.page_size {
        PageSizeArg::K4 => 12,
        PageSizeArg::K16 => 14,
    };
    let mut params = match a.arch {
        ArchArg::Arm64 => LayoutParams::arm64(version, shift, version == KernelVersion::V6_12),
        ArchArg::X86_64 => {
            if shift != 12 {
                return Err("x86_64 has 4 KiB pages only".into());
            }
            let mut p = LayoutParams::x86_64_6_18();
            p.version = version;
            p
        }
    };
    if let Some(v) = a.stack_rlimit {
        params.rlimit_stack = v;
    }
    if let Some(v) = a.mmap_min_addr {
        params.mmap_min_addr = v;
    }
    if let Some(v) = a.max_map_count {
        params.max_map_count = v.min(1 << 20) as usize;
    }
    if let Some(t) = a.thp {
        params.thp = match t {
            ThpArg::Never => ThpMode::Never,
            ThpArg::Madvise => ThpMode::Madvise,
            ThpArg::Always => ThpMode::Always,
        };
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let start_text = match (&a.smaps_in, &a.maps_in) {
        (Some(p), _) => Some((true, read(p)?)),
        (None, Some(p)) => Some((false, read(p)?)),
        _ => None,
    };
    let script = if a.script == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("stdin: {e}"))?;
        s
    } else {
        read(std::path::Path::new(&a.script))?
    };
    let calls = pagesim::linux::script::parse(&script).map_err(|e| format!("{}: {e}", a.script))?;
    let hints = ImportHints {
        start_brk: a.start_brk,
        brk: a.brk,
        start_stack: None,
        mmap_base: a.mmap_base,
    };
    let mut storage =
        ProcessStorage::with_data(&params, a.phys_mem, a.data.into()).with_processes(FORKS);
    let start = match &start_text {
        Some((true, t)) => Start::Smaps(t),
        Some((false, t)) => Start::Maps(t),
        None => Start::Fresh,
    };
    let mut system = storage.build_system(params, start, hints)?;
    let mut out = String::new();
    if let Some(path) = &a.exec {
        let mut argv: Vec<&str> = vec![path];
        argv.extend(a.args.iter().map(String::as_str));
        let envp: Vec<&str> = a.env.iter().map(String::as_str).collect();
        let rlimit = a.stack_rlimit.unwrap_or(params.rlimit_stack);
        let info = pagesim::linux::storage::exec_host(
            system.process_mut(),
            path,
            &argv,
            &envp,
            &a.sysroot,
            rlimit,
            if a.legacy_layout {
                ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT
            } else {
                ADDR_NO_RANDOMIZE
            },
        )?;
        if !a.quiet {
            out.push_str(&format!(
                "execve({path:?}, {argv:?}, {envp:?}) = 0  # pc {:#x}, sp {:#x}, AT_ENTRY {:#x}, AT_BASE {:#x}, AT_PHDR {:#x}, AT_SYSINFO_EHDR {:#x}, brk {:#x}\n",
                info.pc, info.sp, info.entry, info.base, info.phdr, info.vdso, info.start_brk
            ));
        }
    }
    let r = pagesim::linux::script::run::run(&mut system, &calls, a.quiet, &mut out);
    print!("{out}");
    r.map_err(|(line, m)| format!("{}: line {line}: {m}", a.script))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Demo {
        data: DataArg::Stored,
    }) {
        Command::At { compat, cpu } => {
            let compat = match compat {
                CompatArg::Arch => Compat::Arch,
                CompatArg::Qemu => Compat::Qemu,
            };
            let cpu = match cpu {
                CpuArg::Max => Cpu::MAX,
                CpuArg::V8_0 => Cpu::V8_0,
            };
            let stdin = io::stdin().lock();
            let stdout = BufWriter::new(io::stdout().lock());
            at::run(stdin, stdout, cpu.with_compat(compat))
        }
        Command::Demo { data } => demo::run(&mut io::stdout().lock(), data.into()),
        Command::Run(a) => match run_script(*a) {
            Ok(()) => Ok(()),
            Err(m) => {
                eprintln!("pagesim run: {m}");
                return ExitCode::FAILURE;
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagesim: {e}");
            ExitCode::FAILURE
        }
    }
}
