//! A bitmap allocator for the 4 KiB frames of one physical range, with zero tracking.
//!
//! [`FrameAllocator`] hands out single frames and naturally aligned power-of-two runs of
//! frames (order 9 = a 2 MiB block, orders 2 and 4 = 16 KiB and 64 KiB granule pages). It
//! owns no memory: its metadata lives in a `&mut [u64]` the caller provides, sized by
//! [`FrameAllocator::storage_words`], so any number of allocators can coexist.
//!
//! # Storage layout
//!
//! Bit `i` of the bitmaps stands for the frame at `origin + i * 4 KiB`, where `origin` is
//! `base` rounded down to 2 MiB, so that a run is physically aligned exactly when its bit
//! index is. The frames before `base` and after the end of the range are padding that is
//! never free: fewer than 512 before `base`, so [`FrameAllocator::storage_words`] counts
//! `bits = frames + 511`. With `W = ceil(bits / 64)` and `S = ceil(W / 64)` the storage
//! holds, in order:
//!
//! | words | name   | bit set means                                      |
//! |-------|--------|----------------------------------------------------|
//! | `W`   | `free` | the frame is free                                  |
//! | `W`   | `zero` | the frame is free and known to read as zero        |
//! | `S`   | `any`  | word `w` of `free` has a free frame (`!= 0`)       |
//! | `S`   | `full` | word `w` of `free` is wholly free (`== !0`)        |
//!
//! Single frames and runs of up to 64 frames are found through `any`, with bit tricks
//! inside one `free` word; runs of 64 to 512 frames with the same tricks on `full` words;
//! larger runs by a scan over `full` for enough consecutive wholly free words. Two rotating
//! hints (the last word where frames came or went, the last `full` word where runs did)
//! make the common case a single word test; a miss scans on from the hint, wrapping
//! around, at worst over all of `any` (or `full`) and, for runs of 2 to 32 frames in badly
//! fragmented memory, over every word with a free frame. Words of storage past the layout
//! are left untouched.

use core::fmt;

use crate::addr::PhysAddr;

/// The log2 of [`FRAME_SIZE`].
pub const FRAME_SHIFT: u32 = 12;
/// The size of a frame in bytes: 4 KiB.
pub const FRAME_SIZE: u64 = 1 << FRAME_SHIFT;
/// The largest run order accepted: 2^40 frames span the whole 52-bit physical space.
pub const MAX_ORDER: u32 = PhysAddr::MAX_BITS - FRAME_SHIFT;

/// Frames per 2 MiB chunk: the bitmap origin is aligned to this.
const CHUNK_FRAMES: usize = 512;
/// Masks of the bit positions where a naturally aligned run of `2^k` bits may start.
const ALIGN: [u64; 7] = [
    !0,
    0x5555_5555_5555_5555,
    0x1111_1111_1111_1111,
    0x0101_0101_0101_0101,
    0x0001_0001_0001_0001,
    0x0000_0001_0000_0001,
    1,
];

/// What the frames of a new [`FrameAllocator`] hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Contents {
    /// Every frame reads as zero (fresh memory): the first allocations need no zeroing.
    Zeroed,
    /// The frames may hold anything: they are zeroed when first handed out zeroed.
    Unknown,
}

/// Returned by a [`FrameAllocator`] call that could not be carried out; the call changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// No free frame, or no free naturally aligned run of the requested order.
    OutOfMemory,
    /// The frame at `pa` (the first such one of a run) is already free.
    DoubleFree {
        /// The free frame.
        pa: PhysAddr,
    },
    /// `pa` is outside the managed range, or the run starting at `pa` extends past its end.
    Foreign {
        /// The address passed in.
        pa: PhysAddr,
    },
    /// `pa` is not aligned to the frame size or to the size of the run.
    Misaligned {
        /// The address passed in.
        pa: PhysAddr,
    },
    /// The run order is above [`MAX_ORDER`].
    InvalidOrder {
        /// The order passed in.
        order: u32,
    },
    /// The range size is not a multiple of 4 KiB, or the range ends above the 52-bit maximum.
    InvalidSize {
        /// The size passed in.
        size: u64,
    },
    /// The storage slice is shorter than [`FrameAllocator::storage_words`] asks for.
    StorageTooSmall {
        /// The number of words needed.
        needed: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfMemory => f.write_str("no free frame or run of the requested order"),
            Self::DoubleFree { pa } => write!(f, "frame {pa:#x} is already free"),
            Self::Foreign { pa } => write!(f, "{pa:#x} is outside the managed range"),
            Self::Misaligned { pa } => write!(f, "{pa:#x} is not aligned to the frame or run size"),
            Self::InvalidOrder { order } => write!(f, "run order {order} is above {MAX_ORDER}"),
            Self::InvalidSize { size } => write!(f, "range size {size:#x} is not a valid size"),
            Self::StorageTooSmall { needed } => write!(f, "storage needs {needed} words"),
        }
    }
}

