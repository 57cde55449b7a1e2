//! Tests of maps/smaps rendering and parsing against the spec's kernel listings.

use super::*;
use crate::linux::mm::vma::{vma_name, AnonVmaId, FileId};
use crate::linux::mm::vma_tree::VmaSlot;
use proptest::prelude::*;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

const SPEC_RUNS: &str = include_str!("testdata/spec_maps_runs.txt");
const SMAPS_6_1: &str = include_str!("testdata/smaps_arm64_6_1.txt");
const SMAPS_6_12_16K: &str = include_str!("testdata/smaps_arm64_6_12_16k.txt");
const SEED: &str = include_str!("testdata/seed_000.txt");

fn render_all(vmas: &[Vma], fmt: &MapsFormat) -> String {
    let mut s = String::new();
    render_maps(&mut s, vmas, fmt).unwrap();
    s
}

fn parse_all(text: &str, fmt: &MapsFormat) -> Result<Vec<Vma>, ParseError> {
    MapsParser::new(text, fmt).collect()
}

fn anon(start: u64, end: u64, flags: VmFlags, kind: VmaKind) -> Vma {
    Vma {
        vm_start: start,
        vm_end: end,
        vm_flags: flags,
        vm_pgoff: start >> 12,
        anon_vma: None,
        anon_vma_fork_child: false,
        kind,
    }
}

const RW: VmFlags = VmFlags::VM_READ.union(VmFlags::VM_WRITE);
const RX: VmFlags = VmFlags::VM_READ.union(VmFlags::VM_EXEC);

/// §10: 34 / 26 / 18 / 25 spaces before the name; unnamed lines end in one space.
#[test]
fn padding_rules() {
    let f = MapsFormat::X86_64_6_18;
    let sp = |n: usize| " ".repeat(n);
    let cases = [
        (
            anon(0x9be000, 0x9e0000, RW, VmaKind::Heap),
            format!("009be000-009e0000 rw-p 00000000 00:00 0{}[heap]\n", sp(34)),
        ),
        (
            anon(0x4a9000, 0x9be000, RW, VmaKind::Anonymous),
            String::from("004a9000-009be000 rw-p 00000000 00:00 0 \n"),
        ),
        (
            anon(0x7fff_f7ff_d000, 0x7fff_f7ff_f000, RX, VmaKind::Vdso),
            format!(
                "7ffff7ffd000-7ffff7fff000 r-xp 00000000 00:00 0{}[vdso]\n",
                sp(26)
            ),
        ),
        (
            anon(
                0xffff_ffff_ff60_0000,
                0xffff_ffff_ff60_1000,
                VmFlags::VM_EXEC,
                VmaKind::Vsyscall,
            ),
            format!(
                "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0{}[vsyscall]\n",
                sp(18)
            ),
        ),
        (
            anon(0xffff_fffd_f000, 0x1_0000_0000_0000, RW, VmaKind::Stack),
            format!(
                "fffffffdf000-1000000000000 rw-p 00000000 00:00 0{}[stack]\n",
                sp(25)
            ),
        ),
        (
            anon(
                0xf_ffff_ffff_c000,
                0x10_0000_0000_0000,
                RW,
                VmaKind::Anonymous,
            ),
            String::from("fffffffffc000-10000000000000 rw-p 00000000 00:00 0 \n"),
        ),
        (
            anon(0x1000, 0x2000, VmFlags::VM_WRITE, VmaKind::Anonymous),
            String::from("00001000-00002000 -w-p 00000000 00:00 0 \n"),
        ),
    ];
    for (v, want) in cases {
        assert_eq!(render_all(&[v], &f), want);
        let back = parse_all(&want, &f).unwrap();
        assert_eq!(render_all(&back, &f), want);
    }
}

