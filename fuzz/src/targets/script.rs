//! The `script` target: arbitrary `pagesim run` scripts parsed and run.

use super::*;

// ===== script ===========================================================================

/// Touch lengths above this are cut to it before the script runs (the run loop touches
/// page by page).
pub(crate) const SCRIPT_TOUCH_MAX: u64 = 16 << 20;

/// Fuzz target `script`: arbitrary text into the `pagesim run` script parser. An error
/// names a line of the text (1 to the number of lines). A parsed script names each call
/// with a line of the text, in increasing order, and runs (quiet, into a String) on a
/// small simulated machine (up to four processes: scripts fork, switch and exit) without
/// panicking; an error names the line of a parsed call; afterwards the machine's frame
/// accounting holds and every process's invariants of `mm_ops` hold.
///
/// The text is the whole input (invalid UTF-8 replaced). A first line starting with `#!`
/// (a comment to the parser) picks the layout like `mm_ops`'s config byte, from the byte
/// after `#!`. Populating calls longer than 64 MiB lose their populate part, touches are
/// cut to 16 MiB.
pub fn script(data: &[u8]) {
    use pagesim::linux::script::{parse, Call};
    let owned = String::from_utf8_lossy(data);
    let text: &str = &owned;
    let lines = text.lines().count();
    let mut calls = match parse(text) {
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= lines,
                "parse error on line {} of {lines}: {e}",
                e.line
            );
            assert!(!e.message.is_empty());
            let _ = e.to_string();
            return;
        }
        Ok(c) => c,
    };
    let mut last = 0;
    for (l, _) in &calls {
        assert!(*l > last && *l <= lines, "call on line {l} of {lines}");
        last = *l;
    }
    for (_, c) in &mut calls {
        match c {
            Call::Mmap { len, flags, .. } if *len > MM_POPULATE_MAX => {
                *flags &= !mman::MAP_POPULATE;
            }
            Call::Madvise { len, advice, .. }
                if *len > MM_POPULATE_MAX && is_populate_advice(*advice) =>
            {
                *advice = mman::MADV_NORMAL;
            }
            Call::Touch { len, .. } => *len = (*len).min(SCRIPT_TOUCH_MAX),
            _ => {}
        }
    }
    let cfg = text
        .strip_prefix("#!")
        .and_then(|t| t.bytes().next())
        .unwrap_or(0);
    // 64 MiB of RAM (80 MiB with 16K pages).
    let (params, ram) = mm_layout(cfg | 0x0c, 0, 0);
    let mut storage = ProcessStorage::new(&params, ram).with_processes_of(3, 512);
    let mut sys = storage
        .build_system(params, Start::Fresh, ImportHints::default())
        .expect("a fresh process");
    let mut out = String::new();
    if let Err((line, msg)) = pagesim::linux::script::run::run(&mut sys, &calls, true, &mut out) {
        assert!(
            calls.iter().any(|(l, _)| *l == line),
            "run error on line {line}, which holds no call: {msg}"
        );
        assert!(!msg.is_empty());
    }
    if let Err(e) = sys.validate() {
        panic!("system invariant: {e}");
    }
    let pids: Vec<u32> = sys.pids().collect();
    let alone = pids.len() == 1;
    for pid in pids {
        sys.switch(pid).expect("a live process");
        mm_check_in(sys.process(), &params, alone);
    }
}