impl core::error::Error for FrameError {}

/// Allocates 4 KiB frames and aligned runs of frames from one physical range.
///
/// # Example
/// ```
/// use pagesim::addr::PhysAddr;
/// use pagesim::mmu::frames::{Contents, FrameAllocator, FrameError};
///
/// // 4 MiB at 1 GiB, fresh memory that reads as zero.
/// let mut storage = [0u64; FrameAllocator::storage_words(1024)];
/// let base = PhysAddr::new(0x4000_0000);
/// let mut frames = FrameAllocator::new(base, 4 << 20, &mut storage, Contents::Zeroed)?;
/// let pa = frames.alloc_zeroed(|_, _| unreachable!("fresh frames are known zero"))?;
/// let huge = frames.alloc_run(9)?;
/// assert!(huge.is_aligned(2 << 20));
/// assert_eq!(frames.free_frames(), 1024 - 1 - 512);
///
/// frames.free(pa)?; // dirty: it has been written to
/// assert_eq!(frames.free(pa), Err(FrameError::DoubleFree { pa }));
/// let mut zeroed = 0;
/// let again = frames.alloc_zeroed(|_, len| zeroed += len)?;
/// assert_eq!((again, zeroed), (pa, 4096));
/// # Ok::<(), FrameError>(())
/// ```
pub struct FrameAllocator<'a> {
    free: &'a mut [u64],
    zero: &'a mut [u64],
    any: &'a mut [u64],
    full: &'a mut [u64],
    /// Physical address of bit 0: `base` rounded down to 2 MiB.
    origin: u64,
    base: u64,
    end: u64,
    frames: usize,
    free_count: usize,
    /// Index into `free` where the last single frame or small run came or went.
    hint: usize,
    /// Index into `full` where the last run of 64 frames or more came or went.
    run_hint: usize,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("base", &PhysAddr::new(self.base))
            .field("frames", &self.frames)
            .field("free_frames", &self.free_count)
            .finish_non_exhaustive()
    }
}

impl<'a> FrameAllocator<'a> {
    /// Returns how many `u64` words of storage an allocator of `frames` frames needs,
    /// whatever its base address (`usize::MAX` if the count overflows).
    pub const fn storage_words(frames: usize) -> usize {
        let Some(bits) = frames.checked_add(CHUNK_FRAMES - 1) else {
            return usize::MAX;
        };
        let words = bits.div_ceil(64);
        2 * (words + words.div_ceil(64))
    }

