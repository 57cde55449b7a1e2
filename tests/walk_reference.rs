//! Property tests for the walker:
//! - a deliberately simple reference walker, written here from the spec's text, agrees with
//!   `pagesim::arch::walk` on random register values and random (often garbage) memory;
//! - random valid tables built by a small test-only builder translate to what the builder
//!   intended, at every granule.

use pagesim::arch::{
    walk, walk_pa, Access, AccessKind, Compat, Cpu, El, FaultKind, Regime, Registers,
};
use pagesim::phys::{PhysMemory, SliceMemory};
use pagesim::{PhysAddr, VirtAddr};
use proptest::prelude::*;

const RAM_BASE: u64 = 0x4000_0000;

fn bit(x: u64, n: u32) -> bool {
    (x >> n) & 1 == 1
}

fn bits(x: u64, hi: u32, lo: u32) -> u64 {
    (x >> lo) & ((1u64 << (hi - lo + 1)) - 1)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok {
        pa: u64,
        level: Option<i8>,
        size_log2: u32,
    },
    Fault {
        kind: FaultKind,
        level: Option<i8>,
    },
}

/// The reference walker: spec §1–§4 for a `Cpu::MAX` core, one rule per line, no shared code
/// with the crate beyond the memory trait.
fn reference(
    regs: &Registers,
    compat: Compat,
    mem: &mut SliceMemory,
    va: u64,
    kind: AccessKind,
    el0: bool,
    pan: bool,
) -> Outcome {
    let tcr = regs.tcr;
    let fetch = kind == AccessKind::Fetch;
    let write = kind == AccessKind::Write;
    let sel = bit(va, 55);
    let f = |kind, level: i8| Outcome::Fault {
        kind,
        level: Some(level),
    };
    let mut tbi = if sel { bit(tcr, 38) } else { bit(tcr, 37) };
    if fetch && (if sel { bit(tcr, 52) } else { bit(tcr, 51) }) {
        tbi = false;
    }
    if !bit(regs.sctlr, 0) {
        let top = if tbi { 55 } else { 63 };
        if bits(va, top, 52) != 0 {
            return f(FaultKind::AddressSize, 0);
        }
        return Outcome::Ok {
            pa: va & ((1 << 52) - 1),
            level: None,
            size_log2: 12,
        };
    }
    let (tsz, g) = if sel {
        let g = match bits(tcr, 31, 30) {
            1 => 14,
            3 => 16,
            _ => 12,
        };
        (bits(tcr, 21, 16) as u32, g)
    } else {
        let g = match bits(tcr, 15, 14) {
            1 => 16,
            2 => 14,
            _ => 12,
        };
        (bits(tcr, 5, 0) as u32, g)
    };
    let ds = bit(tcr, 59) && g != 16;
    let min_tsz = if ds || g == 16 { 12 } else { 16 };
    let max_tsz = if g == 16 { 47 } else { 48 };
    if tsz < min_tsz || tsz > max_tsz {
        return f(FaultKind::Translation, 0);
    }
    let inputsize = 64 - tsz;
    let top = if tbi { 55 } else { 63 };
    for b in inputsize..=top {
        if bit(va, b) != sel {
            return f(FaultKind::Translation, 0);
        }
    }
    let e0pd = if sel { bit(tcr, 56) } else { bit(tcr, 55) };
    if e0pd && el0 {
        return f(FaultKind::Translation, 0);
    }
    let epd = if sel { bit(tcr, 23) } else { bit(tcr, 7) };
    if epd {
        return f(FaultKind::Translation, 0);
    }
    let ps = match bits(tcr, 34, 32) {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    };
    let oasize = if ps > 48 && !(ds || g == 16) { 48 } else { ps };
    let ttbr = if sel { regs.ttbr1 } else { regs.ttbr0 };
    let s = g - 3;
    let start: i32 = 4 - (inputsize - g).div_ceil(s) as i32; // 4 - ceil((inputsize-g)/s)
    let shift_of = |l: i32| g + s * (3 - l) as u32;
    let start_table_bytes = 8u64 << (inputsize - shift_of(start));
    let mut base = if oasize == 52 {
        (ttbr & 0x0000_ffff_ffff_ffc0) | (bits(ttbr, 5, 2) << 48)
    } else {
        let b = ttbr & ((1 << 48) - 1);
        if b >> oasize != 0 {
            return f(FaultKind::AddressSize, 0);
        }
        b
    };
    base &= !(start_table_bytes - 1);
    let hpd = if sel { bit(tcr, 42) } else { bit(tcr, 41) };
    let (mut apt0, mut apt1, mut uxnt, mut pxnt) = (false, false, false, false);
    let ee = bit(regs.sctlr, 25);
    let mut level = start;
    loop {
        let shift = shift_of(level);
        let idx_bits = if level == start { inputsize - shift } else { s };
        let idx = (va >> shift) & ((1 << idx_bits) - 1);
        let addr = base + 8 * idx;
        let mut d = match mem.read_u64(PhysAddr::new(addr)) {
            Ok(d) => d,
            Err(_) => return f(FaultKind::ExternalAbortOnWalk, level as i8),
        };
        if ee {
            d = d.swap_bytes();
        }
        if !bit(d, 0) {
            return f(FaultKind::Translation, level as i8);
        }
        let mut oa = d & ((1u64 << 48) - 1) & !((1u64 << g) - 1);
        if ds {
            oa |= d & (3 << 48);
        }
        if oasize == 52 {
            if ds {
                oa |= bits(d, 9, 8) << 50;
            } else if g == 16 {
                oa |= bits(d, 15, 12) << 48;
            }
        }
        if level < 3 && bit(d, 1) {
            if oa >> oasize != 0 {
                return f(FaultKind::AddressSize, level as i8);
            }
            apt0 |= bit(d, 61);
            apt1 |= bit(d, 62);
            uxnt |= bit(d, 60);
            pxnt |= bit(d, 59);
            base = oa;
            level += 1;
            continue;
        }
        if !bit(d, 1) {
            let allowed = match g {
                12 => level == 1 || level == 2 || (level == 0 && ds),
                14 => level == 2 || (level == 1 && ds),
                // Cpu::MAX implements a 52-bit PA: AArch64.BlockDescSupported allows 64 KiB
                // level-1 blocks whatever TCR.IPS is.
                _ => level == 2 || level == 1,
            };
            if !allowed {
                return f(FaultKind::Translation, level as i8);
            }
        }
        if oa >> oasize != 0 {
            return f(FaultKind::AddressSize, level as i8);
        }
        let ha = bit(tcr, 39);
        let hd = ha && bit(tcr, 40);
        if !bit(d, 10) && !ha {
            return f(FaultKind::AccessFlag, level as i8);
        }
        // Permissions, spec §3.4.
        let dbm = hd && bit(d, 51);
        let mut ap2 = bit(d, 7);
        let mut ap1 = bit(d, 6);
        if dbm && (compat == Compat::Arch || write) {
            ap2 = false;
        }
        if !hpd {
            if apt0 {
                ap1 = false;
            }
            if apt1 {
                ap2 = true;
            }
        }
        let ur = ap1;
        let uw = ap1 && !ap2;
        let pr = true;
        let pw = !ap2;
        let ux = !(bit(d, 54) || (!hpd && uxnt));
        let px = !(bit(d, 53) || (!hpd && pxnt) || uw);
        let (mut pr, mut pw) = (pr, pw);
        if !el0 && pan && !fetch {
            let epan = bit(regs.sctlr, 57);
            if ur || uw || (epan && ux) {
                pr = false;
                pw = false;
            }
        }
        let wxn = bit(regs.sctlr, 19);
        let (r, w, mut x) = if el0 { (ur, uw, ux) } else { (pr, pw, px) };
        // WXN uses the write permission of the accessing EL; PAN cannot matter (spec §3.2).
        let w_for_wxn = if el0 { uw } else { !ap2 };
        if wxn && w_for_wxn {
            x = false;
        }
        let ok = if fetch {
            x
        } else if write {
            w
        } else {
            r
        };
        if !ok {
            return f(FaultKind::Permission, level as i8);
        }
        let mut new = d;
        if ha {
            new |= 1 << 10;
        }
        if dbm && write {
            new &= !(1 << 7);
        }
        if new != d {
            let stored = if ee { new.swap_bytes() } else { new };
            mem.write_u64(PhysAddr::new(addr), stored).unwrap();
        }
        let pa = (oa & !((1u64 << shift) - 1)) | (va & ((1u64 << shift) - 1));
        return Outcome::Ok {
            pa,
            level: Some(level as i8),
            size_log2: shift,
        };
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Fills `pages` table-sized pages of RAM with a mix of table descriptors pointing at other
/// pages, leaves with random attributes and output addresses, invalid words and garbage.
fn random_memory(seed: u64, granule_bytes: u64, pages: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let words = (granule_bytes * pages / 8) as usize;
    let mut ram = vec![0u8; words * 8];
    for w in 0..words {
        let r = rng.next();
        let attrs = rng.next() & 0xfff8_0000_0000_0ffc;
        let v = match r % 10 {
            0..=3 => {
                let page = rng.next() % (pages + 1); // sometimes just outside RAM
                (RAM_BASE + page * granule_bytes) | 3 | (attrs & 0xf800_0000_0000_0000)
            }
            4..=6 => {
                let oa = rng.next() & 0x0000_00ff_ffff_f000;
                oa | attrs | if r & 0x100 != 0 { 3 } else { 1 }
            }
            7 => rng.next() & !1,
            _ => rng.next(),
        };
        ram[w * 8..w * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    ram
}

fn outcome(r: Result<pagesim::arch::Translation, pagesim::arch::Fault>) -> Outcome {
    match r {
        Ok(t) => Outcome::Ok {
            pa: t.pa.as_u64(),
            level: t.level.map(|l| l.get()),
            size_log2: t.size_log2 as u32,
        },
        Err(f) => Outcome::Fault {
            kind: f.kind,
            level: f.level.map(|l| l.get()),
        },
    }
}

fn regs_strategy() -> impl Strategy<Value = (Registers, u64)> {
    (
        any::<u64>(),
        0u8..3,
        0u8..3,
        10u32..50,
        10u32..50,
        any::<u64>(),
        0u64..8,
        0u64..8,
        any::<u64>(),
    )
        .prop_map(|(flags, g0, g1, t0, t1, sctlr_bits, p0, p1, seed)| {
            let tg0 = [0u64, 2, 1][g0 as usize];
            let tg1 = [2u64, 1, 3][g1 as usize];
            // Random control bits, with the structural fields set from the chosen values.
            let keep = (1 << 7)
                | (1 << 23)
                | (1 << 36)
                | (0x3f << 37)
                | (3 << 51)
                | (3 << 55)
                | (1 << 59)
                | (7 << 32);
            let mut tcr = flags & keep;
            tcr |= t0 as u64 | (tg0 << 14) | ((t1 as u64) << 16) | (tg1 << 30);
            // Mostly usable: EPD and E0PD rarely, IPS mostly 48.
            if flags & 0xf != 0 {
                tcr &= !((1 << 7) | (1 << 23) | (3 << 55));
            }
            if flags & 0x30 != 0 {
                tcr = (tcr & !(7 << 32)) | (5 << 32);
            }
            let sctlr = 1 | (sctlr_bits & ((1 << 19) | (1 << 57) | (1 << 25)));
            let sctlr = if sctlr_bits >> 60 == 0 {
                sctlr & !1
            } else {
                sctlr
            };
            let g0b = [12u32, 14, 16][g0 as usize];
            let g1b = [12u32, 14, 16][g1 as usize];
            let ttbr0 = (RAM_BASE + (p0 << g0b)) | (flags & 0xffff_0000_0000_0000) | (seed & 0x3e);
            let ttbr1 = (RAM_BASE + (p1 << g1b)) | (seed & 0x3c);
            (
                Registers {
                    tcr,
                    sctlr,
                    ttbr0,
                    ttbr1,
                    mair: flags.rotate_left(17),
                },
                seed,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn walker_agrees_with_reference((regs, seed) in regs_strategy(), vas in proptest::collection::vec((any::<u64>(), 0u8..6, any::<bool>()), 16)) {
        let g0 = match (regs.tcr >> 14) & 3 { 1 => 1 << 16, 2 => 1 << 14, _ => 1 << 12 };
        let g1 = match (regs.tcr >> 30) & 3 { 1 => 1 << 14, 3 => 1 << 16, _ => 1 << 12 };
        let gran = core::cmp::max(g0, g1);
        let ram0 = random_memory(seed, gran, 8);
        for compat in [Compat::Arch, Compat::Qemu] {
            let regime = Regime::new(regs, Cpu::MAX.with_compat(compat));
            let mut a = ram0.clone();
            let mut b = ram0.clone();
            let mut ma = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut a);
            let mut mb = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut b);
            for &(raw, k, pan) in &vas {
                // Mostly inside the selected half's VA range (sign-extended), sometimes raw,
                // sometimes with a tag byte.
                let upper = raw & 1 == 1;
                let tsz = if upper { (regs.tcr >> 16) & 0x3f } else { regs.tcr & 0x3f };
                let inb = 64 - tsz.clamp(12, 60);
                let low = (raw >> 1) & ((1u64 << inb) - 1);
                let mut va = if upper { low | !((1u64 << inb) - 1) } else { low };
                match (raw >> 58) & 7 {
                    0 => va = raw,
                    1 => va = (va & 0x00ff_ffff_ffff_ffff) | 0x5a00_0000_0000_0000,
                    _ => {}
                }
                let (kind, el0) = [(AccessKind::Read, false), (AccessKind::Write, false), (AccessKind::Fetch, false),
                                   (AccessKind::Read, true), (AccessKind::Write, true), (AccessKind::Fetch, true)][k as usize];
                let access = Access::new(kind, if el0 { El::El0 } else { El::El1 }).with_pan(pan);
                // `walk_pa` first, on a copy: the same PA or fault, the same memory after.
                let mut pa_bytes = ma.bytes().to_vec();
                let mut mp = SliceMemory::new(PhysAddr::new(ma.base().as_u64()), &mut pa_bytes);
                let pa = walk_pa(&regime, &mut mp, VirtAddr::new(va), access);
                let got_full = walk(&regime, &mut ma, VirtAddr::new(va), access);
                prop_assert_eq!(pa, got_full.map(|t| t.pa), "walk_pa at va {:#x}", va);
                prop_assert!(mp.bytes() == ma.bytes(), "walk_pa left memory otherwise at va {:#x}", va);
                let got = outcome(got_full);
                let want = reference(&regs, compat, &mut mb, va, kind, el0, pan);
                prop_assert_eq!(&got, &want, "va {:#x} {:?} el0={} pan={} regs {:x?}", va, kind, el0, pan, regs);
                prop_assert!(ma.bytes() == mb.bytes(), "memory differs after va {:#x}", va);
            }
        }
    }
}

/// A mapping the builder lays down: `size_log2` bytes at `va` to `pa`, with AP and XN bits.
#[derive(Clone, Debug)]
struct Map {
    va: u64,
    pa: u64,
    level: i8,
    ap: u64,
    uxn: bool,
    pxn: bool,
}

/// Builds tables for `maps` (which must not overlap) into RAM with a bump allocator.
fn build(granule: u32, tsz: u32, maps: &[Map], ram: &mut SliceMemory) -> u64 {
    let g = granule;
    let s = g - 3;
    let inputsize = 64 - tsz;
    let start = 4 - (inputsize - g).div_ceil(s) as i8;
    let mut next = RAM_BASE + (1u64 << g); // root at RAM_BASE
    let root = RAM_BASE;
    for m in maps {
        let mut table = root;
        let mut level = start;
        loop {
            let shift = g + s * (3 - level) as u32;
            let idx_bits = if level == start { inputsize - shift } else { s };
            let idx = (m.va >> shift) & ((1 << idx_bits) - 1);
            let addr = PhysAddr::new(table + 8 * idx);
            if level == m.level {
                let mut d =
                    m.pa | (m.ap << 6) | (1 << 10) | (3 << 8) | if level == 3 { 3 } else { 1 };
                if m.uxn {
                    d |= 1 << 54;
                }
                if m.pxn {
                    d |= 1 << 53;
                }
                ram.write_u64(addr, d).unwrap();
                break;
            }
            let d = ram.read_u64(addr).unwrap();
            table = if d & 3 == 3 {
                d & 0x0000_ffff_ffff_f000 & !((1u64 << g) - 1)
            } else {
                let t = next;
                next += 1 << g;
                ram.write_u64(addr, t | 3).unwrap();
                t
            };
            level += 1;
        }
    }
    root
}

fn maps_strategy() -> impl Strategy<Value = (u32, u32, Vec<Map>)> {
    (0usize..3, any::<u64>()).prop_flat_map(|(gi, _)| {
        let g = [12u32, 14, 16][gi];
        let tsz_range = match g {
            12 => 16u32..40,
            14 => 17u32..40,
            _ => 22u32..40,
        };
        (
            Just(g),
            tsz_range,
            proptest::collection::vec(
                (
                    any::<u64>(),
                    any::<u64>(),
                    0u64..4,
                    any::<bool>(),
                    any::<bool>(),
                    any::<u8>(),
                ),
                1..12,
            ),
        )
            .prop_map(|(g, tsz, raw)| {
                let s = g - 3;
                let inputsize = 64 - tsz;
                let start = 4 - (inputsize - g).div_ceil(s) as i8;
                let block_level = if g == 12 { 1 } else { 2 };
                let mut maps: Vec<Map> = Vec::new();
                for (va, pa, ap, uxn, pxn, lv) in raw {
                    let mut level = match lv % 3 {
                        0 => block_level.max(start).min(2),
                        1 => 2.max(start),
                        _ => 3,
                    };
                    if level == block_level && block_level < start {
                        level = 3;
                    }
                    let shift = g + s * (3 - level) as u32;
                    let va = (va & ((1u64 << inputsize) - 1)) & !((1u64 << shift) - 1);
                    let pa = (pa & 0x0000_00ff_ffff_ffff) & !((1u64 << shift) - 1);
                    // Skip anything overlapping an earlier mapping at any level of the path.
                    let end = va + (1u64 << shift);
                    let overlaps = maps.iter().any(|m| {
                        let ms = g + s * (3 - m.level) as u32;
                        let mend = m.va + (1u64 << ms);
                        // Also forbid sharing a table slot with a block above or below.
                        let coarse = ms.max(shift);
                        (va >> coarse) == (m.va >> coarse)
                            && (m.level != level || va < mend && m.va < end)
                    });
                    if !overlaps {
                        maps.push(Map {
                            va,
                            pa,
                            level,
                            ap,
                            uxn,
                            pxn,
                        });
                    }
                }
                (g, tsz, maps)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn built_tables_translate_as_intended((g, tsz, maps) in maps_strategy(), offs in proptest::collection::vec(any::<u64>(), 4)) {
        let mut ram = vec![0u8; (1usize << g) * 64];
        let mut mem = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut ram);
        let root = build(g, tsz, &maps, &mut mem);
        let tg0 = match g { 12 => 0, 14 => 2, _ => 1 };
        let regs = Registers { tcr: tsz as u64 | (tg0 << 14) | (2 << 30) | (16 << 16) | (5 << 32), sctlr: 1, ttbr0: root, ttbr1: 0, mair: 0xff };
        let regime = Regime::try_new(regs, Cpu::MAX).unwrap();
        let s = g - 3;
        for m in &maps {
            let shift = g + s * (3 - m.level) as u32;
            for &o in &offs {
                let va = m.va | (o & ((1u64 << shift) - 1));
                let t = walk(&regime, &mut mem, VirtAddr::new(va), Access::read(El::El1)).unwrap();
                prop_assert_eq!(t.pa.as_u64(), m.pa | (va & ((1u64 << shift) - 1)));
                prop_assert_eq!(t.level.unwrap().get(), m.level);
                let el0_read = walk(&regime, &mut mem, VirtAddr::new(va), Access::read(El::El0)).is_ok();
                prop_assert_eq!(el0_read, m.ap & 1 == 1);
                let el1_write = walk(&regime, &mut mem, VirtAddr::new(va), Access::write(El::El1)).is_ok();
                prop_assert_eq!(el1_write, m.ap & 2 == 0);
                let el0_exec = walk(&regime, &mut mem, VirtAddr::new(va), Access::fetch(El::El0)).is_ok();
                prop_assert_eq!(el0_exec, !m.uxn);
                let el1_exec = walk(&regime, &mut mem, VirtAddr::new(va), Access::fetch(El::El1)).is_ok();
                prop_assert_eq!(el1_exec, !m.pxn && m.ap != 1);
            }
        }
        // An address outside every mapping faults with a Translation fault.
        for &o in &offs {
            let va = o & ((1u64 << (64 - tsz)) - 1);
            let inside = maps.iter().any(|m| { let sh = g + s * (3 - m.level) as u32; va >> sh == m.va >> sh });
            if !inside {
                let f = walk(&regime, &mut mem, VirtAddr::new(va), Access::read(El::El1)).unwrap_err();
                prop_assert_eq!(f.kind, FaultKind::Translation);
            }
        }
    }
}
