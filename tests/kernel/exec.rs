//! The exec-stop cross-check: real ELF programs started on the host kernel (stopped at the
//! exec with PTRACE_TRACEME, ASLR off, an 8 MiB stack rlimit, and for some runs the legacy
//! layout of `ADDR_COMPAT_LAYOUT`) and by `Process::exec` with
//! the same argv and envp; the maps must be equal byte for byte.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pagesim::linux::exec::{
    elf, AuxValues, ExecArgs, ExecFile, ADDR_COMPAT_LAYOUT, ADDR_NO_RANDOMIZE,
};
use pagesim::linux::mm::vma::DevId;
use pagesim::linux::mm::ImportHints;
use pagesim::linux::mm::LayoutParams;
use pagesim::linux::storage::{exec_host, ProcessStorage, Start};

use super::driver::STACK_RLIMIT;

/// The four ways `hello.c` is built: name and compiler flags.
const BUILDS: [(&str, &[&str]); 4] = [
    ("static", &["-static", "-no-pie"]),
    ("static-pie", &["-static-pie"]),
    ("pie", &["-pie", "-fPIE"]),
    ("nopie", &["-no-pie"]),
];

/// Compiles `src` with `cc flags -O1` into `out`.
pub fn compile(cc: &str, flags: &[&str], src: &Path, out: &Path) -> Result<(), String> {
    let st = std::process::Command::new(cc)
        .args(flags)
        .arg("-O1")
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .map_err(|e| format!("{cc}: {e}"))?;
    if !st.success() {
        return Err(format!("`{cc} {}` failed", flags.join(" ")));
    }
    Ok(())
}

/// The test program every exec-stop check builds.
fn hello() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel/programs/hello.c")
}

/// Builds `tests/kernel/programs/hello.c` four ways into `dir` (static non-PIE,
/// static-pie, dynamic PIE, dynamic non-PIE) with the host's C compiler; returns the
/// programs that built (none without a compiler).
pub fn build_programs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for (name, flags) in BUILDS {
        let exe = dir.join(name);
        match compile("cc", flags, &hello(), &exe) {
            Ok(()) => out.push(exe),
            Err(e) => println!("note: {e}: the {name} program is not checked"),
        }
    }
    out
}

