//! The crate's own property tests through the exported strategies (feature `proptest`).
#![cfg(feature = "proptest")]

use pagesim::arch::{walk, Access, Cpu, El, Regime};
use pagesim::linux::mm::{ImportHints, LayoutParams};
use pagesim::linux::storage::{ProcessStorage, Start};
use pagesim::mmu::Mmu;
use pagesim::strategies::{access, linux_calls, registers, table_image, ImageShape};
use pagesim::VirtAddr;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn registers_strategy_gives_valid_regimes(regs in registers()) {
        prop_assert!(Regime::try_new(regs, Cpu::MAX).is_ok());
    }

    #[test]
    fn images_translate_their_mappings(image in table_image(ImageShape::default()), offs in proptest::collection::vec(any::<u64>(), 4)) {
        let regime = image.regime();
        let mut mem = image.memory.clone();
        for m in &image.mappings {
            for &o in &offs {
                let off = o % m.len;
                let t = walk(&regime, &mut mem, VirtAddr::new(m.va.as_u64() + off), Access::read(El::El1)).unwrap();
                prop_assert_eq!(t.pa.as_u64(), m.pa.as_u64() + off);
            }
        }
    }

    #[test]
    fn tlb_matches_walk_on_garbage_images(
        image in table_image(ImageShape { garbage_words: 6, ..ImageShape::default() }),
        accesses in proptest::collection::vec((access(), 0usize..8, any::<u64>()), 32),
    ) {
        let regime = image.regime();
        let mut fresh = image.memory.clone();
        let mut mmu: Mmu<_, 64> = Mmu::new(image.registers, Cpu::MAX, image.memory.clone());
        for (a, which, off) in accesses {
            let va = match image.mappings.get(which % image.mappings.len().max(1)) {
                Some(m) => m.va.as_u64() + off % (m.len * 2),
                None => off,
            };
            // A static image with HA/HD off: the TLB must give what a fresh walk gives.
            let want = walk(&regime, &mut fresh, VirtAddr::new(va), a).map(|t| t.pa);
            let got = mmu.translate(VirtAddr::new(va), a);
            prop_assert_eq!(got, want, "va {:#x} {:?}", va, a);
        }
    }

    #[test]
    fn linux_call_sequences_keep_the_map_well_formed(calls in linux_calls(20)) {
        let params = LayoutParams::arm64_6_12();
        let mut storage = ProcessStorage::new(&params, 32 << 20).with_processes(3);
        let mut sys = storage.build_system(params, Start::Fresh, ImportHints::default()).unwrap();
        let numbered: Vec<_> = calls.into_iter().enumerate().map(|(i, c)| (i + 1, c)).collect();
        let mut out = String::new();
        let _ = pagesim::linux::script::run::run(&mut sys, &numbered, true, &mut out);
        sys.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let p = sys.process();
        // The maps text parses back into the same number of sorted, disjoint VMAs.
        let text = p.maps_string();
        let mut slots = vec![pagesim::linux::mm::vma_tree::VmaSlot::EMPTY; 4096];
        let mut tree = pagesim::linux::mm::vma_tree::VmaTree::new(&mut slots);
        pagesim::linux::mm::maps_text::import_maps(&text, &params.maps, &mut tree).unwrap();
        prop_assert_eq!(tree.len(), p.space().iter().count());
        let v: Vec<_> = p.space().iter().map(|v| (v.vm_start, v.vm_end)).collect();
        prop_assert!(v.windows(2).all(|w| w[0].1 <= w[1].0));
    }
}
