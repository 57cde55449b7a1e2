//! Unit and property tests of the VMA tree against a sorted-`Vec` model.

use super::*;
use crate::linux::mm::vma::Vma;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const PG: u64 = 0x1000;
const RW: VmFlags = VmFlags::VM_DATA_FLAGS_NON_EXEC.union(VmFlags::VM_ACCOUNT);
const GP: GapParams = GapParams {
    mmap_min_addr: 0x2000,
    stack_guard_gap: 16 * PG,
    page_size: PG,
};

fn anon(start: u64, end: u64) -> Vma {
    Vma::new_anon(start, end, RW, 12).unwrap()
}

fn collect(t: &VmaTree<'_>) -> Vec<Vma> {
    t.iter().copied().collect()
}

#[test]
fn empty_tree() {
    let mut slots = [VmaSlot::EMPTY; 4];
    let t = VmaTree::new(&mut slots);
    assert!(t.is_empty());
    assert_eq!(t.capacity(), 4);
    assert_eq!(t.find_vma(0), None);
    assert_eq!(t.first(), None);
    assert_eq!(t.last(), None);
    assert_eq!(t.iter().count(), 0);
    t.validate().unwrap();
    let info = VmUnmappedAreaInfo {
        length: PG,
        low_limit: 0,
        high_limit: 0x10_0000,
        ..Default::default()
    };
    assert_eq!(t.unmapped_area_topdown(&info, &GP), Ok(0x10_0000 - PG));
    assert_eq!(t.unmapped_area(&info, &GP), Ok(0x2000));
    let mut none: [VmaSlot; 0] = [];
    let mut t0 = VmaTree::new(&mut none);
    assert_eq!(t0.insert(anon(0x1000, 0x2000)), Err(VmaTreeError::NoSlots));
    // Without a slot there is no root node either: every call still answers.
    let absent = Err(VmaTreeError::NotFound { addr: 0x1000 });
    assert_eq!(t0.split(0x1000, 12), absent);
    assert_eq!(t0.update(0x1000, |_| ()), absent);
    assert_eq!(t0.remove(0x1000).map(|_| ()), absent);
    assert_eq!(t0.find_vma_prev(0x1000), (None, None));
    assert_eq!(t0.unmapped_area(&info, &GP), Ok(0x2000));
    t0.validate().unwrap();
}

#[test]
fn insert_find_remove_split() {
    let mut slots = vec![VmaSlot::EMPTY; 8];
    let mut t = VmaTree::new(&mut slots);
    t.insert(anon(0x10000, 0x12000)).unwrap();
    t.insert(anon(0x20000, 0x21000)).unwrap();
    t.insert(anon(0x5000, 0x6000)).unwrap();
    assert_eq!(
        t.insert(anon(0x11000, 0x13000)),
        Err(VmaTreeError::Overlap {
            start: 0x10000,
            end: 0x12000
        })
    );
    assert_eq!(t.len(), 3);
    assert_eq!(t.find_vma(0x12000).map(|v| v.vm_start), Some(0x20000));
    assert_eq!(t.find_vma(0x11fff).map(|v| v.vm_start), Some(0x10000));
    assert_eq!(t.vma_lookup(0x13000), None);
    let (v, p) = t.find_vma_prev(0x13000);
    assert_eq!(
        (v.unwrap().vm_start, p.unwrap().vm_start),
        (0x20000, 0x10000)
    );
    let (v, p) = t.find_vma_prev(0x30000);
    assert_eq!((v, p.unwrap().vm_start), (None, 0x20000));
    t.split(0x11000, 12).unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(t.get(0x11000).unwrap().vm_pgoff, 0x11);
    assert_eq!(
        t.split(0x11000, 12),
        Err(VmaTreeError::Vma(VmaError::SplitOutside { addr: 0x11000 }))
    );
    assert_eq!(
        t.split(0x30000, 12),
        Err(VmaTreeError::NotFound { addr: 0x30000 })
    );
    assert_eq!(t.remove(0x10000).unwrap().vm_end, 0x11000);
    assert_eq!(
        t.remove(0x10000),
        Err(VmaTreeError::NotFound { addr: 0x10000 })
    );
    t.update(0x11000, |v| v.vm_start = 0x7000).unwrap();
    assert_eq!(t.get(0x7000).unwrap().vm_end, 0x12000);
    assert!(matches!(
        t.update(0x7000, |v| v.vm_start = 0x5800),
        Err(VmaTreeError::Overlap { .. })
    ));
    assert!(matches!(
        t.update(0x7000, |v| v.vm_end = 0x7000),
        Err(VmaTreeError::InvalidRange { .. })
    ));
    t.validate().unwrap();
    let starts: Vec<u64> = t.iter().map(|v| v.vm_start).collect();
    assert_eq!(starts, [0x5000, 0x7000, 0x20000]);
    let from: Vec<u64> = t.iter_from(0x6000).map(|v| v.vm_start).collect();
    assert_eq!(from, [0x7000, 0x20000]);
}

