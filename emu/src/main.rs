//! `pagesim-emu run [--kernel 6.1|6.12] [--page-size 4k|16k] [--sysroot DIR] [--trace]
//! [--stats] PROGRAM [ARGS…]`: runs an arm64 Linux program with pagesim as its memory
//! manager, and exits as the shell would report it (a SIGSEGV prints
//! `Segmentation fault (core dumped)` and exits 139).

use pagesim::linux::mm::KernelVersion;
use pagesim_emu::{run, Exit, Options};

const USAGE: &str = "usage: pagesim-emu run [--kernel 6.1|6.12] [--page-size 4k|16k] \
[--sysroot DIR] [--phys-mem BYTES] [--tty] [--trace] [--stats] PROGRAM [ARGS...]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("run") {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let mut opts = Options::default();
    let mut i = 1;
    let bad = |what: &str| -> ! {
        eprintln!("pagesim-emu: {what}\n{USAGE}");
        std::process::exit(2)
    };
    while i < args.len() && args[i].starts_with("--") {
        let val = |i: usize| {
            args.get(i + 1)
                .cloned()
                .unwrap_or_else(|| bad("missing value"))
        };
        match args[i].as_str() {
            "--kernel" => {
                opts.kernel = match val(i).as_str() {
                    "6.1" => KernelVersion::V6_1,
                    "6.12" => KernelVersion::V6_12,
                    k => bad(&format!("unknown kernel {k}")),
                };
                i += 1;
            }
            "--page-size" => {
                opts.page_shift = match val(i).as_str() {
                    "4k" => 12,
                    "16k" => 14,
                    s => bad(&format!("unknown page size {s}")),
                };
                i += 1;
            }
            "--sysroot" => {
                opts.sysroot = val(i).into();
                i += 1;
            }
            "--phys-mem" => {
                opts.phys_mem = val(i)
                    .parse()
                    .unwrap_or_else(|_| bad("--phys-mem takes bytes"));
                i += 1;
            }
            "--trace" => opts.trace = true,
            "--tty" => opts.ttys = [true; 3],
            "--stats" => opts.stats = true,
            "--" => {
                i += 1;
                break;
            }
            o => bad(&format!("unknown option {o}")),
        }
        i += 1;
    }
    let Some(program) = args.get(i) else {
        bad("no program")
    };
    match run(program, &args[i + 1..], &opts) {
        Ok((exit, report)) => {
            eprint!("{report}");
            match exit {
                Exit::Signal(11) => eprintln!("Segmentation fault (core dumped)"),
                Exit::Signal(7) => eprintln!("Bus error (core dumped)"),
                Exit::Signal(4) => eprintln!("Illegal instruction (core dumped)"),
                Exit::Signal(9) => eprintln!("Killed"),
                _ => {}
            }
            std::process::exit(exit.status());
        }
        Err(e) => {
            eprintln!("pagesim-emu: {e}");
            std::process::exit(127);
        }
    }
}
