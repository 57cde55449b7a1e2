//! The 78 single-access vectors of the AArch64 VMSA spec (§10.2) on the §10.1 fixture,
//! under both the architectural and the QEMU-compatible behaviour, through `walk` and `at`.

use pagesim::arch::{at, walk, Access, AtOp, Compat, Cpu, El, FaultKind, Regime, Registers};
use pagesim::phys::PhysMemory;
use pagesim::{PhysAddr, VirtAddr};

#[path = "common/fixture.rs"]
mod common;
use common::{fixture, TCR};

#[derive(Debug, PartialEq)]
enum Expect {
    Pa {
        pa: u64,
        size: u64,
        update: Option<(u64, u64)>,
    },
    Fault {
        kind: FaultKind,
        level: i8,
        fsc: u8,
        esr: u32,
    },
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap()
}

fn parse_expect(s: &str) -> Expect {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("PA ") {
        let (pa, paren) = rest.split_once(" (").unwrap();
        let paren = paren.trim_end_matches(')');
        let (geom, upd) = match paren.split_once("; ") {
            Some((g, u)) => (g, Some(u)),
            None => (paren, None),
        };
        let size = match geom.split_whitespace().nth(1).unwrap() {
            "4K" => 1 << 12,
            "2M" => 1 << 21,
            "1G" => 1 << 30,
            other => panic!("size {other}"),
        };
        let update = upd.map(|u| {
            let (at, val) = u.trim_start_matches("desc@").split_once(" ← ").unwrap();
            (hex(at), hex(val))
        });
        return Expect::Pa {
            pa: hex(pa),
            size,
            update,
        };
    }
    let parts: Vec<&str> = s.split(", ").collect();
    let (kind, lvl) = parts[0].split_once(" L").unwrap();
    let kind = match kind {
        "Transl" => FaultKind::Translation,
        "Perm" => FaultKind::Permission,
        "AccessFlag" => FaultKind::AccessFlag,
        "AddrSize" => FaultKind::AddressSize,
        k => panic!("kind {k}"),
    };
    Expect::Fault {
        kind,
        level: lvl.parse().unwrap(),
        fsc: hex(parts[1].trim_start_matches("FSC ")) as u8,
        esr: hex(parts[2].trim_start_matches("ESR ")) as u32,
    }
}

struct Vector {
    id: String,
    va: u64,
    access: Access,
    regs: Registers,
    arch: Expect,
    qemu: Expect,
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    for line in include_str!("data/vmsa_vectors.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(" | ").collect();
        let (el, kind) = f[2].split_once(' ').unwrap();
        let el = if el == "EL0" { El::El0 } else { El::El1 };
        let mut access = match kind {
            "R" => Access::read(el),
            "W" => Access::write(el),
            "X" => Access::fetch(el),
            k => panic!("{k}"),
        };
        let mut regs = Registers {
            tcr: TCR,
            sctlr: 1,
            ttbr0: 0x4000_0000,
            ttbr1: 0x4010_0000,
            mair: 0xff,
        };
        for tok in f[3].split_whitespace() {
            match tok {
                "-" => {}
                "HA" => regs.tcr |= 1 << 39,
                "HD" => regs.tcr |= 1 << 40,
                "TBI0" => regs.tcr |= 1 << 37,
                "TBI1" => regs.tcr |= 1 << 38,
                "TBID0" => regs.tcr |= 1 << 51,
                "EPD0" => regs.tcr |= 1 << 7,
                "EPD1" => regs.tcr |= 1 << 23,
                "HPD0" => regs.tcr |= 1 << 41,
                "WXN" => regs.sctlr = 0x80001,
                "PAN" => access = access.with_pan(true),
                "IPS=40b" => regs.tcr = (regs.tcr & !(7 << 32)) | (2 << 32),
                "T0SZ=25" => regs.tcr = (regs.tcr & !0x3f) | 25,
                t if t.starts_with("TTBR0=") => regs.ttbr0 = hex(&t[6..]),
                t => panic!("config token {t}"),
            }
        }
        let (arch, qemu) = match f[4].split_once(" / QEMU: ") {
            Some((a, q)) => (
                parse_expect(a.trim_start_matches("ARCH: ")),
                parse_expect(q),
            ),
            None => (parse_expect(f[4]), parse_expect(f[4])),
        };
        out.push(Vector {
            id: f[0].to_string(),
            va: hex(f[1]),
            access,
            regs,
            arch,
            qemu,
        });
    }
    out
}

