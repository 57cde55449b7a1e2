//! A software TLB with the architecture's semantics: ASID-tagged and global entries, stale
//! entries kept until a matching TLBI, and the TLBI operations of the EL1&0 regime.

use core::fmt;

use crate::addr::{PhysAddr, VirtAddr};
use crate::arch::{Access, MairAttr, Permissions, Translation};

/// Hit, miss and maintenance counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups answered from the TLB.
    pub hits: u64,
    /// Lookups that found no usable entry.
    pub misses: u64,
    /// Translation table walks made.
    pub walks: u64,
    /// Entries written after a successful walk.
    pub fills: u64,
    /// Faults returned (from walks and from checks made on hits).
    pub faults: u64,
    /// TLBI operations applied.
    pub invalidations: u64,
    /// Entries removed by TLBI operations.
    pub entries_invalidated: u64,
}

impl Stats {
    /// Returns hits / (hits + misses), or 0 with no lookups.
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

/// A TLB maintenance operation of the EL1&0 regime (spec §5.3).
///
/// VAs are full 64-bit addresses; the operations sign-extend bit 55 as the instructions do.
/// The last-level (`…LE1`) forms invalidate exactly like their plain forms: this TLB holds
/// no walk cache, so over-invalidating them is architecturally correct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tlbi {
    /// `TLBI VAE1`: entries for `va` that are global or tagged with `asid`.
    Vae1 {
        /// ASID operand.
        asid: u16,
        /// Virtual address.
        va: VirtAddr,
    },
    /// `TLBI VALE1`: as `Vae1`, last level only.
    Vale1 {
        /// ASID operand.
        asid: u16,
        /// Virtual address.
        va: VirtAddr,
    },
    /// `TLBI VAAE1`: entries for `va` under every ASID.
    Vaae1 {
        /// Virtual address.
        va: VirtAddr,
    },
    /// `TLBI VAALE1`: as `Vaae1`, last level only.
    Vaale1 {
        /// Virtual address.
        va: VirtAddr,
    },
    /// `TLBI ASIDE1`: every non-global entry of `asid`; global entries survive.
    Aside1 {
        /// ASID operand.
        asid: u16,
    },
    /// `TLBI VMALLE1`: everything.
    Vmalle1,
    /// `TLBI RVAE1` (FEAT_TLBIRANGE): entries in `[va, va + len)` that are global or of
    /// `asid`.
    Rvae1 {
        /// ASID operand.
        asid: u16,
        /// Start of the range.
        va: VirtAddr,
        /// Length of the range in bytes.
        len: u64,
    },
    /// `TLBI RVAAE1`: entries in `[va, va + len)` under every ASID.
    Rvaae1 {
        /// Start of the range.
        va: VirtAddr,
        /// Length of the range in bytes.
        len: u64,
    },
}

/// Returned by [`Tlbi::from_operand`] for an unknown operation name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownTlbi;

impl core::error::Error for UnknownTlbi {}

impl fmt::Display for UnknownTlbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown TLBI operation")
    }
}

/// Sign-extends VA\[55:12\] from a TLBI operand's bits \[43:0\].
const fn operand_va(xt: u64) -> VirtAddr {
    let va = (xt & ((1 << 44) - 1)) << 12;
    VirtAddr::new(((va << 8) as i64 >> 8) as u64)
}