    /// Creates an allocator of the frames in `[base, base + size)`, all free, keeping its
    /// metadata in `storage`; `contents` says whether they all read as zero now.
    ///
    /// # Errors
    /// [`FrameError::Misaligned`] if `base` is not 4 KiB aligned,
    /// [`FrameError::InvalidSize`] if `size` is not a multiple of 4 KiB or the range ends
    /// above 2^52, [`FrameError::StorageTooSmall`] if `storage` is shorter than
    /// [`FrameAllocator::storage_words`] of the frame count.
    pub fn new(
        base: PhysAddr,
        size: u64,
        storage: &'a mut [u64],
        contents: Contents,
    ) -> Result<Self, FrameError> {
        let initially_zero = matches!(contents, Contents::Zeroed);
        let b = base.as_u64();
        if !base.is_aligned(FRAME_SIZE) {
            return Err(FrameError::Misaligned { pa: base });
        }
        let end = b
            .checked_add(size)
            .filter(|&e| e <= 1 << PhysAddr::MAX_BITS);
        let frames = usize::try_from(size >> FRAME_SHIFT).ok();
        let (Some(end), Some(frames), 0) = (end, frames, size % FRAME_SIZE) else {
            return Err(FrameError::InvalidSize { size });
        };
        let needed = Self::storage_words(frames);
        if storage.len() < needed {
            return Err(FrameError::StorageTooSmall { needed });
        }
        let origin = b & !((CHUNK_FRAMES as u64) * FRAME_SIZE - 1);
        let pad = ((b - origin) >> FRAME_SHIFT) as usize;
        let words = (pad + frames).div_ceil(64).max(1);
        let sums = words.div_ceil(64);
        let (free, rest) = storage.split_at_mut(words);
        let (zero, rest) = rest.split_at_mut(words);
        let (any, rest) = rest.split_at_mut(sums);
        let full = &mut rest[..sums];
        for slice in [&mut *free, &mut *zero, &mut *any, &mut *full] {
            slice.fill(0);
        }
        set_range(free, pad, frames, true);
        set_range(zero, pad, frames, initially_zero);
        for (w, &x) in free.iter().enumerate() {
            any[w / 64] |= u64::from(x != 0) << (w % 64);
            full[w / 64] |= u64::from(x == !0) << (w % 64);
        }
        let hint = (pad / 64).min(words - 1);
        Ok(Self {
            free,
            zero,
            any,
            full,
            origin,
            base: b,
            end,
            frames,
            free_count: frames,
            hint,
            run_hint: 0,
        })
    }

    /// Returns the first address of the managed range.
    pub const fn base(&self) -> PhysAddr {
        PhysAddr::new(self.base)
    }

    /// Returns the number of frames in the managed range.
    pub const fn total_frames(&self) -> usize {
        self.frames
    }

    /// Returns the number of free frames.
    pub const fn free_frames(&self) -> usize {
        self.free_count
    }

    /// Returns whether `pa` lies in the managed range.
    pub const fn contains(&self, pa: PhysAddr) -> bool {
        self.base <= pa.as_u64() && pa.as_u64() < self.end
    }

    /// Returns whether the frame at `pa` is allocated.
    ///
    /// # Errors
    /// [`FrameError::Foreign`] or [`FrameError::Misaligned`] if `pa` is not a frame of the range.
    pub fn is_allocated(&self, pa: PhysAddr) -> Result<bool, FrameError> {
        let i = self.check_run(pa, 0)?;
        Ok(!bit(self.free, i))
    }

    /// Returns whether the frame at `pa` is free and known to read as zero.
    ///
    /// # Errors
    /// [`FrameError::Foreign`] or [`FrameError::Misaligned`] if `pa` is not a frame of the range.
    pub fn is_known_zero(&self, pa: PhysAddr) -> Result<bool, FrameError> {
        let i = self.check_run(pa, 0)?;
        Ok(bit(self.zero, i))
    }

    /// Allocates one frame, whose content is whatever was last written to it.
    ///
    /// # Errors
    /// [`FrameError::OutOfMemory`] if no frame is free.
    #[inline(always)]
    pub fn alloc(&mut self) -> Result<PhysAddr, FrameError> {
        let (h, x) = (self.hint, self.free[self.hint]);
        if x == 0 {
            return self.alloc_slow();
        }
        Ok(self.take_lowest(h, x))
    }

    /// Takes the lowest free frame of word `h` of `free`, which holds `x` (not 0).
    #[inline(always)]
    fn take_lowest(&mut self, h: usize, x: u64) -> PhysAddr {
        let rest = x & (x - 1);
        self.free[h] = rest;
        self.zero[h] &= rest;
        self.free_count -= 1;
        if rest == 0 || x == !0 {
            self.summarize(h);
        }
        self.pa(h * 64 + x.trailing_zeros() as usize)
    }

