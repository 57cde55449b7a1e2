//! The logic of pagesim's fuzz targets, as plain functions over byte strings.
//!
//! This file is shared by the cargo-fuzz binaries in `fuzz/fuzz_targets/` (through
//! `fuzz/src/lib.rs`) and by the stable test `tests/fuzz_corpus.rs` (through
//! `#[path = "../fuzz/src/targets.rs"]`), so it uses nothing but `pagesim` and `std`: no
//! libFuzzer items, no extra crates. Each target panics, with a message naming the broken
//! invariant, on a bug, and returns normally on every other input.
//!
//! The input formats are documented on each target and in `fuzz/README.md`; the seed
//! generator `fuzz/make_seeds.py` writes them.

use pagesim::mmu::Contents;
use std::collections::BTreeSet;

use pagesim::arch::walk::{DescriptorUpdate, MAX_UPDATE_RETRIES};
use pagesim::arch::{
    at, walk as walk_va, walk_pa, Access, AccessKind, AtOp, Attributes, Compat, Cpu,
    DescriptorFormat, El, Fault, FaultKind, Granule, Level, Regime, RegimeError, Registers,
    Translation, TxszPolicy,
};
use pagesim::linux::mm::maps_text::{
    import_maps, import_smaps, render_maps, render_smaps, MapsFormat, MapsParser, ParseError,
    ParseErrorKind, SmapsEntry, SmapsParser, MAPS_NAME_PAD,
};
use pagesim::linux::mm::vma::{Vma, VmaKind};
use pagesim::linux::mm::vma_tree::{VmaSlot, VmaTree};
use pagesim::linux::mm::vmflags::MnemonicTable;
use pagesim::mmu::{
    Flush, FrameAllocator, FrameError, FrameSource, MapError, Mapper, Mmu, TableFormat, Tlbi,
    VaRange,
};
use pagesim::phys::{MemoryError, PhysMemory, SliceMemory};
use pagesim::{PhysAddr, VirtAddr};

// ----- input decoding -----------------------------------------------------------------

/// Reads little-endian values from the front of the input; past its end every read is 0,
/// so every byte string is a valid input.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

fn word(bytes: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[off..off + 8]);
    u64::from_le_bytes(b)
}

fn set_word(bytes: &mut [u8], off: usize, v: u64) {
    bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

// ===== walk =============================================================================

/// Base addresses of the simulated RAM (selected by 3 bits of the flags byte).
const WALK_BASES: [u64; 8] = [
    0x4000_0000,
    0,
    0x1000,
    0x8000_0000,
    0x1_0000_0000,
    (1 << 40) - 0x1_0000,
    (1 << 48) - 0x1_0000,
    (1 << 52) - 0x1_0000,
];
/// Accesses per input, at most.
const WALK_MAX_ACCESSES: usize = 16;
/// Access sizes, selected by 3 bits of the access byte (invalid sizes count as 1).
const WALK_SIZES: [u8; 8] = [1, 2, 4, 8, 16, 1, 3, 0];
/// The race byte's high nibble that enables a simulated concurrent descriptor writer.
const RACE_MAGIC: u8 = 0xa;

const AF: u64 = 1 << 10;
const AP_RO: u64 = 1 << 7;
const DBM: u64 = 1 << 51;

/// A simulated other agent acting on the descriptor the walker is about to update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Race {
    /// Nothing happens.
    None,
    /// Before each of the first `times` compare-and-swaps, bit `bit` of the target word
    /// flips (`u32::MAX`: before every one).
    Flip { bit: u32, times: u32 },
    /// The first compare-and-swap reports that the location cannot be updated atomically.
    Unsupported,
    /// The first compare-and-swap takes an external abort.
    Abort,
}