impl Tlbi {
    /// Decodes an instruction name (`VAE1`, `VALE1`, `VAAE1`, `VAALE1`, `ASIDE1`,
    /// `VMALLE1`, `RVAE1`, `RVAAE1`, with or without an `IS`/`OS` suffix, which makes no
    /// difference to a single TLB) and its Xt operand as the architecture lays it out:
    /// ASID in \[63:48\], VA\[55:12\] in \[43:0\]; for the range forms TG \[47:46\], SCALE
    /// \[45:44\], NUM \[43:39\] and BaseADDR \[36:0\] in units of the TG granule.
    ///
    /// # Errors
    /// [`UnknownTlbi`] for a name this TLB does not implement.
    pub fn from_operand(name: &str, xt: u64) -> Result<Tlbi, UnknownTlbi> {
        let n = name.trim();
        let n = n
            .strip_suffix("IS")
            .or_else(|| n.strip_suffix("OS"))
            .unwrap_or(n);
        let asid = (xt >> 48) as u16;
        let va = operand_va(xt);
        let range = || {
            let tg = (xt >> 46) & 3;
            let shift = match tg {
                1 => 12,
                2 => 14,
                3 => 16,
                _ => 12,
            };
            let scale = (xt >> 44) & 3;
            let num = (xt >> 39) & 0x1f;
            let pages = (num + 1) << (5 * scale + 1);
            let base = (xt & ((1 << 37) - 1)) << shift;
            let base = ((base << 8) as i64 >> 8) as u64;
            (VirtAddr::new(base), pages << shift)
        };
        Ok(match n {
            "VAE1" => Tlbi::Vae1 { asid, va },
            "VALE1" => Tlbi::Vale1 { asid, va },
            "VAAE1" => Tlbi::Vaae1 { va },
            "VAALE1" => Tlbi::Vaale1 { va },
            "ASIDE1" => Tlbi::Aside1 { asid },
            "VMALLE1" => Tlbi::Vmalle1,
            "RVAE1" | "RVALE1" => {
                let (va, len) = range();
                Tlbi::Rvae1 { asid, va, len }
            }
            "RVAAE1" | "RVAALE1" => {
                let (va, len) = range();
                Tlbi::Rvaae1 { va, len }
            }
            _ => return Err(UnknownTlbi),
        })
    }
}

/// One cached translation of one 4 KiB page of VA space (entries for larger pages and
/// blocks are made per 4 KiB page touched, remembering the leaf size for invalidation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbEntry {
    /// Bits \[63:12\]: the VA of the page (or of the block) with its top byte
    /// normalised, which is what a lookup compares with. Bits \[7:0\]: the
    /// [`Permissions`] granted (write removed for writable-clean leaves), [`DEVICE`] and
    /// [`NO_EL0`], so that one compare checks the page and the access. [`OTHER_ASID`] is
    /// set while the entry belongs to an ASID other than the current one; an empty entry
    /// holds [`EMPTY_KEY`].
    key: u64,
    /// PA of the 4 KiB page.
    pa_page: u64,
    /// The ASID of a non-global entry.
    asid: u16,
    /// 0xffff for a non-global entry, 0 for a global one: `(asid ^ current) & asid_mask`.
    asid_mask: u16,
    /// The MAIR attribute byte.
    attr: u8,
    /// log2 of the leaf's size.
    size_log2: u8,
    /// Hits served by this entry (kept here, off the hit path's dependency chain; folded
    /// into [`Stats::hits`] when the entry goes).
    hits: u64,
}

impl TlbEntry {
    /// Returns the normalised VA of the entry's first page.
    #[inline]
    pub(crate) const fn va_page(&self) -> u64 {
        self.key & !0xfff
    }

    /// Returns the memory attributes the entry caches.
    #[inline]
    pub const fn mair_attr(&self) -> MairAttr {
        MairAttr::new(self.attr)
    }

    /// Returns log2 of the size of the leaf the entry caches.
    #[inline]
    pub const fn size_log2(&self) -> u8 {
        self.size_log2
    }
}

/// Entry flag: Device memory (unaligned data accesses must fault, so they walk).
const DEVICE: u8 = 1 << 6;

/// Entry flag: EL0 accesses must not use the entry (its half had TCR_EL1.E0PDx set when
/// it was filled, and E0PD faults EL0 accesses even when a TLB entry exists).
const NO_EL0: u8 = 1 << 7;

/// The key of an empty entry (it has [`OTHER_ASID`] set, so it never matches).
const EMPTY_KEY: u64 = u64::MAX;

/// Key bit of an entry that belongs to an ASID other than the current one. Every lookup
/// requires it clear.
const OTHER_ASID: u64 = 1 << 11;

/// Key bit of a lookup the TLB must not answer (no entry ever has it set).
pub(crate) const BYPASS_KEY: u64 = 1 << 10;

