//! The VMA tree with its real 16-entry nodes (the unit tests build 4-entry ones) against a
//! sorted-vector model, at over 3,000 VMAs: inserts, removes, splits, bound changes,
//! lookups and both free-area searches, with the structure checked as it grows and shrinks.

use pagesim::linux::mm::vma::Vma;
use pagesim::linux::mm::vma_tree::{GapParams, VmUnmappedAreaInfo, VmaSlot, VmaTree, VmaTreeError};
use pagesim::linux::mm::vmflags::VmFlags;

const PG: u64 = 0x1000;
const SPAN: u64 = 40_000;
const GP: GapParams = GapParams {
    mmap_min_addr: PG,
    stack_guard_gap: 0,
    page_size: PG,
};

/// xorshift64*: a fixed seed, so that a failure repeats.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn anon(start: u64, end: u64) -> Vma {
    Vma::new_anon(start, end, VmFlags::VM_READ | VmFlags::VM_WRITE, 12).unwrap()
}

/// The highest (or lowest) start for `len` bytes in `[low, high)`, from the model's gaps.
fn model_area(model: &[Vma], len: u64, low: u64, high: u64, top: bool) -> Option<u64> {
    let mut gaps = Vec::new();
    let mut prev = 0;
    for v in model {
        gaps.push((prev, v.vm_start));
        prev = v.vm_end;
    }
    gaps.push((prev, u64::MAX));
    let fits = |&(gs, ge): &(u64, u64)| ge.min(high).saturating_sub(gs.max(low)) >= len;
    if top {
        gaps.iter()
            .rev()
            .find(|g| fits(g))
            .map(|&(_, ge)| ge.min(high) - len)
    } else {
        gaps.iter().find(|g| fits(g)).map(|&(gs, _)| gs.max(low))
    }
}

#[test]
fn thousands_of_vmas_match_a_model() {
    let mut slots = vec![VmaSlot::EMPTY; 6000];
    let mut t = VmaTree::new(&mut slots);
    let mut model: Vec<Vma> = Vec::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut peak = 0;
    for step in 0..60_000u32 {
        // Grow to about 3,000 VMAs, then shrink back, then grow again.
        let phase = (step / 15_000) % 2 == 0;
        let pos = |model: &[Vma], a: u64| model.partition_point(|m| m.vm_start < a);
        match rng.below(10) {
            0..=3 if phase || rng.below(3) == 0 => {
                let s = rng.below(SPAN) * PG;
                let v = anon(s, s + (1 + rng.below(3)) * PG);
                let i = pos(&model, s);
                let clear = (i == 0 || model[i - 1].vm_end <= v.vm_start)
                    && model.get(i).is_none_or(|n| v.vm_end <= n.vm_start);
                match t.insert(v) {
                    Ok(()) => {
                        assert!(clear);
                        model.insert(i, v);
                    }
                    Err(VmaTreeError::Overlap { .. }) => assert!(!clear),
                    Err(e) => panic!("insert {v:?}: {e}"),
                }
            }
            0..=5 if !model.is_empty() => {
                let i = rng.below(model.len() as u64) as usize;
                let v = model.remove(i);
                assert_eq!(t.remove(v.vm_start), Ok(v));
            }
            6 if !model.is_empty() => {
                let i = rng.below(model.len() as u64) as usize;
                let v = model[i];
                if v.vm_end - v.vm_start > PG {
                    let at = v.vm_start + PG;
                    t.split(at, 12).unwrap();
                    model[i].vm_end = at;
                    model.insert(i + 1, anon(at, v.vm_end));
                }
            }
            7 if !model.is_empty() => {
                // Grow or shrink an end, within the neighbours.
                let i = rng.below(model.len() as u64) as usize;
                let v = model[i];
                let limit = model.get(i + 1).map_or(v.vm_end + PG, |n| n.vm_start);
                let end = if rng.below(2) == 0 && limit > v.vm_end {
                    v.vm_end + PG
                } else if v.vm_end - v.vm_start > PG {
                    v.vm_end - PG
                } else {
                    v.vm_end
                };
                t.update(v.vm_start, |x| x.vm_end = end).unwrap();
                model[i].vm_end = end;
            }
            _ => {
                let a = rng.below(SPAN + 10) * PG;
                let i = model.partition_point(|m| m.vm_end <= a);
                assert_eq!(t.find_vma(a), model.get(i));
                let len = (1 + rng.below(8)) * PG;
                let (low, high) = (rng.below(SPAN / 2) * PG, (SPAN / 2 + rng.below(SPAN)) * PG);
                let info = VmUnmappedAreaInfo {
                    length: len,
                    low_limit: low,
                    high_limit: high,
                    ..VmUnmappedAreaInfo::default()
                };
                let low = low.max(GP.mmap_min_addr);
                assert_eq!(
                    t.unmapped_area_topdown(&info, &GP).ok(),
                    model_area(&model, len, low, high, true)
                );
                assert_eq!(
                    t.unmapped_area(&info, &GP).ok(),
                    model_area(&model, len, low, high, false)
                );
            }
        }
        peak = peak.max(model.len());
        if step % 2_000 == 0 {
            t.validate().unwrap();
            assert!(t.iter().eq(model.iter()));
        }
    }
    t.validate().unwrap();
    assert!(t.iter().eq(model.iter()));
    assert_eq!(t.len(), model.len());
    // Deep enough to have split and merged nodes three levels up.
    assert!(peak > 3_000, "peak {peak}");
}

/// A tree holds as many VMAs as it has slots, whatever the order they come in.
#[test]
fn every_slot_holds_a_vma() {
    for n in [1usize, 2, 15, 16, 17, 255, 256, 257, 4099] {
        for order in 0..3u64 {
            let mut slots = vec![VmaSlot::EMPTY; n];
            let mut t = VmaTree::new(&mut slots);
            for k in 0..n as u64 {
                let i = match order {
                    0 => k,
                    1 => n as u64 - 1 - k,
                    _ => (k * 7919) % n as u64,
                };
                t.insert(anon(2 * i * PG, (2 * i + 1) * PG)).unwrap();
            }
            assert_eq!(t.len(), n);
            assert_eq!(
                t.insert(anon(2 * n as u64 * PG, (2 * n as u64 + 1) * PG)),
                Err(VmaTreeError::NoSlots)
            );
            t.validate().unwrap();
        }
    }
}
