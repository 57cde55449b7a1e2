//! Translation speed: pagesim's walker against the `x86_64` crate's `OffsetPageTable` and a
//! minimal unchecked 4-level loop (the floor), over identical 4 KiB mappings.
//!
//! Cells: 1 page, 1 MiB and 1 GiB of mappings; random and sequential addresses; throughput
//! (independent addresses) and latency (each address depends on the previous result).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pagesim::arch::{walk, walk_pa, Access, Attributes, Cpu, El, Granule, Regime, Registers};
use pagesim::mmu::{FrameError, FrameSource, Lpa2, Mapper, Mmu, TableFormat, VaRange};
use pagesim::phys::SliceMemory;
use pagesim::{PhysAddr, VirtAddr};
use x86_64::structures::paging::mapper::Translate;
use x86_64::structures::paging::{OffsetPageTable, PageTable, PageTableFlags};

const VA_BASE: u64 = 0x10_0000_0000;
const PA_BASE: u64 = 0x1_0000_0000;
const RAM_BASE: u64 = 0x4000_0000;
const BATCH: usize = 1024;
/// The access every cell translates for: an EL0 read, known at compile time as it is at an
/// emulator's load helper.
const ACCESS: Access = Access::read(El::El0);

/// AArch64 tables for `pages` 4 KiB pages at VA_BASE, laid out from RAM_BASE; also the same
/// tables as a flat word array for the floor loop.
struct Arm {
    ram: Vec<u8>,
    regime: Regime,
}

fn build_arm(pages: u64) -> Arm {
    let l3_tables = pages.div_ceil(512);
    let l2_tables = l3_tables.div_ceil(512);
    let table_pages = 2 + l2_tables + l3_tables;
    let mut words = vec![0u64; (table_pages * 512) as usize];
    let page_of = |i: u64| RAM_BASE + i * 4096;
    // L0 at page 0, L1 at page 1, L2 tables from page 2, L3 tables after them.
    let l0_idx = (VA_BASE >> 39) & 511;
    words[l0_idx as usize] = page_of(1) | 3;
    for t in 0..l2_tables {
        let l1_idx = ((VA_BASE >> 30) & 511) + t;
        words[(512 + l1_idx) as usize] = page_of(2 + t) | 3;
    }
    for t in 0..l3_tables {
        let l2_tab = t / 512;
        let l2_idx = ((VA_BASE >> 21) & 511) + t % 512;
        words[((2 + l2_tab) * 512 + l2_idx) as usize] = page_of(2 + l2_tables + t) | 3;
    }
    for p in 0..pages {
        let t = p / 512;
        let idx = p % 512;
        words[((2 + l2_tables + t) * 512 + idx) as usize] = (PA_BASE + p * 4096) | 0x743;
    }
    let mut ram = Vec::with_capacity(words.len() * 8);
    for w in &words {
        ram.extend_from_slice(&w.to_le_bytes());
    }
    let regs = Registers {
        tcr: 0x0000_0005_8010_0010,
        sctlr: 1,
        ttbr0: RAM_BASE,
        ttbr1: 0,
        mair: 0xff,
    };
    Arm {
        ram,
        regime: Regime::try_new(regs, Cpu::MAX).unwrap(),
    }
}

/// The minimal loop: four dependent loads, no checks beyond the valid bit.
#[inline(never)]
fn floor_translate(words: &[u64], va: u64) -> Option<u64> {
    let mut table = 0u64; // offset of L0 in `words`, in bytes from RAM_BASE
    for shift in [39u32, 30, 21, 12] {
        let idx = (va >> shift) & 511;
        let d = words[((table >> 3) + idx) as usize];
        if d & 1 == 0 {
            return None;
        }
        let next = d & 0x0000_ffff_ffff_f000;
        if shift == 12 {
            return Some(next | (va & 0xfff));
        }
        table = next - RAM_BASE;
    }
    None
}

