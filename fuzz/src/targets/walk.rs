//! The `walk` target: random registers and table memory through `walk`, `walk_pa` and AT,
//! checked against the architecture's rules (and with racing descriptor updates).

use super::*;

// ===== walk =============================================================================

/// Base addresses of the simulated RAM (selected by 3 bits of the flags byte).
pub(crate) const WALK_BASES: [u64; 8] = [
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
pub(crate) const WALK_MAX_ACCESSES: usize = 16;
/// Access sizes, selected by 3 bits of the access byte (invalid sizes count as 1).
pub(crate) const WALK_SIZES: [u8; 8] = [1, 2, 4, 8, 16, 1, 3, 0];
/// The race byte's high nibble that enables a simulated concurrent descriptor writer.
pub(crate) const RACE_MAGIC: u8 = 0xa;

pub(crate) const AF: u64 = 1 << 10;
pub(crate) const AP_RO: u64 = 1 << 7;
pub(crate) const DBM: u64 = 1 << 51;

/// A simulated other agent acting on the descriptor the walker is about to update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Race {
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
pub(crate) enum WalkOp {
    Walk(Access),
    At(AtOp),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkAccess {
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

pub(crate) fn decode_cpu(r: &mut Reader<'_>) -> Cpu {
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
pub(crate) fn relative_ttbr(raw: u64, base: u64) -> u64 {
    (raw & 0xffff_0000_0000_003f) | (base.wrapping_add(raw & 0xffc0) & 0x0000_ffff_ffff_ffc0)
}

/// Physical memory that records every access the walker makes and can play a concurrent
/// writer (see [`Race`]).
pub(crate) struct Racy<'m, 'a> {
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
pub(crate) struct WalkTrace {
    race_writes: Vec<(u64, u64)>,
    injected: bool,
    cas: u32,
    reads: u32,
    last_read: u64,
    read_failed: bool,
}

pub(crate) fn traced_walk(
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
pub(crate) fn check_regime(regs: &Registers, cpu: &Cpu, regime: &Regime) {
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
pub(crate) fn expected_fsc(kind: FaultKind, level: Option<Level>) -> u8 {
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
pub(crate) fn va_in_range(regime: &Regime, va: u64, access: Access) -> bool {
    let upper = (va >> 55) & 1 == 1;
    let h = regime.half(upper);
    let top = if h.tbi && !(access.is_fetch() && h.tbid) {
        55
    } else {
        63
    };
    (h.input_bits()..=top).all(|b| ((va >> b) & 1 == 1) == upper)
}

pub(crate) fn check_walk_result(
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
pub(crate) fn check_update(regime: &Regime, access: Access, u: &DescriptorUpdate) {
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
pub(crate) fn check_walk_memory(
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