/// The flag bits every lookup requires clear.
const ALWAYS_CLEAR: u64 = OTHER_ASID | BYPASS_KEY;

impl TlbEntry {
    /// An empty entry.
    pub const EMPTY: TlbEntry = TlbEntry {
        key: EMPTY_KEY,
        pa_page: 0,
        asid: 0,
        asid_mask: 0,
        attr: 0,
        size_log2: 0,
        hits: 0,
    };

    /// Returns whether the entry holds a translation.
    #[inline]
    pub const fn is_valid(&self) -> bool {
        self.key != EMPTY_KEY
    }

    /// Returns whether the entry is global (matches every ASID).
    #[inline]
    pub const fn is_global(&self) -> bool {
        self.asid_mask == 0
    }

    /// Returns the permissions the entry grants.
    #[inline]
    pub const fn permissions(&self) -> Permissions {
        Permissions::from_bits_truncate(self.key as u8)
    }

    /// Returns the PA of the cached 4 KiB page.
    #[inline]
    pub const fn pa_page(&self) -> PhysAddr {
        PhysAddr::from_bits_52(self.pa_page)
    }

    /// Returns the MAIR attribute byte of the cached translation.
    #[inline]
    pub const fn attr(&self) -> u8 {
        self.attr
    }

    /// Returns the start of the VA range of the leaf this entry came from.
    #[inline]
    fn leaf_start(&self) -> u64 {
        self.key & !((1u64 << self.size_log2) - 1)
    }

    #[inline]
    fn covers(&self, va: u64) -> bool {
        self.is_valid() && va & !((1u64 << self.size_log2) - 1) == self.leaf_start()
    }

    #[inline]
    fn asid_matches(&self, asid: u16) -> bool {
        (self.asid ^ asid) & self.asid_mask == 0
    }

    /// Returns VA\[63:12\] of the page (or the block's first page), top byte normalised.
    #[inline]
    const fn tag(&self) -> u64 {
        self.key >> 12
    }

    /// Returns the key of this entry under current ASID `asid`.
    #[inline]
    fn key_under(&self, asid: u16) -> u64 {
        if !self.is_valid() {
            EMPTY_KEY
        } else if self.asid_matches(asid) {
            self.key & !OTHER_ASID
        } else {
            self.key | OTHER_ASID
        }
    }
}

/// What an access needs from a TLB entry, computed once per access: one permission bit
/// that must be granted and the bits that must be absent (PAN, and Device memory for
/// accesses that could be unaligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessCheck {
    need: u8,
    deny: u8,
}

impl AccessCheck {
    /// Computes the check for `access` with FEAT_PAN3's EPAN = `epan`.
    #[inline]
    pub const fn new(access: &Access, epan: bool) -> Self {
        let el0 = access.is_el0();
        let (need, mut deny) = match access.kind() {
            crate::arch::AccessKind::Fetch => (
                if el0 {
                    Permissions::UX
                } else {
                    Permissions::PX
                }
                .bits(),
                0,
            ),
            crate::arch::AccessKind::Read => (
                if el0 {
                    Permissions::UR
                } else {
                    Permissions::PR
                }
                .bits(),
                DEVICE,
            ),
            crate::arch::AccessKind::Write => (
                if el0 {
                    Permissions::UW
                } else {
                    Permissions::PW
                }
                .bits(),
                DEVICE,
            ),
        };
        if access.size() == 1 {
            deny = 0;
        }
        if el0 {
            deny |= NO_EL0;
        }
        if !el0 && access.pan() && !access.is_fetch() {
            deny |= Permissions::UR.bits() | Permissions::UW.bits();
            if epan {
                deny |= Permissions::UX.bits();
            }
        }
        AccessCheck { need, deny }
    }

    /// Returns the key bits a lookup compares: the page, the needed permission, the bits
    /// that must be absent and the flags every lookup requires clear.
    #[inline(always)]
    const fn mask(self) -> u64 {
        !0xfff | (self.need | self.deny) as u64 | ALWAYS_CLEAR
    }
}

/// How many entries the block array of a [`Tlb`] has (leaves larger than 4 KiB).
pub const BLOCK_ENTRIES: usize = 64;