#[test]
fn file_lines() {
    let f = MapsFormat::X86_64_6_18;
    let line =
        "0047a000-004a2000 r--p 0007a000 fe:00 10010772                           /usr/bin/x\n";
    let v = parse_all(line, &f).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].vm_pgoff, 0x7a);
    assert_eq!(
        v[0].kind,
        VmaKind::File {
            dev: DevId {
                major: 0xfe,
                minor: 0
            },
            ino: 10010772,
            path: vma_name("/usr/bin/x").unwrap(),
            file: FileId(0),
        }
    );
    assert_eq!(render_all(&v, &f), line);
    // a header longer than 72 characters: no padding, then seq_pad's own space (two in all)
    let long = "ffffffffff600000-ffffffffff601000 r--s 1234567800000 103:1f 123456789012                           /a b (deleted)\n";
    let v = parse_all(long, &f).unwrap();
    let out = render_all(&v, &f);
    assert_eq!(out, "ffffffffff600000-ffffffffff601000 r--s 1234567800000 103:1f 123456789012  /a b (deleted)\n");
    assert_eq!(parse_all(&out, &f).unwrap(), v);
    // named anon and other special names
    let t =
        "00010000-00011000 rw-p 00000000 00:00 0                                  [anon:my buf]\n\
             00011000-00012000 r-xp 00000000 00:00 0                                  [uprobes]\n";
    let v = parse_all(t, &f).unwrap();
    assert_eq!(v[0].kind, VmaKind::AnonNamed(vma_name("my buf").unwrap()));
    assert_eq!(v[1].kind, VmaKind::Special(vma_name("[uprobes]").unwrap()));
    assert_eq!(v[1].vm_pgoff, 0);
    assert_eq!(render_all(&v, &f), t);
}

/// Every sorted run of maps lines in the spec's §15 and §18.7 listings round-trips.
#[test]
fn spec_listings_round_trip() {
    let mut n = 0;
    for run in SPEC_RUNS.split("\n\n") {
        let text = format!("{}\n", run.trim_end_matches('\n'));
        let f = if text.contains("7ffff7ff0000-")
            || text.contains("0048c000-00490000 r--p 0008c000 00:02 7") && text.contains("004ac000")
        {
            MapsFormat::ARM64_6_12_16K
        } else {
            MapsFormat::ARM64_6_12
        };
        let v = parse_all(&text, &f).unwrap_or_else(|e| panic!("{e} in\n{text}"));
        assert_eq!(render_all(&v, &f), text);
        n += v.len();
    }
    assert!(n > 150);
}

#[test]
fn spec_smaps_round_trip() {
    for (text, f) in [
        (SMAPS_6_1, MapsFormat::ARM64_6_1),
        (SMAPS_6_12_16K, MapsFormat::ARM64_6_12_16K),
    ] {
        let e: Vec<SmapsEntry> = SmapsParser::new(text, &f)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(e.len(), 1);
        let c = e[0].counters;
        let kb = if f.page_shift == 14 { 16 } else { 4 };
        assert_eq!(
            (c.rss, c.private_dirty, c.anonymous, c.thp_eligible),
            (kb, kb, kb, false)
        );
        assert_eq!(
            e[0].vma.vm_flags,
            VmFlags::VM_READ
                | VmFlags::VM_MAYREAD
                | VmFlags::VM_MAYWRITE
                | VmFlags::VM_MAYEXEC
                | VmFlags::VM_ACCOUNT
        );
        let mut out = String::new();
        render_smaps(&mut out, e.iter().map(|x| (&x.vma, x.counters)), &f).unwrap();
        assert_eq!(out, text);
    }
}

#[test]
fn smaps_optional_lines() {
    let v = anon(
        0x7fff_f7a0_0000,
        0x7fff_f7c0_0000,
        RW | VmFlags::VM_MAYREAD | VmFlags::VM_HUGEPAGE,
        VmaKind::Anonymous,
    );
    let c = SmapsCounters {
        rss: 2048,
        anon_huge_pages: 2048,
        thp_eligible: true,
        protection_key: 3,
        private_hugetlb: 123_456_789,
        ..Default::default()
    };
    let f = MapsFormat {
        smaps_protection_key: true,
        ..MapsFormat::X86_64_6_18
    };
    let mut out = String::new();
    write_smaps_entry(&mut out, &v, &c, &f).unwrap();
    assert!(out
        .contains("\nTHPeligible:           1\nProtectionKey:         3\nVmFlags: rd wr mr hg \n"));
    assert!(out.contains("\nPrivate_Hugetlb: 123456789 kB\n"));
    assert!(out.contains("\nKSM:                   0 kB\nLazyFree:"));
    let back: Vec<SmapsEntry> = SmapsParser::new(&out, &f)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        back,
        [SmapsEntry {
            vma: v,
            counters: c
        }]
    );
    // The same text under the 6.1 layout fails at the KSM line (line 14).
    let err = SmapsParser::new(&out, &MapsFormat::ARM64_6_1)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        ParseError {
            line: 14,
            kind: ParseErrorKind::MissingField {
                expected: "LazyFree:"
            }
        }
    );
}

