//! Unit tests of the frame allocator, including a model-checked random sequence test.

use std::{format, vec, vec::Vec};

use proptest::prelude::*;

use super::FrameError::*;
use super::*;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const SENTINEL: u64 = 0x5a5a_5a5a_5a5a_5a5a;

fn pa(a: u64) -> PhysAddr {
    PhysAddr::new(a)
}

fn storage(frames: usize) -> Vec<u64> {
    vec![SENTINEL; FrameAllocator::storage_words(frames) + 3]
}

/// Returns everything that a failed call must leave unchanged.
fn snapshot(a: &FrameAllocator<'_>) -> (Vec<u64>, [usize; 3]) {
    let words = [&*a.free, &*a.zero, &*a.any, &*a.full].concat();
    (words, [a.free_count, a.hint, a.run_hint])
}

/// Checks the summaries, the padding and the free count against the bitmaps.
fn check_invariants(a: &FrameAllocator<'_>) {
    let pad = ((a.base - a.origin) >> FRAME_SHIFT) as usize;
    for (w, &x) in a.free.iter().enumerate() {
        assert_eq!(a.zero[w] & !x, 0, "known-zero bit on an allocated frame");
        let summary = (bit(a.any, w), bit(a.full, w));
        assert_eq!(summary, (x != 0, x == !0), "summary of word {w}");
    }
    let count: u32 = a.free.iter().map(|x| x.count_ones()).sum();
    assert_eq!(count as usize, a.free_count);
    let outside = (0..pad).chain(pad + a.frames..a.free.len() * 64);
    assert!(outside.clone().all(|i| !bit(a.free, i)));
    let past = a.free.len()..a.any.len() * 64;
    assert!(past.clone().all(|w| !bit(a.any, w) && !bit(a.full, w)));
}

#[test]
fn constructor_validates_input() {
    let mut st = storage(16);
    let mut err = |base, size| FrameAllocator::new(pa(base), size, &mut st, Contents::Zeroed).err();
    assert_eq!(err(0x1001, 4096), Some(Misaligned { pa: pa(0x1001) }));
    assert_eq!(err(0, 4095), Some(InvalidSize { size: 4095 }));
    let top = (1 << 52) - 4096;
    assert_eq!(err(top, 8192), Some(InvalidSize { size: 8192 }));
    let needed = FrameAllocator::storage_words(600);
    assert_eq!(err(0, 600 * 4096), Some(StorageTooSmall { needed }));
    assert_eq!(FrameAllocator::storage_words(0), 18);
    assert_eq!(FrameAllocator::storage_words(1 << 18), 2 * (4104 + 65));
    assert_eq!(FrameAllocator::storage_words(usize::MAX), usize::MAX);
    // A range may end exactly at the top of the 52-bit space.
    let mut a = FrameAllocator::new(pa(top), 4096, &mut st, Contents::Unknown).unwrap();
    assert_eq!(a.alloc(), Ok(pa(top)));
    assert_eq!(a.free_run(pa(top), 1), Err(Misaligned { pa: pa(top) }));
    assert_eq!(a.free(pa(top)), Ok(()));
}

#[test]
fn runs_are_physically_aligned() {
    // [1 GiB + 4 KiB, 1 GiB + 4 MiB + 4 KiB) holds only one aligned 2 MiB block.
    let mut st = storage(1024);
    let mut a = FrameAllocator::new(pa(GIB + 4096), 4 * MIB, &mut st, Contents::Zeroed).unwrap();
    assert_eq!(a.alloc_run(9), Ok(pa(GIB + 2 * MIB)));
    assert_eq!((a.alloc_run(9), a.free_frames()), (Err(OutOfMemory), 512));
    assert_eq!(a.alloc_run(4), Ok(pa(GIB + 64 * 1024)));
    assert_eq!(a.alloc_run(2).map(|p| p.is_aligned(16 * 1024)), Ok(true));
    check_invariants(&a);

    // 64 MiB from 1 GiB + 2 MiB: the only aligned 32 MiB block is at 1 GiB + 32 MiB.
    let mut st = storage(1 << 14);
    let mut a =
        FrameAllocator::new(pa(GIB + 2 * MIB), 64 * MIB, &mut st, Contents::Unknown).unwrap();
    assert_eq!(a.alloc_run(41), Err(InvalidOrder { order: 41 }));
    assert_eq!(a.alloc_run(MAX_ORDER), Err(OutOfMemory));
    assert_eq!(a.alloc_run(13), Ok(pa(GIB + 32 * MIB)));
    assert_eq!(a.alloc_run(13), Err(OutOfMemory));
    assert_eq!(a.alloc_run(10), Ok(pa(GIB + 4 * MIB)));
    assert_eq!(a.alloc_run(6), Ok(pa(GIB + 2 * MIB)));
    a.free_run(pa(GIB + 32 * MIB), 13).unwrap();
    assert_eq!(a.alloc_run(12), Ok(pa(GIB + 16 * MIB)));
    assert_eq!(a.alloc_run(12), Ok(pa(GIB + 32 * MIB)));
    check_invariants(&a);
}