    /// Allocates one frame that reads as zero, calling `zero(pa, 4096)` first if it is not
    /// known to be zero already.
    ///
    /// # Errors
    /// [`FrameError::OutOfMemory`] if no frame is free; `zero` is not called then.
    #[inline]
    pub fn alloc_zeroed(
        &mut self,
        mut zero: impl FnMut(PhysAddr, u64),
    ) -> Result<PhysAddr, FrameError> {
        // The frame `alloc` takes: the lowest free one of the hint's word.
        let (h, x) = (self.hint, self.free[self.hint]);
        if x == 0 {
            return self.alloc_run_zeroed(0, zero);
        }
        let known_zero = self.zero[h] & x & x.wrapping_neg() != 0;
        let pa = self.take_lowest(h, x);
        if !known_zero {
            zero(pa, FRAME_SIZE);
        }
        Ok(pa)
    }

    /// Allocates a run of `2^order` frames aligned to its own size.
    ///
    /// # Errors
    /// [`FrameError::InvalidOrder`] if `order > MAX_ORDER`, [`FrameError::OutOfMemory`] if no
    /// such run is free.
    #[inline]
    pub fn alloc_run(&mut self, order: u32) -> Result<PhysAddr, FrameError> {
        let i = self.find(order)?;
        self.mark(i, 1 << order, false, false);
        Ok(self.pa(i))
    }

    /// Allocates a run like [`FrameAllocator::alloc_run`] that reads as zero, calling
    /// `zero(pa, len)` for each maximal stretch of its frames not known to be zero.
    ///
    /// # Errors
    /// As [`FrameAllocator::alloc_run`]; `zero` is not called then.
    pub fn alloc_run_zeroed(
        &mut self,
        order: u32,
        mut zero: impl FnMut(PhysAddr, u64),
    ) -> Result<PhysAddr, FrameError> {
        let start = self.find(order)?;
        let end = start + (1 << order);
        let mut i = start;
        while i < end {
            let dirty = find_bit(self.zero, i, end, false);
            if dirty == end {
                break;
            }
            i = find_bit(self.zero, dirty, end, true);
            zero(self.pa(dirty), ((i - dirty) as u64) << FRAME_SHIFT);
        }
        self.mark(start, 1 << order, false, false);
        Ok(self.pa(start))
    }

    /// Frees the frame at `pa`, which becomes dirty (not known to be zero).
    ///
    /// # Errors
    /// [`FrameError::Foreign`], [`FrameError::Misaligned`] if `pa` is not a frame of the
    /// range; [`FrameError::DoubleFree`] if it is already free.
    #[inline(always)]
    pub fn free(&mut self, pa: PhysAddr) -> Result<(), FrameError> {
        let off = pa.as_u64().wrapping_sub(self.base);
        if off < self.end - self.base && off.is_multiple_of(FRAME_SIZE) {
            let i = ((pa.as_u64() - self.origin) >> FRAME_SHIFT) as usize;
            let (w, bit) = (i / 64, 1u64 << (i % 64));
            let x = self.free[w];
            if x & bit == 0 {
                self.free[w] = x | bit; // the zero bit of an allocated frame is clear already
                self.free_count += 1;
                self.hint = w;
                if x == 0 || x | bit == !0 {
                    self.summarize(w);
                }
                return Ok(());
            }
        }
        self.free_slow(pa)
    }

    /// Frees the frame at `pa`, which the caller has zeroed (or never written).
    ///
    /// # Errors
    /// As [`FrameAllocator::free`].
    pub fn free_zeroed(&mut self, pa: PhysAddr) -> Result<(), FrameError> {
        self.release(pa, 0, true)
    }

    /// Frees the `2^order` allocated frames starting at `pa`, which become dirty. The frames
    /// need not have been allocated as one run.
    ///
    /// # Errors
    /// [`FrameError::InvalidOrder`] if `order > MAX_ORDER`; [`FrameError::Foreign`] if `pa`
    /// is outside the range or the run extends past its end; [`FrameError::Misaligned`] if
    /// `pa` is not aligned to the run size; [`FrameError::DoubleFree`] with the first free
    /// frame of the run, if any.
    pub fn free_run(&mut self, pa: PhysAddr, order: u32) -> Result<(), FrameError> {
        self.release(pa, order, false)
    }