/// The same mappings as x86_64 4-level tables in a heap arena of `PageTable`s.
fn build_x86(pages: u64) -> Vec<PageTable> {
    let l3_tables = pages.div_ceil(512);
    let l2_tables = l3_tables.div_ceil(512);
    let n = (2 + l2_tables + l3_tables) as usize;
    let mut arena: Vec<PageTable> = (0..n).map(|_| PageTable::new()).collect();
    let f = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let frame = |i: u64| x86_64::PhysAddr::new(i * 4096);
    arena[0][((VA_BASE >> 39) & 511) as usize].set_addr(frame(1), f);
    for t in 0..l2_tables {
        arena[1][(((VA_BASE >> 30) & 511) + t) as usize].set_addr(frame(2 + t), f);
    }
    for t in 0..l3_tables {
        let l2 = (2 + t / 512) as usize;
        arena[l2][(((VA_BASE >> 21) & 511) + t % 512) as usize]
            .set_addr(frame(2 + l2_tables + t), f);
    }
    for p in 0..pages {
        let t = (2 + l2_tables + p / 512) as usize;
        arena[t][(p % 512) as usize].set_addr(x86_64::PhysAddr::new(PA_BASE + p * 4096), f);
    }
    arena
}

fn addresses(pages: u64, random: bool) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..BATCH as u64)
        .map(|i| {
            let page = if random {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % pages
            } else {
                i % pages
            };
            VA_BASE + page * 4096 + (i * 8) % 4096
        })
        .collect()
}

/// The next address in a latency chain: chosen by the previous result.
#[inline(always)]
fn chase(addrs: &[u64], prev: u64) -> u64 {
    addrs[((prev >> 3) as usize) & (BATCH - 1)]
}

fn walk_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("walk");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(BATCH as u64));
    for (label, pages) in [("4k_1page", 1u64), ("4k_1mib", 256), ("4k_1gib", 262_144)] {
        let mut arm = build_arm(pages);
        let words: Vec<u64> = arm
            .ram
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut arena = build_x86(pages);
        let offset = x86_64::VirtAddr::new(arena.as_ptr() as u64);
        // SAFETY: the arena holds every table the entries point at (frames are arena
        // offsets), lives until the end of this iteration, and is only read through `pt`.
        let pt = unsafe { OffsetPageTable::new(&mut arena[0], offset) };
        let regime = arm.regime;
        let mut mem = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut arm.ram);
        for (pattern, random) in [("random", true), ("seq", false)] {
            let addrs = addresses(pages, random);
            // Sanity: all three agree on every address.
            for &va in &addrs {
                let a = walk(&regime, &mut mem, VirtAddr::new(va), ACCESS)
                    .unwrap()
                    .pa
                    .as_u64();
                assert_eq!(
                    walk_pa(&regime, &mut mem, VirtAddr::new(va), ACCESS).map(|p| p.as_u64()),
                    Ok(a)
                );
                let b = pt
                    .translate_addr(x86_64::VirtAddr::new(va))
                    .unwrap()
                    .as_u64();
                assert_eq!(a, b);
                assert_eq!(floor_translate(&words, va), Some(a));
            }
            let name = format!("{label}_{pattern}");
            // `walk_pa` is the counterpart of `translate_addr` (the address only);
            // `pagesim_full` builds the whole `Translation` a TLB fill needs.
            g.bench_function(BenchmarkId::new("pagesim", &name), |b| {
                b.iter(|| {
                    let mut sum = 0u64;
                    for &va in &addrs {
                        sum = sum.wrapping_add(
                            walk_pa(&regime, &mut mem, VirtAddr::new(va), ACCESS)
                                .map_or(0, |p| p.as_u64()),
                        );
                    }
                    black_box(sum)
                })
            });
            g.bench_function(BenchmarkId::new("pagesim_full", &name), |b| {
                b.iter(|| {
                    let mut sum = 0u64;
                    for &va in &addrs {
                        sum = sum.wrapping_add(
                            match walk(&regime, &mut mem, VirtAddr::new(va), ACCESS) {
                                Ok(t) => t.pa.as_u64(),
                                Err(_) => 0,
                            },
                        );
                    }
                    black_box(sum)
                })
            });
            g.bench_function(BenchmarkId::new("x86_64_crate", &name), |b| {
                b.iter(|| {
                    let mut sum = 0u64;
                    for &va in &addrs {
                        sum = sum.wrapping_add(
                            pt.translate_addr(x86_64::VirtAddr::new(va))
                                .map_or(0, |p| p.as_u64()),
                        );
                    }
                    black_box(sum)
                })
            });
            g.bench_function(BenchmarkId::new("floor", &name), |b| {
                b.iter(|| {
                    let mut sum = 0u64;
                    for &va in &addrs {
                        sum = sum.wrapping_add(floor_translate(&words, va).unwrap_or(0));
                    }
                    black_box(sum)
                })
            });
            let lname = format!("{label}_{pattern}_latency");
            g.bench_function(BenchmarkId::new("pagesim", &lname), |b| {
                b.iter(|| {
                    let mut pa = 0u64;
                    for _ in 0..BATCH {
                        let va = chase(&addrs, pa);
                        pa = walk_pa(&regime, &mut mem, VirtAddr::new(va), ACCESS)
                            .map_or(0, |p| p.as_u64());
                    }
                    black_box(pa)
                })
            });
            g.bench_function(BenchmarkId::new("pagesim_full", &lname), |b| {
                b.iter(|| {
                    let mut pa = 0u64;
                    for _ in 0..BATCH {
                        let va = chase(&addrs, pa);
                        pa = match walk(&regime, &mut mem, VirtAddr::new(va), ACCESS) {
                            Ok(t) => t.pa.as_u64(),
                            Err(_) => 0,
                        };
                    }
                    black_box(pa)
                })
            });
            g.bench_function(BenchmarkId::new("x86_64_crate", &lname), |b| {
                b.iter(|| {
                    let mut pa = 0u64;
                    for _ in 0..BATCH {
                        let va = chase(&addrs, pa);
                        pa = pt
                            .translate_addr(x86_64::VirtAddr::new(va))
                            .map_or(0, |p| p.as_u64());
                    }
                    black_box(pa)
                })
            });
            g.bench_function(BenchmarkId::new("floor", &lname), |b| {
                b.iter(|| {
                    let mut pa = 0u64;
                    for _ in 0..BATCH {
                        let va = chase(&addrs, pa);
                        pa = floor_translate(&words, va).unwrap_or(0);
                    }
                    black_box(pa)
                })
            });
        }
    }
    g.finish();
}