#[test]
fn errors_change_nothing() {
    let (base, end) = (GIB, GIB + 64 * 4096);
    let mut st = storage(64);
    let mut a = FrameAllocator::new(pa(base), 64 * 4096, &mut st, Contents::Zeroed).unwrap();
    let run = a.alloc_run(4).unwrap();
    let hole = pa(run.as_u64() + 5 * 4096);
    a.free(hole).unwrap();
    let before = snapshot(&a);
    let cases = [
        (
            a.free(pa(base - 4096)),
            Foreign {
                pa: pa(base - 4096),
            },
        ),
        (a.free(pa(end)), Foreign { pa: pa(end) }),
        (a.free(pa(base + 1)), Misaligned { pa: pa(base + 1) }),
        (
            a.free_run(pa(base + 4096), 1),
            Misaligned {
                pa: pa(base + 4096),
            },
        ),
        (a.free_run(run, 7), Foreign { pa: run }),
        (a.free_run(run, 41), InvalidOrder { order: 41 }),
        (a.free_run(run, 4), DoubleFree { pa: hole }),
        (
            a.free_zeroed(pa(end - 4096)),
            DoubleFree { pa: pa(end - 4096) },
        ),
        (a.alloc_run(6).map(|_| ()), OutOfMemory),
        (a.is_allocated(pa(end)).map(|_| ()), Foreign { pa: pa(end) }),
    ];
    for (got, want) in cases {
        assert_eq!(got, Err(want));
    }
    assert_eq!(snapshot(&a), before);
}

#[test]
fn zero_tracking() {
    let mut st = storage(8);
    let mut dirty = FrameAllocator::new(pa(0), 8 * 4096, &mut st, Contents::Unknown).unwrap();
    let mut calls = Vec::new();
    let p = dirty.alloc_zeroed(|p, len| calls.push((p, len))).unwrap();
    assert_eq!(calls, [(p, 4096)]);

    let mut a = FrameAllocator::new(pa(0), 8 * 4096, &mut st, Contents::Zeroed).unwrap();
    let run = a
        .alloc_run_zeroed(3, |_, _| panic!("fresh memory is zero"))
        .unwrap();
    for i in 0..8u64 {
        let (p, written) = (pa(run.as_u64() + i * 4096), matches!(i, 2 | 3 | 5));
        let _ = if written { a.free(p) } else { a.free_zeroed(p) };
        assert_eq!(a.is_known_zero(p), Ok(!written));
    }
    let mut calls = Vec::new();
    let got = a.alloc_run_zeroed(3, |p, len| calls.push((p.as_u64(), len)));
    assert_eq!(got, Ok(run));
    assert_eq!(calls, [(2 * 4096, 2 * 4096), (5 * 4096, 4096)]);
    assert_eq!(a.is_known_zero(run), Ok(false));
    a.free_run_zeroed(run, 3).unwrap();
    assert_eq!(a.alloc_zeroed(|_, _| panic!("freed as zero")), Ok(run));
}

#[test]
fn empty_range_and_display() {
    let mut st = [0u64; FrameAllocator::storage_words(0)];
    let base = GIB + 64 * 4096; // the padding fills a whole word
    let mut a = FrameAllocator::new(pa(base), 0, &mut st, Contents::Zeroed).unwrap();
    assert_eq!(
        (a.alloc(), a.alloc_run(3)),
        (Err(OutOfMemory), Err(OutOfMemory))
    );
    assert_eq!(a.free(pa(base)), Err(Foreign { pa: pa(base) }));
    let msg = format!("{}", DoubleFree { pa: pa(0x2000) });
    assert_eq!(msg, "frame 0x2000 is already free");
    let msg = format!("{}", InvalidOrder { order: 50 });
    assert_eq!(msg, "run order 50 is above 40");
}