    /// Frees a run like [`FrameAllocator::free_run`] whose frames the caller has zeroed.
    ///
    /// # Errors
    /// As [`FrameAllocator::free_run`].
    pub fn free_run_zeroed(&mut self, pa: PhysAddr, order: u32) -> Result<(), FrameError> {
        self.release(pa, order, true)
    }

    /// Allocates a frame when the hint's word has none free.
    #[cold]
    fn alloc_slow(&mut self) -> Result<PhysAddr, FrameError> {
        self.alloc_run(0)
    }

    /// Returns the error of a [`FrameAllocator::free`] that cannot be done.
    #[cold]
    fn free_slow(&mut self, pa: PhysAddr) -> Result<(), FrameError> {
        self.release(pa, 0, false)
    }

    /// Returns the physical address of bit `i` (a frame of the range, so below 2^52).
    #[inline]
    fn pa(&self, i: usize) -> PhysAddr {
        PhysAddr::from_bits_52(self.origin + ((i as u64) << FRAME_SHIFT))
    }

    /// Returns the bit index of the run of `2^order` frames at `pa`, if it is one of the range.
    #[inline]
    fn check_run(&self, pa: PhysAddr, order: u32) -> Result<usize, FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::InvalidOrder { order });
        }
        let a = pa.as_u64();
        if !self.contains(pa) {
            return Err(FrameError::Foreign { pa });
        }
        let len = FRAME_SIZE << order;
        if a & (len - 1) != 0 {
            return Err(FrameError::Misaligned { pa });
        }
        if len > self.end - a {
            return Err(FrameError::Foreign { pa });
        }
        Ok(((a - self.origin) >> FRAME_SHIFT) as usize)
    }

    /// Returns the bit index of a free run of `2^order` frames, changing nothing.
    #[inline]
    fn find(&self, order: u32) -> Result<usize, FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::InvalidOrder { order });
        }
        if (1u64 << order) > self.free_count as u64 {
            return Err(FrameError::OutOfMemory);
        }
        let found = match order {
            0..=5 => self.find_small(order),
            6..=9 => self.find_medium(order - 6),
            _ => self.find_large(order - 6),
        };
        found.ok_or(FrameError::OutOfMemory)
    }

    /// Finds a run of `2^order <= 32` frames inside one `free` word, from the hint on.
    #[inline]
    fn find_small(&self, order: u32) -> Option<usize> {
        let in_word = |w: usize| {
            let m = aligned_runs(self.free[w], order);
            (m != 0).then(|| w * 64 + m.trailing_zeros() as usize)
        };
        let hs = self.hint / 64;
        in_word(self.hint).or_else(|| {
            let mut sums = (hs..self.any.len()).chain(0..hs);
            sums.find_map(|s| ones(self.any[s]).find_map(|b| in_word(s * 64 + b)))
        })
    }

    /// Finds `2^k <= 8` consecutive aligned wholly free words, from the run hint on.
    #[inline]
    fn find_medium(&self, k: u32) -> Option<usize> {
        let mut sums = (self.run_hint..self.full.len()).chain(0..self.run_hint);
        sums.find_map(|s| {
            let m = aligned_runs(self.full[s], k);
            (m != 0).then(|| (s * 64 + m.trailing_zeros() as usize) * 64)
        })
    }

    /// Finds `2^k >= 16` consecutive wholly free words whose first frame is physically
    /// aligned to the run, scanning `full` from the start.
    fn find_large(&self, k: u32) -> Option<usize> {
        let g = 1usize << k; // fits: the run is no bigger than the free count
        let origin_word = self.origin >> (FRAME_SHIFT + 6);
        let first = ((g as u64 - origin_word % g as u64) % g as u64) as usize;
        let words = self.free.len();
        let mut c = first;
        while c + g <= words {
            let used = find_bit(self.full, c, c + g, false);
            if used == c + g {
                return Some(c * 64);
            }
            c = first + (used + 1 - first).div_ceil(g) * g;
        }
        None
    }

    /// Frees the run of `2^order` frames at `pa`, known zero if `zeroed`.
    #[inline]
    fn release(&mut self, pa: PhysAddr, order: u32, zeroed: bool) -> Result<(), FrameError> {
        let i = self.check_run(pa, order)?;
        let n = 1 << order;
        let busy = match n {
            1..=63 => self.free[i / 64] & (((1 << n) - 1) << (i % 64)) == 0,
            _ => self.free[i / 64..(i + n) / 64].iter().all(|&x| x == 0),
        };
        if !busy {
            let pa = self.pa(find_bit(self.free, i, i + n, true));
            return Err(FrameError::DoubleFree { pa });
        }
        self.mark(i, n, true, zeroed);
        Ok(())
    }

    /// Sets the `n` frames at bit `i` (an aligned power-of-two run) free or allocated,
    /// known zero or not, and updates the summaries, the free count and the hints.
    #[inline]
    fn mark(&mut self, i: usize, n: usize, free: bool, zero: bool) {
        let w = i / 64;
        if n < 64 {
            let mask = ((1u64 << n) - 1) << (i % 64);
            self.free[w] = put(self.free[w], mask, free);
            self.zero[w] = put(self.zero[w], mask, zero);
            self.summarize(w);
            self.hint = w;
        } else {
            let nw = n / 64;
            self.free[w..w + nw].fill(put(0, !0, free));
            self.zero[w..w + nw].fill(put(0, !0, zero));
            set_range(self.any, w, nw, free);
            set_range(self.full, w, nw, free);
            self.run_hint = w / 64;
        }
        if free {
            self.free_count += n;
        } else {
            self.free_count -= n;
        }
    }

    /// Updates the `any` and `full` bits of word `w` of `free`.
    #[inline]
    fn summarize(&mut self, w: usize) {
        let (x, s, b) = (self.free[w], w / 64, 1u64 << (w % 64));
        self.any[s] = put(self.any[s], b, x != 0);
        self.full[s] = put(self.full[s], b, x == !0);
    }
}