#[test]
fn full_tree_and_split_failure_leave_tree_unchanged() {
    let mut slots = [VmaSlot::EMPTY; 2];
    let mut t = VmaTree::new(&mut slots);
    t.insert(anon(0x1000, 0x4000)).unwrap();
    t.insert(anon(0x8000, 0x9000)).unwrap();
    let before = collect(&t);
    assert_eq!(t.insert(anon(0x5000, 0x6000)), Err(VmaTreeError::NoSlots));
    assert_eq!(t.split(0x2000, 12), Err(VmaTreeError::NoSlots));
    assert_eq!(collect(&t), before);
    t.validate().unwrap();
}

/// §15 TV7 shape: the first free page below a grows-down VMA sits one guard gap lower.
#[test]
fn topdown_respects_stack_guard_gap() {
    let mut slots = [VmaSlot::EMPTY; 8];
    let mut t = VmaTree::new(&mut slots);
    let p = GapParams {
        mmap_min_addr: 0x10000,
        stack_guard_gap: 0x10_0000,
        page_size: PG,
    };
    let base = 0x7fff_f7ff_7000u64; // [vvar] in TV0
    t.insert(anon(base, 0x7fff_f7ff_f000)).unwrap();
    let mut g = anon(0x7fff_f7ff_6000, base);
    g.vm_flags |= VmFlags::VM_GROWSDOWN;
    t.insert(g).unwrap();
    let info = VmUnmappedAreaInfo {
        length: PG,
        low_limit: PG,
        high_limit: 0x7fff_f7ff_f000,
        ..Default::default()
    };
    assert_eq!(t.unmapped_area_topdown(&info, &p), Ok(0x7fff_f7ef_5000));
    // Bottom-up from just below g: skips above g.
    let info2 = VmUnmappedAreaInfo {
        low_limit: 0x7fff_f7ff_0000,
        high_limit: 0x8000_0000_0000,
        ..info
    };
    assert_eq!(t.unmapped_area(&info2, &p), Ok(0x7fff_f7ff_f000));
}

/// §1.6 verified THP sequence: 2 MiB aligned top-down placements via align_mask.
#[test]
fn topdown_alignment() {
    let mut slots = [VmaSlot::EMPTY; 8];
    let mut t = VmaTree::new(&mut slots);
    t.insert(anon(0x7fff_f7ad_2000, 0x7fff_f800_0000)).unwrap();
    let pmd = 0x20_0000u64;
    let info = VmUnmappedAreaInfo {
        length: pmd,
        low_limit: 0x10000,
        high_limit: 0x7fff_f7ff_f000,
        align_mask: pmd - 1,
        align_offset: 0,
        start_gap: 0,
    };
    assert_eq!(t.unmapped_area_topdown(&info, &GP), Ok(0x7fff_f780_0000));
    let bu = VmUnmappedAreaInfo {
        low_limit: 0x2aaa_aaaa_b000,
        ..info
    };
    assert_eq!(t.unmapped_area(&bu, &GP), Ok(0x2aaa_aac0_0000));
    let huge = VmUnmappedAreaInfo {
        length: u64::MAX,
        ..info
    };
    assert_eq!(
        t.unmapped_area_topdown(&huge, &GP),
        Err(VmaTreeError::NoSpace)
    );
}