fn check(v: &Vector, compat: Compat, expect: &Expect) {
    let regime = Regime::try_new(v.regs, Cpu::MAX.with_compat(compat)).unwrap();
    let mut mem = fixture();
    let before = fixture();
    let va = VirtAddr::new(v.va);
    let got = walk(&regime, &mut mem, va, v.access);
    let id = format!("{} ({compat:?})", v.id);
    let mut expected_mem = before.clone();
    match (expect, got) {
        (Expect::Pa { pa, size, update }, Ok(t)) => {
            assert_eq!(t.pa.as_u64(), *pa, "{id}: PA");
            assert_eq!(t.size(), *size, "{id}: size");
            let got_update = t.update.map(|u| (u.pa.as_u64(), u.new));
            assert_eq!(got_update, *update, "{id}: descriptor update");
            if let Some((a, val)) = update {
                expected_mem.write_u64(PhysAddr::new(*a), *val).unwrap();
            }
        }
        (
            Expect::Fault {
                kind,
                level,
                fsc,
                esr,
            },
            Err(f),
        ) => {
            assert_eq!(f.kind, *kind, "{id}: kind");
            assert_eq!(f.level.map(|l| l.get()), Some(*level), "{id}: level");
            assert_eq!(f.fsc(), *fsc, "{id}: FSC");
            assert_eq!(f.esr(), *esr, "{id}: ESR");
            assert_eq!(f.far(), v.va, "{id}: FAR");
        }
        (e, g) => panic!("{id}: expected {e:?}, got {g:?}"),
    }
    assert_eq!(mem, expected_mem, "{id}: memory after the access");

    // The matching AT instruction reports the same outcome in PAR_EL1 (data accesses only;
    // AT never marks a page dirty in the architecture).
    let op = match (v.access.el(), v.access.kind(), v.access.pan()) {
        (_, pagesim::arch::AccessKind::Fetch, _) => return,
        (El::El1, pagesim::arch::AccessKind::Read, false) => AtOp::S1E1R,
        (El::El1, pagesim::arch::AccessKind::Write, false) => AtOp::S1E1W,
        (El::El1, pagesim::arch::AccessKind::Read, true) => AtOp::S1E1RP,
        (El::El1, pagesim::arch::AccessKind::Write, true) => AtOp::S1E1WP,
        (El::El0, pagesim::arch::AccessKind::Read, _) => AtOp::S1E0R,
        (El::El0, pagesim::arch::AccessKind::Write, _) => AtOp::S1E0W,
    };
    let mut mem = fixture();
    let r = at(&regime, &mut mem, op, va);
    match expect {
        Expect::Pa { pa, .. } => {
            assert_eq!(r.par & 1, 0, "{id}: PAR.F");
            assert_eq!(r.par & 0x000f_ffff_ffff_f000, pa & !0xfff, "{id}: PAR.PA");
            assert_eq!(r.par >> 56, 0xff, "{id}: PAR.ATTR");
            assert_eq!((r.par >> 7) & 3, 3, "{id}: PAR.SH");
            assert_eq!(r.par & (1 << 11), 1 << 11, "{id}: PAR[11]");
            let dirty_by_at = r
                .update
                .is_some_and(|u| u.new & (1 << 7) == 0 && u.old & (1 << 7) != 0);
            assert_eq!(
                dirty_by_at,
                compat == Compat::Qemu
                    && op.access().is_write()
                    && matches!(expect, Expect::Pa { update: Some((_, n)), .. } if n & (1 << 7) == 0),
                "{id}: AT dirty update"
            );
        }
        Expect::Fault { fsc, .. } => {
            assert_eq!(
                r.par,
                1 | ((*fsc as u64) << 1) | (1 << 11),
                "{id}: PAR fault"
            );
            assert_eq!(r.update, None, "{id}: AT fault writes nothing");
        }
    }
}

#[test]
fn all_78_vectors_architecture() {
    let vs = vectors();
    assert_eq!(vs.len(), 78);
    for v in &vs {
        check(v, Compat::Arch, &v.arch);
    }
}

#[test]
fn all_78_vectors_qemu_compat() {
    for v in &vectors() {
        check(v, Compat::Qemu, &v.qemu);
    }
}

#[test]
fn only_v77_v78_differ_between_arch_and_qemu() {
    let differing: Vec<String> = vectors()
        .into_iter()
        .filter(|v| v.arch != v.qemu)
        .map(|v| v.id)
        .collect();
    assert_eq!(differing, ["V77", "V78"]);
}