impl Race {
    fn decode(kind: u8, arg: u8) -> Race {
        if kind >> 4 != RACE_MAGIC {
            return Race::None;
        }
        match kind & 3 {
            0 => Race::None,
            1 => {
                let n = (kind >> 2) & 3;
                Race::Flip {
                    bit: u32::from(arg & 63),
                    times: if n == 3 { u32::MAX } else { u32::from(n) + 1 },
                }
            }
            2 => Race::Unsupported,
            _ => Race::Abort,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum WalkOp {
    Walk(Access),
    At(AtOp),
}

#[derive(Clone, Copy, Debug)]
struct WalkAccess {
    va: u64,
    op: WalkOp,
    race: Race,
}

impl WalkAccess {
    fn decode(r: &mut Reader<'_>) -> WalkAccess {
        let va = r.u64();
        let b = r.u8();
        let kind = r.u8();
        let arg = r.u8();
        let el = if b & 4 != 0 { El::El0 } else { El::El1 };
        let op = match b & 3 {
            3 => WalkOp::At(AtOp::ALL[usize::from(b >> 4) % AtOp::ALL.len()]),
            k => {
                let kind = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch][usize::from(k)];
                WalkOp::Walk(
                    Access::new(kind, el)
                        .with_pan(b & 8 != 0)
                        .with_size(WALK_SIZES[usize::from(b >> 4) & 7]),
                )
            }
        };
        WalkAccess {
            va,
            op,
            race: Race::decode(kind, arg),
        }
    }

    fn access(&self) -> Access {
        match self.op {
            WalkOp::Walk(a) => a,
            WalkOp::At(op) => op.access(),
        }
    }
}

fn decode_cpu(r: &mut Reader<'_>) -> Cpu {
    let sel = r.u8();
    let feat = r.u16();
    let mut cpu = match sel & 3 {
        1 => Cpu::V8_0,
        2 => Cpu {
            parange: ((feat >> 12) & 7).min(6) as u8,
            lpa2: feat & 1 != 0,
            lpa: feat & 2 != 0,
            lva: feat & 4 != 0,
            ttst: feat & 8 != 0,
            hafdbs: feat & 0x10 != 0,
            hdbs: feat & 0x20 != 0,
            hpds: feat & 0x40 != 0,
            tbid: feat & 0x80 != 0,
            e0pd: feat & 0x100 != 0,
            pan3: feat & 0x200 != 0,
            compat: Compat::Arch,
            txsz_policy: TxszPolicy::Fault,
        },
        _ => Cpu::MAX,
    };
    if sel & 4 != 0 {
        cpu.compat = Compat::Qemu;
    }
    if sel & 8 != 0 {
        cpu.txsz_policy = TxszPolicy::Clamp;
    }
    let p = (sel >> 4) & 7;
    if p != 0 {
        cpu = cpu.with_parange(p - 1);
    }
    cpu
}

/// A TTBR value relative to the RAM base: keeps ASID, CnP and BADDR\[51:48\] from `raw`.
fn relative_ttbr(raw: u64, base: u64) -> u64 {
    (raw & 0xffff_0000_0000_003f) | (base.wrapping_add(raw & 0xffc0) & 0x0000_ffff_ffff_ffc0)
}

/// Physical memory that records every access the walker makes and can play a concurrent
/// writer (see [`Race`]).
struct Racy<'m, 'a> {
    mem: &'m mut SliceMemory<'a>,
    race: Race,
    cas: u32,
    /// Words the simulated other agent stored: (pa, stored value).
    race_writes: Vec<(u64, u64)>,
    /// Plain writes by the walker (it must only use compare-and-swap).
    direct_writes: u32,
    injected: bool,
    reads: std::cell::Cell<u32>,
    last_read: std::cell::Cell<u64>,
    read_failed: std::cell::Cell<bool>,
    unaligned_read: std::cell::Cell<bool>,
}

impl<'m, 'a> Racy<'m, 'a> {
    fn new(mem: &'m mut SliceMemory<'a>, race: Race) -> Self {
        Racy {
            mem,
            race,
            cas: 0,
            race_writes: Vec::new(),
            direct_writes: 0,
            injected: false,
            reads: std::cell::Cell::new(0),
            last_read: std::cell::Cell::new(u64::MAX),
            read_failed: std::cell::Cell::new(false),
            unaligned_read: std::cell::Cell::new(false),
        }
    }
}

impl PhysMemory for Racy<'_, '_> {
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        self.reads.set(self.reads.get() + 1);
        self.last_read.set(pa.as_u64());
        if !pa.as_u64().is_multiple_of(8) {
            self.unaligned_read.set(true);
        }
        let r = self.mem.read_u64(pa);
        if r.is_err() {
            self.read_failed.set(true);
        }
        r
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        self.direct_writes += 1;
        self.mem.write_u64(pa, value)
    }

    fn compare_exchange_u64(
        &mut self,
        pa: PhysAddr,
        current: u64,
        new: u64,
    ) -> Result<Result<(), u64>, MemoryError> {
        self.cas += 1;
        match self.race {
            Race::Flip { bit, times } if self.cas <= times => {
                if let Ok(w) = self.mem.read_u64(pa) {
                    let flipped = w ^ (1u64 << bit);
                    if self.mem.write_u64(pa, flipped).is_ok() {
                        self.race_writes.push((pa.as_u64(), flipped));
                    }
                }
            }
            Race::Unsupported if self.cas == 1 => {
                self.injected = true;
                return Err(MemoryError::AtomicUnsupported { pa });
            }
            Race::Abort if self.cas == 1 => {
                self.injected = true;
                return Err(MemoryError::ExternalAbort { pa });
            }
            _ => {}
        }
        self.mem.compare_exchange_u64(pa, current, new)
    }
}

/// What one walk did to memory, as [`Racy`] saw it.
struct WalkTrace {
    race_writes: Vec<(u64, u64)>,
    injected: bool,
    cas: u32,
    reads: u32,
    last_read: u64,
    read_failed: bool,
}

fn traced_walk(
    regime: &Regime,
    ram: &mut [u8],
    base: u64,
    a: &WalkAccess,
) -> (Result<Translation, Fault>, WalkTrace) {
    let mut mem = SliceMemory::new(PhysAddr::new(base), ram);
    let mut racy = Racy::new(&mut mem, a.race);
    let res = walk_va(regime, &mut racy, VirtAddr::new(a.va), a.access());
    assert_eq!(
        racy.direct_writes, 0,
        "the walker wrote memory other than by compare-and-swap"
    );
    assert!(
        !racy.unaligned_read.get(),
        "the walker read a descriptor at an unaligned address"
    );
    let trace = WalkTrace {
        race_writes: racy.race_writes,
        injected: racy.injected,
        cas: racy.cas,
        reads: racy.reads.get(),
        last_read: racy.last_read.get(),
        read_failed: racy.read_failed.get(),
    };
    (res, trace)
}

/// Fuzz target `walk`: arbitrary registers, CPU features and RAM contents, then up to 16
/// walks or AT instructions on the evolving memory, each checked for the architectural
/// invariants of its result, for exactly the memory update it reports, for determinism
/// (the same walk again gives the same answer with no update), against `at`, and (when
/// nothing else can change the answer) against the TLB-backed `Mmu`.
///
/// Input: `cpu:u8 features:u16 flags:u8 ram_pages:u8 tcr sctlr ttbr0 ttbr1 mair:u64`,
/// `n:u8` patches of `word_index:u16 value:u64`, `m:u8` accesses of
/// `va:u64 access:u8 race:u8 race_arg:u8`, then the initial RAM image.
pub fn walk(data: &[u8]) {
    let mut r = Reader::new(data);
    let cpu = decode_cpu(&mut r);
    let flags = r.u8();
    let ram_size = (usize::from(r.u8() & 15) + 1) * 4096;
    let base = WALK_BASES[usize::from(flags >> 3) & 7];
    let mut regs = Registers {
        tcr: r.u64(),
        sctlr: r.u64(),
        ttbr0: r.u64(),
        ttbr1: r.u64(),
        mair: r.u64(),
    };
    if flags & 1 != 0 {
        regs.sctlr |= 1;
    }
    if flags & 2 != 0 {
        regs.ttbr0 = relative_ttbr(regs.ttbr0, base);
    }
    if flags & 4 != 0 {
        regs.ttbr1 = relative_ttbr(regs.ttbr1, base);
    }
    let patches: Vec<(u16, u64)> = (0..r.u8()).map(|_| (r.u16(), r.u64())).collect();
    let n = usize::from(r.u8()).min(WALK_MAX_ACCESSES);
    let accesses: Vec<WalkAccess> = (0..n).map(|_| WalkAccess::decode(&mut r)).collect();
    let image = r.rest();
    let mut ram = vec![0u8; ram_size];
    let len = image.len().min(ram_size);
    ram[..len].copy_from_slice(&image[..len]);
    for (w, v) in patches {
        let off = usize::from(w) % (ram_size / 8) * 8;
        set_word(&mut ram, off, v);
    }

    let regime = Regime::new(regs, cpu);
    check_regime(&regs, &cpu, &regime);

    // The Mmu must agree with the walker access for access when nothing but the walks
    // themselves changes memory, and the architecture rule (not QEMU's, which lets a
    // store's dirty update change the permissions of other cached pages) is in force.
    let mut mmu_ram = ram.clone();
    let mut mmu: Option<Mmu<SliceMemory<'_>, 16>> =
        (cpu.compat == Compat::Arch && accesses.iter().all(|a| a.race == Race::None)).then(|| {
            Mmu::new(
                regs,
                cpu,
                SliceMemory::new(PhysAddr::new(base), &mut mmu_ram),
            )
        });
    if let Some(m) = &mmu {
        assert_eq!(*m.regime(), regime, "Mmu decoded the registers differently");
    }

    for a in &accesses {
        let before = ram.clone();
        let va = VirtAddr::new(a.va);
        let access = a.access();
        let (res, trace) = traced_walk(&regime, &mut ram, base, a);
        check_walk_result(&regime, va, access, a.race, &res, &trace);
        check_walk_memory(&regime, base, &before, &ram, &res, &trace);

        if let WalkOp::At(op) = a.op {
            let mut copy = before.clone();
            let mut mem = SliceMemory::new(PhysAddr::new(base), &mut copy);
            let mut racy = Racy::new(&mut mem, a.race);
            let got = at(&regime, &mut racy, op, va);
            let want = match &res {
                Ok(t) => t.par(),
                Err(f) => f.par(),
            };
            assert_eq!(got.par, want, "AT {op} disagrees with the walk");
            assert_eq!(got.update, res.as_ref().ok().and_then(|t| t.update));
            assert!(copy == ram, "AT {op} left memory different from the walk");
        }

        if a.race == Race::None {
            let after = ram.clone();
            let mut mem = SliceMemory::new(PhysAddr::new(base), &mut ram);
            let again = walk_va(&regime, &mut mem, va, access);
            match (&res, &again) {
                (Ok(t1), Ok(t2)) => assert_eq!(
                    *t2,
                    Translation {
                        update: None,
                        ..*t1
                    },
                    "the same walk again gave another answer"
                ),
                (Err(f1), Err(f2)) => assert_eq!(f1, f2, "the same walk again faulted otherwise"),
                _ => panic!("the same walk again: {res:?} then {again:?}"),
            }
            assert!(ram == after, "the repeated walk changed memory");
            let mut mem = SliceMemory::new(PhysAddr::new(base), &mut ram);
            let pa = walk_pa(&regime, &mut mem, va, access);
            assert_eq!(
                pa,
                again.map(|t| t.pa),
                "walk_pa disagrees with walk at {va:?}"
            );
            assert!(ram == after, "walk_pa changed memory");
        }

        if let Some(m) = mmu.as_mut() {
            let got = m.translate(va, access);
            let want = res.as_ref().map(|t| t.pa).map_err(|f| *f);
            assert_eq!(got, want, "Mmu::translate disagrees with walk at {va:?}");
            assert!(
                m.memory().bytes() == ram.as_slice(),
                "Mmu and walker left memory different"
            );
        }
    }
}

/// Checks `Regime::new` against `Regime::try_new` and the decoded fields' basic rules.
fn check_regime(regs: &Registers, cpu: &Cpu, regime: &Regime) {
    let t = regs.tcr;
    let tg0 = (t >> 14) & 3;
    let tg1 = (t >> 30) & 3;
    let ips = (t >> 32) & 7;
    let granule_of = |upper: bool| regime.half(upper).granule;
    let limits = |upper: bool| {
        let h = regime.half(upper);
        let is64 = h.granule == Granule::K64;
        let min = if h.ds || (is64 && cpu.lva) { 12 } else { 16 };
        let max = match (cpu.ttst, is64) {
            (true, true) => 47,
            (true, false) => 48,
            (false, _) => 39,
        };
        (min, max)
    };
    let raw_tsz = |upper: bool| ((t >> if upper { 16 } else { 0 }) & 0x3f) as u8;
    let in_range = |upper: bool| {
        let (min, max) = limits(upper);
        (min..=max).contains(&raw_tsz(upper))
    };
    match Regime::try_new(*regs, *cpu) {
        Ok(r) => {
            assert_eq!(r, *regime, "try_new and new decode differently");
            assert!(
                tg0 != 3 && tg1 != 0 && ips != 7,
                "try_new accepted a reserved field"
            );
            assert!(
                in_range(false) && in_range(true),
                "try_new accepted a bad TxSZ"
            );
        }
        Err(RegimeError::ReservedGranule { half: 0, tg }) => {
            assert!(tg0 == 3 && u64::from(tg) == tg0)
        }
        Err(RegimeError::ReservedGranule { half: 1, tg }) => {
            assert!(tg0 != 3 && tg1 == 0 && u64::from(tg) == tg1)
        }
        Err(RegimeError::ReservedIps) => assert!(tg0 != 3 && tg1 != 0 && ips == 7),
        Err(RegimeError::TxszOutOfRange { half, txsz }) => {
            assert!(tg0 != 3 && tg1 != 0 && ips != 7);
            let upper = half == 1;
            assert!(half <= 1 && txsz == raw_tsz(upper) && !in_range(upper));
            assert!(
                !upper || in_range(false),
                "try_new named TTBR1's TxSZ first"
            );
        }
        Err(e) => panic!("try_new: unexpected {e:?}"),
    }
    for upper in [false, true] {
        let h = regime.half(upper);
        let (min, max) = limits(upper);
        let raw = raw_tsz(upper);
        let oob = !(min..=max).contains(&raw);
        assert_eq!(
            h.txsz_out_of_range,
            oob && cpu.txsz_policy == TxszPolicy::Fault
        );
        if oob {
            assert_eq!(h.txsz, raw.clamp(min, max));
        } else {
            assert_eq!(h.txsz, raw);
        }
        assert_eq!(
            h.ds,
            t & (1 << 59) != 0 && cpu.lpa2 && granule_of(upper) != Granule::K64
        );
        assert_eq!(h.start_level, h.granule.start_level(h.input_bits()));
        let oa = regime.oa_bits(upper);
        assert!(oa <= cpu.pa_bits() && (32..=52).contains(&oa));
        assert!(oa <= 48 || h.ds || (h.granule == Granule::K64 && cpu.lpa));
        assert!(h.table_base >> 52 == 0, "table base beyond 52 bits");
    }
}

/// The FSC the architecture defines for a fault kind at a level.
fn expected_fsc(kind: FaultKind, level: Option<Level>) -> u8 {
    let l = level.map(|l| l.get());
    match (kind, l) {
        (FaultKind::AddressSize, Some(-1)) => 0x29,
        (FaultKind::AddressSize, Some(l @ 0..=3)) => l as u8,
        (FaultKind::Translation, Some(-1)) => 0x2b,
        (FaultKind::Translation, Some(l @ 0..=3)) => 0x04 + l as u8,
        (FaultKind::AccessFlag, Some(l @ 0..=3)) => 0x08 + l as u8,
        (FaultKind::Permission, Some(l @ 0..=3)) => 0x0c + l as u8,
        (FaultKind::ExternalAbortOnWalk, Some(-1)) => 0x13,
        (FaultKind::ExternalAbortOnWalk, Some(l @ 0..=3)) => 0x14 + l as u8,
        (FaultKind::Alignment, None) => 0x21,
        // The documentation says these carry no level; the walker reports the level of the
        // leaf it tried to update. FSC 0x31 holds no level either way.
        (FaultKind::UnsupportedAtomicUpdate, _) => 0x31,
        (k, l) => panic!("a {k:?} fault cannot have level {l:?}"),
    }
}

/// Whether `va` passes the range check of its half (spec §1.3), written out bit by bit.
fn va_in_range(regime: &Regime, va: u64, access: Access) -> bool {
    let upper = (va >> 55) & 1 == 1;
    let h = regime.half(upper);
    let top = if h.tbi && !(access.is_fetch() && h.tbid) {
        55
    } else {
        63
    };
    (h.input_bits()..=top).all(|b| ((va >> b) & 1 == 1) == upper)
}

fn check_walk_result(
    regime: &Regime,
    va: VirtAddr,
    access: Access,
    race: Race,
    res: &Result<Translation, Fault>,
    trace: &WalkTrace,
) {
    let v = va.as_u64();
    let upper = va.select_bit();
    let h = regime.half(upper);
    let start = h.start_level.get();
    let is_device = |attr: u8| attr & 0xf0 == 0;
    let misaligned = !v.is_multiple_of(u64::from(access.size()));
    assert!(
        !trace.read_failed || matches!(res, Err(f) if f.kind == FaultKind::ExternalAbortOnWalk),
        "a descriptor read failed but the walk gave {res:?}"
    );
    match res {
        Ok(t) => {
            assert_eq!(t.va, va);
            assert_eq!(t.asid, regime.asid());
            let pa = t.pa.as_u64();
            assert!(pa >> 52 == 0, "PA {pa:#x} beyond 52 bits");
            assert!(!trace.injected, "an injected memory error did not fault");
            let par = t.par();
            assert_eq!(par & 1, 0);
            assert_eq!((par >> 12) & ((1 << 40) - 1), pa >> 12, "PAR PA");
            assert_eq!((par >> 56) as u8, t.attr, "PAR ATTR");
            if is_device(t.attr) && !access.is_at() && !access.is_fetch() {
                assert!(!misaligned, "unaligned Device access translated");
            }
            if !regime.mmu_enabled() {
                let pamax = regime.cpu().pa_bits();
                assert_eq!(t.level, None);
                assert_eq!(t.size_log2, 12);
                assert_eq!(pa, v & ((1 << pamax) - 1), "MMU off is a flat mapping");
                assert_eq!(t.update, None);
                assert_eq!(t.descriptor.bits(), 0);
                assert_eq!(t.descriptor_pa.as_u64(), 0);
                assert_eq!(trace.reads, 0, "MMU off read memory");
                let want = if !access.is_fetch() {
                    0
                } else if regime.registers().sctlr & (1 << 12) != 0 {
                    0xee
                } else {
                    0x44
                };
                assert_eq!(t.attr, want, "MMU-off memory type");
                return;
            }
            assert!(va_in_range(regime, v, access), "out-of-range VA translated");
            assert!(!h.epd && !h.txsz_out_of_range && !h.base_too_large);
            assert!(
                !(h.e0pd && access.is_el0()),
                "E0PD let an EL0 access through"
            );
            let l = t.level.expect("MMU on: a translation has a level");
            let lv = l.get();
            assert!((start..=3).contains(&lv), "leaf level {lv} (start {start})");
            let oa_bits = regime.oa_bits(upper);
            // AArch64.BlockDescSupported: 64 KiB level-1 blocks with PAMax = 52.
            let lpa = regime.cpu().pa_bits() == 52;
            assert!(
                lv == 3 || h.granule.block_allowed(l, h.ds, lpa),
                "block at level {lv} with {:?}",
                h.granule
            );
            assert_eq!(
                u32::from(t.size_log2),
                h.granule.level_shift(l),
                "size does not match level"
            );
            let mask = t.size() - 1;
            assert_eq!(pa & mask, v & mask, "PA keeps the offset in the leaf");
            let desc = t.descriptor.bits();
            let format = DescriptorFormat {
                granule: h.granule,
                ds: h.ds,
                oa_bits,
                pa_max_52: oa_bits > 48,
            };
            assert_eq!(
                pa & !mask,
                format.output_address(desc) & !mask,
                "PA is not the descriptor's output address"
            );
            // The address size check is on the descriptor's output address (spec §1.8,
            // QEMU's `descaddr >> outputsize`); a block larger than the PA space (a 512 GiB
            // L0 block under a 36-bit IPS) still maps VA bits above the OA size, as on QEMU.
            let oa = format.output_address(desc);
            assert!(
                oa >> oa_bits == 0,
                "output address {oa:#x} above the {oa_bits}-bit OA size"
            );
            assert_eq!(desc & 3, if lv == 3 { 3 } else { 1 }, "leaf type bits");
            assert!(desc & AF != 0, "a translation from a leaf with AF = 0");
            assert_eq!(t.attr, regime.mair_attr(t.attr_index()));
            let sh = if h.ds { h.sh } else { ((desc >> 8) & 3) as u8 };
            assert_eq!(t.sh, sh);
            assert!(
                t.perms.allows(&access, regime.epan()),
                "the leaf's permissions do not allow the access"
            );
            if t.writable_clean {
                assert!(regime.hd() && desc & DBM != 0 && desc & AP_RO != 0);
            }
            if let Some(u) = t.update {
                assert_eq!(u.pa, t.descriptor_pa);
                assert_eq!(u.new, desc);
                check_update(regime, access, &u);
            }
            if race == Race::None {
                assert_eq!(
                    trace.reads as i32,
                    i32::from(lv - start) + 1,
                    "one descriptor read per level"
                );
                assert_eq!(t.descriptor_pa.as_u64(), trace.last_read);
            }
        }
        Err(f) => {
            assert_eq!(f.va, va);
            assert_eq!(f.access, access);
            let fsc = f.fsc();
            assert_eq!(fsc, expected_fsc(f.kind, f.level), "FSC of {f:?}");
            assert_eq!(f.par() & 1, 1);
            assert_eq!(((f.par() >> 1) & 0x3f) as u8, fsc, "PAR FST");
            let esr = f.esr();
            assert_eq!((esr & 0x3f) as u8, fsc, "ESR ISS.FSC");
            assert_eq!(esr >> 26, u32::from(f.ec()));
            assert_eq!(
                esr & (1 << 6) != 0,
                access.is_write(),
                "ESR WnR for {access:?}"
            );
            assert_eq!(f.far(), v);
            let level = f.level.map(|l| l.get());
            let walked = trace.reads > 0;
            match f.kind {
                FaultKind::Alignment => {
                    assert!(!access.is_at() && !access.is_fetch() && misaligned);
                }
                FaultKind::UnsupportedAtomicUpdate => {
                    let forever = matches!(
                        race,
                        Race::Flip {
                            times: u32::MAX,
                            ..
                        }
                    );
                    assert!(
                        race == Race::Unsupported || (forever && trace.cas > MAX_UPDATE_RETRIES),
                        "unsupported-atomic fault without cause"
                    );
                }
                FaultKind::AccessFlag | FaultKind::Permission => {
                    let l = f.level.expect("leaf faults have a level");
                    let lv = l.get();
                    assert!(regime.mmu_enabled() && walked);
                    assert!((start.max(0)..=3).contains(&lv), "leaf fault at level {lv}");
                    let lpa = regime.cpu().pa_bits() == 52;
                    assert!(lv == 3 || h.granule.block_allowed(l, h.ds, lpa));
                    if f.kind == FaultKind::AccessFlag {
                        assert!(!regime.ha(), "access flag fault with TCR.HA");
                    }
                }
                FaultKind::ExternalAbortOnWalk => {
                    assert!(trace.read_failed || (race == Race::Abort && trace.injected));
                    let lv = level.expect("walk aborts have a level");
                    assert!((start..=3).contains(&lv));
                }
                FaultKind::Translation | FaultKind::AddressSize => {
                    let lv = level.expect("translation and address size faults have a level");
                    if !walked {
                        assert_eq!(lv, 0, "faults before the walk are reported at level 0");
                    } else {
                        assert!(
                            (start..=3).contains(&lv),
                            "fault at level {lv}, start {start}"
                        );
                    }
                    if !regime.mmu_enabled() {
                        assert_eq!(f.kind, FaultKind::AddressSize);
                        assert!(!walked);
                    } else if !walked {
                        let bad_va = !va_in_range(regime, v, access);
                        let e0 = h.e0pd && access.is_el0();
                        assert!(
                            bad_va || e0 || h.epd || h.txsz_out_of_range || h.base_too_large,
                            "a level-0 fault without reading memory and without a reason"
                        );
                    }
                }
            }
            if race == Race::None && walked {
                if let Some(lv) = level {
                    if f.kind != FaultKind::Alignment {
                        assert_eq!(
                            trace.reads as i32,
                            i32::from(lv - start) + 1,
                            "the fault level is the level of the last descriptor read"
                        );
                    }
                }
            }
        }
    }
}

/// A hardware update only sets AF (with HA) or clears AP\[2\] of a DBM leaf (with HD, on a
/// write).
fn check_update(regime: &Regime, access: Access, u: &DescriptorUpdate) {
    assert_ne!(u.old, u.new, "an update that changes nothing");
    let set = u.new & !u.old;
    let cleared = u.old & !u.new;
    assert_eq!(set & !AF, 0, "update set bits other than AF: {u:x?}");
    assert_eq!(
        cleared & !AP_RO,
        0,
        "update cleared bits other than AP[2]: {u:x?}"
    );
    if set != 0 {
        assert!(regime.ha(), "AF set without TCR.HA");
    }
    if cleared != 0 {
        assert!(
            regime.hd() && u.old & DBM != 0,
            "AP[2] cleared without DBM and HD"
        );
        assert!(access.is_write(), "AP[2] cleared by a read or fetch");
        assert!(
            !access.is_at() || regime.cpu().compat == Compat::Qemu,
            "AT changed the dirty state"
        );
    }
}

/// Memory after the walk equals memory before, plus the other agent's stores, plus exactly
/// the reported update, which replaced the value the walker last saw.
fn check_walk_memory(
    regime: &Regime,
    base: u64,
    before: &[u8],
    after: &[u8],
    res: &Result<Translation, Fault>,
    trace: &WalkTrace,
) {
    let be = regime.big_endian();
    let enc = |v: u64| if be { v.swap_bytes() } else { v };
    let mut want = before.to_vec();
    for &(pa, stored) in &trace.race_writes {
        set_word(&mut want, (pa - base) as usize, stored);
    }
    if let Ok(t) = res {
        if regime.mmu_enabled() {
            let dpa = t.descriptor_pa.as_u64();
            assert!(dpa % 8 == 0 && dpa >= base, "descriptor address {dpa:#x}");
            let off = (dpa - base) as usize;
            assert!(off + 8 <= after.len(), "descriptor outside RAM");
            match t.update {
                Some(u) => {
                    assert_eq!(
                        enc(u.old),
                        word(&want, off),
                        "update.old is not what was there"
                    );
                    set_word(&mut want, off, enc(u.new));
                }
                None => assert_eq!(
                    enc(t.descriptor.bits()),
                    word(&want, off),
                    "the reported descriptor is not the one in memory"
                ),
            }
        }
    }
    if want != after {
        let off = want
            .iter()
            .zip(after)
            .position(|(a, b)| a != b)
            .unwrap_or(0)
            & !7;
        panic!(
            "memory outside the reported update changed: {:#x} holds {:#x}, expected {:#x}",
            base + off as u64,
            word(after, off),
            word(&want, off)
        );
    }
}

// ===== mmu_ops ==========================================================================

const MMU_RAM_BASE: u64 = 0x4000_0000;
/// Output addresses of mappings start here (outside RAM: translation never reads them).
const MMU_PA_BASE: u64 = 0x1_0000_0000;
/// MAIR_EL1 with Normal and Device types: AttrIndx 4, 6 and 7 are Device.
const MMU_MAIR: u64 = 0x0004_440c_ffee_bbff;
const MMU_MAX_OPS: usize = 96;
const MMU_MAX_PAGES: u64 = 2048;
/// Pages of VA window per mapper (page granule units), per granule.
const fn mmu_span(g: Granule) -> u64 {
    match g {
        Granule::K4 => 4096,
        Granule::K16 => 8192,
        Granule::K64 => 16384,
    }
}
/// Process ASIDs (TCR.AS = 1: 16-bit).
const MMU_ASIDS: [u16; 3] = [1, 0x101, 0xfffe];
/// Leaf attribute bits the model tracks (nG is fixed per address space; Contiguous is
/// left out because splitting a block clears it).
const MODEL_ATTRS: [u64; 16] = [
    1 << 2,  // AttrIndx[0]
    1 << 3,  // AttrIndx[1]
    1 << 4,  // AttrIndx[2]
    1 << 5,  // NS
    1 << 6,  // AP[1]
    1 << 7,  // AP[2]
    1 << 8,  // SH[0]
    1 << 9,  // SH[1]
    1 << 10, // AF
    1 << 50, // GP
    1 << 51, // DBM
    1 << 53, // PXN
    1 << 54, // UXN
    1 << 55, // SW0
    1 << 57, // SW2
    1 << 58, // SW3
];
/// Checks that attribute bits inside the output-address field are refused with
/// `InvalidAttributes`, as `MapError` documents.
const CHECK_OA_ATTRIBUTE_BITS: bool = true;

fn model_attrs(bits: u16) -> u64 {
    (0..16)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| MODEL_ATTRS[i])
        .fold(0, |a, b| a | b)
}