#[test]
fn errors_name_the_line() {
    let f = MapsFormat::ARM64_6_12;
    let good = "00010000-00011000 rw-p 00000000 00:00 0 \n";
    let cases: [(&str, ParseErrorKind); 12] = [
        (
            "0001000-00011000x rw-p 00000000 00:00 0 \n",
            ParseErrorKind::BadRange,
        ),
        (
            "00011000-00011000 rw-p 00000000 00:00 0 \n",
            ParseErrorKind::BadBounds,
        ),
        (
            "00011800-00012000 rw-p 00000000 00:00 0 \n",
            ParseErrorKind::BadBounds,
        ),
        (
            "00011000-00012000 rwxq 00000000 00:00 0 \n",
            ParseErrorKind::BadPerms,
        ),
        (
            "00011000-00012000 rw-p 0000000g 00:00 0 \n",
            ParseErrorKind::BadOffset,
        ),
        (
            "00011000-00012000 rw-p 00000000 0000 0 \n",
            ParseErrorKind::BadDev,
        ),
        (
            "00011000-00012000 rw-p 00000000 00:00 x \n",
            ParseErrorKind::BadInode,
        ),
        (
            "00011000-00012000 rw-p 00001000 00:00 0 \n",
            ParseErrorKind::UnnamedBacked,
        ),
        (
            "00011000-00012000 rw-p 00000800 08:01 5 /f\n",
            ParseErrorKind::BadOffset,
        ),
        ("\n", ParseErrorKind::EmptyLine),
        (
            "00010800-00012000 rw-p 00000000 00:00 0 \n",
            ParseErrorKind::BadBounds,
        ),
        (
            "0000f000-00012000 rw-p 00000000 00:00 0 \n",
            ParseErrorKind::Overlap,
        ),
    ];
    for (bad, kind) in cases {
        let text = format!("{good}{bad}");
        assert_eq!(
            parse_all(&text, &f),
            Err(ParseError { line: 2, kind }),
            "{bad}"
        );
        let mut slots = [VmaSlot::EMPTY; 8];
        let mut t = VmaTree::new(&mut slots);
        assert_eq!(
            import_maps(&text, &f, &mut t),
            Err(ParseError { line: 2, kind })
        );
        assert!(t.is_empty());
    }
    let long = format!(
        "00011000-00012000 rw-p 00000000 08:01 5 /{}\n",
        "x".repeat(300)
    );
    assert!(matches!(
        parse_all(&long, &f),
        Err(ParseError {
            line: 1,
            kind: ParseErrorKind::BadName(VmaError::NameTooLong { .. })
        })
    ));
    // smaps: truncated entry, bad VmFlags, perms mismatch, wrong size
    let mut e = String::new();
    let v = anon(
        0x10000,
        0x12000,
        RW | VmFlags::VM_MAYREAD,
        VmaKind::Anonymous,
    );
    write_smaps_entry(&mut e, &v, &SmapsCounters::default(), &f).unwrap();
    let lines: Vec<&str> = e.lines().collect();
    let cut = lines[..10].join("\n") + "\n";
    assert_eq!(
        SmapsParser::new(&cut, &f).next().unwrap(),
        Err(ParseError {
            line: 11,
            kind: ParseErrorKind::UnexpectedEnd
        })
    );
    let bad_flags = e.replace("VmFlags: rd wr mr ", "VmFlags: rd wr zz ");
    assert!(matches!(
        SmapsParser::new(&bad_flags, &f).next().unwrap(),
        Err(ParseError {
            line: 25,
            kind: ParseErrorKind::BadVmFlags(_)
        })
    ));
    let mism = e.replace("VmFlags: rd wr mr ", "VmFlags: rd mr ");
    assert_eq!(
        SmapsParser::new(&mism, &f).next().unwrap(),
        Err(ParseError {
            line: 25,
            kind: ParseErrorKind::PermsMismatch
        })
    );
    let size = e.replace("Size:                  8 kB", "Size:                 12 kB");
    assert_eq!(
        SmapsParser::new(&size, &f).next().unwrap(),
        Err(ParseError {
            line: 2,
            kind: ParseErrorKind::Inconsistent { field: "Size:" }
        })
    );
    let two = format!(
        "{e}{}",
        e.replace("00010000-00012000", "00012000-00013000")
            .replace("     8 kB", "     4 kB")
            .replace("Rss:                   0", "Rss:                   x")
    );
    let mut slots = [VmaSlot::EMPTY; 8];
    let mut t = VmaTree::new(&mut slots);
    let mut calls = 0;
    assert_eq!(
        import_smaps(&two, &f, &mut t, |_| calls += 1),
        Err(ParseError {
            line: 30,
            kind: ParseErrorKind::BadValue { field: "Rss:" }
        })
    );
    assert!(t.is_empty());
    assert_eq!(calls, 0);
}

