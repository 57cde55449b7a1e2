//! The outputs of `emu/tests/programs` on the real arm64 kernels, kept in
//! `emu/tests/expected/<kernel>/<program>-<kind>.txt` for pagesim-emu's tests to match.
//! Shared by the kernel harness (which runs the programs in its arm64 guests and checks the
//! files) and by `emu/tests/run.rs` (which includes this file).

/// The programs and how each is built (`aarch64-linux-gnu-gcc` flags).
pub const PROGRAMS: &[&str] = &["segv", "maps_self", "seed_mmap", "paging"];
/// Where the programs lie on the kernel's machine; both sides run each as `./NAME` from its
/// directory, so that argv[0] and AT_EXECFN, and so the initial stack, are the same.
pub const GUEST_DIR: &str = "/emu-progs";
/// The kinds of build.
pub const KINDS: &[(&str, &[&str])] = &[("static", &["-static"]), ("pie", &["-pie", "-fPIE"])];
/// The environment the programs run with (on the kernel and in pagesim-emu).
pub const ENVP: &[&str] = &["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "LANG=C"];

/// Returns the output with what differs between machines made neutral: in each maps line
/// of a file, the device and inode become `DEV INO` and the program's path `<exe>` (the
/// padding is rebuilt as the kernel pads); every other byte is kept. Then the status line.
pub fn normalise(output: &str, exe: &str, status: i32) -> String {
    let mut out = String::with_capacity(output.len() + 16);
    for l in output.split_inclusive('\n') {
        let (body, nl) = match l.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (l, ""),
        };
        let f: Vec<&str> = body.splitn(6, ' ').collect();
        let is_maps = f.len() == 6
            && f[0].split_once('-').is_some_and(|(a, b)| {
                !a.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit())
            })
            && f[1].len() == 4
            && f[3].contains(':');
        let path = if is_maps { f[5].trim_start() } else { "" };
        if is_maps && path.starts_with('/') {
            let path = if path == exe { "<exe>" } else { path };
            let head = format!("{} {} {} DEV INO", f[0], f[1], f[2]);
            out.push_str(&format!("{head:<72} {path}{nl}"));
        } else {
            out.push_str(l);
        }
    }
    out.push_str(&format!("== status {status}\n"));
    out
}
