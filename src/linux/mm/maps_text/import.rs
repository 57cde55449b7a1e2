//! Importing parsed maps or smaps into a VMA tree, all or nothing.

use super::*;

/// Validates a stream of `(line, vma)` against the tree: no overlap with VMAs already
/// there and enough free slots. `[vsyscall]` is skipped (it is not in the VMA tree).
pub(super) fn check_fits<I: Iterator<Item = Result<(usize, Vma), ParseError>>>(
    items: I,
    tree: &VmaTree<'_>,
) -> Result<usize, ParseError> {
    let free = tree.capacity() - tree.len();
    let mut n = 0usize;
    for item in items {
        let (line, v) = item?;
        if v.kind == VmaKind::Vsyscall {
            continue;
        }
        if tree.find_vma_intersection(v.vm_start, v.vm_end).is_some() {
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

/// Inserts already-validated VMAs; on an unexpected failure removes what it inserted.
pub(super) fn insert_all<I: Iterator<Item = (usize, Vma)> + Clone>(
    items: I,
    tree: &mut VmaTree<'_>,
) -> Result<(), ParseError> {
    let mut inserted = 0usize;
    for (line, v) in items.clone() {
        if v.kind == VmaKind::Vsyscall {
            continue;
        }
        if tree.insert(v).is_err() {
            for (_, u) in items
                .filter(|(_, u)| u.kind != VmaKind::Vsyscall)
                .take(inserted)
            {
                // Inserted by this call a moment ago, so it is there to remove.
                let removed = tree.remove(u.vm_start);
                debug_assert!(removed.is_ok(), "a VMA just inserted is in the tree");
            }
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Overlap,
            });
        }
        inserted += 1;
    }
    Ok(())
}

pub(super) fn maps_numbered(
    mut p: MapsParser<'_>,
) -> impl Iterator<Item = Result<(usize, Vma), ParseError>> + Clone + '_ {
    core::iter::from_fn(move || {
        let r = p.next()?;
        let line = p.line();
        Some(r.map(|v| (line, v)))
    })
}

pub(super) fn smaps_numbered(
    mut p: SmapsParser<'_>,
) -> impl Iterator<Item = Result<(usize, SmapsEntry), ParseError>> + Clone + '_ {
    core::iter::from_fn(move || {
        let first = p.line() + 1;
        let r = p.next()?;
        Some(r.map(|e| (first, e)))
    })
}

/// Parses all of `text` as `/proc/PID/maps` and inserts the VMAs into `tree`, skipping
/// `[vsyscall]`; returns how many were inserted.
///
/// # Errors
///
/// Returns the first [`ParseError`] (malformed line, overlap with a VMA in the text or the
/// tree, too many VMAs); then nothing has been inserted.
pub fn import_maps(
    text: &str,
    fmt: &MapsFormat,
    tree: &mut VmaTree<'_>,
) -> Result<usize, ParseError> {
    let n = check_fits(maps_numbered(MapsParser::new(text, fmt)), tree)?;
    let valid = maps_numbered(MapsParser::new(text, fmt)).map_while(Result::ok);
    insert_all(valid, tree)?;
    Ok(n)
}

/// Parses all of `text` as `/proc/PID/smaps`, inserts the VMAs (with their full
/// `VmFlags`) into `tree`, skipping `[vsyscall]`, and hands every entry, in order, to
/// `on_entry` once everything is in; returns how many VMAs were inserted.
///
/// # Errors
///
/// Returns the first [`ParseError`]; then nothing has been inserted and `on_entry` was
/// not called.
pub fn import_smaps<F: FnMut(&SmapsEntry)>(
    text: &str,
    fmt: &MapsFormat,
    tree: &mut VmaTree<'_>,
    mut on_entry: F,
) -> Result<usize, ParseError> {
    let n = check_fits(
        smaps_numbered(SmapsParser::new(text, fmt)).map(|r| r.map(|(l, e)| (l, e.vma))),
        tree,
    )?;
    let valid = smaps_numbered(SmapsParser::new(text, fmt))
        .map_while(Result::ok)
        .map(|(l, e)| (l, e.vma));
    insert_all(valid, tree)?;
    for e in SmapsParser::new(text, fmt).map_while(Result::ok) {
        on_entry(&e);
    }
    Ok(n)
}
