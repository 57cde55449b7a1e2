//! `pagesim-emu run` on real arm64 programs, built here with `aarch64-linux-gnu-gcc`
//! (static, and as dynamic PIEs against the `libc6-arm64-cross` sysroot).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Builds `tests/programs/NAME.c` with `flags` into the target directory.
fn build(name: &str, kind: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
    std::fs::create_dir_all(&dir).unwrap();
    // A file of its own per build: the tests run at once and build the same programs.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir.join(format!("{name}-{kind}-{}-{n}", std::process::id()));
    let st = Command::new("aarch64-linux-gnu-gcc")
        .args(flags)
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("aarch64-linux-gnu-gcc (Debian package gcc-aarch64-linux-gnu)");
    assert!(st.success(), "building {name} ({kind}) failed");
    out
}

fn emu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagesim-emu"))
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The notes' first program dies of SIGSEGV after its puts, as the shell reports it. On a
/// terminal (the notes') stdout is line-buffered and the line shows; into a pipe it is
/// fully buffered and the line dies with the process, as with the real kernel.
fn check_segv(exe: &Path) {
    let o = emu(&["--tty", exe.to_str().unwrap()]);
    assert_eq!(
        text(&o.stdout),
        "before invalid access\n",
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).ends_with("Segmentation fault (core dumped)\n"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(139));
    let o = emu(&[exe.to_str().unwrap()]);
    assert_eq!(text(&o.stdout), "", "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).ends_with("Segmentation fault (core dumped)\n"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(139));
}

#[test]
fn seed_null_store_static() {
    check_segv(&build("segv", "static", &["-static"]));
}

#[test]
fn seed_null_store_dynamic_pie() {
    check_segv(&build("segv", "pie", &["-pie", "-fPIE"]));
}

/// The maps lines of a section of the program's output (between two headers).
fn section<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.split_once(header)
        .map(|(_, rest)| {
            rest.lines()
                .skip(1)
                .take_while(|l| !l.is_empty() && !l.starts_with("***"))
                .collect()
        })
        .unwrap_or_default()
}

