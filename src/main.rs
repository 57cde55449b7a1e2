//! The `pagesim` command-line tool.

use std::io::{self, BufWriter};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pagesim::arch::{Compat, Cpu};

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
    },
    /// Walk through the address translation of the spec's fixture, level by level.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Demo) {
        Command::At { compat } => {
            let compat = match compat {
                CompatArg::Arch => Compat::Arch,
                CompatArg::Qemu => Compat::Qemu,
            };
            let stdin = io::stdin().lock();
            let stdout = BufWriter::new(io::stdout().lock());
            pagesim::cli::at::run(stdin, stdout, Cpu::MAX.with_compat(compat))
        }
        Command::Demo => pagesim::cli::demo::run(&mut io::stdout().lock()),
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