/// Physical memory that journals every write (address, old value) so that a failed call
/// can be checked to have left memory as it was.
struct Journal<'a> {
    mem: SliceMemory<'a>,
    log: Vec<(u64, u64)>,
}

impl PhysMemory for Journal<'_> {
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        self.mem.read_u64(pa)
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        if let Ok(old) = self.mem.read_u64(pa) {
            self.log.push((pa.as_u64(), old));
        }
        self.mem.write_u64(pa, value)
    }

    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        let mut off = 0;
        while off < len {
            if let Some(a) = pa.checked_add(off) {
                if let Ok(old) = self.mem.read_u64(a) {
                    self.log.push((a.as_u64(), old));
                }
            }
            off += 8;
        }
        self.mem.zero(pa, len)
    }
}

/// The frame allocator behind the mappers, with an injectable allocation failure and
/// checks on every release.
struct Frames<'s> {
    alloc: FrameAllocator<'s>,
    fail_at: Option<u64>,
    allocations: u64,
    hogs: BTreeSet<u64>,
    ever_hogged: bool,
    released: Vec<(u64, u32, bool)>,
}

impl FrameSource for Frames<'_> {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        self.allocations += 1;
        if self.fail_at == Some(self.allocations) {
            return None;
        }
        let (pa, zeroed) = FrameSource::allocate(&mut self.alloc, order)?;
        assert!(
            pa.is_aligned(4096 << order) && self.alloc.contains(pa),
            "allocator returned {pa:?} for order {order}"
        );
        Some((pa, zeroed))
    }

    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError> {
        for i in 0..1u64 << order {
            let f = PhysAddr::new(pa.as_u64() + i * 4096);
            assert_eq!(
                self.alloc.is_allocated(f),
                Ok(true),
                "the mapper released {f:?}, which is not allocated"
            );
            assert!(
                !self.hogs.contains(&f.as_u64()),
                "the mapper released {f:?}, which it does not own"
            );
        }
        self.released.push((pa.as_u64(), order, zeroed));
        FrameSource::release(&mut self.alloc, pa, order, zeroed)
    }

    fn available(&self, order: u32) -> u64 {
        FrameSource::available(&self.alloc, order)
    }
}

/// One address space: a mapper, its VA window and the model of the window's pages.
struct Space {
    mapper: Mapper,
    /// VA of model page 0.
    base_va: u64,
    asid: u16,
    global: bool,
    /// Per page of the window: (output address, leaf attribute bits incl. nG).
    model: Vec<Option<(u64, u64)>>,
    /// How many entries of `model` are `Some`.
    mapped: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Pa(u64),
    Fault(FaultKind),
}

struct MmuWorld<'a, 's> {
    mmu: Mmu<Journal<'a>, 64>,
    frames: Frames<'s>,
    spaces: Vec<Space>,
    /// Index of the current process (spaces[0..nproc]); the kernel is spaces[nproc].
    current: usize,
    nproc: usize,
    kernel: bool,
    granule: Granule,
    tcr: u64,
    cpu: Cpu,
    flush_style: bool,
}

impl MmuWorld<'_, '_> {
    fn page(&self) -> u64 {
        self.granule.page_size()
    }

    fn order(&self) -> u32 {
        self.granule.page_shift() - 12
    }

    fn regs_for(&self, process: usize) -> Registers {
        Registers {
            tcr: self.tcr,
            sctlr: 1,
            ttbr0: self.spaces[process].mapper.ttbr(self.spaces[process].asid),
            ttbr1: if self.kernel {
                self.spaces[self.nproc].mapper.ttbr(0)
            } else {
                0
            },
            mair: MMU_MAIR,
        }
    }

    fn va_range(&self, s: usize) -> (u64, u64) {
        self.spaces[s].mapper.format().va_range()
    }

    fn frames_in_use(&self) -> u64 {
        (self.frames.alloc.total_frames() - self.frames.alloc.free_frames()) as u64
    }

    fn check_frames(&self) {
        let tables: u64 = self
            .spaces
            .iter()
            .map(|s| s.mapper.table_count() << self.order())
            .sum();
        assert_eq!(
            self.frames_in_use(),
            tables + self.frames.hogs.len() as u64,
            "frames in use are not the mappers' tables"
        );
    }