/// One step of a random sequence; frees pick their run from a live frame, from a
/// recorded allocation, or an arbitrary address near the range.
#[derive(Clone, Debug)]
enum Op {
    Alloc {
        order: u32,
        zeroed: bool,
    },
    FreeLive {
        nth: usize,
        order: u32,
        zeroed: bool,
    },
    FreeRecorded {
        nth: usize,
        zeroed: bool,
    },
    FreeAt {
        addr: i64,
        order: u32,
        zeroed: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let order = prop_oneof![6 => Just(0u32), 4 => 1u32..=6, 2 => 7u32..=13, 1 => 38u32..=42];
    let small = prop_oneof![3 => Just(0u32), 1 => 0u32..=9];
    let addr = prop_oneof![
        (-600i64..3000).prop_map(|f| f * 4096),
        -(1 << 22)..(1i64 << 24)
    ];
    let z = any::<bool>;
    prop_oneof![
        4 => (order, z()).prop_map(|(order, zeroed)| Op::Alloc { order, zeroed }),
        3 => (any::<usize>(), small, z())
            .prop_map(|(nth, order, zeroed)| Op::FreeLive { nth, order, zeroed }),
        2 => (any::<usize>(), z()).prop_map(|(nth, zeroed)| Op::FreeRecorded { nth, zeroed }),
        1 => (addr, 0u32..=42, z())
            .prop_map(|(addr, order, zeroed)| Op::FreeAt { addr, order, zeroed }),
    ]
}

/// A model of the allocator: per frame, whether it is live and whether it reads as zero.
struct Model {
    base: u64,
    live: Vec<bool>,
    zero: Vec<bool>,
}

impl Model {
    fn end(&self) -> u64 {
        self.base + self.live.len() as u64 * 4096
    }

    fn frame(&self, p: u64) -> usize {
        ((p - self.base) / 4096) as usize
    }

    /// Returns what freeing the run at `p` must answer.
    fn expect_free(&self, p: u64, order: u32) -> Result<(), FrameError> {
        let len = 4096u64 << order.min(MAX_ORDER);
        if order > MAX_ORDER {
            Err(InvalidOrder { order })
        } else if p < self.base || p >= self.end() {
            Err(Foreign { pa: pa(p) })
        } else if !p.is_multiple_of(len) {
            Err(Misaligned { pa: pa(p) })
        } else if p + len > self.end() {
            Err(Foreign { pa: pa(p) })
        } else {
            let i = self.frame(p);
            let free = (i..i + (1 << order)).find(|&j| !self.live[j]);
            free.map_or(Ok(()), |j| {
                Err(DoubleFree {
                    pa: pa(p + (j - i) as u64 * 4096),
                })
            })
        }
    }

