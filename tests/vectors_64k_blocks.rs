//! 64 KiB level-1 blocks follow `AArch64.BlockDescSupported`: legal when the CPU's PAMax is
//! 52 (FEAT_LPA), whatever TCR.IPS says. The vectors run through `walk` (both CPU models)
//! and through the `pagesim at` binary with `--cpu max` and `--cpu v8.0`.

use std::io::Write;
use std::process::{Command, Stdio};

use pagesim::arch::{walk, Access, Cpu, El, FaultKind, Regime, Registers};
use pagesim::phys::{PhysMemory, SliceMemory};
use pagesim::{PhysAddr, VirtAddr};

const TABLE: u64 = 0x4000_0000;

struct Vector {
    id: String,
    cpu: &'static str,
    regs: Registers,
    desc: u64,
    access: Access,
    op: &'static str,
    va: u64,
    expect: Result<u64, (FaultKind, u8, u32)>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap()
}

fn vectors() -> Vec<Vector> {
    let mut out = vec![];
    for line in include_str!("data/vmsa_64k_l1_blocks.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(" | ").map(str::trim).collect();
        let ips: u64 = match f[2] {
            "40" => 2,
            "48" => 5,
            "52" => 6,
            x => panic!("IPS {x}"),
        };
        // T0SZ=16, TG0=64K (0b01), T1SZ=16, EPD1, TG1=4K (0b10), IPS.
        let mut tcr = 16 | (1 << 14) | (16 << 16) | (1 << 23) | (2 << 30) | (ips << 32);
        for t in f[6].split_whitespace() {
            match t {
                "-" => {}
                "HA" => tcr |= 1 << 39,
                "HD" => tcr |= 1 << 40,
                t => panic!("token {t}"),
            }
        }
        let (el, kind) = f[4].split_once(' ').unwrap();
        let el = if el == "EL0" { El::El0 } else { El::El1 };
        let (access, op) = match (kind, el) {
            ("R", El::El0) => (Access::read(el), "S1E0R"),
            ("W", El::El0) => (Access::write(el), "S1E0W"),
            ("R", _) => (Access::read(el), "S1E1R"),
            ("X", _) => (Access::fetch(el), ""),
            k => panic!("{k:?}"),
        };
        let expect = match f[7].strip_prefix("PA ") {
            Some(pa) => Ok(hex(pa)),
            None => {
                let p: Vec<&str> = f[7].split(", ").collect();
                let (k, _) = p[0].split_once(" L").unwrap();
                let kind = match k {
                    "Transl" => FaultKind::Translation,
                    "AccessFlag" => FaultKind::AccessFlag,
                    "Perm" => FaultKind::Permission,
                    "AddrSize" => FaultKind::AddressSize,
                    k => panic!("{k}"),
                };
                Err((
                    kind,
                    hex(p[1].trim_start_matches("FSC ")) as u8,
                    hex(p[2].trim_start_matches("ESR ")) as u32,
                ))
            }
        };
        out.push(Vector {
            id: f[0].to_string(),
            cpu: if f[1] == "max" { "max" } else { "v8.0" },
            regs: Registers {
                tcr,
                sctlr: 1,
                ttbr0: TABLE,
                ttbr1: 0,
                mair: 0xff,
            },
            desc: hex(f[3]),
            access,
            op,
            va: hex(f[5]),
            expect,
        });
    }
    out
}

fn cpu(name: &str) -> Cpu {
    if name == "max" {
        Cpu::MAX
    } else {
        Cpu::V8_0
    }
}

#[test]
fn level_1_blocks_follow_pamax_through_walk() {
    let vs = vectors();
    assert_eq!(vs.len(), 12);
    for v in &vs {
        let mut ram = vec![0u8; 0x10000];
        let mut mem = SliceMemory::new(PhysAddr::new(TABLE), &mut ram);
        mem.write_u64(PhysAddr::new(TABLE + 8), v.desc).unwrap();
        let regime = Regime::try_new(v.regs, cpu(v.cpu)).unwrap();
        let got = walk(&regime, &mut mem, VirtAddr::new(v.va), v.access);
        match (&v.expect, got) {
            (Ok(pa), Ok(t)) => {
                assert_eq!(t.pa.as_u64(), *pa, "{}", v.id);
                assert_eq!(t.size_log2, 42, "{}: a 4 TiB block", v.id);
                assert_eq!(t.level.map(|l| l.get()), Some(1), "{}", v.id);
            }
            (Err((kind, fsc, esr)), Err(f)) => {
                assert_eq!(f.kind, *kind, "{}", v.id);
                assert_eq!(f.level.map(|l| l.get()), Some(1), "{}", v.id);
                assert_eq!(f.fsc(), *fsc, "{}", v.id);
                assert_eq!(f.esr(), *esr, "{}", v.id);
            }
            (e, g) => panic!("{}: expected {e:x?}, got {g:x?}", v.id),
        }
    }
}

#[test]
fn level_1_blocks_follow_pamax_through_pagesim_at() {
    for v in vectors().iter().filter(|v| !v.op.is_empty()) {
        let query = format!(
            "{{\"tcr\":\"{:#x}\",\"sctlr\":\"0x1\",\"ttbr0\":\"{TABLE:#x}\",\"ttbr1\":\"0x0\",\"mair\":\"0xff\",\"va\":\"{:#x}\",\"op\":\"{}\",\"writes\":[[\"{:#x}\",\"{:#x}\"]]}}\n",
            v.regs.tcr,
            v.va,
            v.op,
            TABLE + 8,
            v.desc
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagesim"))
            .args(["at", "--cpu", v.cpu])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(query.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let par = text
            .split("\"par\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(hex)
            .unwrap_or_else(|| panic!("{}: no PAR in {text}", v.id));
        match v.expect {
            Ok(pa) => {
                assert_eq!(par & 1, 0, "{}: PAR.F in {text}", v.id);
                assert_eq!(
                    par & 0x000f_ffff_ffff_f000,
                    pa & !0xfff,
                    "{}: PAR.PA in {text}",
                    v.id
                );
            }
            Err((_, fsc, _)) => {
                assert_eq!(par & 1, 1, "{}: PAR.F in {text}", v.id);
                assert_eq!(
                    (par >> 1) & 0x3f,
                    u64::from(fsc),
                    "{}: PAR.FST in {text}",
                    v.id
                );
            }
        }
    }
}