/// The floor for a TLB hit: a bare direct-mapped tag array, no permission checks.
struct FloorTlb {
    tags: Vec<u64>,
    pas: Vec<u64>,
}

impl FloorTlb {
    #[inline(always)]
    fn lookup(&self, va: u64) -> Option<u64> {
        let vpn = va >> 12;
        let i = (vpn as usize) & (self.tags.len() - 1);
        if self.tags[i] == vpn {
            Some(self.pas[i] | (va & 0xfff))
        } else {
            None
        }
    }
}

fn tlb_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("tlb");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(BATCH as u64));
    let pages = 256u64;
    let arm = build_arm(pages);
    let mut ram = arm.ram.clone();
    let mut ram2 = arm.ram.clone();
    let mem = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut ram);
    let mut mmu: Mmu<SliceMemory, 1024> = Mmu::new(*arm.regime.registers(), Cpu::MAX, mem);
    // The same MMU with hit counting (`COUNT_HITS = true`).
    let mem2 = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut ram2);
    let mut counted: Mmu<SliceMemory, 1024, true> =
        Mmu::new(*arm.regime.registers(), Cpu::MAX, mem2);
    let addrs = addresses(pages, true);
    let mut floor = FloorTlb {
        tags: vec![u64::MAX; 1024],
        pas: vec![0; 1024],
    };
    for p in 0..pages {
        let va = VA_BASE + p * 4096;
        let pa = mmu.translate(VirtAddr::new(va), ACCESS).unwrap().as_u64();
        assert_eq!(
            counted
                .translate(VirtAddr::new(va), ACCESS)
                .unwrap()
                .as_u64(),
            pa
        );
        let i = ((va >> 12) as usize) & 1023;
        floor.tags[i] = va >> 12;
        floor.pas[i] = pa;
    }
    for &va in &addrs {
        assert_eq!(
            mmu.translate(VirtAddr::new(va), ACCESS).unwrap().as_u64(),
            floor.lookup(va).unwrap()
        );
    }
    g.bench_function(BenchmarkId::new("pagesim", "hit_1mib_random"), |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for &va in &addrs {
                sum = sum.wrapping_add(
                    mmu.translate(VirtAddr::new(va), ACCESS)
                        .map_or(0, |p| p.as_u64()),
                );
            }
            black_box(sum)
        })
    });
    g.bench_function(
        BenchmarkId::new("pagesim_counted", "hit_1mib_random"),
        |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for &va in &addrs {
                    sum = sum.wrapping_add(
                        counted
                            .translate(VirtAddr::new(va), ACCESS)
                            .map_or(0, |p| p.as_u64()),
                    );
                }
                black_box(sum)
            })
        },
    );
    g.bench_function(BenchmarkId::new("array_floor", "hit_1mib_random"), |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for &va in &addrs {
                sum = sum.wrapping_add(floor.lookup(black_box(va)).unwrap_or(0));
            }
            black_box(sum)
        })
    });
    g.finish();
}

