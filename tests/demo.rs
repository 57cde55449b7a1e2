//! The demo replays the seed notes' two programs: its output holds the notes' terminal
//! output line by line (whitespace folded; the notes lost the kernel's column padding and
//! show typographic dashes), and its numbers describe what demand paging really did.

/// Runs `pagesim demo` as a user does and returns what it printed.
fn demo_output() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pagesim"))
        .arg("demo")
        .output()
        .unwrap();
    assert!(out.status.success(), "pagesim demo failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Restores the text the kernel printed from the notes' copy: en dash `–` was `--`, em
/// dash `—` was `---`.
fn normalise_notes(text: &str) -> String {
    text.replace('—', "---").replace('–', "--")
}

/// The two programs' terminal output, copied from the seed notes into the repository.
fn notes() -> String {
    include_str!("data/seed_terminal.txt").to_string()
}

fn fold(line: &str) -> String {
    normalise_notes(line)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The terminal output of each `$ ./main` run in the notes.
fn runs(notes: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for line in notes.lines() {
        if line.starts_with("$ ./main") {
            if let Some(c) = cur.take() {
                out.push(c);
            }
            cur = Some(vec![fold(line)]);
        } else if line.starts_with('#') {
            if let Some(c) = cur.take() {
                out.push(c);
            }
        } else if let Some(c) = cur.as_mut() {
            if !line.trim().is_empty() {
                c.push(fold(line));
            }
        }
    }
    out.extend(cur);
    out
}

#[test]
fn demo_output_holds_the_notes_line_by_line() {
    let text = demo_output();
    // The program's own output: no blank lines, no simulator commentary.
    let shown: Vec<String> = text
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("  ")
                && !l.starts_with("===")
                && !l.starts_with("pagesim")
                && !l.starts_with('(')
        })
        .map(fold)
        .collect();
    let runs = runs(&notes());
    assert_eq!(runs.len(), 2, "the notes have two program runs");
    assert_eq!(
        runs[0],
        [
            "$ ./main",
            "before invalid access",
            "Segmentation fault (core dumped)"
        ]
    );
    assert_eq!(runs[1].len(), 1 + 1 + 16 + 1 + 1 + 17);
    let mut at = 0;
    for run in &runs {
        let pos = (at..shown.len())
            .find(|&i| shown[i..].starts_with(run))
            .unwrap_or_else(|| {
                panic!(
                    "the demo does not show the run starting {:?}\n--- demo ---\n{text}",
                    run[..2].to_vec()
                )
            });
        at = pos + run.len();
    }
}

#[test]
fn demo_maps_are_in_the_kernels_exact_format() {
    let text = demo_output();
    // The new mapping's line, padded exactly as show_map_vma pads an unnamed VMA.
    assert!(text.contains("\nffff89ad0000-ffff8fed0000 rw-p 00000000 00:00 0 \n"));
    assert!(text.contains(
        "\nffffd9144000-ffffd9165000 rw-p 00000000 00:00 0                          [stack]\n"
    ));
    // The NULL write faulted in the MMU at level 0 with the EL0 data abort syndrome.
    assert!(text.contains("ESR_EL1 0x92000044, FAR_EL1 0x0"));
    assert!(text.contains("SIGSEGV {si_code=SEGV_MAPERR, si_addr=0x0}"));
}

#[test]
fn demo_touch_statistics_add_up() {
    let text = demo_output();
    let value = |label: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label}"));
        line[line.find(label).unwrap() + label.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let small = value("4 KiB pages allocated");
    let huge = value("2 MiB huge pages (THP, L2 blocks)");
    assert_eq!(
        small * 4096 + huge * (2 << 20),
        100 << 20,
        "every byte of the 100 MiB is backed once"
    );
    assert_eq!(
        value("page faults taken"),
        small + huge + 1,
        "one fault per page or block, plus the NULL write"
    );
    assert_eq!(value("Rss of the mapping"), 100 * 1024);
}