    /// Returns whether a free, naturally aligned run of `2^order` frames exists.
    fn has_free_run(&self, order: u32) -> bool {
        let len = 4096u128 << order;
        let first = u128::from(self.base).div_ceil(len) * len;
        let mut starts = (first..u128::from(self.end())).step_by(len as usize);
        starts.any(|p| {
            let i = self.frame(p as u64);
            p + len <= u128::from(self.end()) && !self.live[i..i + (1 << order)].contains(&true)
        })
    }
}

fn run_ops(base: u64, frames: usize, initially_zero: bool, ops: Vec<Op>) {
    let mut st = storage(frames);
    let size = frames as u64 * 4096;
    let contents = if initially_zero {
        Contents::Zeroed
    } else {
        Contents::Unknown
    };
    let mut a = FrameAllocator::new(pa(base), size, &mut st, contents).unwrap();
    let mut m = Model {
        base,
        live: vec![false; frames],
        zero: vec![initially_zero; frames],
    };
    let mut recorded: Vec<(u64, u32)> = Vec::new();
    for op in ops {
        let before = snapshot(&a);
        let (p, order, zeroed) = match op {
            Op::Alloc { order, zeroed } => {
                let mut calls = Vec::new();
                let record = |p: PhysAddr, len| calls.push((p.as_u64(), len));
                let got = match (zeroed, order) {
                    (true, 0) => a.alloc_zeroed(record),
                    (true, _) => a.alloc_run_zeroed(order, record),
                    (false, 0) => a.alloc(),
                    (false, _) => a.alloc_run(order),
                };
                let Ok(p) = got.map(PhysAddr::as_u64) else {
                    let want = if order > MAX_ORDER {
                        InvalidOrder { order }
                    } else {
                        OutOfMemory
                    };
                    assert_eq!(got, Err(want));
                    assert!(
                        order > MAX_ORDER || !m.has_free_run(order),
                        "missed a free run"
                    );
                    assert!(calls.is_empty() && snapshot(&a) == before);
                    continue;
                };
                let (i, n) = (m.frame(p), 1usize << order);
                assert!(p.is_multiple_of(4096 << order) && p + 4096 * n as u64 <= m.end());
                for (z, len) in calls {
                    assert!(z >= p && len > 0 && z + len <= p + n as u64 * 4096);
                    let (zi, ze) = (m.frame(z), m.frame(z + len));
                    m.zero[zi..ze].fill(true);
                }
                for j in i..i + n {
                    assert!(!m.live[j], "frame handed out twice");
                    assert!(!zeroed || m.zero[j], "frame handed out not zero");
                    (m.live[j], m.zero[j]) = (true, false); // the caller writes it
                }
                recorded.push((p, order));
                (None, order, zeroed)
            }
            Op::FreeLive { nth, order, zeroed } => {
                let live: Vec<usize> = (0..frames).filter(|&i| m.live[i]).collect();
                let Some(&i) = live.get(nth % live.len().max(1)) else {
                    continue;
                };
                let p = (base + i as u64 * 4096) & !((4096 << order) - 1);
                (Some(p), order, zeroed)
            }
            Op::FreeRecorded { .. } if recorded.is_empty() => continue,
            Op::FreeRecorded { nth, zeroed } => {
                let (p, order) = recorded.swap_remove(nth % recorded.len());
                (Some(p), order, zeroed)
            }
            Op::FreeAt {
                addr,
                order,
                zeroed,
            } => (Some((base as i64 + addr).max(0) as u64), order, zeroed),
        };
        if let Some(p) = p {
            let got = match (zeroed, order) {
                (true, 0) => a.free_zeroed(pa(p)),
                (true, _) => a.free_run_zeroed(pa(p), order),
                (false, 0) => a.free(pa(p)),
                (false, _) => a.free_run(pa(p), order),
            };
            assert_eq!(got, m.expect_free(p, order));
            if got.is_ok() {
                let i = m.frame(p);
                m.live[i..i + (1 << order)].fill(false);
                m.zero[i..i + (1 << order)].fill(zeroed);
            } else {
                assert_eq!(snapshot(&a), before, "a failed call changed the state");
            }
        }
        check_invariants(&a);
        assert_eq!(a.free_frames(), m.live.iter().filter(|&&l| !l).count());
        let pad = ((base - a.origin) >> FRAME_SHIFT) as usize;
        for i in 0..frames {
            assert_eq!(bit(a.free, pad + i), !m.live[i]);
            assert!(
                !bit(a.zero, pad + i) || m.zero[i],
                "frame {i} known zero but dirty"
            );
        }
    }
    for i in (0..frames).filter(|&i| m.live[i]) {
        a.free(pa(base + i as u64 * 4096)).unwrap();
    }
    assert_eq!(a.free_frames(), frames);
    let words = FrameAllocator::storage_words(frames);
    assert!(
        st[words..].iter().all(|&w| w == SENTINEL),
        "storage past the layout"
    );
}

proptest! {
    #[test]
    fn random_sequences_match_the_model(
        base in (0u64..4, 0u64..8, prop_oneof![0u64..512, (0u64..8).prop_map(|w| w * 64)])
            .prop_map(|(t, c, f)| t * 1024 * GIB + c * 2 * MIB + f * 4096),
        frames in prop_oneof![Just(0usize), 0usize..=80, 0usize..=2500],
        initially_zero in any::<bool>(),
        ops in prop::collection::vec(op(), 0..120),
    ) {
        run_ops(base, frames, initially_zero, ops);
    }
}