/// A direct-mapped TLB of `N` entries (a power of two) for 4 KiB pages, indexed by
/// VA\[..:12\], plus [`BLOCK_ENTRIES`] entries for larger leaves (blocks, 16/64 KiB pages)
/// indexed by VA\[..:21\], so that one entry serves a whole 2 MiB block.
///
/// It never drops an entry on its own except by replacement on fill: changes to
/// descriptors in memory are not seen until invalidated, as on hardware (spec §5.5).
///
/// `COUNT_HITS` (off by default) makes every hit add to its entry's counter, which
/// [`Tlb::stats`] sums; that store costs about a third of a hit, so hits are not counted
/// unless asked for (`hits` then stays 0; misses, walks, fills and faults are counted on the
/// miss path either way). Whoever counts its lookups derives the hits as lookups minus
/// misses, as [`crate::linux::paging::PagingStats::translations`] allows.
///
/// # Example
///
/// A walk's translation cached, hit, and invalidated by VA (as `TLBI VAE1` would):
///
/// ```
/// use pagesim::arch::{walk, Access, Cpu, El, Regime, Registers};
/// use pagesim::mmu::{AccessCheck, Tlb, Tlbi};
/// use pagesim::phys::{PhysMemory, SliceMemory};
/// use pagesim::{PhysAddr, VirtAddr};
///
/// let mut ram = vec![0u8; 0x4000];
/// let mut mem = SliceMemory::new(PhysAddr::new(0x4000_0000), &mut ram);
/// mem.write_u64(PhysAddr::new(0x4000_0000), 0x4000_1003)?; // L0[0] -> table
/// mem.write_u64(PhysAddr::new(0x4000_1000), 0x4000_2003)?; // L1[0] -> table
/// mem.write_u64(PhysAddr::new(0x4000_2000), 0x4000_3003)?; // L2[0] -> table
/// mem.write_u64(PhysAddr::new(0x4000_3008), 0x8800_1743)?; // L3[1]: EL0 RW page
/// let regs = Registers { tcr: 0x5_8010_0010, sctlr: 1, ttbr0: 0x4000_0000, ttbr1: 0, mair: 0xff };
/// let regime = Regime::try_new(regs, Cpu::MAX)?;
/// let read = Access::read(El::El0);
/// let t = walk(&regime, &mut mem, VirtAddr::new(0x1abc), read).unwrap();
///
/// let mut tlb: Tlb<64, true> = Tlb::new(); // hits counted
/// tlb.fill(0x1, &t); // the tag is VA >> 12
/// let check = AccessCheck::new(&read, false);
/// assert_eq!(tlb.lookup(0x1, 0xabc, 0, check), Some(PhysAddr::new(0x8800_1abc)));
/// tlb.invalidate(Tlbi::Vaae1 { va: VirtAddr::new(0x1000) });
/// assert_eq!(tlb.lookup(0x1, 0xabc, 0, check), None);
/// assert_eq!((tlb.stats().hits, tlb.stats().misses), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tlb<const N: usize, const COUNT_HITS: bool = false> {
    entries: [TlbEntry; N],
    blocks: [TlbEntry; BLOCK_ENTRIES],
    /// The current ASID: entries of other ASIDs stay cached but do not match.
    asid: u16,
    /// Whether a block-array entry may be valid (false: every one is empty, so a lookup
    /// there only counts its miss).
    any_blocks: bool,
    stats: Stats,
}

impl<const N: usize, const COUNT_HITS: bool> Default for Tlb<N, COUNT_HITS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const COUNT_HITS: bool> Tlb<N, COUNT_HITS> {
    const MASK: u64 = {
        assert!(N.is_power_of_two(), "TLB size must be a power of two");
        N as u64 - 1
    };

    /// Creates an empty TLB.
    pub const fn new() -> Self {
        let _ = Self::MASK;
        Tlb {
            entries: [TlbEntry::EMPTY; N],
            blocks: [TlbEntry::EMPTY; BLOCK_ENTRIES],
            asid: 0,
            any_blocks: false,
            stats: Stats {
                hits: 0,
                misses: 0,
                walks: 0,
                fills: 0,
                faults: 0,
                invalidations: 0,
                entries_invalidated: 0,
            },
        }
    }

