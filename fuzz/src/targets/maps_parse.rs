//! The `maps_parse` target: maps and smaps text through the parsers, the importers and
//! back through the renderers.

use super::*;

// ===== maps_parse =======================================================================

pub(crate) const MAPS_SLOTS: [usize; 8] = [0, 1, 2, 4, 8, 16, 64, 256];

pub(crate) fn decode_maps_format(b: u8) -> MapsFormat {
    let mut f = [
        MapsFormat::X86_64_6_18,
        MapsFormat::ARM64_6_1,
        MapsFormat::ARM64_6_12,
        MapsFormat::ARM64_6_12_16K,
    ][usize::from(b & 3)];
    if b & 4 != 0 {
        f.smaps_protection_key = !f.smaps_protection_key;
    }
    if b & 8 != 0 {
        f.smaps_ksm_line = !f.smaps_ksm_line;
    }
    if b & 0x10 != 0 {
        f.smaps_thp_eligible_padded = !f.smaps_thp_eligible_padded;
    }
    if b & 0x20 != 0 {
        f.mnemonics = match f.mnemonics {
            MnemonicTable::Arm64 => MnemonicTable::X86_64,
            MnemonicTable::X86_64 => MnemonicTable::Arm64,
        };
    }
    match b >> 6 {
        1 => f.page_shift = 16,
        2 => f.page_shift = 10,
        3 => f.page_shift = 64,
        _ => {}
    }
    f
}

/// Splits `text` after its `n`-th newline (no split for 0).
pub(crate) fn split_after_lines(text: &str, n: usize) -> (&str, &str) {
    if n == 0 {
        return ("", text);
    }
    match text.match_indices('\n').nth(n - 1) {
        Some((i, _)) => text.split_at(i + 1),
        None => (text, ""),
    }
}

pub(crate) fn render_maps_string(vmas: &[Vma], fmt: &MapsFormat) -> String {
    let mut s = String::new();
    render_maps(&mut s, vmas, fmt).expect("render into a String");
    s
}

pub(crate) fn render_smaps_string(entries: &[SmapsEntry], fmt: &MapsFormat) -> String {
    let mut s = String::new();
    render_smaps(&mut s, entries.iter().map(|e| (&e.vma, e.counters)), fmt)
        .expect("render into a String");
    s
}

/// What an import must return, from the parser's stream (items numbered with the line the
/// import names for them) and the VMAs already in the tree: the first malformed item,
/// overlap with the tree, or item past the free slots, in line order; `[vsyscall]` is
/// skipped.
pub(crate) fn predict_import(
    items: &[Result<(usize, Vma), ParseError>],
    existing: &[Vma],
    capacity: usize,
) -> Result<usize, ParseError> {
    let free = capacity - existing.len();
    let mut n = 0;
    for item in items {
        let (line, v) = (*item)?;
        if v.kind == VmaKind::Vsyscall {
            continue;
        }
        if existing
            .iter()
            .any(|e| e.vm_start < v.vm_end && v.vm_start < e.vm_end)
        {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Overlap,
            });
        }
        if n == free {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::TooManyVmas,
            });
        }
        n += 1;
    }
    Ok(n)
}

pub(crate) fn check_stream_shape<T>(items: &[Result<T, ParseError>], lines: usize) {
    if let Some(i) = items.iter().position(|r| r.is_err()) {
        assert_eq!(i + 1, items.len(), "the parser went on after an error");
    }
    for e in items.iter().filter_map(|r| r.as_ref().err()) {
        assert!(e.line >= 1 && e.line <= lines + 1, "error line {}", e.line);
        let _ = e.to_string();
    }
}

pub(crate) fn merged(before: &[Vma], new: &[Vma]) -> Vec<Vma> {
    let mut all: Vec<Vma> = before.iter().chain(new).copied().collect();
    all.sort_by_key(|v| v.vm_start);
    all
}

pub(crate) fn tree_vmas(tree: &VmaTree<'_>) -> Vec<Vma> {
    tree.validate().expect("VMA tree invariants");
    let v: Vec<Vma> = tree.iter().copied().collect();
    assert_eq!(v.len(), tree.len());
    v
}

pub(crate) fn canon_hex(s: &str, width: usize) -> bool {
    s.len() >= width
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (s.len() == width || !s.starts_with('0'))
}

