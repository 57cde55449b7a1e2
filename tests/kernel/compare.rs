//! The comparisons the harness makes after every call: maps text byte for byte, every
//! smaps line of the VMAs pagesim models the pages of, and mincore over each of them.

use pagesim::linux::mm::maps_text::{MapsFormat, SmapsEntry, SmapsParser};
use pagesim::linux::mm::vma::VmaKind;
use pagesim::linux::storage::SimProcess;

use super::driver::Kernel;
use super::executor::op;

/// The path a shared anonymous mapping shows (a shmem inode).
const SHMEM: &str = "/dev/zero (deleted)";

/// Replaces the inode of each shared anonymous mapping (`/dev/zero (deleted)`, a shmem
/// inode the kernel numbers from a machine-wide counter that pagesim cannot know) by `#`,
/// with the name's padding dropped; every other byte of the line is kept.
pub fn normalise_shmem(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        let f: Vec<&str> = l
            .strip_suffix(SHMEM)
            .map(|h| h.split_whitespace().collect())
            .unwrap_or_default();
        if f.len() == 5 {
            out.push_str(&format!("{} {} {} {} # {SHMEM}", f[0], f[1], f[2], f[3]));
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    out
}

/// Returns a line-by-line difference of two texts.
pub fn diff(a: &str, b: &str) -> String {
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    line_diff(&al, &bl, false)
}

/// Lists the lines where the kernel's `kp` and pagesim's `sp` differ; with `headers`, each
/// under the smaps header of the VMA it belongs to.
fn line_diff<S: AsRef<str>>(kp: &[S], sp: &[S], headers: bool) -> String {
    let mut out = String::new();
    let (mut header, mut shown) = (None, None);
    for i in 0..kp.len().max(sp.len()) {
        let (x, y) = (
            kp.get(i).map_or("<none>", AsRef::as_ref),
            sp.get(i).map_or("<none>", AsRef::as_ref),
        );
        if headers && header_range(x).is_some() {
            header = Some(x);
        }
        if x != y {
            if let Some(h) = header.filter(|&h| Some(h) != shown) {
                out.push_str(&format!("  in {h}\n"));
                shown = Some(h);
            }
            out.push_str(&format!("  kernel : {x:?}\n  pagesim: {y:?}\n"));
        }
    }
    out
}

/// Compares /proc/PID/maps.
pub fn maps(k: &mut Kernel, p: &SimProcess<'_>) -> Result<(), String> {
    let km = normalise_shmem(&k.maps().map_err(|e| e.to_string())?);
    let sm = normalise_shmem(&p.maps_string());
    if km != sm {
        return Err(format!("maps differ\n{}", diff(&km, &sm)));
    }
    Ok(())
}

/// Whether pagesim models the pages of a VMA: nameless private anonymous memory, shared
/// anonymous memory and the harness's files (the executor's own heap, stack and binary
/// have pages pagesim imports but cannot follow).
fn modelled(e: &SmapsEntry) -> bool {
    match &e.vma.kind {
        VmaKind::Anonymous => true,
        VmaKind::File { path, .. } => path.as_str() == SHMEM || path.contains("/pagesim-harness-"),
        _ => false,
    }
}

/// The smaps entries of the modelled VMAs, parsed with the library's parser, rendered
/// back one line each for a readable difference; VMAs overlapping a range of `skip` are
/// left out.
fn modelled_entries(
    text: &str,
    fmt: &MapsFormat,
    skip: &[(u64, u64)],
) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut lines = text.lines();
    for e in SmapsParser::new(text, fmt) {
        let e = e.map_err(|e| format!("smaps do not parse: {e}"))?;
        // The entry's text: its header line and the fields up to VmFlags.
        let mut entry = vec![];
        for l in lines.by_ref() {
            entry.push(l.to_string());
            if l.starts_with("VmFlags:") {
                break;
            }
        }
        if modelled(&e) && !overlaps(&e, skip) {
            out.extend(
                entry
                    .iter()
                    .map(|l| normalise_shmem(l).trim_end().to_string()),
            );
        }
    }
    Ok(out)
}

/// Whether the VMA of `e` overlaps a range of `skip`.
fn overlaps(e: &SmapsEntry, skip: &[(u64, u64)]) -> bool {
    skip.iter()
        .any(|&(s, end)| e.vma.vm_start < end && s < e.vma.vm_end)
}