#[test]
fn many_vmas_stay_balanced() {
    let n = 5000u64;
    let mut slots = vec![VmaSlot::EMPTY; n as usize];
    let mut t = VmaTree::new(&mut slots);
    for i in 0..n {
        // interleave insertion order
        let k = (i * 7919) % n;
        t.insert(anon(k * 3 * PG, k * 3 * PG + PG)).unwrap();
    }
    t.validate().unwrap();
    assert_eq!(t.len(), n as usize);
    for k in (0..n).step_by(2) {
        t.remove(k * 3 * PG).unwrap();
    }
    t.validate().unwrap();
    assert_eq!(t.iter().count(), (n / 2) as usize);
}

// ----- model --------------------------------------------------------------------------

fn model_gaps(v: &[Vma]) -> Vec<(u64, u64, Option<usize>)> {
    let mut out = Vec::new();
    let mut pe = 0;
    for (i, x) in v.iter().enumerate() {
        out.push((pe, x.vm_start, Some(i)));
        pe = x.vm_end;
    }
    out.push((pe, u64::MAX, None));
    out
}

fn model_len(info: &VmUnmappedAreaInfo) -> Option<u64> {
    if info.length == 0 {
        return None;
    }
    info.length
        .checked_add(info.align_mask)?
        .checked_add(info.start_gap)
}

fn model_topdown(v: &[Vma], info: &VmUnmappedAreaInfo, p: &GapParams) -> Option<u64> {
    let length = model_len(info)?;
    let low = info.low_limit.max(p.mmap_min_addr);
    let mut high = info.high_limit;
    loop {
        if low >= high {
            return None;
        }
        let (_gs, ge, nxt) = model_gaps(v)
            .into_iter()
            .rev()
            .find(|&(gs, ge, _)| ge.min(high).saturating_sub(gs.max(low)) >= length)?;
        let gap_end = ge.min(high);
        let mut gap = gap_end - info.length;
        gap -= gap.wrapping_sub(info.align_offset) & info.align_mask;
        if let Some(i) = nxt {
            let x = &v[i];
            if x.vm_flags.intersects(VmFlags::VM_STARTGAP_FLAGS) {
                let sg = x.vm_start_gap(p.stack_guard_gap, p.page_size);
                if sg < gap_end {
                    high = sg;
                    continue;
                }
            }
        }
        return Some(gap);
    }
}

fn model_bottomup(v: &[Vma], info: &VmUnmappedAreaInfo, p: &GapParams) -> Option<u64> {
    let length = model_len(info)?;
    let mut low = info.low_limit.max(p.mmap_min_addr);
    let high = info.high_limit;
    loop {
        if low >= high {
            return None;
        }
        let (gs, _ge, nxt) = model_gaps(v)
            .into_iter()
            .find(|&(gs, ge, _)| ge.min(high).saturating_sub(gs.max(low)) >= length)?;
        let mut gap = gs.max(low) + info.start_gap;
        gap += info.align_offset.wrapping_sub(gap) & info.align_mask;
        if let Some(i) = nxt {
            let x = &v[i];
            if x.vm_flags.intersects(VmFlags::VM_STARTGAP_FLAGS) {
                let sg = x.vm_start_gap(p.stack_guard_gap, p.page_size);
                if (sg as u128) + 1 < gap as u128 + length as u128 {
                    low = x.vm_end;
                    continue;
                }
            }
        }
        return Some(gap);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        pg: u64,
        npg: u64,
        gd: bool,
    },
    Remove {
        pick: usize,
    },
    RemoveAbsent {
        pg: u64,
    },
    Split {
        pick: usize,
        off: u64,
    },
    Update {
        pick: usize,
        ds: i64,
        de: i64,
    },
    TopDown {
        npg: u64,
        lo: u64,
        hi: u64,
        align: u8,
    },
    BottomUp {
        npg: u64,
        lo: u64,
        hi: u64,
        align: u8,
    },
    Find {
        pg: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..400, 1u64..24, proptest::bool::weighted(0.2))
            .prop_map(|(pg, npg, gd)| Op::Insert { pg, npg, gd }),
        2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        1 => (0u64..420).prop_map(|pg| Op::RemoveAbsent { pg }),
        2 => (any::<usize>(), 0u64..24).prop_map(|(pick, off)| Op::Split { pick, off }),
        2 => (any::<usize>(), -4i64..5, -4i64..5).prop_map(|(pick, ds, de)| Op::Update { pick, ds, de }),
        3 => (1u64..40, 0u64..450, 0u64..450, 0u8..3)
            .prop_map(|(npg, lo, hi, align)| Op::TopDown { npg, lo, hi, align }),
        3 => (1u64..40, 0u64..450, 0u64..450, 0u8..3)
            .prop_map(|(npg, lo, hi, align)| Op::BottomUp { npg, lo, hi, align }),
        3 => (0u64..450).prop_map(|pg| Op::Find { pg }),
    ]
}