    /// Whether space `s` translates through the MMU's current registers.
    fn live(&self, s: usize) -> bool {
        s == self.current || s >= self.nproc
    }

    fn fail_pending(&self) -> bool {
        self.frames
            .fail_at
            .is_some_and(|n| n > self.frames.allocations)
    }

    /// The model's answer for an access to page `idx` (+ `off`) of space `s`.
    fn want(&self, s: usize, idx: u64, off: u64, access: Access) -> Want {
        let entry = usize::try_from(idx)
            .ok()
            .and_then(|i| self.spaces[s].model.get(i).copied().flatten());
        let Some((pa, attrs)) = entry else {
            return Want::Fault(FaultKind::Translation);
        };
        if attrs & AF == 0 {
            return Want::Fault(FaultKind::AccessFlag);
        }
        let mair = (MMU_MAIR >> (8 * ((attrs >> 2) & 7))) as u8;
        if mair & 0xf0 == 0 && !access.is_fetch() && !off.is_multiple_of(u64::from(access.size())) {
            return Want::Fault(FaultKind::Alignment);
        }
        let ap1 = attrs & (1 << 6) != 0;
        let ap2 = attrs & AP_RO != 0;
        let pxn = attrs & (1 << 53) != 0;
        let uxn = attrs & (1 << 54) != 0;
        let pan = access.pan() && !access.is_fetch();
        let ok = match (access.el(), access.kind()) {
            (El::El0, AccessKind::Read) => ap1,
            (El::El0, AccessKind::Write) => ap1 && !ap2,
            (El::El0, AccessKind::Fetch) => !uxn,
            (El::El1, AccessKind::Read) => !(pan && ap1),
            (El::El1, AccessKind::Write) => !(ap2 || (pan && ap1)),
            (El::El1, AccessKind::Fetch) => !(pxn || (ap1 && !ap2)),
        };
        if ok {
            Want::Pa(pa + off)
        } else {
            Want::Fault(FaultKind::Permission)
        }
    }

    /// Translates page `idx` (+ `off`) of space `s` through the TLB (when live), a fresh
    /// walk and the mapper's lookup, and compares all three with the model.
    fn probe(&mut self, s: usize, idx: u64, off: u64, access: Access) {
        let page = self.page();
        let Some(va) = idx
            .checked_mul(page)
            .and_then(|d| self.spaces[s].base_va.checked_add(d))
            .and_then(|v| v.checked_add(off))
        else {
            return;
        };
        let (lo, hi) = self.va_range(s);
        if va < lo || va > hi {
            return;
        }
        let va = VirtAddr::new(va);
        let regime = if self.live(s) {
            *self.mmu.regime()
        } else {
            Regime::new(self.regs_for(s), self.cpu)
        };
        let fresh = walk_va(&regime, self.mmu.memory_mut(), va, access).map(|t| t.pa);
        if self.live(s) {
            let got = self.mmu.translate(va, access);
            assert_eq!(
                got, fresh,
                "TLB and a fresh walk disagree at {va:?} ({access:?})"
            );
        }
        let want = self.want(s, idx, off, access);
        let got = match fresh {
            Ok(pa) => Want::Pa(pa.as_u64()),
            Err(f) => Want::Fault(f.kind),
        };
        assert_eq!(got, want, "space {s} page {idx} at {va:?} ({access:?})");
        let leaf = self.spaces[s]
            .mapper
            .lookup(self.mmu.memory(), va)
            .expect("lookup reads the tables");
        match (
            leaf,
            self.spaces[s].model.get(idx as usize).copied().flatten(),
        ) {
            (None, None) => {}
            (Some(l), Some((pa, attrs))) => {
                let size = 1u64 << l.size_log2;
                assert_eq!(l.pa.as_u64() + (va.as_u64() & (size - 1)), pa + off);
                assert_eq!(
                    l.descriptor.bits() & leaf_attr_mask(),
                    attrs,
                    "leaf attributes at {va:?}"
                );
            }
            (l, m) => panic!("lookup {l:?} but model {m:x?} at {va:?}"),
        }
    }

    fn probe_around(&mut self, s: usize, first: u64, pages: u64) {
        let span = mmu_span(self.granule);
        let mut idxs = vec![first, first + pages - 1, first + pages, span / 2];
        if first > 0 {
            idxs.push(first - 1);
        }
        for idx in idxs {
            for access in [
                Access::read(El::El1),
                Access::write(El::El1),
                Access::read(El::El0),
            ] {
                self.probe(s, idx, 16, access);
            }
        }
    }

    /// Compares every leaf of every space with the model, page by page: in the whole VA
    /// half (`whole`), or only in the model's window (cheaper, for checks between
    /// operations; a stray leaf outside the window is caught at the end).
    fn full_check(&mut self, whole: bool) {
        let page = self.page();
        for s in 0..self.spaces.len() {
            let (mut lo, mut hi) = self.va_range(s);
            let sp = &self.spaces[s];
            if !whole {
                let window = sp.model.len() as u64 * page;
                lo = lo.max(sp.base_va);
                hi = hi.min(sp.base_va.saturating_add(window - 1));
            }
            let mut seen = 0u64;
            let mut leaves = Vec::new();
            sp.mapper
                .for_each_leaf(self.mmu.memory(), VirtAddr::new(lo), hi - lo + 1, |l| {
                    leaves.push(*l);
                    true
                })
                .expect("for_each_leaf reads the tables");
            for l in leaves {
                let start = l.va.as_u64();
                assert!(start >= sp.base_va, "leaf {l:?} below the window");
                let n = (1u64 << l.size_log2) / page;
                let first = (start - sp.base_va) / page;
                for i in 0..n {
                    let idx = (first + i) as usize;
                    let m = sp.model.get(idx).copied().flatten();
                    let got = (
                        l.pa.as_u64() + i * page,
                        l.descriptor.bits() & leaf_attr_mask(),
                    );
                    assert_eq!(m, Some(got), "space {s} page {idx}: leaf {l:?}");
                    seen += 1;
                }
            }
            assert_eq!(
                seen, sp.mapped,
                "space {s}: leaves cover other pages than the model"
            );
            let mut dump = String::new();
            sp.mapper
                .ptdump(self.mmu.memory(), MMU_MAIR, &mut dump)
                .expect("ptdump into a String");
            assert!(dump.starts_with("---[ TTBR"));
        }
    }

    /// Checks the memory effects of the call just made (recorded in the journal) and
    /// clears the journal: nothing written into frames the mapper does not own; after a
    /// failure every allocated frame as before; freed frames the allocator now calls zero
    /// do read as zero.
    fn after_call(&mut self, failed: bool) {
        let log = std::mem::take(&mut self.mmu.memory_mut().log);
        let released = std::mem::take(&mut self.frames.released);
        let mut touched = BTreeSet::new();
        let mut last_frame = u64::MAX;
        for &(pa, _) in &log {
            let frame = pa & !0xfff;
            if frame == last_frame {
                continue;
            }
            last_frame = frame;
            assert!(
                !self.frames.hogs.contains(&frame),
                "the mapper wrote {pa:#x}, in a frame it does not own"
            );
            assert!(
                self.frames.alloc.contains(PhysAddr::new(pa)),
                "the mapper wrote {pa:#x}, outside RAM"
            );
            touched.insert(frame);
        }
        for (pa, order, _) in released {
            for i in 0..1u64 << order {
                touched.insert(pa + i * 4096);
            }
        }
        if failed {
            let mut first_old = std::collections::BTreeMap::new();
            for &(pa, old) in &log {
                first_old.entry(pa).or_insert(old);
            }
            for (&pa, &old) in &first_old {
                let now = self.mmu.memory().read_u64(PhysAddr::new(pa)).unwrap_or(old);
                if now != old {
                    let allocated = self.frames.alloc.is_allocated(PhysAddr::new(pa & !0xfff));
                    assert_ne!(
                        allocated,
                        Ok(true),
                        "a failed call changed {pa:#x} from {old:#x} to {now:#x}"
                    );
                }
            }
        }
        for frame in touched {
            self.check_known_zero(frame);
        }
    }

    fn frame_bytes(&self, frame: u64) -> &[u8] {
        let off = (frame - MMU_RAM_BASE) as usize;
        &self.mmu.memory().mem.bytes()[off..off + 4096]
    }

    fn check_known_zero(&self, frame: u64) {
        if self.frames.alloc.is_known_zero(PhysAddr::new(frame)) == Ok(true) {
            let bytes = self.frame_bytes(frame);
            if bytes != [0u8; 4096].as_slice() {
                let i = bytes.iter().position(|&b| b != 0).unwrap_or(0);
                panic!(
                    "free frame {frame:#x} is marked zero but byte {i:#x} is {:#x}",
                    bytes[i]
                );
            }
        }
    }

    /// Applies the invalidations of a successful change.
    fn apply(&mut self, flush: Flush) {
        self.flush_style = !self.flush_style;
        if self.flush_style {
            self.mmu.flush(flush);
        } else {
            for op in flush.ops() {
                self.mmu.tlbi(op);
            }
        }
    }

    /// The expected range check of `check_range` for a page-aligned request.
    fn range_error(&self, s: usize, va: u64, len: u64) -> Option<MapError> {
        let (lo, hi) = self.va_range(s);
        let Some(last) = va.checked_add(len - 1) else {
            return Some(MapError::OutOfRange {
                va: VirtAddr::new(va),
            });
        };
        if va < lo || va > hi {
            return Some(MapError::OutOfRange {
                va: VirtAddr::new(va),
            });
        }
        if last > hi {
            return Some(MapError::OutOfRange {
                va: VirtAddr::new(last),
            });
        }
        None
    }

    /// Frames (in tables) a map of `[va, last]` may need at most.
    fn tables_bound(&self, s: usize, va: u64, last: u64) -> u64 {
        let g = self.granule;
        let start = self.spaces[s].mapper.format().start_level().get();
        let mut n = 0;
        for l in start + 1..=3 {
            let covered = g.level_shift(Level::new(l - 1).unwrap_or(Level::L0));
            n += (last >> covered) - (va >> covered) + 1;
        }
        n
    }

    /// Whether an OutOfFrames from a change is impossible: no injected failure, enough
    /// free tables, and no fragmentation that could make the estimate wrong.
    fn frames_certain(&self, tables: u64) -> bool {
        !self.fail_pending()
            && (self.order() == 0 || !self.frames.ever_hogged)
            && FrameSource::available(&self.frames, self.order()) >= tables
    }

    fn do_map(&mut self, s: usize, idx: u64, pages: u64, pa: u64, attrs: u64) {
        let page = self.page();
        let va = self.spaces[s].base_va.wrapping_add(idx * page);
        let len = pages * page;
        let before_tables = self.spaces[s].mapper.table_count();
        let expect_err = self.range_error(s, va, len).or_else(|| {
            let oa = 48;
            match pa.checked_add(len - 1) {
                None => Some(MapError::OutputOutOfRange { pa }),
                Some(l) if l >> oa != 0 => Some(MapError::OutputOutOfRange { pa: l }),
                _ => (idx..idx + pages)
                    .find(|&q| self.spaces[s].model[q as usize].is_some())
                    .map(|q| MapError::AlreadyMapped {
                        va: VirtAddr::new(self.spaces[s].base_va + q * page),
                    }),
            }
        });
        let certain =
            expect_err.is_none() && self.frames_certain(self.tables_bound(s, va, va + (len - 1)));
        let sp = &mut self.spaces[s];
        let r = sp.mapper.map(
            self.mmu.memory_mut(),
            &mut self.frames,
            VirtAddr::new(va),
            PhysAddr::new(pa),
            len,
            Attributes::from_bits_retain(attrs),
        );
        match (&r, expect_err) {
            (Ok(flush), None) => {
                assert!(flush.is_empty(), "map returned invalidations: {flush:?}");
                for q in 0..pages {
                    sp.model[(idx + q) as usize] = Some((pa + q * page, attrs));
                }
                sp.mapped += pages;
            }
            (Err(e), Some(want)) => assert_eq!(*e, want, "map error"),
            (Err(MapError::OutOfFrames { .. }), None) => {
                assert!(!certain, "map ran out of frames with plenty free");
            }
            (r, want) => panic!("map {va:#x}+{len:#x}: got {r:?}, expected {want:?}"),
        }
        if r.is_err() {
            assert_eq!(self.spaces[s].mapper.table_count(), before_tables);
        }
        self.after_call(r.is_err());
    }