/// Whether `line` is exactly as the kernel prints a maps line: lowercase hex padded to 8
/// (2 for the device), no extra leading zeros, single spaces, the name padded to column
/// 73 (or one space after a longer header), one trailing space on unnamed lines.
pub(crate) fn canonical_maps_line(line: &str) -> bool {
    let mut it = line.splitn(6, ' ');
    let (Some(range), Some(perms), Some(off), Some(dev), Some(ino), Some(rest)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return false;
    };
    let fields_ok = range
        .split_once('-')
        .is_some_and(|(s, e)| canon_hex(s, 8) && canon_hex(e, 8))
        && perms.len() == 4
        && canon_hex(off, 8)
        && dev
            .split_once(':')
            .is_some_and(|(a, b)| canon_hex(a, 2) && canon_hex(b, 2))
        && !ino.is_empty()
        && ino.len() <= 20
        && ino.bytes().all(|b| b.is_ascii_digit())
        && (ino == "0" || !ino.starts_with('0'));
    if !fields_ok {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let head = range.len() + perms.len() + off.len() + dev.len() + ino.len() + 5;
    let pad = MAPS_NAME_PAD.saturating_sub(head) + 1;
    rest.len() > pad && rest.bytes().take(pad).all(|b| b == b' ') && rest.as_bytes()[pad] != b' '
}

pub(crate) fn canonical_maps(text: &str) -> bool {
    match text.strip_suffix('\n') {
        Some(body) => body.split('\n').all(canonical_maps_line),
        None => text.is_empty(),
    }
}

pub(crate) fn maps_import_checked(text: &str, fmt: &MapsFormat, tree: &mut VmaTree<'_>) {
    let stream: Vec<Result<Vma, ParseError>> = MapsParser::new(text, fmt).collect();
    check_stream_shape(&stream, text.split('\n').count());
    let items: Vec<Result<(usize, Vma), ParseError>> = stream
        .iter()
        .enumerate()
        .map(|(i, r)| r.map(|v| (i + 1, v)))
        .collect();
    let before = tree_vmas(tree);
    let predicted = predict_import(&items, &before, tree.capacity());
    let result = import_maps(text, fmt, tree);
    assert_eq!(result, predicted, "import_maps result");
    let after = tree_vmas(tree);
    let Ok(n) = result else {
        assert_eq!(after, before, "a failed maps import changed the tree");
        return;
    };
    let all: Vec<Vma> = stream.into_iter().map(|r| r.expect("checked")).collect();
    let new: Vec<Vma> = all
        .iter()
        .copied()
        .filter(|v| v.kind != VmaKind::Vsyscall)
        .collect();
    assert_eq!(n, new.len());
    assert_eq!(after, merged(&before, &new), "the tree after a maps import");
    // Render the imported VMAs, parse again: the same VMAs, and rendering is a fixed point.
    let rendered = render_maps_string(&new, fmt);
    let back: Vec<Vma> = MapsParser::new(&rendered, fmt)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("rendered maps do not parse: {e}\n{rendered}"));
    assert_eq!(back, new, "maps render/parse round trip");
    assert_eq!(render_maps_string(&back, fmt), rendered);
    // Kernel-formatted input renders back to the same bytes.
    if canonical_maps(text) {
        assert_eq!(
            render_maps_string(&all, fmt),
            text,
            "kernel-formatted maps text did not render back byte for byte"
        );
    }
}

pub(crate) fn smaps_import_checked(text: &str, fmt: &MapsFormat, tree: &mut VmaTree<'_>) {
    let mut p = SmapsParser::new(text, fmt);
    let mut items = Vec::new();
    loop {
        let first = p.line() + 1;
        match p.next() {
            None => break,
            Some(r) => items.push(r.map(|e| (first, e))),
        }
    }
    assert!(p.next().is_none(), "the smaps parser resumed after its end");
    check_stream_shape(&items, text.split('\n').count());
    let vma_items: Vec<Result<(usize, Vma), ParseError>> =
        items.iter().map(|r| r.map(|(l, e)| (l, e.vma))).collect();
    let before = tree_vmas(tree);
    let predicted = predict_import(&vma_items, &before, tree.capacity());
    let mut seen: Vec<SmapsEntry> = Vec::new();
    let result = import_smaps(text, fmt, tree, |e| seen.push(*e));
    assert_eq!(result, predicted, "import_smaps result");
    let after = tree_vmas(tree);
    let Ok(n) = result else {
        assert_eq!(after, before, "a failed smaps import changed the tree");
        assert!(seen.is_empty(), "a failed smaps import reported entries");
        return;
    };
    let entries: Vec<SmapsEntry> = items.into_iter().map(|r| r.expect("checked").1).collect();
    assert_eq!(
        seen, entries,
        "import_smaps reported other entries than it parsed"
    );
    let new: Vec<Vma> = entries
        .iter()
        .map(|e| e.vma)
        .filter(|v| v.kind != VmaKind::Vsyscall)
        .collect();
    assert_eq!(n, new.len());
    assert_eq!(
        after,
        merged(&before, &new),
        "the tree after an smaps import"
    );
    for e in &entries {
        if !fmt.smaps_ksm_line {
            assert_eq!(e.counters.ksm, 0);
        }
        if !fmt.smaps_protection_key {
            assert_eq!(e.counters.protection_key, 0);
        }
    }
    let rendered = render_smaps_string(&entries, fmt);
    let back: Vec<SmapsEntry> = SmapsParser::new(&rendered, fmt)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("rendered smaps do not parse: {e}\n{rendered}"));
    assert_eq!(back, entries, "smaps render/parse round trip");
    assert_eq!(render_smaps_string(&back, fmt), rendered);
}

/// Fuzz target `maps_parse`: arbitrary text into `import_maps` / `import_smaps`, in one
/// or two parts (the second into a tree already holding the first), with a tree of 0 to
/// 256 slots. The result must be exactly the documented one (first malformed line,
/// overlap or slot shortage); a failure imports nothing; a success imports exactly the
/// parsed VMAs, which render and parse back to themselves, and kernel-formatted maps text
/// renders back byte for byte.
///
/// Input: `format:u8 mode:u8 split:u8`, then the text (invalid UTF-8 is replaced).
pub fn maps_parse(data: &[u8]) {
    let mut r = Reader::new(data);
    let fmt = decode_maps_format(r.u8());
    let mode = r.u8();
    let split = usize::from(r.u8());
    let owned = String::from_utf8_lossy(r.rest());
    let text: &str = &owned;
    let mut slots = vec![VmaSlot::EMPTY; MAPS_SLOTS[usize::from(mode >> 1) & 7]];
    let mut tree = VmaTree::new(&mut slots);
    let (prefix, suffix) = split_after_lines(text, split);
    let parts = if prefix.is_empty() {
        vec![suffix]
    } else {
        vec![prefix, suffix]
    };
    for part in parts {
        if mode & 1 == 0 {
            maps_import_checked(part, &fmt, &mut tree);
        } else {
            smaps_import_checked(part, &fmt, &mut tree);
        }
    }
}