fn info_of(npg: u64, lo: u64, hi: u64, align: u8) -> VmUnmappedAreaInfo {
    let align_mask = match align {
        0 => 0,
        1 => 4 * PG - 1,
        _ => 16 * PG - 1,
    };
    VmUnmappedAreaInfo {
        length: npg * PG,
        low_limit: lo * PG,
        high_limit: if hi >= 440 { 0x7fff_f000_0000 } else { hi * PG },
        align_mask,
        align_offset: 0,
        start_gap: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tree_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut slots = vec![VmaSlot::EMPTY; 24];
        let mut t = VmaTree::new(&mut slots);
        let mut model: Vec<Vma> = Vec::new();
        for o in ops {
            let before = collect(&t);
            let ok = match o {
                Op::Insert { pg, npg, gd } => {
                    let mut v = anon(pg * PG, (pg + npg) * PG);
                    if gd { v.vm_flags |= VmFlags::VM_GROWSDOWN; }
                    let overlap = model.iter().any(|m| m.vm_start < v.vm_end && v.vm_start < m.vm_end);
                    let r = t.insert(v);
                    if overlap {
                        prop_assert!(matches!(r, Err(VmaTreeError::Overlap { .. })), "expected overlap: {:?}", r);
                    } else if model.len() == 24 {
                        prop_assert_eq!(r, Err(VmaTreeError::NoSlots));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        model.push(v);
                        model.sort_by_key(|m| m.vm_start);
                    }
                    r.is_ok()
                }
                Op::Remove { pick } => {
                    if model.is_empty() { continue; }
                    let i = pick % model.len();
                    let m = model.remove(i);
                    prop_assert_eq!(t.remove(m.vm_start), Ok(m));
                    true
                }
                Op::RemoveAbsent { pg } => {
                    let a = pg * PG;
                    if model.iter().any(|m| m.vm_start == a) { continue; }
                    prop_assert_eq!(t.remove(a), Err(VmaTreeError::NotFound { addr: a }));
                    false
                }
                Op::Split { pick, off } => {
                    if model.is_empty() { continue; }
                    let addr = model[pick % model.len()].vm_start + off * PG;
                    let r = t.split(addr, 12);
                    match model.iter().position(|m| m.contains(addr)) {
                        None => prop_assert_eq!(r, Err(VmaTreeError::NotFound { addr })),
                        Some(i) => match model[i].split_at(addr, 12) {
                            Ok((lo, hi)) if model.len() < 24 => {
                                prop_assert_eq!(r, Ok(()));
                                model[i] = lo;
                                model.insert(i + 1, hi);
                            }
                            Ok(_) => prop_assert_eq!(r, Err(VmaTreeError::NoSlots)),
                            Err(e) => prop_assert_eq!(r, Err(VmaTreeError::Vma(e))),
                        },
                    }
                    r.is_ok()
                }
                Op::Update { pick, ds, de } => {
                    if model.is_empty() { continue; }
                    let i = pick % model.len();
                    let m = model[i];
                    let ns = (m.vm_start as i64 + ds * PG as i64).max(0) as u64;
                    let ne = (m.vm_end as i64 + de * PG as i64).max(0) as u64;
                    let r = t.update(m.vm_start, |v| { v.vm_start = ns; v.vm_end = ne; });
                    let lo_ok = i == 0 || model[i - 1].vm_end <= ns;
                    let hi_ok = i + 1 == model.len() || ne <= model[i + 1].vm_start;
                    if ns < ne && lo_ok && hi_ok {
                        prop_assert_eq!(r, Ok(()));
                        model[i].vm_start = ns;
                        model[i].vm_end = ne;
                    } else {
                        prop_assert!(r.is_err());
                    }
                    r.is_ok()
                }
                Op::TopDown { npg, lo, hi, align } => {
                    let info = info_of(npg, lo, hi, align);
                    let mut at = Located::new();
                    let got = t.unmapped_area_topdown_at(&info, &GP, Some(&mut at)).ok();
                    prop_assert_eq!(got, model_topdown(&model, &info, &GP));
                    prop_assert_eq!(got, t.unmapped_area_topdown(&info, &GP).ok());
                    if let Some(a) = got {
                        prop_assert!(t.find_vma_intersection(a, a + info.length).is_none());
                        prop_assert!(a + info.length <= info.high_limit);
                        check_gap_place(&t, &at, a, &model)?;
                    }
                    false
                }
                Op::BottomUp { npg, lo, hi, align } => {
                    let info = info_of(npg, lo, hi, align);
                    let mut at = Located::new();
                    let got = t.unmapped_area_at(&info, &GP, Some(&mut at)).ok();
                    prop_assert_eq!(got, model_bottomup(&model, &info, &GP));
                    prop_assert_eq!(got, t.unmapped_area(&info, &GP).ok());
                    if let Some(a) = got {
                        prop_assert!(t.find_vma_intersection(a, a + info.length).is_none());
                        check_gap_place(&t, &at, a, &model)?;
                    }
                    false
                }
                Op::Find { pg } => {
                    let a = pg * PG;
                    let want = model.iter().find(|m| m.vm_end > a);
                    prop_assert_eq!(t.find_vma(a), want);
                    let containing = model.iter().find(|m| m.contains(a)).copied();
                    prop_assert_eq!(t.vma_lookup_hinted(a).copied(), containing);
                    let from: Vec<Vma> = t.iter_from(a).copied().collect();
                    let want_from: Vec<Vma> = model.iter().filter(|m| m.vm_end > a).copied().collect();
                    prop_assert_eq!(from, want_from);
                    let next = model.iter().position(|m| m.vm_end > a);
                    let prev = match next {
                        Some(0) => None,
                        Some(k) => model.get(k - 1),
                        None => model.last(),
                    };
                    prop_assert_eq!(t.find_vma_prev(a), (want, prev));
                    prop_assert_eq!(t.get(a), model.iter().find(|m| m.vm_start == a));
                    prop_assert_eq!((t.first(), t.last()), (model.first(), model.last()));
                    // The neighbours a located place reports.
                    let at = t.locate(a).unwrap();
                    let want_at = [
                        model.iter().rev().find(|m| m.vm_start < a),
                        model.iter().find(|m| m.vm_start == a),
                        model.iter().find(|m| m.vm_start > a),
                    ];
                    prop_assert_eq!(t.located(&at), want_at);
                    false
                }
            };
            prop_assert!(t.validate().is_ok());
            // A hint that holds names a VMA in the tree (no freed slot).
            if let Some(h) = t.hint() {
                prop_assert!(model.contains(h), "stale hint {:?}", h);
            }
            let now = collect(&t);
            prop_assert_eq!(&now, &model);
            if !ok {
                prop_assert_eq!(now, before);
            }
            prop_assert_eq!(t.len(), model.len());
        }
    }
}