    fn do_change(&mut self, s: usize, idx: u64, pages: u64, protect: Option<(u64, u64)>) {
        let page = self.page();
        let va = self.spaces[s].base_va.wrapping_add(idx * page);
        let len = pages * page;
        let before_tables = self.spaces[s].mapper.table_count();
        let expect_err = self.range_error(s, va, len);
        let certain = expect_err.is_none() && self.frames_certain(16);
        let sp = &mut self.spaces[s];
        let r = match protect {
            None => sp.mapper.unmap(
                self.mmu.memory_mut(),
                &mut self.frames,
                VirtAddr::new(va),
                len,
            ),
            Some((set, clear)) => sp.mapper.protect(
                self.mmu.memory_mut(),
                &mut self.frames,
                VirtAddr::new(va),
                len,
                Attributes::from_bits_retain(set),
                Attributes::from_bits_retain(clear),
            ),
        };
        match (r, expect_err) {
            (Ok(flush), None) => {
                for q in idx..idx + pages {
                    let e = &mut sp.model[q as usize];
                    match protect {
                        None => {
                            if e.take().is_some() {
                                sp.mapped -= 1;
                            }
                        }
                        Some((set, clear)) => {
                            if let Some((_, a)) = e {
                                *a = (*a & !clear) | set;
                            }
                        }
                    }
                }
                self.after_call(false);
                self.apply(flush);
            }
            (Err(e), Some(want)) => {
                assert_eq!(e, want, "unmap/protect error");
                self.after_call(true);
            }
            (Err(MapError::OutOfFrames { .. }), None) => {
                assert!(!certain, "unmap/protect ran out of frames with plenty free");
                assert_eq!(self.spaces[s].mapper.table_count(), before_tables);
                self.after_call(true);
            }
            (r, want) => panic!("unmap/protect {va:#x}+{len:#x}: got {r:?}, expected {want:?}"),
        }
    }

    /// Calls with raw arguments that the documented checks must refuse, before touching
    /// anything (or a zero length, which does nothing).
    fn do_bad(&mut self, s: usize, which: u8, va: u64, len: u64, pa: u64, attrs: u64) {
        // The mapper sees the output address as a `PhysAddr`, which keeps 52 bits.
        let pa = PhysAddr::new(pa).as_u64();
        let page = self.page();
        let (lo, hi) = self.va_range(s);
        let owned = 3u64;
        let range = || -> Option<MapError> {
            if !va.is_multiple_of(page) {
                return Some(MapError::Unaligned { addr: va });
            }
            if !len.is_multiple_of(page) {
                return Some(MapError::Unaligned { addr: len });
            }
            let Some(last) = va.checked_add(len - 1) else {
                return Some(MapError::OutOfRange {
                    va: VirtAddr::new(va),
                });
            };
            if va < lo || va > hi {
                return Some(MapError::OutOfRange {
                    va: VirtAddr::new(va),
                });
            }
            (last > hi).then_some(MapError::OutOfRange {
                va: VirtAddr::new(last),
            })
        };
        let oa_attr_bits = attrs & 0x0000_ffff_ffff_f000 & !Attributes::all().bits();
        let want: Option<MapError> = match which % 3 {
            0 => {
                if len == 0 {
                    None
                } else if let Some(e) = range() {
                    Some(e)
                } else if !pa.is_multiple_of(page) {
                    Some(MapError::Unaligned { addr: pa })
                } else if let Some(e) = match pa.checked_add(len - 1) {
                    None => Some(MapError::OutputOutOfRange { pa }),
                    Some(l) if l >> 48 != 0 => Some(MapError::OutputOutOfRange { pa: l }),
                    _ => None,
                } {
                    Some(e)
                } else if attrs & owned != 0 {
                    Some(MapError::InvalidAttributes {
                        bits: attrs & owned,
                    })
                } else if CHECK_OA_ATTRIBUTE_BITS && oa_attr_bits != 0 {
                    // Only the variant is compared below.
                    Some(MapError::InvalidAttributes { bits: oa_attr_bits })
                } else {
                    return; // a valid request: not this op's business
                }
            }
            1 => {
                if len == 0 {
                    None
                } else if let Some(e) = range() {
                    Some(e)
                } else {
                    return;
                }
            }
            _ => {
                // Set and clear bits are both checked; every bit that is not a leaf
                // attribute is refused.
                let clear = attrs.rotate_left(7) & !owned;
                let refused = if CHECK_OA_ATTRIBUTE_BITS {
                    owned | !Attributes::all().bits()
                } else {
                    owned
                };
                let bad = (attrs | clear) & refused;
                if bad != 0 {
                    Some(MapError::InvalidAttributes { bits: bad })
                } else if len == 0 {
                    None
                } else if let Some(e) = range() {
                    Some(e)
                } else {
                    return;
                }
            }
        };
        let sp = &mut self.spaces[s];
        let mem = self.mmu.memory_mut();
        let r = match which % 3 {
            0 => sp.mapper.map(
                mem,
                &mut self.frames,
                VirtAddr::new(va),
                PhysAddr::new(pa),
                len,
                Attributes::from_bits_retain(attrs),
            ),
            1 => sp
                .mapper
                .unmap(mem, &mut self.frames, VirtAddr::new(va), len),
            _ => sp.mapper.protect(
                mem,
                &mut self.frames,
                VirtAddr::new(va),
                len,
                Attributes::from_bits_retain(attrs),
                Attributes::from_bits_retain(attrs.rotate_left(7) & !owned),
            ),
        };
        match (r, want) {
            (Ok(f), None) => assert!(f.is_empty(), "a zero-length call flushed {f:?}"),
            (Err(MapError::InvalidAttributes { .. }), Some(MapError::InvalidAttributes { .. }))
                if CHECK_OA_ATTRIBUTE_BITS => {}
            (Err(e), Some(w)) => assert_eq!(e, w),
            (r, w) => panic!("bad call {which}: got {r:?}, expected {w:?}"),
        }
        assert!(
            self.mmu.memory().log.is_empty(),
            "a refused call wrote memory"
        );
        self.after_call(true);
    }
}

fn leaf_attr_mask() -> u64 {
    Attributes::all().bits() & !3
}