#[test]
fn import_is_atomic_and_skips_vsyscall() {
    let f = MapsFormat::X86_64_6_18;
    let tv0: &str = SPEC_RUNS
        .split("\n\n")
        .find(|r| r.contains("<exe>") && r.contains("[vsyscall]"))
        .unwrap();
    let text = format!("{tv0}\n");
    let mut slots = vec![VmaSlot::EMPTY; 16];
    let mut t = VmaTree::new(&mut slots);
    let n = import_maps(&text, &f, &mut t).unwrap();
    assert_eq!(n, 11);
    assert_eq!(t.len(), 11);
    let gate = anon(
        0xffff_ffff_ff60_0000,
        0xffff_ffff_ff60_1000,
        VmFlags::VM_EXEC,
        VmaKind::Vsyscall,
    );
    let mut out = String::new();
    render_maps(&mut out, t.iter().chain(core::iter::once(&gate)), &f).unwrap();
    assert_eq!(out, text);
    // a second import overlaps and changes nothing
    assert_eq!(
        import_maps(&text, &f, &mut t),
        Err(ParseError {
            line: 1,
            kind: ParseErrorKind::Overlap
        })
    );
    assert_eq!(t.len(), 11);
    // too few slots
    let mut small = vec![VmaSlot::EMPTY; 10];
    let mut t2 = VmaTree::new(&mut small);
    assert_eq!(
        import_maps(&text, &f, &mut t2),
        Err(ParseError {
            line: 11,
            kind: ParseErrorKind::TooManyVmas
        })
    );
    assert!(t2.is_empty());
}

#[test]
fn import_smaps_sets_flags() {
    let f = MapsFormat::ARM64_6_1;
    let mut slots = [VmaSlot::EMPTY; 2];
    let mut t = VmaTree::new(&mut slots);
    let mut anon_kb = 0;
    assert_eq!(
        import_smaps(SMAPS_6_1, &f, &mut t, |e| anon_kb = e.counters.anonymous),
        Ok(1)
    );
    assert_eq!(anon_kb, 4);
    assert!(t.first().unwrap().vm_flags.contains(VmFlags::VM_ACCOUNT));
}