/// Checks the place a gap search that found `a` recorded: below a VMA it is the place a
/// descent to `a` records; above the last VMA (or with no VMA) it records none.
fn check_gap_place(
    t: &VmaTree<'_>,
    at: &Located,
    a: u64,
    model: &[Vma],
) -> Result<(), TestCaseError> {
    let fresh = t.locate(a).unwrap();
    if model.iter().any(|m| m.vm_start > a) {
        prop_assert!(
            at.is_place_of(a, t.generation, &fresh),
            "gap place of {:#x}",
            a
        );
    } else {
        prop_assert!(!at.is_current(a, t.generation), "trailing gap place");
    }
    Ok(())
}

#[test]
fn a_gap_search_records_the_place_an_insert_then_uses() {
    let mut slots = [VmaSlot::EMPTY; 64];
    let mut t = VmaTree::new(&mut slots);
    // Enough VMAs for a tree of several levels (the unit tests' nodes hold 4 entries),
    // with one-page holes between them and a wider one low down.
    let mut s = 0x100u64;
    for i in 0..40u64 {
        let len = if i == 3 { 0x10 } else { 0x2 };
        t.insert(anon(s << 12, (s + 1) << 12)).unwrap();
        s += len;
    }
    assert!(t.height >= 3);
    let info = VmUnmappedAreaInfo {
        length: 4 * PG,
        low_limit: 0x101 << 12,
        high_limit: s << 12,
        ..Default::default()
    };
    for top in [true, false] {
        let mut at = Located::new();
        let a = if top {
            t.unmapped_area_topdown_at(&info, &GP, Some(&mut at))
        } else {
            t.unmapped_area_at(&info, &GP, Some(&mut at))
        }
        .unwrap();
        let want = if top { 0x112 } else { 0x107 };
        assert_eq!(a >> 12, want, "top-down {top}");
        assert!(at.is_place_of(a, t.generation, &t.locate(a).unwrap()));
        assert_eq!(
            t.located(&at).map(|v| v.map(|v| v.vm_start >> 12)),
            [Some(0x106), None, Some(0x116)]
        );
        // The insert through the recorded place, then the tree as a fresh one would be.
        let g = t.generation;
        t.insert_located(anon(a, a + 4 * PG), &mut at).unwrap();
        assert_eq!(t.generation, g.wrapping_add(1));
        t.validate().unwrap();
        assert_eq!(t.get(a).map(|v| v.vm_end), Some(a + 4 * PG));
        t.remove(a).unwrap();
    }
    // Above the last VMA: no place recorded, and the insert descends.
    let info = VmUnmappedAreaInfo {
        high_limit: (s + 0x100) << 12,
        ..info
    };
    let mut at = Located::new();
    let a = t
        .unmapped_area_topdown_at(&info, &GP, Some(&mut at))
        .unwrap();
    assert!(a >= s << 12);
    assert!(!at.is_current(a, t.generation));
    t.insert_located(anon(a, a + 4 * PG), &mut at).unwrap();
    t.validate().unwrap();
    assert_eq!(t.get(a).map(|v| v.vm_end), Some(a + 4 * PG));
}