fn check_maps_self(exe: &Path) {
    let o = emu(&[exe.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    let before = section(&out, "*** memory map before memory allocation ***");
    let after = section(&out, "*** memory map after memory allocation ***");
    let unmapped = section(&out, "*** memory map after munmap ***");
    assert!(
        before.iter().any(|l| l.ends_with(exe.to_str().unwrap())),
        "{out}"
    );
    assert!(before.iter().any(|l| l.ends_with("[stack]")), "{out}");
    // One more line: the 100 MiB mapping, at the address the program printed.
    let addr = out
        .split_once("address = 0x")
        .and_then(|(_, r)| r.split(';').next())
        .and_then(|a| u64::from_str_radix(a, 16).ok())
        .expect("the program prints the address");
    let line = format!("{addr:x}-{:x} rw-p 00000000 00:00 0", addr + 0x640_0000);
    let added: Vec<&&str> = after.iter().filter(|l| !before.contains(l)).collect();
    assert_eq!(added.len(), 1, "{out}");
    assert!(added[0].starts_with(&line), "{} vs {line}", added[0]);
    assert_eq!(unmapped, before, "munmap gives back the first map");
}

#[test]
fn maps_self_static() {
    check_maps_self(&build("maps_self", "static", &["-static"]));
}

#[test]
fn maps_self_dynamic_pie() {
    check_maps_self(&build("maps_self", "pie", &["-pie", "-fPIE"]));
}

#[path = "../../tests/kernel/emu_outputs.rs"]
#[allow(dead_code)]
mod emu_outputs;

/// Runs each test program as the kernel harness ran it on a real arm64 kernel (output into
/// a pipe, the same environment, ASLR off) and holds its output and status to the
/// kernel's, kept in `tests/expected/<kernel>/` (machine-specific device, inode and program
/// path made neutral on both sides).
fn check_expected(kernel: &str, flags: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(kernel);
    let mut failures = vec![];
    for prog in emu_outputs::PROGRAMS {
        for (kind, build_flags) in emu_outputs::KINDS {
            // Run as ./NAME from a directory of its own, as the kernel harness ran it.
            let built = build(prog, kind, build_flags);
            let run_dir = built.with_extension("dir");
            std::fs::create_dir_all(&run_dir).unwrap();
            let name = format!("{prog}-{kind}");
            std::fs::copy(&built, run_dir.join(&name)).unwrap();
            let exe = format!("./{name}");
            let root = sysroot();
            let mut args = flags.to_vec();
            args.extend(["--sysroot", root.to_str().unwrap()]);
            args.push(&exe);
            let o = Command::new(env!("CARGO_BIN_EXE_pagesim-emu"))
                .arg("run")
                .args(&args)
                .current_dir(&run_dir)
                .output()
                .unwrap();
            // Maps shows the program by its absolute path, as the kernel's d_path does.
            let shown = std::fs::canonicalize(run_dir.join(&name)).unwrap();
            let got = emu_outputs::normalise(
                &text(&o.stdout),
                shown.to_str().unwrap(),
                o.status.code().unwrap_or(-1),
            );
            let file = dir.join(format!("{prog}-{kind}.txt"));
            let want = std::fs::read_to_string(&file).unwrap();
            if got != want {
                failures.push(format!("{prog}-{kind} on {kernel}:\n{}", diff(&want, &got)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The sysroot with Debian's arm64 dash and coreutils beside the cross glibc, as
/// `sysroot.sh` builds it (once; the seed program's system() runs its /bin/sh and cat).
fn sysroot() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sysroot.sh");
        let o = Command::new(&script).output().unwrap();
        assert!(
            o.status.success(),
            "sysroot.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    })
    .clone()
}

/// The lines that differ, kernel first.
fn diff(want: &str, got: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).unwrap_or(&"<none>"), b.get(i).unwrap_or(&"<none>"));
        if x != y {
            out.push_str(&format!("  kernel : {x:?}\n  emu    : {y:?}\n"));
        }
    }
    out
}

#[test]
fn outputs_match_arm64_6_12() {
    check_expected("6.12", &["--kernel", "6.12"]);
}

#[test]
fn outputs_match_arm64_6_1() {
    check_expected("6.1", &["--kernel", "6.1"]);
}

#[test]
fn outputs_match_arm64_6_12_16k() {
    check_expected("6.12-16k", &["--kernel", "6.12", "--page-size", "16k"]);
}

/// A line of the notes' terminal or of pagesim-emu's, addresses, offsets, devices, inodes
/// and directories aside: a maps line as its permissions and the file's name (or the
/// pseudo-path, or nothing), any other line as it is with hex numbers as `0x…`. The notes
/// lost the kernel's column padding and show typographic dashes (`–` for `--`, `—` for
/// `---`).
fn key(line: &str) -> String {
    let line = line.replace('—', "---").replace('–', "--");
    let f: Vec<&str> = line.split_whitespace().collect();
    let is_maps = f.len() >= 5
        && f[0]
            .split_once('-')
            .is_some_and(|(a, b)| a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit()));
    if is_maps {
        let name = f.get(5).map_or("", |p| p.rsplit('/').next().unwrap_or(p));
        let name = if name == "main" || name.starts_with("seed_mmap") || name.starts_with("segv") {
            "<program>"
        } else {
            name
        };
        return format!("{} {name}", f[1]);
    }
    let mut out = String::new();
    let mut rest = line.as_str();
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        let hex = rest[i + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - i - 2);
        out.push_str("0x…");
        rest = &rest[i + 2 + hex..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The notes' two runs (`$ ./main` to `# end of run`), blank lines dropped.
fn notes_runs() -> Vec<Vec<String>> {
    let text = include_str!("../../tests/data/seed_terminal.txt");
    let mut runs = vec![];
    let mut cur: Option<Vec<String>> = None;
    for l in text.lines() {
        if l.starts_with("$ ./main") {
            cur = Some(vec![]);
        } else if l.starts_with("# end of run") {
            runs.extend(cur.take());
        } else if let Some(c) = cur.as_mut() {
            if !l.trim().is_empty() {
                c.push(key(l));
            }
        }
    }
    runs
}

/// The notes' two programs, built as the notes built them (dynamic PIEs), print what the
/// notes show, line for line: the same lines, permissions and files in the same order,
/// addresses aside (those come from pagesim's arm64 layout).
#[test]
fn seed_programs_print_the_notes_output() {
    let runs = notes_runs();
    assert_eq!(runs.len(), 2);
    let segv = build("segv", "pie", &["-pie", "-fPIE"]);
    let o = emu(&["--tty", segv.to_str().unwrap()]);
    let mut got: Vec<String> = text(&o.stdout).lines().map(key).collect();
    got.extend(text(&o.stderr).lines().map(key));
    assert_eq!(got, runs[0]);
    let seed = build("seed_mmap", "pie", &["-pie", "-fPIE"]);
    let root = sysroot();
    let o = emu(&["--sysroot", root.to_str().unwrap(), seed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let got: Vec<String> = text(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(key)
        .collect();
    assert_eq!(got, runs[1], "{}", text(&o.stdout));
}