/// Starts `path` with `argv` and `envp` under ptrace and returns its maps at the exec stop.
pub fn kernel_exec_maps(
    path: &str,
    argv: &[&str],
    envp: &[&str],
    personality: u32,
) -> Result<String, String> {
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let c_path = c(path)?;
    let c_argv = argv.iter().map(|s| c(s)).collect::<Result<Vec<_>, _>>()?;
    let c_envp = envp.iter().map(|s| c(s)).collect::<Result<Vec<_>, _>>()?;
    let mut argv_p: Vec<*const libc::c_char> = c_argv.iter().map(|s| s.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = c_envp.iter().map(|s| s.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: the child only makes async-signal-safe system calls on data prepared before
    // the fork, then execs or exits; the parent waits for it and kills it.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_STACK, &mut rl);
        rl.rlim_cur = STACK_RLIMIT.min(rl.rlim_max);
        let pid = libc::fork();
        if pid < 0 {
            return Err("fork failed".into());
        }
        if pid == 0 {
            libc::personality(personality as libc::c_ulong);
            libc::setrlimit(libc::RLIMIT_STACK, &rl);
            libc::ptrace(
                libc::PTRACE_TRACEME,
                0,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            );
            libc::execve(c_path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
            libc::_exit(127);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        let stopped = libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTRAP;
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"));
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
        if !stopped {
            return Err(format!(
                "{path} did not reach the exec stop (status {status:#x})"
            ));
        }
        maps.map_err(|e| format!("maps of the stopped child: {e}"))
    }
}

/// Execs `path` in pagesim with the host's layout and returns the maps.
pub fn pagesim_exec_maps(
    params: LayoutParams,
    path: &str,
    argv: &[&str],
    envp: &[&str],
    personality: u32,
) -> Result<String, String> {
    let mut storage = ProcessStorage::new(&params, 256 << 20);
    let mut p = storage.build(params, Start::Fresh, ImportHints::default())?;
    exec_host(
        &mut p,
        path,
        argv,
        envp,
        Path::new("/"),
        STACK_RLIMIT,
        personality,
    )?;
    p.validate().map_err(|e| e.to_string())?;
    Ok(p.maps_string())
}

/// Runs every program with several argv/envp sizes on both sides; returns the failures.
pub fn check_all(params: LayoutParams, programs: &[String]) -> (usize, Vec<String>) {
    check_with(programs, kernel_exec_maps, |path, argv, envp, pers| {
        pagesim_exec_maps(params, path, argv, envp, pers)
    })
}

/// Runs every program with several argv/envp sizes through `kernel` and `sim` (each
/// returns the maps at the exec stop of `path` with argv, envp and personality); returns
/// how many runs were made and the failures.
pub fn check_with(
    programs: &[String],
    mut kernel: impl FnMut(&str, &[&str], &[&str], u32) -> Result<String, String>,
    mut sim: impl FnMut(&str, &[&str], &[&str], u32) -> Result<String, String>,
) -> (usize, Vec<String>) {
    let a20k = "A".repeat(20000);
    let e10k = format!("X={}", "e".repeat(10000));
    let big = "B".repeat(100_000);
    let mut failures = vec![];
    let mut runs = 0;
    for path in programs {
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec![path], vec![]),
            (vec![path, "a", "b"], vec!["X=1", "Y=2"]),
            (vec![path, &a20k, &a20k], vec![&e10k]),
            (vec![path, &big, &big], vec!["HOME=/"]),
        ];
        // The legacy layout (`setarch -L`) for the first two argument sets.
        let personalities = [ADDR_NO_RANDOMIZE, ADDR_NO_RANDOMIZE | ADDR_COMPAT_LAYOUT];
        let runs_of = cases.iter().enumerate().flat_map(|(i, c)| {
            personalities[..if i < 2 { 2 } else { 1 }]
                .iter()
                .map(move |&pers| (c, pers))
        });
        for ((argv, envp), pers) in runs_of {
            runs += 1;
            let what = format!(
                "{path} with {} args ({} bytes), {} env strings and personality {pers:#x}",
                argv.len(),
                argv.iter().map(|s| s.len() + 1).sum::<usize>(),
                envp.len()
            );
            let k = kernel(path, argv, envp, pers);
            let s = sim(path, argv, envp, pers);
            if std::env::var_os("PAGESIM_EXEC_DUMP").is_some() {
                println!("exec of {what}:\n{}", k.as_deref().unwrap_or("(error)"));
            }
            match (k, s) {
                (Ok(k), Ok(s)) if k == s => {}
                (Ok(k), Ok(s)) => failures.push(format!(
                    "exec of {what}: maps differ\n{}",
                    super::compare::diff(&k, &s)
                )),
                (k, s) => failures.push(format!("exec of {what}: kernel {k:?}, pagesim {s:?}")),
            }
        }
    }
    (runs, failures)
}

/// Where the arm64 programs live in the guest, and its dynamic loader (from the
/// `libc6-arm64-cross` sysroot).
pub const GUEST_PROGRAMS: &str = "progs";
/// The arm64 dynamic loader on this machine (`libc6-arm64-cross`).
pub const ARM64_LOADER: &str = "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1";
/// The loader's path in arm64 programs' `PT_INTERP`, and in the guest.
pub const ARM64_INTERP: &str = "/lib/ld-linux-aarch64.so.1";

/// Builds `hello.c` for arm64 with `aarch64-linux-gnu-gcc` four ways into `dir`; returns
/// (name, host file) of each, or why one failed to build.
pub fn build_arm64_programs(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = vec![];
    for (name, flags) in BUILDS {
        let exe = dir.join(format!("arm64-{name}"));
        compile("aarch64-linux-gnu-gcc", flags, &hello(), &exe)?;
        out.push((name.to_string(), exe));
    }
    if !Path::new(ARM64_LOADER).exists() {
        return Err(format!(
            "no {ARM64_LOADER} (Debian package libc6-arm64-cross)"
        ));
    }
    Ok(out)
}

/// A file of the guest and its copy on this machine, with the guest's device and inode.
pub struct GuestFile {
    pub shown: String,
    pub host: PathBuf,
    pub dev: DevId,
    pub ino: u64,
}

/// Starts `path` in the guest under ptrace and returns its maps at the exec stop.
pub fn guest_exec_maps(
    link: &super::arm64::Link,
    path: &str,
    argv: &[&str],
    envp: &[&str],
    personality: u32,
) -> Result<String, String> {
    let mut req = Vec::new();
    for s in std::iter::once(&path)
        .chain(argv)
        .chain(std::iter::once(&"--"))
        .chain(envp)
    {
        req.extend_from_slice(s.as_bytes());
        req.push(0);
    }
    let r = link
        .router(super::arm64::op::EXEC_STOP, &[personality as u64], &req)
        .map_err(|e| e.to_string())?;
    if r.ret < 0 {
        return Err(format!("exec stop in the guest: errno {}", r.errno));
    }
    Ok(String::from_utf8_lossy(&r.payload).into_owned())
}

/// Execs the guest file `path` in pagesim, reading the guest's files from their copies
/// here and showing them with the guest's devices and inodes; returns the maps.
pub fn pagesim_exec_guest(
    params: LayoutParams,
    files: &[GuestFile],
    path: &str,
    argv: &[&str],
    envp: &[&str],
    personality: u32,
) -> Result<String, String> {
    let mut storage = ProcessStorage::new(&params, 256 << 20);
    for f in files {
        storage.files_mut().alias(&f.shown, &f.host, f.dev, f.ino);
    }
    let mut p = storage.build(params, Start::Fresh, ImportHints::default())?;
    let bytes_of = |shown: &str| -> Result<Vec<u8>, String> {
        let f = files
            .iter()
            .find(|f| f.shown == shown)
            .ok_or_else(|| format!("{shown} is not in the guest"))?;
        std::fs::read(&f.host).map_err(|e| format!("{}: {e}", f.host.display()))
    };
    let exe_bytes = bytes_of(path)?;
    let interp_path = elf::Elf::parse(&exe_bytes, elf::EM_AARCH64)
        .ok()
        .and_then(|e| e.interp().ok().flatten().map(String::from));
    let interp_bytes = match &interp_path {
        Some(ip) => Some(bytes_of(ip)?),
        None => None,
    };
    let exe = ExecFile {
        file: p.open(path).map_err(|e| format!("{path}: {e}"))?,
        bytes: &exe_bytes,
    };
    let interp = match (&interp_path, &interp_bytes) {
        (Some(ip), Some(b)) => Some(ExecFile {
            file: p.open(ip).map_err(|e| format!("{ip}: {e}"))?,
            bytes: b,
        }),
        _ => None,
    };
    let args = ExecArgs {
        filename: path,
        argv,
        envp,
        rlimit_stack: STACK_RLIMIT,
        personality,
        random: [0x5a; 16],
        aux: AuxValues::observed(params.arch),
    };
    p.exec(&exe, interp.as_ref(), &args)
        .map_err(|e| e.to_string())?;
    p.validate().map_err(|e| e.to_string())?;
    Ok(p.maps_string())
}