/// Returns `x` with the bits of `mask` set (`val`) or cleared.
#[inline]
const fn put(x: u64, mask: u64, val: bool) -> u64 {
    if val {
        x | mask
    } else {
        x & !mask
    }
}

/// Returns the positions of the set bits of `x`, lowest first.
#[inline]
fn ones(mut x: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let b = x.trailing_zeros() as usize;
        x &= x.wrapping_sub(1);
        (b < 64).then_some(b)
    })
}

/// Returns bit `i` of `words`.
#[inline]
fn bit(words: &[u64], i: usize) -> bool {
    words[i / 64] >> (i % 64) & 1 == 1
}

/// Returns the positions where a naturally aligned run of `2^k` set bits of `x` starts (k <= 6).
#[inline]
const fn aligned_runs(mut x: u64, k: u32) -> u64 {
    let mut i = 0;
    while i < k {
        x &= x >> (1 << i);
        i += 1;
    }
    x & ALIGN[k as usize]
}

/// Sets (`val`) or clears bits `[from, from + len)` of `words`.
fn set_range(words: &mut [u64], from: usize, len: usize, val: bool) {
    let end = from + len;
    let mut i = from;
    while i < end {
        let (w, b) = (i / 64, i % 64);
        let n = (64 - b).min(end - i);
        let mask = if n == 64 { !0 } else { ((1u64 << n) - 1) << b };
        words[w] = put(words[w], mask, val);
        i += n;
    }
}

/// Returns the first index in `[from, to)` whose bit equals `val`, or `to` if there is none.
#[inline]
fn find_bit(words: &[u64], from: usize, to: usize, val: bool) -> usize {
    let mut i = from;
    while i < to {
        let w = i / 64;
        let x = if val { words[w] } else { !words[w] } & (!0 << (i % 64));
        if x != 0 {
            return (w * 64 + x.trailing_zeros() as usize).min(to);
        }
        i = (w + 1) * 64;
    }
    to
}

#[cfg(test)]
mod tests;