/// The seed listing lost the padding and had `--`/`---` turned into dashes; once the
/// dashes are normalised it parses and renders back to the same text modulo padding.
#[test]
fn seed_listing() {
    let norm = SEED.replace('\u{2013}', "--").replace('\u{2014}', "---");
    let block: Vec<&str> = norm
        .lines()
        .skip_while(|l| !l.starts_with("*** memory map after"))
        .skip(1)
        .take_while(|l| l.contains(" 00000000 ") || l.contains(" fd:00 "))
        .collect();
    assert_eq!(block.len(), 17);
    let text = block.join("\n") + "\n";
    let f = MapsFormat::ARM64_6_12;
    let v = parse_all(&text, &f).unwrap();
    assert_eq!(v.len(), 17);
    assert_eq!(v[4].vm_start, 0xffff_89ad_0000);
    assert_eq!(v[4].size(), 0x640_0000);
    assert_eq!(v[3].kind, VmaKind::Heap);
    assert_eq!(&v[6].vm_flags.perms(), b"---p");
    let out = render_all(&v, &f);
    let squash = |s: &str| {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(squash(&out), squash(&text));
    assert_eq!(render_all(&parse_all(&out, &f).unwrap(), &f), out);
    assert!(out.contains("ffff9006d000-ffff90079000 rw-p 00000000 00:00 0 \n"));
    assert!(out.contains(&format!(
        "aaaac367f000-aaaac36a0000 rw-p 00000000 00:00 0{}[heap]\n",
        " ".repeat(26)
    )));
}

// ----- property tests ---------------------------------------------------------------

fn kind_strategy() -> impl Strategy<Value = (VmaKind, u64)> {
    prop_oneof![
        4 => Just((VmaKind::Anonymous, 0)),
        1 => Just((VmaKind::Heap, 0)),
        1 => Just((VmaKind::Stack, 0)),
        1 => Just((VmaKind::Vdso, 0)),
        1 => Just((VmaKind::Vvar, 0)),
        1 => Just((VmaKind::VvarVclock, 0)),
        1 => "[a-z _]{1,20}".prop_map(|n| (VmaKind::AnonNamed(vma_name(&n).unwrap()), 0)),
        1 => "\\[[a-z]{1,10}\\]".prop_filter("not a builtin", |n| !matches!(n.as_str(), "[heap]" | "[stack]" | "[vdso]" | "[vvar]" | "[vvar_vclock]" | "[vsyscall]"))
            .prop_map(|n| (VmaKind::Special(vma_name(&n).unwrap()), 0)),
        3 => ("/[a-zA-Z0-9_./ -]{0,250}", 0u32..0x1000, 0u32..0x10_0000, any::<u64>(), 0u64..(1 << 40))
            .prop_map(|(p, maj, min, ino, pg)| (VmaKind::File { dev: DevId { major: maj, minor: min }, ino, path: vma_name(&p).unwrap(), file: FileId(0) }, pg)),
    ]
}

fn visible_flags() -> impl Strategy<Value = VmFlags> {
    any::<u64>().prop_map(|b| {
        let mut f = VmFlags::from_bits_retain(b);
        for bit in 0..64 {
            let m = crate::linux::mm::vmflags::mnemonic(bit, MnemonicTable::Arm64);
            if m.is_empty() || m == "??" {
                f.remove(VmFlags::from_bits_retain(1 << bit));
            }
        }
        f
    })
}

fn vmas_strategy() -> impl Strategy<Value = Vec<(Vma, SmapsCounters)>> {
    proptest::collection::vec(
        (
            1u64..1 << 20,
            1u64..1 << 20,
            kind_strategy(),
            visible_flags(),
            any::<[u32; 6]>(),
            any::<bool>(),
        ),
        0..20,
    )
    .prop_map(|items| {
        let mut out = Vec::new();
        let mut addr = 0u64;
        for (gap, len, (kind, pg), flags, nums, thp) in items {
            let start = addr + gap * 0x1000;
            let end = start + len * 0x1000;
            if end > (1u64 << 52) {
                break;
            }
            addr = end;
            let v = Vma::with_kind(start, end, flags, kind, pg, 12);
            let c = SmapsCounters {
                rss: u64::from(nums[0]),
                pss: u64::from(nums[1]),
                private_dirty: u64::from(nums[2]) << 20,
                anonymous: u64::from(nums[3]),
                anon_huge_pages: u64::from(nums[4]),
                locked: u64::from(nums[5]),
                thp_eligible: thp,
                ..Default::default()
            };
            out.push((v, c));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn maps_round_trip(items in vmas_strategy()) {
        let f = MapsFormat::ARM64_6_12;
        let mut vmas: Vec<Vma> = items.iter().map(|(v, _)| *v).collect();
        for v in &mut vmas {
            v.vm_flags &= VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC | VmFlags::VM_MAYSHARE;
        }
        let text = render_all(&vmas, &f);
        let back = parse_all(&text, &f).unwrap();
        prop_assert_eq!(&back, &vmas);
        prop_assert_eq!(render_all(&back, &f), text);
    }

    #[test]
    fn smaps_round_trip(items in vmas_strategy(), v61 in any::<bool>()) {
        let f = if v61 { MapsFormat::ARM64_6_1 } else { MapsFormat::ARM64_6_12 };
        let mut text = String::new();
        render_smaps(&mut text, items.iter().map(|(v, c)| (v, *c)), &f).unwrap();
        let back: Vec<SmapsEntry> = SmapsParser::new(&text, &f).collect::<Result<_, _>>().unwrap();
        let want: Vec<SmapsEntry> = items.iter().map(|&(vma, counters)| SmapsEntry { vma, counters: SmapsCounters { ksm: 0, protection_key: 0, ..counters } }).collect();
        prop_assert_eq!(&back, &want);
        let mut again = String::new();
        render_smaps(&mut again, back.iter().map(|e| (&e.vma, e.counters)), &f).unwrap();
        prop_assert_eq!(again, text);
    }

    #[test]
    fn parser_never_panics(text in "[0-9a-f :\\-\\[\\]rwxsp/\n]{0,200}") {
        let f = MapsFormat::ARM64_6_12;
        let _ = parse_all(&text, &f);
        let _ = SmapsParser::new(&text, &f).count();
        let mut slots = [VmaSlot::EMPTY; 4];
        let mut t = VmaTree::new(&mut slots);
        if import_maps(&text, &f, &mut t).is_err() {
            prop_assert!(t.is_empty());
        }
    }
}

#[test]
fn anon_vma_is_not_in_text() {
    let mut v = anon(0x10000, 0x11000, RW, VmaKind::Anonymous);
    v.anon_vma = Some(AnonVmaId(7));
    let f = MapsFormat::ARM64_6_12;
    let back = parse_all(&render_all(&[v], &f), &f).unwrap();
    assert_eq!(back[0].anon_vma, None);
}