#[test]
fn a_located_place_is_found_again_after_a_change() {
    let mut slots = [VmaSlot::EMPTY; 16];
    let mut t = VmaTree::new(&mut slots);
    for s in [0x10u64, 0x30, 0x50, 0x70] {
        t.insert(anon(s << 12, (s + 0x10) << 12)).unwrap();
    }
    // Located, then the tree changes under it: the insert and the remove descend again.
    let mut at = t.locate(0x20 << 12).unwrap();
    assert_eq!(
        t.located(&at).map(|v| v.map(|v| v.vm_start >> 12)),
        [Some(0x10), None, Some(0x30)]
    );
    t.remove(0x30 << 12).unwrap();
    t.insert(anon(0x28 << 12, 0x40 << 12)).unwrap();
    assert!(matches!(
        t.insert_located(anon(0x20 << 12, 0x30 << 12), &mut at),
        Err(VmaTreeError::Overlap { start, .. }) if start == 0x28 << 12
    ));
    let mut at = t.locate(0x50 << 12).unwrap();
    t.insert(anon(0x60 << 12, 0x70 << 12)).unwrap();
    assert!(t.vma_lookup(0x50 << 12).is_some());
    assert_eq!(t.remove_located(&mut at), Ok(()));
    assert!(t.vma_lookup(0x50 << 12).is_none());
    let mut at = t.locate(0x40 << 12).unwrap();
    t.update(0x28 << 12, |v| v.vm_end = 0x44 << 12).unwrap();
    assert!(t
        .insert_located(anon(0x40 << 12, 0x48 << 12), &mut at)
        .is_err());
    t.validate().unwrap();
    let starts: Vec<u64> = collect(&t).iter().map(|v| v.vm_start >> 12).collect();
    assert_eq!(starts, [0x10, 0x28, 0x60, 0x70]);
}

#[test]
fn slot_size() {
    std::println!(
        "VmaSlot {} Vma {}",
        core::mem::size_of::<VmaSlot>(),
        core::mem::size_of::<Vma>()
    );
}