/// A frame source over a plain free list, for the mapper benches.
struct ListFrames(Vec<u64>);

impl FrameSource for ListFrames {
    fn allocate(&mut self, order: u32) -> Option<(PhysAddr, bool)> {
        assert_eq!(order, 0);
        self.0.pop().map(|p| (PhysAddr::new(p), false))
    }
    fn release(&mut self, pa: PhysAddr, _order: u32, _zeroed: bool) -> Result<(), FrameError> {
        self.0.push(pa.as_u64());
        Ok(())
    }
    fn available(&self, _order: u32) -> u64 {
        self.0.len() as u64
    }
}

fn mapper_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("mapper");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    let mut ram = vec![0u8; 4 << 20];
    let mut mem = SliceMemory::new(PhysAddr::new(RAM_BASE), &mut ram);
    let mut frames = ListFrames((0..1024u64).rev().map(|i| RAM_BASE + i * 4096).collect());
    let format = TableFormat::try_new(Granule::K4, 48, VaRange::Lower, Lpa2::Off, 48).unwrap();
    let mut mapper = Mapper::new(format, &mut mem, &mut frames).unwrap();
    let attrs =
        Attributes::AF | Attributes::SH0 | Attributes::SH1 | Attributes::AP_EL0 | Attributes::NG;
    // A neighbour keeps the tables alive, as in a process with other mappings.
    let _ = mapper
        .map(
            &mut mem,
            &mut frames,
            VirtAddr::new(VA_BASE + 0x20_0000),
            PhysAddr::new(PA_BASE),
            4096,
            attrs,
        )
        .unwrap();
    g.bench_function("map_unmap_4k", |b| {
        b.iter(|| {
            let m = mapper.map(
                &mut mem,
                &mut frames,
                VirtAddr::new(VA_BASE),
                PhysAddr::new(PA_BASE),
                4096,
                attrs,
            );
            let f = mapper.unmap(&mut mem, &mut frames, VirtAddr::new(VA_BASE), 4096);
            black_box((m.is_ok(), f.map(|f| f.is_empty())))
        })
    });
    g.bench_function("map_2m_block", |b| {
        b.iter(|| {
            let m = mapper.map(
                &mut mem,
                &mut frames,
                VirtAddr::new(VA_BASE + 0x40_0000),
                PhysAddr::new(PA_BASE),
                0x20_0000,
                attrs,
            );
            let f = mapper.unmap(
                &mut mem,
                &mut frames,
                VirtAddr::new(VA_BASE + 0x40_0000),
                0x20_0000,
            );
            black_box((m.is_ok(), f.map(|f| f.is_empty())))
        })
    });
    g.finish();
}

criterion_group!(benches, walk_group, tlb_group, mapper_group);
criterion_main!(benches);