/// Fuzz target `mmu_ops`: address spaces (up to three processes with their own ASIDs and
/// tables, and optionally a kernel half with global mappings) built by `Mapper` over a
/// `FrameAllocator`, driven by arbitrary map / unmap / protect / TLBI / context switch /
/// translate operations, with injected allocation failures and fragmentation. After each
/// operation, with its `Flush` applied, the TLB, a fresh walk and the mapper's lookup
/// agree with a page-by-page model; frames in use are exactly the tables; a failed call
/// left every allocated frame as it was; frames the allocator calls zero are zero.
///
/// Input: `setup:u8 window:u8 ram:u8`, then operations (opcode byte and arguments) until
/// the input ends.
pub fn mmu_ops(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = r.u8();
    let window = r.u8();
    let ram_sel = r.u8();
    let granule = [Granule::K4, Granule::K16, Granule::K64][usize::from(setup & 3) % 3];
    let tsz: u64 = match (granule, (setup >> 2) & 3) {
        (Granule::K4, 1) => 25,
        (Granule::K4, 2) => 39,
        (Granule::K16, 1) => 17,
        (Granule::K16, 2) => 36,
        (Granule::K64, 1) => 22,
        (Granule::K64, 2) => 33,
        _ => 16,
    };
    let nproc = usize::from((setup >> 4) & 3).clamp(1, 3);
    let kernel = setup & 0x40 != 0;
    let blocks = setup & 0x80 == 0;
    let frames_n = 64 + usize::from(ram_sel & 7) * 64;
    let ram_size = frames_n * 4096;

    let tg0 = granule.tg0();
    let tg1 = granule.tg1();
    let mut tcr = tsz | (tg0 << 14) | (tsz << 16) | (tg1 << 30) | (5 << 32) | (1 << 36);
    if !kernel {
        tcr |= 1 << 23; // EPD1
    }
    let cpu = Cpu::MAX;
    let mut ram = vec![0u8; ram_size];
    let mut storage = vec![0u64; FrameAllocator::storage_words(frames_n)];
    let alloc = FrameAllocator::new(
        PhysAddr::new(MMU_RAM_BASE),
        ram_size as u64,
        &mut storage,
        if ram_sel & 0x80 == 0 {
            Contents::Zeroed
        } else {
            Contents::Unknown
        },
    )
    .expect("frame allocator");
    if ram_sel & 0x80 != 0 {
        // Not known to be zero: fill with garbage the mapper must clear before use.
        for (i, c) in ram.chunks_exact_mut(8).enumerate() {
            c.copy_from_slice(&hog_pattern(!(i as u64)).to_le_bytes());
        }
    }
    let mem = Journal {
        mem: SliceMemory::new(PhysAddr::new(MMU_RAM_BASE), &mut ram),
        log: Vec::new(),
    };
    let regs0 = Registers {
        tcr,
        sctlr: 1,
        ttbr0: 0,
        ttbr1: 0,
        mair: MMU_MAIR,
    };
    let mut mmu: Mmu<Journal<'_>, 64> = Mmu::new(regs0, cpu, mem);
    let mut frames = Frames {
        alloc,
        fail_at: None,
        allocations: 0,
        hogs: BTreeSet::new(),
        ever_hogged: false,
        released: Vec::new(),
    };
    let page = granule.page_size();
    let span = mmu_span(granule);
    let block_pages = 1u64 << (granule.level_shift(Level::L2) - granule.page_shift());
    let model_pages = span + MMU_MAX_PAGES.max(2 * block_pages);
    let mut spaces = Vec::new();
    for i in 0..nproc + usize::from(kernel) {
        let upper = i == nproc;
        let format = TableFormat::from_regime(
            mmu.regime(),
            if upper {
                VaRange::Upper
            } else {
                VaRange::Lower
            },
        );
        let mut mapper = match Mapper::new(format, mmu.memory_mut(), &mut frames) {
            Ok(m) => m,
            Err(e) => panic!("Mapper::new with free RAM: {e:?}"),
        };
        mapper.set_block_mappings(blocks);
        let asid = if upper {
            0
        } else {
            MMU_ASIDS[i % MMU_ASIDS.len()]
        };
        mapper.set_asid(asid);
        let (lo, hi) = format.va_range();
        let sel = (window >> (2 * (i % 4))) & 3;
        let base_va = match sel {
            1 => (hi - span * page) + 1,
            2 => lo + ((hi - lo) / 2 + 1),
            3 => lo + 0x40_0000_0000u64.min((hi - lo) / 4) / page * page,
            _ => lo,
        };
        spaces.push(Space {
            mapper,
            base_va,
            asid,
            global: upper,
            model: vec![None; model_pages as usize],
            mapped: 0,
        });
    }
    mmu.memory_mut().log.clear();
    frames.released.clear();
    let mut w = MmuWorld {
        mmu,
        frames,
        spaces,
        current: 0,
        nproc,
        kernel,
        granule,
        tcr,
        cpu,
        flush_style: false,
    };
    let regs = w.regs_for(0);
    w.mmu.set_registers(regs);
    w.check_frames();
    let nspaces = w.spaces.len();

    let mut ops = 0;
    while !r.is_empty() && ops < MMU_MAX_OPS {
        ops += 1;
        let op = r.u8();
        match op % 12 {
            0 | 1 => {
                let sel = r.u8();
                let s = usize::from(sel) % nspaces;
                let mut idx = u64::from(r.u16()) % span;
                let mut pages = u64::from(r.u16()) % MMU_MAX_PAGES + 1;
                let mut pa_page = u64::from(r.u16());
                let attr_bits = r.u16();
                if sel & 0x80 != 0 {
                    idx = idx / block_pages * block_pages;
                    pages = (pages / block_pages % 2 + 1) * block_pages;
                    pa_page = pa_page / block_pages * block_pages;
                }
                let pa = if sel & 0x40 != 0 {
                    (1u64 << 48) - (pa_page % 64 + 1) * page
                } else {
                    MMU_PA_BASE + pa_page * page
                };
                let mut attrs = model_attrs(attr_bits) ^ AF;
                if !w.spaces[s].global {
                    attrs |= 1 << 11;
                }
                w.do_map(s, idx, pages, pa, attrs);
                w.probe_around(s, idx, pages);
            }
            2 | 3 => {
                let sel = r.u8();
                let s = usize::from(sel) % nspaces;
                let mut idx = u64::from(r.u16()) % span;
                let mut pages = u64::from(r.u16()) % MMU_MAX_PAGES + 1;
                if sel & 0x80 != 0 {
                    // Around a block boundary.
                    idx = (idx / block_pages * block_pages + block_pages)
                        .saturating_sub(u64::from(sel & 7))
                        .min(span - 1);
                    pages = pages.min(16);
                }
                let protect = if op % 12 == 3 {
                    Some((model_attrs(r.u16()), model_attrs(r.u16())))
                } else {
                    None
                };
                w.do_change(s, idx, pages, protect);
                w.probe_around(s, idx, pages);
            }
            4 => {
                let p = usize::from(r.u8()) % nproc;
                w.current = p;
                let regs = w.regs_for(p);
                w.mmu.set_registers(regs);
            }
            5 | 6 => {
                let sel = r.u8();
                let s = if sel & 1 == 1 && kernel {
                    nproc
                } else {
                    w.current
                };
                let idx = u64::from(r.u16()) % (span + 16);
                let off = u64::from(r.u16()) % page;
                let b = r.u8();
                let kind = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch]
                    [usize::from(b & 3) % 3];
                let el = if b & 4 != 0 { El::El0 } else { El::El1 };
                let access = Access::new(kind, el)
                    .with_pan(b & 8 != 0)
                    .with_size(WALK_SIZES[usize::from(b >> 4) & 7]);
                w.probe(s, idx, off, access);
            }
            7 => {
                let kind = r.u8();
                let idx = u64::from(r.u16()) % span;
                let asid_sel = r.u8();
                let len = u64::from(r.u16());
                let xt = r.u64();
                let s = usize::from(asid_sel) % nspaces;
                let va = VirtAddr::new(w.spaces[s].base_va.wrapping_add(idx * page));
                let asid = if asid_sel & 0x80 != 0 {
                    u16::from(asid_sel)
                } else {
                    w.spaces[s].asid
                };
                let op = match kind % 10 {
                    0 => Tlbi::Vae1 { asid, va },
                    1 => Tlbi::Vale1 { asid, va },
                    2 => Tlbi::Vaae1 { va },
                    3 => Tlbi::Vaale1 { va },
                    4 => Tlbi::Aside1 { asid },
                    5 => Tlbi::Vmalle1,
                    6 => Tlbi::Rvae1 { asid, va, len },
                    7 => Tlbi::Rvaae1 { va, len },
                    _ => {
                        let names = [
                            "VAE1",
                            "VALE1IS",
                            "VAAE1",
                            "VAALE1OS",
                            "ASIDE1",
                            "VMALLE1IS",
                            "RVAE1",
                            "RVALE1",
                            "RVAAE1IS",
                            "RVAALE1",
                            "ALLE2",
                            "",
                        ];
                        match Tlbi::from_operand(names[usize::from(kind >> 4) % names.len()], xt) {
                            Ok(op) => op,
                            Err(_) => continue,
                        }
                    }
                };
                // Invalidating more than needed never breaks coherence.
                w.mmu.tlbi(op);
                let s = w.current;
                w.probe_around(s, idx, 1);
            }
            8 => {
                let nth = u64::from(r.u8() % 4) + 1;
                w.frames.fail_at = Some(w.frames.allocations + nth);
            }
            9 => {
                let b = r.u8();
                let n = usize::from(b & 15) + 1;
                if b & 0x80 != 0 {
                    let victims: Vec<u64> = if b & 0x40 != 0 {
                        w.frames.hogs.iter().rev().take(n).copied().collect()
                    } else {
                        w.frames.hogs.iter().step_by(2).take(n).copied().collect()
                    };
                    for f in victims {
                        w.frames.hogs.remove(&f);
                        w.frames
                            .alloc
                            .free(PhysAddr::new(f))
                            .expect("free a hog frame");
                    }
                } else {
                    for _ in 0..n {
                        let Ok(f) = w.frames.alloc.alloc() else { break };
                        let f = f.as_u64();
                        w.frames.hogs.insert(f);
                        w.frames.ever_hogged = true;
                        for off in (0..4096).step_by(8) {
                            let pa = PhysAddr::new(f + off);
                            w.mmu
                                .memory_mut()
                                .mem
                                .write_u64(pa, hog_pattern(f + off))
                                .expect("hog frame in RAM");
                        }
                    }
                }
            }
            10 => {
                let b = r.u8();
                let s = usize::from(b) % nspaces;
                w.spaces[s].mapper.set_block_mappings(b & 0x80 == 0);
            }
            _ => {
                let b = r.u8();
                if b & 0x80 != 0 {
                    w.full_check(false);
                } else {
                    let s = usize::from(b & 3) % nspaces;
                    let (va, len, pa, attrs) = (r.u64(), r.u64(), r.u64(), r.u64());
                    w.do_bad(s, b >> 2, va, len, pa, attrs);
                }
            }
        }
        w.check_frames();
    }

    // The end: everything agrees, then unmapping everything frees every table but the
    // roots, and memory holds no trace of the frames the allocator calls zero.
    w.full_check(true);
    for s in 0..nspaces {
        let (lo, hi) = w.va_range(s);
        let sp = &mut w.spaces[s];
        match sp.mapper.unmap(
            w.mmu.memory_mut(),
            &mut w.frames,
            VirtAddr::new(lo),
            hi - lo + 1,
        ) {
            Ok(flush) => {
                sp.model.iter_mut().for_each(|e| *e = None);
                sp.mapped = 0;
                w.after_call(false);
                w.apply(flush);
            }
            Err(e) => panic!("unmapping a whole half failed: {e:?}"),
        }
        assert_eq!(
            w.spaces[s].mapper.table_count(),
            1,
            "tables left after unmap-all"
        );
    }
    w.check_frames();
    for s in 0..nspaces {
        let (lo, hi) = w.va_range(s);
        let mut left = 0;
        w.spaces[s]
            .mapper
            .for_each_leaf(w.mmu.memory(), VirtAddr::new(lo), hi - lo + 1, |_| {
                left += 1;
                true
            })
            .expect("for_each_leaf reads the tables");
        assert_eq!(left, 0, "leaves left after unmapping a whole half");
    }
    for s in 0..nspaces {
        for idx in [0, span / 3, span - 1] {
            w.probe(s, idx, 0, Access::read(El::El1));
        }
    }
    let hogs: Vec<u64> = w.frames.hogs.iter().copied().collect();
    for f in hogs {
        let intact = w
            .frame_bytes(f)
            .chunks_exact(8)
            .zip((0..4096).step_by(8))
            .all(|(c, off)| c == hog_pattern(f + off).to_le_bytes());
        assert!(intact, "hog frame {f:#x} was written");
    }
    for i in 0..frames_n as u64 {
        w.check_known_zero(MMU_RAM_BASE + i * 4096);
    }
}