/// How many comparisons passed only because every difference was a Referenced count the
/// kernel raised on pages an access sampler had made old ([`sampled_only`]).
pub static SAMPLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The VMA a smaps header line opens: its start and end.
fn header_range(l: &str) -> Option<(u64, u64)> {
    let (range, _) = l.split_once(' ')?;
    let (a, b) = range.split_once('-')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

/// The kB count of a `Referenced:` line.
fn referenced_kib(l: &str) -> Option<u64> {
    l.strip_prefix("Referenced:")?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Returns whether the kernel's entries `kp` differ from pagesim's `sp` only in Referenced
/// lines, each higher in the kernel by at most the pages of its VMA that the machine's
/// access sampler made old (`idle_pages(start, end)`, [`Kernel::idle_pages`]): the one
/// field DAMON moves, and only upwards, since the young state it takes from an entry stays
/// on the folio (PG_young) for as long as the folio lives.
fn sampled_only(kp: &[String], sp: &[String], idle_pages: impl Fn(u64, u64) -> usize) -> bool {
    if kp.len() != sp.len() {
        return false;
    }
    let kib = super::page() >> 10;
    let mut vma = None;
    for (x, y) in kp.iter().zip(sp) {
        if let Some(r) = header_range(x) {
            vma = Some(r);
        }
        if x == y {
            continue;
        }
        let (Some((start, end)), Some(kr), Some(sr)) = (vma, referenced_kib(x), referenced_kib(y))
        else {
            return false;
        };
        if kr <= sr || kr - sr > idle_pages(start, end) as u64 * kib {
            return false;
        }
    }
    true
}

/// Checks [`sampled_only`] on made-up entries before the harness relies on it: it passes
/// a Referenced count raised within the sampled pages of its own VMA, and nothing else.
pub fn check_sampled_only() {
    let kib = super::page() >> 10;
    let entry = |start: u64, rss: u64, referenced: u64| {
        vec![
            format!("{start:x}-{:x} rw-p 00000000 00:00 0", start + 0x10000),
            format!("Rss:            {rss:>8} kB"),
            format!("Referenced:     {referenced:>8} kB"),
        ]
    };
    let two = |a: Vec<String>, b: Vec<String>| [a, b].concat();
    let pagesim = two(entry(0x10000, 8 * kib, kib), entry(0x30000, 4 * kib, 0));
    // Two pages sampled in the second VMA, none in the first.
    let idle = |start: u64, _end: u64| if start == 0x30000 { 2 } else { 0 };
    let cases = [
        (
            two(
                entry(0x10000, 8 * kib, kib),
                entry(0x30000, 4 * kib, 2 * kib),
            ),
            true,
        ),
        (
            two(
                entry(0x10000, 8 * kib, kib),
                entry(0x30000, 4 * kib, 3 * kib),
            ),
            false,
        ),
        (
            two(entry(0x10000, 8 * kib, 2 * kib), entry(0x30000, 4 * kib, 0)),
            false,
        ),
        (
            two(entry(0x10000, 8 * kib, 0), entry(0x30000, 4 * kib, 0)),
            false,
        ),
        (
            two(entry(0x10000, 9 * kib, kib), entry(0x30000, 4 * kib, kib)),
            false,
        ),
        (entry(0x10000, 8 * kib, kib), false),
    ];
    for (i, (kernel, pass)) in cases.iter().enumerate() {
        assert_eq!(
            sampled_only(kernel, &pagesim, idle),
            *pass,
            "sampled_only, case {i}"
        );
    }
}

/// Compares every smaps line pagesim renders (every residency field: Rss, Pss, Pss_Dirty,
/// Shared/Private Clean/Dirty, Referenced, Anonymous, KSM, LazyFree, AnonHugePages, …,
/// THPeligible, VmFlags) of every modelled VMA, and mincore over each of them; VMAs
/// overlapping `skip` (the executor's own, once it forked: its libraries' data and TLS
/// change as it runs) are left out.
pub fn residency(
    k: &mut Kernel,
    p: &SimProcess<'_>,
    fmt: &MapsFormat,
    skip: &[(u64, u64)],
) -> Result<(), String> {
    let ks = k.smaps().map_err(|e| e.to_string())?;
    let ss = p.smaps_string().map_err(|e| e.to_string())?;
    let (kp, sp) = (
        modelled_entries(&ks, fmt, skip)?,
        modelled_entries(&ss, fmt, skip)?,
    );
    if kp != sp {
        if sampled_only(&kp, &sp, |s, e| k.idle_pages(s, e)) {
            SAMPLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            if std::env::var_os("PAGESIM_HARNESS_DUMP").is_some() {
                let _ = std::fs::write("/tmp/harness_kernel_smaps", &ks);
                let _ = std::fs::write("/tmp/harness_pagesim_smaps", &ss);
            }
            return Err(format!(
                "smaps residency differs\n{}",
                line_diff(&kp, &sp, true)
            ));
        }
    }
    // mincore of a file or shmem page not mapped reports the page cache: the host's holds
    // or drops file pages for reasons outside the process, and pagesim does not keep shmem
    // pages after they are zapped; only private anonymous memory is compared.
    for e in SmapsParser::new(&ks, fmt)
        .filter_map(Result::ok)
        .filter(|e| matches!(e.vma.kind, VmaKind::Anonymous) && !overlaps(e, skip))
    {
        let (s, len) = (e.vma.vm_start, e.vma.vm_end - e.vma.vm_start);
        let kr = k.call(op::MINCORE, &[s, len]).map_err(|e| e.to_string())?;
        let mut sv = vec![0u8; (len / super::page()) as usize];
        p.mincore(s, len, &mut sv).map_err(|e| e.to_string())?;
        let kv: Vec<u8> = kr.payload.iter().map(|b| b & 1).collect();
        if kv != sv {
            let bits = |v: &[u8]| v.iter().map(|b| char::from(b'0' + b)).collect::<String>();
            return Err(format!(
                "mincore differs on {s:#x}-{:#x}: kernel {} pagesim {}",
                s + len,
                bits(&kv),
                bits(&sv)
            ));
        }
    }
    Ok(())
}