    /// Returns the counters (hits are summed over the entries, which count their own, so
    /// this costs a pass over the TLB).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        for e in self.entries.iter().chain(self.blocks.iter()) {
            s.hits += e.hits;
        }
        s
    }

    /// Returns the counters kept outside the entries, mutably (the MMU records walks and
    /// faults here; `hits` holds those of entries already gone).
    #[inline]
    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Empties `e`, keeping its hit count.
    #[inline]
    fn clear(stats: &mut Stats, e: &mut TlbEntry) {
        stats.hits += e.hits;
        *e = TlbEntry::EMPTY;
    }

    /// Returns the number of valid entries.
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .chain(self.blocks.iter())
            .filter(|e| e.is_valid())
            .count()
    }

    /// Returns whether no entry is valid.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    const fn block_index(tag: u64) -> usize {
        ((tag >> 9) as usize) & (BLOCK_ENTRIES - 1)
    }

    /// Returns the current ASID.
    #[inline]
    pub const fn asid(&self) -> u16 {
        self.asid
    }

    /// Makes `asid` current: non-global entries of other ASIDs stay cached but stop
    /// matching until their ASID is current again. A change costs one pass over the
    /// entries (as a context switch does); the same ASID again costs nothing.
    pub fn set_asid(&mut self, asid: u16) {
        if asid == self.asid {
            return;
        }
        self.asid = asid;
        for e in self.entries.iter_mut().chain(self.blocks.iter_mut()) {
            e.key = e.key_under(asid);
        }
    }

    /// Looks up `tag` (the normalised VA >> 12) under `asid` for an access needing
    /// `check`. A present entry that does not allow the access counts as a miss, so the
    /// access walks again (and takes the architecturally fresh answer). An `asid` other
    /// than the current one is made current first (see [`Tlb::set_asid`]).
    #[inline(always)]
    pub fn lookup(
        &mut self,
        tag: u64,
        page_offset: u64,
        asid: u16,
        check: AccessCheck,
    ) -> Option<PhysAddr> {
        if asid != self.asid {
            self.set_asid(asid);
        }
        self.lookup_key(tag << 12, page_offset, check)
    }

    /// Looks up `key` (the normalised VA of the page; any value with bits \[11:0\] set
    /// misses) under the current ASID: one compare for the page and one for the
    /// permissions on a hit.
    #[inline(always)]
    pub(crate) fn lookup_key(
        &mut self,
        key: u64,
        page_offset: u64,
        check: AccessCheck,
    ) -> Option<PhysAddr> {
        self.lookup_page(key, page_offset, check)
            .or_else(|| self.lookup_block_gated(key, page_offset, check))
    }

    /// Looks `key` up in the 4 KiB array only (no counter moves on a miss).
    #[inline(always)]
    pub(crate) fn lookup_page(
        &mut self,
        key: u64,
        page_offset: u64,
        check: AccessCheck,
    ) -> Option<PhysAddr> {
        self.page_hit(key, check)
            .map(|e| PhysAddr::from_bits_52(e.pa_page | page_offset))
    }

    /// Returns the page-array entry that serves `key` for `check`, counting the hit.
    #[inline(always)]
    pub(crate) fn page_hit(&mut self, key: u64, check: AccessCheck) -> Option<&TlbEntry> {
        let e = &mut self.entries[((key >> 12) & Self::MASK) as usize];
        if (e.key ^ (key | check.need as u64)) & check.mask() == 0 {
            if COUNT_HITS {
                e.hits += 1;
            }
            return Some(e);
        }
        None
    }

    /// Looks `key` up in the block array, counting a miss when it is not there either.
    #[inline(never)]
    pub(crate) fn lookup_block(
        &mut self,
        key: u64,
        page_offset: u64,
        check: AccessCheck,
    ) -> Option<PhysAddr> {
        self.block_hit(key, check)
            .map(|e| PhysAddr::from_bits_52(e.pa_page + (key - (e.key & !0xfff)) + page_offset))
    }

    /// Looks `key` up in the block array as [`Tlb::lookup_block`] does, but only counts
    /// the miss, without a call, while the array is empty (no block leaf was cached since
    /// it last emptied).
    #[inline(always)]
    pub(crate) fn lookup_block_gated(
        &mut self,
        key: u64,
        page_offset: u64,
        check: AccessCheck,
    ) -> Option<PhysAddr> {
        if self.any_blocks {
            return self.lookup_block(key, page_offset, check);
        }
        self.stats.misses += 1;
        None
    }

    /// Returns the block-array entry that serves `key` for `check`, counting the hit, or
    /// counts a miss.
    #[inline(always)]
    pub(crate) fn block_hit(&mut self, key: u64, check: AccessCheck) -> Option<&TlbEntry> {
        let e = &mut self.blocks[Self::block_index(key >> 12)];
        let block_mask = !((1u64 << e.size_log2) - 1);
        if key & 0xfff == 0
            && e.key & ALWAYS_CLEAR == 0
            && key & block_mask == e.key & !0xfff
            && (e.key as u8) & (check.need | check.deny) == check.need
        {
            if COUNT_HITS {
                e.hits += 1;
            }
            return Some(e);
        }
        self.stats.misses += 1;
        None
    }

    /// Caches a fault-free translation for the 4 KiB page `tag`.
    #[inline]
    pub fn fill(&mut self, tag: u64, t: &Translation) {
        self.fill_entry(tag, t, false);
    }

    /// Caches a fault-free translation for the 4 KiB page `tag`, unusable by EL0
    /// accesses when `no_el0` (E0PD).
    #[inline]
    pub(crate) fn fill_entry(&mut self, tag: u64, t: &Translation, no_el0: bool) {
        let mut perms = t.perms;
        if t.writable_clean {
            perms.remove(Permissions::UW | Permissions::PW);
        }
        let mut bits = perms.bits();
        if t.attr & 0xf0 == 0 {
            bits |= DEVICE;
        }
        if no_el0 {
            bits |= NO_EL0;
        }
        let size_log2 = t.size_log2.max(12);
        let pages_mask = (1u64 << (size_log2 - 12)) - 1;
        let mut entry = TlbEntry {
            key: ((tag & !pages_mask) << 12) | bits as u64,
            pa_page: (t.pa.as_u64() & !0xfff) - ((tag & pages_mask) << 12),
            asid: t.asid,
            asid_mask: if t.global() { 0 } else { 0xffff },
            attr: t.attr,
            size_log2,
            hits: 0,
        };
        entry.key = entry.key_under(self.asid);
        let slot = if size_log2 > 12 {
            self.any_blocks = true;
            &mut self.blocks[Self::block_index(tag)]
        } else {
            &mut self.entries[(tag & Self::MASK) as usize]
        };
        self.stats.hits += slot.hits;
        *slot = entry;
        self.stats.fills += 1;
    }

    /// Returns the entry that would serve `tag`, if valid (for inspection and tests).
    pub fn entry(&self, tag: u64) -> Option<&TlbEntry> {
        let e = &self.entries[(tag & Self::MASK) as usize];
        if e.is_valid() && e.tag() == tag {
            return Some(e);
        }
        let b = &self.blocks[Self::block_index(tag)];
        (b.is_valid() && (tag ^ b.tag()) >> (b.size_log2 - 12) == 0).then_some(b)
    }

    fn remove_where(&mut self, pred: impl Fn(&TlbEntry) -> bool) {
        let mut removed = 0;
        for e in self.entries.iter_mut() {
            if e.is_valid() && pred(e) {
                Self::clear(&mut self.stats, e);
                removed += 1;
            }
        }
        self.stats.entries_invalidated += removed;
        self.remove_blocks_where(&pred);
    }

    /// Removes the block-array entries `pred` picks, and notes whether any is left.
    fn remove_blocks_where(&mut self, pred: impl Fn(&TlbEntry) -> bool) {
        if !self.any_blocks {
            return;
        }
        let mut left = false;
        for e in self.blocks.iter_mut() {
            if e.is_valid() {
                if pred(e) {
                    Self::clear(&mut self.stats, e);
                    self.stats.entries_invalidated += 1;
                } else {
                    left = true;
                }
            }
        }
        self.any_blocks = left;
    }

    /// Invalidates the entries covering `va` (a block entry containing it goes whole),
    /// global or of `asid` (every ASID when `None`).
    fn invalidate_va(&mut self, va: u64, asid: Option<u16>) {
        let tag = normalise_tlbi_va(va) >> 12;
        let matches = |e: &TlbEntry| asid.is_none_or(|a| e.asid_matches(a));
        let slot = &mut self.entries[(tag & Self::MASK) as usize];
        if slot.is_valid() && slot.tag() == tag && matches(slot) {
            Self::clear(&mut self.stats, slot);
            self.stats.entries_invalidated += 1;
        }
        let v = tag << 12;
        self.remove_blocks_where(|e| e.covers(v) && matches(e));
    }

    fn invalidate_range(&mut self, va: u64, len: u64, asid: Option<u16>) {
        if len == 0 {
            return;
        }
        let start = normalise_tlbi_va(va) & !0xfff;
        let end = start.saturating_add(len - 1);
        let pages = (end >> 12) - (start >> 12) + 1;
        let matches = |e: &TlbEntry| asid.is_none_or(|a| e.asid_matches(a));
        let overlaps = |e: &TlbEntry| {
            let s = e.leaf_start();
            let last = s + ((1u64 << e.size_log2) - 1);
            s <= end && last >= start && matches(e)
        };
        if pages <= 16 {
            for p in 0..pages {
                let tag = (start >> 12) + p;
                let slot = &mut self.entries[(tag & Self::MASK) as usize];
                if slot.is_valid() && slot.tag() == tag && matches(slot) {
                    Self::clear(&mut self.stats, slot);
                    self.stats.entries_invalidated += 1;
                }
            }
            self.remove_blocks_where(overlaps);
        } else {
            self.remove_where(overlaps);
        }
    }

    /// Applies a TLB maintenance operation.
    pub fn invalidate(&mut self, op: Tlbi) {
        self.stats.invalidations += 1;
        match op {
            Tlbi::Vae1 { asid, va } | Tlbi::Vale1 { asid, va } => {
                self.invalidate_va(va.as_u64(), Some(asid))
            }
            Tlbi::Vaae1 { va } | Tlbi::Vaale1 { va } => self.invalidate_va(va.as_u64(), None),
            Tlbi::Aside1 { asid } => self.remove_where(|e| !e.is_global() && e.asid == asid),
            Tlbi::Vmalle1 => self.remove_where(|_| true),
            Tlbi::Rvae1 { asid, va, len } => self.invalidate_range(va.as_u64(), len, Some(asid)),
            Tlbi::Rvaae1 { va, len } => self.invalidate_range(va.as_u64(), len, None),
        }
    }
}

/// Sign-extends a VA from bit 55 (TLBI operands carry VA\[55:12\]).
#[inline]
const fn normalise_tlbi_va(va: u64) -> u64 {
    ((va << 8) as i64 >> 8) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_operand_decoding() {
        // RVAE1, TG=4K (01), SCALE=0, NUM=1: (1+1) << 1 = 4 pages from BaseADDR 0x10.
        let xt = (5u64 << 48) | (1 << 46) | (1 << 39) | 0x10;
        assert_eq!(
            Tlbi::from_operand("RVAE1IS", xt),
            Ok(Tlbi::Rvae1 {
                asid: 5,
                va: VirtAddr::new(0x10000),
                len: 4 * 4096
            })
        );
        assert_eq!(
            Tlbi::from_operand(
                "VAE1",
                (1 << 48) | ((0xffff_ffff_c000_0000u64 >> 12) & ((1 << 44) - 1))
            ),
            Ok(Tlbi::Vae1 {
                asid: 1,
                va: VirtAddr::new(0xffff_ffff_c000_0000)
            })
        );
        assert!(Tlbi::from_operand("ALLE2", 0).is_err());
    }
}