fn hog_pattern(pa: u64) -> u64 {
    pa.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

// ===== maps_parse =======================================================================

const MAPS_SLOTS: [usize; 8] = [0, 1, 2, 4, 8, 16, 64, 256];

fn decode_maps_format(b: u8) -> MapsFormat {
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
fn split_after_lines(text: &str, n: usize) -> (&str, &str) {
    if n == 0 {
        return ("", text);
    }
    match text.match_indices('\n').nth(n - 1) {
        Some((i, _)) => text.split_at(i + 1),
        None => (text, ""),
    }
}

fn render_maps_string(vmas: &[Vma], fmt: &MapsFormat) -> String {
    let mut s = String::new();
    render_maps(&mut s, vmas, fmt).expect("render into a String");
    s
}

fn render_smaps_string(entries: &[SmapsEntry], fmt: &MapsFormat) -> String {
    let mut s = String::new();
    render_smaps(&mut s, entries.iter().map(|e| (&e.vma, e.counters)), fmt)
        .expect("render into a String");
    s
}

/// What an import must return, from the parser's stream (items numbered with the line the
/// import names for them) and the VMAs already in the tree: the first malformed item,
/// overlap with the tree, or item past the free slots, in line order; `[vsyscall]` is
/// skipped.
fn predict_import(
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

fn check_stream_shape<T>(items: &[Result<T, ParseError>], lines: usize) {
    if let Some(i) = items.iter().position(|r| r.is_err()) {
        assert_eq!(i + 1, items.len(), "the parser went on after an error");
    }
    for e in items.iter().filter_map(|r| r.as_ref().err()) {
        assert!(e.line >= 1 && e.line <= lines + 1, "error line {}", e.line);
        let _ = e.to_string();
    }
}

fn merged(before: &[Vma], new: &[Vma]) -> Vec<Vma> {
    let mut all: Vec<Vma> = before.iter().chain(new).copied().collect();
    all.sort_by_key(|v| v.vm_start);
    all
}

fn tree_vmas(tree: &VmaTree<'_>) -> Vec<Vma> {
    tree.validate().expect("VMA tree invariants");
    let v: Vec<Vma> = tree.iter().copied().collect();
    assert_eq!(v.len(), tree.len());
    v
}

fn canon_hex(s: &str, width: usize) -> bool {
    s.len() >= width
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (s.len() == width || !s.starts_with('0'))
}

/// Whether `line` is exactly as the kernel prints a maps line: lowercase hex padded to 8
/// (2 for the device), no extra leading zeros, single spaces, the name padded to column
/// 73 (or one space after a longer header), one trailing space on unnamed lines.
fn canonical_maps_line(line: &str) -> bool {
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

fn canonical_maps(text: &str) -> bool {
    match text.strip_suffix('\n') {
        Some(body) => body.split('\n').all(canonical_maps_line),
        None => text.is_empty(),
    }
}

fn maps_import_checked(text: &str, fmt: &MapsFormat, tree: &mut VmaTree<'_>) {
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

fn smaps_import_checked(text: &str, fmt: &MapsFormat, tree: &mut VmaTree<'_>) {
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

// ===== mm_ops ===========================================================================

use pagesim::arch::AccessKind as Kind;
use pagesim::linux::mm::vmflags::VmFlags;
use pagesim::linux::mm::{mman, ImportHints, LayoutParams, ThpMode};
use pagesim::linux::paging::Touch;
use pagesim::linux::storage::{ProcessStorage, SimProcess, Start};

/// Physical memory choices (MiB), by 2 bits of the config byte; 16K-page layouts get
/// 64 MiB more for their 32 MiB huge zero page (a naturally aligned run, which the root
/// table allocated before it must not break up).
const MM_RAM_MIB: [u64; 4] = [16, 24, 32, 64];
/// `vm.max_map_count` unless the knobs ask for a small one: the tree's slots are
/// allocated (and initialised) per input, so 65530 would cost more than the run.
const MM_MAX_MAP_COUNT: usize = 1000;
/// Operations per input, at most.
const MM_MAX_OPS: usize = 64;
/// A populating call (MAP_POPULATE, MADV_POPULATE_*, MADV_WILLNEED) longer than this
/// loses its populate part: the simulator faults page by page, and 2^40 bytes of
/// PROT_NONE mapping would take minutes without finding anything new.
const MM_POPULATE_MAX: u64 = 64 << 20;

/// Every advice value the model names, then a few it must refuse.
const MM_ADVICE: [mman::Advice; 28] = [
    mman::MADV_NORMAL,
    mman::MADV_RANDOM,
    mman::MADV_SEQUENTIAL,
    mman::MADV_WILLNEED,
    mman::MADV_DONTNEED,
    mman::MADV_FREE,
    mman::MADV_REMOVE,
    mman::MADV_DONTFORK,
    mman::MADV_DOFORK,
    mman::MADV_MERGEABLE,
    mman::MADV_UNMERGEABLE,
    mman::MADV_HUGEPAGE,
    mman::MADV_NOHUGEPAGE,
    mman::MADV_DONTDUMP,
    mman::MADV_DODUMP,
    mman::MADV_WIPEONFORK,
    mman::MADV_KEEPONFORK,
    mman::MADV_COLD,
    mman::MADV_PAGEOUT,
    mman::MADV_POPULATE_READ,
    mman::MADV_POPULATE_WRITE,
    mman::MADV_DONTNEED_LOCKED,
    mman::MADV_COLLAPSE,
    mman::MADV_HWPOISON,
    mman::MADV_SOFT_OFFLINE,
    mman::MADV_GUARD_INSTALL,
    mman::MADV_GUARD_REMOVE,
    mman::MADV_NOHUGEPAGE,
];
const MM_BAD_ADVICE: [mman::Advice; 7] = [-1, 5, 7, 26, 99, i32::MAX, i32::MIN];
/// PROT bits besides rwx: valid only on some machines, or never.
const MM_PROT_EXTRA: [u32; 7] = [
    mman::PROT_SEM,
    mman::PROT_BTI,
    mman::PROT_MTE,
    mman::PROT_GROWSDOWN,
    mman::PROT_GROWSUP,
    mman::PROT_GROWSDOWN | mman::PROT_GROWSUP,
    0x40,
];
/// MAP bits the model ignores or refuses.
const MM_MAP_EXTRA: [u32; 8] = [
    mman::MAP_32BIT,
    mman::MAP_DENYWRITE,
    mman::MAP_EXECUTABLE,
    mman::MAP_LOCKED,
    mman::MAP_NONBLOCK,
    mman::MAP_HUGETLB,
    mman::MAP_SYNC,
    mman::MAP_UNINITIALIZED,
];

fn is_populate_advice(a: mman::Advice) -> bool {
    matches!(
        a,
        mman::MADV_POPULATE_READ | mman::MADV_POPULATE_WRITE | mman::MADV_WILLNEED
    )
}

/// The layout chosen by a config byte (bits 0–1 preset, 2–3 RAM, 4–5 THP) and a knobs
/// byte; returns it with the RAM size.
fn mm_layout(cfg: u8, knobs: u8, small_map_count: u8) -> (LayoutParams, u64) {
    let mut params = match cfg & 3 {
        0 => LayoutParams::arm64_6_1(),
        1 => LayoutParams::arm64_6_12(),
        2 => LayoutParams::arm64_6_12_16k(),
        _ => LayoutParams::x86_64_6_18(),
    };
    let mut ram = MM_RAM_MIB[usize::from(cfg >> 2) & 3] << 20;
    if params.page_shift == 14 {
        ram += 64 << 20;
    }
    params.thp = match (cfg >> 4) & 3 {
        0 => params.thp,
        1 => ThpMode::Never,
        2 => ThpMode::Madvise,
        _ => ThpMode::Always,
    };
    // arm64 6.12 with a 48-bit VA instead of LPA2's 52.
    if cfg & 0x40 != 0 && params.task_size == 1 << 52 {
        params.task_size = params.default_map_window;
    }
    params.max_map_count = if knobs & 1 != 0 {
        usize::from(small_map_count & 31) + 4
    } else {
        MM_MAX_MAP_COUNT
    };
    params.legacy_va_layout = knobs & 2 != 0;
    params.overcommit_never = knobs & 4 != 0;
    params.cap_sys_rawio ^= knobs & 8 != 0;
    params.cpu_mte = knobs & 0x10 != 0;
    params.rlimit_stack = match (knobs >> 5) & 3 {
        0 => params.rlimit_stack,
        1 => 128 << 10,
        2 => mman::RLIM_INFINITY,
        _ => 1 << 30,
    };
    (params, ram)
}

/// Sorted disjoint `[start, end)` ranges.
type Ranges = Vec<(u64, u64)>;

/// What maps shows as mapped: each VMA's range, perms and name, adjacent equal ones
/// joined (the kernel may keep a split it made before failing a call, so failed calls
/// are compared on this, as in tests/process_props.rs).
fn mm_coverage(vmas: &[Vma]) -> Vec<(u64, u64, VmFlags, VmaKind)> {
    let mut out: Vec<(u64, u64, VmFlags, VmaKind)> = Vec::new();
    for v in vmas {
        match out.last_mut() {
            Some(l) if l.1 == v.vm_start && l.2 == v.vm_flags && l.3 == v.kind => l.1 = v.vm_end,
            _ => out.push((v.vm_start, v.vm_end, v.vm_flags, v.kind)),
        }
    }
    out
}

/// What is mapped at all, whatever the perms and names.
fn mm_ranges(vmas: &[Vma]) -> Ranges {
    let mut out: Ranges = Vec::new();
    for v in vmas {
        match out.last_mut() {
            Some(l) if l.1 == v.vm_start => l.1 = v.vm_end,
            _ => out.push((v.vm_start, v.vm_end)),
        }
    }
    out
}

fn ranges_normalize(mut v: Ranges) -> Ranges {
    v.retain(|r| r.0 < r.1);
    v.sort_unstable();
    let mut out: Ranges = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(l) if l.1 >= s => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn ranges_add(r: &Ranges, s: u64, e: u64) -> Ranges {
    let mut v = r.clone();
    v.push((s, e));
    ranges_normalize(v)
}

fn ranges_sub(r: &Ranges, s: u64, e: u64) -> Ranges {
    let mut out = Vec::new();
    for &(a, b) in r {
        if b <= s || a >= e {
            out.push((a, b));
            continue;
        }
        if a < s {
            out.push((a, s));
        }
        if b > e {
            out.push((e, b));
        }
    }
    out
}

/// Parses maps text (as the importer does, into a tree of its own) and checks it against
/// the space: the same VMAs with the perms, names and offsets maps shows, and rendering
/// the parsed VMAs gives the text back byte for byte. Returns the parsed VMAs without
/// `[vsyscall]`.
fn mm_check_maps(p: &SimProcess<'_>, params: &LayoutParams) -> Vec<Vma> {
    let fmt = &params.maps;
    let text = p.maps_string();
    let all: Vec<Vma> = MapsParser::new(&text, fmt)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the process's maps do not parse: {e}\n{text}"));
    assert_eq!(
        render_maps_string(&all, fmt),
        text,
        "maps text does not render back from its parse"
    );
    let space: Vec<Vma> = p.space().iter().map(|v| p.space().display_vma(v)).collect();
    let mut slots = vec![VmaSlot::EMPTY; space.len() + 2];
    let mut tree = VmaTree::new(&mut slots);
    let n = import_maps(&text, fmt, &mut tree)
        .unwrap_or_else(|e| panic!("the process's maps do not import: {e}\n{text}"));
    let parsed = tree_vmas(&tree);
    assert_eq!(n, parsed.len());
    assert_eq!(
        parsed.len(),
        space.len(),
        "maps shows another VMA count\n{text}"
    );
    let shown = VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC | VmFlags::VM_MAYSHARE;
    for (a, b) in parsed.iter().zip(&space) {
        assert_eq!(
            (a.vm_start, a.vm_end, a.vm_flags, &a.kind),
            (b.vm_start, b.vm_end, b.vm_flags & shown, &b.kind),
            "maps line differs from the VMA\n{text}"
        );
        if matches!(a.kind, VmaKind::File { .. }) {
            assert_eq!(a.vm_pgoff, b.vm_pgoff, "file offset in maps");
        }
    }
    parsed
}

/// The smaps text parses, renders back byte for byte, lists the VMAs maps lists, and its
/// Rss is what the page tables hold.
fn mm_check_smaps(p: &SimProcess<'_>, params: &LayoutParams, maps: &[Vma]) {
    let fmt = &params.maps;
    let text = p.smaps_string().expect("the tables are readable");
    let entries: Vec<SmapsEntry> = SmapsParser::new(&text, fmt)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the process's smaps do not parse: {e}\n{text}"));
    assert_eq!(
        render_smaps_string(&entries, fmt),
        text,
        "smaps text does not render back from its parse"
    );
    let vmas: Vec<&SmapsEntry> = entries
        .iter()
        .filter(|e| e.vma.kind != VmaKind::Vsyscall)
        .collect();
    assert_eq!(vmas.len(), maps.len(), "smaps and maps list other VMAs");
    for (e, m) in vmas.iter().zip(maps) {
        assert_eq!((e.vma.vm_start, e.vma.vm_end), (m.vm_start, m.vm_end));
        let rss = p.paging().residency(m.vm_start, m.vm_end).unwrap().rss;
        assert_eq!(e.counters.rss, rss >> 10, "smaps Rss of {:#x}", m.vm_start);
    }
}

/// The invariants of a simulated process after any call: VMAs sorted, disjoint, aligned
/// and below TASK_SIZE; every valid leaf inside a VMA that allows what the leaf grants;
/// frames in use = page-table frames + resident private pages + the zero page + the huge
/// zero page (in 4 KiB frames); maps renders, parses and imports back to the VMAs.
/// Returns the parsed maps VMAs.
fn mm_check(p: &SimProcess<'_>, params: &LayoutParams) -> Vec<Vma> {
    let page = params.page_size();
    let mut prev_end = 0;
    for v in p.space().iter() {
        assert!(
            v.vm_start < v.vm_end
                && v.vm_start >= prev_end
                && v.vm_start % page == 0
                && v.vm_end % page == 0,
            "VMA {:#x}-{:#x} after {prev_end:#x}",
            v.vm_start,
            v.vm_end
        );
        prev_end = v.vm_end;
    }
    assert!(prev_end <= params.task_size, "a VMA ends above TASK_SIZE");

    let paging = p.paging();
    let mem = paging.mmu().memory();
    let mut bad = None;
    let mut blocks = 0u64;
    let walked = paging
        .mapper()
        .for_each_leaf(mem, VirtAddr::new(0), u64::MAX, |l| {
            let start = l.va.as_u64();
            let end = start + (1u64 << l.size_log2);
            if l.size_log2 > params.page_shift {
                blocks += 1;
            }
            let d = l.descriptor.bits();
            let vma = p.space().vma_lookup(start).copied();
            let ok = match vma {
                Some(v) if v.vm_end >= end => {
                    let f = v.vm_flags;
                    let writable =
                        d & Attributes::AP_RO.bits() == 0 || d & Attributes::DBM.bits() != 0;
                    let el0 = d & Attributes::AP_EL0.bits() != 0;
                    let exec = d & Attributes::UXN.bits() == 0;
                    (!writable || f.contains(VmFlags::VM_WRITE))
                        && (!el0
                            || f.intersects(
                                VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC,
                            ))
                        && (!exec || f.contains(VmFlags::VM_EXEC))
                }
                _ => false,
            };
            if !ok && bad.is_none() {
                bad = Some((start, d, vma.map(|v| (v.vm_start, v.vm_end, v.vm_flags))));
            }
            true
        });
    assert!(walked.is_ok(), "the tables do not walk: {walked:?}");
    assert!(bad.is_none(), "leaf outside a compatible VMA: {bad:x?}");
    assert_eq!(
        blocks,
        paging.deposited_tables(),
        "one deposited table per block mapped"
    );
    assert!(
        paging.frames().free_frames() as u64 >= paging.deposited_tables(),
        "the deposited tables are not free"
    );

    let rss: u64 = p
        .space()
        .iter()
        .map(|v| paging.residency(v.vm_start, v.vm_end).unwrap().rss)
        .sum();
    let frames = paging.frames();
    let used = (frames.total_frames() - frames.free_frames()) as u64;
    let tables = paging.mapper().table_count() << (params.page_shift - 12);
    let pmd = paging.config().granule.page_size() / 8 * paging.config().granule.page_size();
    assert_eq!(
        used,
        tables + (rss >> 12) + (page >> 12) + (pmd >> 12),
        "frames in use = tables + resident pages + zero pages"
    );
    mm_check_maps(p, params)
}

/// Reads an address operand: mostly an earlier mmap result (or a VMA the process started
/// with; index 0 is the latest) plus a page offset, sometimes a raw or edge value.
fn mm_addr(r: &mut Reader<'_>, slots: &[u64], params: &LayoutParams, brk: u64) -> u64 {
    let page = params.page_size();
    let m = r.u8();
    let base = if slots.is_empty() {
        0x1000_0000
    } else {
        slots[slots.len() - 1 - usize::from(m >> 3) % slots.len()]
    };
    match m & 7 {
        0..=4 => base.wrapping_add_signed(i64::from(r.u8() as i8) * page as i64),
        5 => r.u64(),
        6 => {
            let edges = [
                0,
                1,
                page - 1,
                page,
                u64::MAX,
                u64::MAX - page + 1,
                1 << 63,
                params.task_size - page,
                params.task_size,
                params.default_map_window - page,
                params.default_map_window,
                params.mmap_min_addr,
                params.mmap_min_addr - page,
                brk,
                0x00ff_ffff_ffff_f000,
                0x0100_0000_1000_0000,
            ];
            edges[usize::from(r.u8()) % edges.len()]
        }
        _ => base.wrapping_add(u64::from(r.u16())),
    }
}

/// Reads a length: mostly a few pages, sometimes PMD multiples, raw or edge values.
fn mm_len(r: &mut Reader<'_>, params: &LayoutParams) -> u64 {
    let page = params.page_size();
    let l = r.u8();
    let n = u64::from(l & 63) + 1;
    match l >> 6 {
        0 => n * page,
        1 => n * 16 * page,
        2 => {
            let adj = [0, page, 0u64.wrapping_sub(page), 1][usize::from(l >> 2) & 3];
            (u64::from(l & 3) + 1)
                .wrapping_mul(params.pmd_size)
                .wrapping_add(adj)
        }
        _ => match l & 7 {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::MAX - page + 1,
            4 => 1 << 47,
            5 => params.task_size,
            6 => page + 1,
            _ => r.u64(),
        },
    }
}

fn mm_prot(r: &mut Reader<'_>) -> u32 {
    let b = r.u8();
    let mut prot = u32::from(b & 7);
    if b & 0x80 != 0 {
        let i = usize::from(b >> 3) & 7;
        prot |= MM_PROT_EXTRA
            .get(i)
            .copied()
            .unwrap_or_else(|| 1 << (r.u8() & 31));
    }
    prot
}

fn mm_advice(r: &mut Reader<'_>) -> mman::Advice {
    let b = r.u8();
    if b < 0xe0 {
        MM_ADVICE[usize::from(b) % MM_ADVICE.len()]
    } else if b < 0xf8 {
        MM_BAD_ADVICE[usize::from(b) % MM_BAD_ADVICE.len()]
    } else {
        i32::from(r.u8() as i8)
    }
}

/// Decodes mmap's flags and whether the address is a hint (else NULL).
fn mm_map_flags(r: &mut Reader<'_>) -> (u32, bool) {
    let f = r.u8();
    let mut flags = match f & 7 {
        0..=3 => mman::MAP_PRIVATE,
        4 | 5 => mman::MAP_SHARED,
        6 => mman::MAP_SHARED_VALIDATE,
        _ => [0, mman::MAP_DROPPABLE, mman::MAP_TYPE, 0x4][usize::from(f >> 6)],
    };
    if f & 8 == 0 {
        flags |= mman::MAP_ANONYMOUS;
    }
    let hinted = match (f >> 4) & 3 {
        0 => false,
        1 => true,
        2 => {
            flags |= mman::MAP_FIXED;
            true
        }
        _ => {
            flags |= mman::MAP_FIXED_NOREPLACE;
            true
        }
    };
    if f & 0x40 != 0 {
        flags |= mman::MAP_POPULATE;
    }
    if f & 0x80 != 0 {
        let g = r.u8();
        for (bit, flag) in [
            (1, mman::MAP_NORESERVE),
            (2, mman::MAP_STACK),
            (4, mman::MAP_GROWSDOWN),
            (8, mman::MAP_FIXED),
            (0x10, mman::MAP_FIXED_NOREPLACE),
        ] {
            if g & bit != 0 {
                flags |= flag;
            }
        }
        if g & 0x20 != 0 {
            flags |= MM_MAP_EXTRA[usize::from(g >> 6) * 2 % MM_MAP_EXTRA.len()];
        }
        if g & 0x80 != 0 {
            flags |= 1 << (r.u8() & 31);
        }
    }
    (flags, hinted)
}

/// Page-aligned `[start, end)` of a call's range, if it does not overflow.
fn mm_span(addr: u64, len: u64, page: u64) -> Option<(u64, u64)> {
    let end = addr.checked_add(len)?.checked_add(page - 1)? & !(page - 1);
    Some((addr & !(page - 1), end))
}

/// Fuzz target `mm_ops`: a simulated process (VMAs + demand paging on the MMU, as
/// `pagesim run` builds it) driven by up to 64 Linux calls and touches with arbitrary
/// arguments: mmap (NULL, hint, MAP_FIXED, MAP_FIXED_NOREPLACE; private, shared;
/// populate, noreserve, stack, growsdown, garbage bits), munmap, mprotect, madvise (every
/// advice and garbage), brk, reads/writes/execs of page ranges, maps and smaps. After
/// each call the process invariants hold (see [`mm_check`]), a call that returned an
/// errno mapped and unmapped nothing, mprotect and madvise never change what is mapped,
/// a successful mmap maps exactly its range (at the address for MAP_FIXED*), a
/// successful munmap unmaps exactly its range, and a completed access lies inside a VMA
/// that allows it.
///
/// Input: `cfg:u8 knobs:u8 map_count:u8`, then operations: an opcode byte (mod 8) and
/// its arguments, as decoded below (`make_seeds.py` has encoders).
pub fn mm_ops(data: &[u8]) {
    let mut r = Reader::new(data);
    let (cfg, knobs, small) = (r.u8(), r.u8(), r.u8());
    let (params, ram) = mm_layout(cfg, knobs, small);
    let page = params.page_size();
    let mut storage = ProcessStorage::new(&params, ram);
    let mut p = match storage.build(params, Start::Fresh, ImportHints::default()) {
        Ok(p) => p,
        // A fresh process has more VMAs than the smallest max_map_counts allow.
        Err(_) if knobs & 1 != 0 => return,
        Err(e) => panic!("no fresh process: {e}"),
    };
    let mut slots: Vec<u64> = p.space().iter().map(|v| v.vm_start).collect();
    let mut maps = mm_check(&p, &params);
    let mut ops = 0;
    // Set to see each operation's state when studying a reproducer.
    let trace = std::env::var_os("PAGESIM_FUZZ_TRACE").is_some();
    while !r.is_empty() && ops < MM_MAX_OPS {
        ops += 1;
        let brk = p.brk(0).expect("brk(0) changes no table");
        let before = maps.clone();
        let op = r.u8() % 8;
        if trace {
            eprintln!(
                "op {op}, {} bytes left, maps before:\n{}",
                r.data.len(),
                p.maps_string()
            );
        }
        match op {
            0 => {
                let (mut flags, hinted) = mm_map_flags(&mut r);
                let addr = if hinted {
                    mm_addr(&mut r, &slots, &params, brk)
                } else {
                    0
                };
                let len = mm_len(&mut r, &params);
                let prot = mm_prot(&mut r);
                if len > MM_POPULATE_MAX {
                    flags &= !mman::MAP_POPULATE;
                }
                let res = p.mmap(addr, len, prot, flags);
                if trace {
                    eprintln!("mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}) = {res:x?}");
                }
                maps = mm_check(&p, &params);
                match res {
                    Err(e) => assert_eq!(
                        mm_coverage(&maps),
                        mm_coverage(&before),
                        "mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}) = {e:?} changed the map"
                    ),
                    Ok(a) => {
                        let (s, e) = mm_span(a, len, page).expect("a mapping that wraps");
                        assert!(
                            a % page == 0 && e <= params.task_size && s < e,
                            "mmap returned {a:#x} for {len:#x}"
                        );
                        if flags & (mman::MAP_FIXED | mman::MAP_FIXED_NOREPLACE) != 0 {
                            assert_eq!(a, addr, "MAP_FIXED* mapped elsewhere");
                        }
                        assert_eq!(
                            mm_ranges(&maps),
                            ranges_add(&mm_ranges(&before), s, e),
                            "mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}) = {a:#x} mapped another range"
                        );
                        slots.push(a);
                    }
                }
            }
            1 => {
                let addr = mm_addr(&mut r, &slots, &params, brk);
                let len = mm_len(&mut r, &params);
                let res = p.munmap(addr, len);
                if trace {
                    eprintln!("munmap({addr:#x}, {len:#x}) = {res:?}");
                }
                maps = mm_check(&p, &params);
                match res {
                    Err(e) => assert_eq!(
                        mm_coverage(&maps),
                        mm_coverage(&before),
                        "munmap({addr:#x}, {len:#x}) = {e:?} changed the map"
                    ),
                    Ok(()) => {
                        let (s, e) = mm_span(addr, len, page).expect("munmap of a wrapping range");
                        assert_eq!(
                            mm_ranges(&maps),
                            ranges_sub(&mm_ranges(&before), s, e),
                            "munmap({addr:#x}, {len:#x}) unmapped another range"
                        );
                    }
                }
            }
            2 | 3 => {
                let mprotect = op == 2;
                let addr = mm_addr(&mut r, &slots, &params, brk);
                let len = mm_len(&mut r, &params);
                let arg = if mprotect {
                    mm_prot(&mut r) as i32
                } else {
                    let advice = mm_advice(&mut r);
                    if is_populate_advice(advice) && len > MM_POPULATE_MAX {
                        mman::MADV_NORMAL
                    } else {
                        advice
                    }
                };
                let res = if mprotect {
                    p.mprotect(addr, len, arg as u32)
                } else {
                    p.madvise(addr, len, arg)
                };
                if trace {
                    let name = if mprotect { "mprotect" } else { "madvise" };
                    eprintln!("{name}({addr:#x}, {len:#x}, {arg:#x}) = {res:?}");
                }
                maps = mm_check(&p, &params);
                // Either may fail half-way (ENOMEM at a hole) as the kernel's do, but
                // neither maps nor unmaps anything.
                assert_eq!(
                    mm_ranges(&maps),
                    mm_ranges(&before),
                    "{}({addr:#x}, {len:#x}) = {res:?} changed what is mapped",
                    if mprotect { "mprotect" } else { "madvise" }
                );
            }
            4 => {
                let b = r.u8();
                let target = match b & 3 {
                    0 => 0,
                    1 => brk.wrapping_add(u64::from(r.u8()) * page),
                    2 => brk.wrapping_sub(u64::from(r.u8()) * page),
                    _ => mm_addr(&mut r, &slots, &params, brk),
                };
                let got = p.brk(target).expect("brk keeps the tables in step");
                if trace {
                    eprintln!("brk({target:#x}) = {got:#x}");
                }
                maps = mm_check(&p, &params);
                assert!(got == brk || got == target, "brk({target:#x}) = {got:#x}");
            }
            5 | 6 => {
                let k = r.u8();
                let kind = [Kind::Read, Kind::Write, Kind::Fetch, Kind::Write][usize::from(k & 3)];
                let pages = u64::from(k >> 2) + 1;
                let addr = mm_addr(&mut r, &slots, &params, brk);
                for i in 0..pages {
                    let Some(va) = addr.checked_add(i * page) else {
                        break;
                    };
                    let t = p.access(VirtAddr::new(va), kind);
                    if trace {
                        eprintln!("{kind:?} {va:#x}: {t:x?}");
                    }
                    match t {
                        Touch::Done(_) => {
                            let v = p
                                .space()
                                .vma_lookup(va & 0x00ff_ffff_ffff_ffff)
                                .unwrap_or_else(|| panic!("{kind:?} at {va:#x} outside every VMA"));
                            let need = match kind {
                                Kind::Write => VmFlags::VM_WRITE,
                                Kind::Fetch => VmFlags::VM_EXEC,
                                Kind::Read => {
                                    VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC
                                }
                            };
                            assert!(
                                v.vm_flags.intersects(need),
                                "{kind:?} at {va:#x} done in a VMA with {:?}",
                                v.vm_flags
                            );
                        }
                        Touch::Segv(_) => break,
                        Touch::OutOfMemory { .. } => {
                            mm_check(&p, &params);
                            break;
                        }
                    }
                }
                maps = mm_check(&p, &params);
            }
            _ => {
                if r.u8() & 1 == 0 {
                    assert_eq!(p.maps_string(), p.space().maps_string());
                } else {
                    mm_check_smaps(&p, &params, &maps);
                }
            }
        }
    }
    mm_check_smaps(&p, &params, &maps);
    // Unmapping every mmap result's neighbourhood returns their private pages.
    for s in slots {
        let res = p.munmap(s, 64 * page);
        if trace {
            eprintln!("final munmap({s:#x}, {:#x}) = {res:?}", 64 * page);
        }
    }
    mm_check(&p, &params);
}

// ===== script ===========================================================================

/// Touch lengths above this are cut to it before the script runs (the run loop touches
/// page by page).
const SCRIPT_TOUCH_MAX: u64 = 16 << 20;

/// Fuzz target `script`: arbitrary text into the `pagesim run` script parser. An error
/// names a line of the text (1 to the number of lines). A parsed script names each call
/// with a line of the text, in increasing order, and runs (quiet, into a String) on a
/// small simulated process without panicking; an error names the line of a parsed call;
/// afterwards the process invariants of `mm_ops` hold.
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
    let mut storage = ProcessStorage::new(&params, ram);
    let mut p = storage
        .build(params, Start::Fresh, ImportHints::default())
        .expect("a fresh process");
    let mut out = String::new();
    if let Err((line, msg)) = pagesim::linux::script::run::run(&mut p, &calls, true, &mut out) {
        assert!(
            calls.iter().any(|(l, _)| *l == line),
            "run error on line {line}, which holds no call: {msg}"
        );
        assert!(!msg.is_empty());
    }
    mm_check(&p, &params);
}
