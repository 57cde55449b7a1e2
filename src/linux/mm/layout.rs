//! A freshly exec'd process (§15 TV0, §18.7 A1) and the import of a captured
//! `/proc/PID/maps` or `smaps` text, with the hidden state guessed as §14.2 advises.

use super::maps_text::{import_maps, import_smaps, ParseError};
use super::vma::{vma_name, DevId, FileId, Vma, VmaKind};
use super::vma_tree::VmaSlot;
use super::vmflags::VmFlags;

use super::errno::Errno;
use super::params::{Arch, KernelVersion, LayoutParams};
use super::space::{tree_errno, AddressSpace};

/// Layout values a captured maps text does not show; `None` means "infer".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportHints {
    /// `start_brk` (`/proc/PID/stat` field 47).
    pub start_brk: Option<u64>,
    /// The current break (`brk(0)`).
    pub brk: Option<u64>,
    /// `start_stack` (`/proc/PID/stat` field 28).
    pub start_stack: Option<u64>,
    /// `mmap_base` (ASLR on, or states with mappings above the base).
    pub mmap_base: Option<u64>,
}

const MAY: VmFlags = VmFlags::VM_MAYREAD
    .union(VmFlags::VM_MAYWRITE)
    .union(VmFlags::VM_MAYEXEC);

impl<'a> AddressSpace<'a> {
    /// Creates the address space of a freshly exec'd static, non-PIE program with ASLR
    /// off, as observed in the spec: §18.7 A1 for arm64 (6.1 and 6.12 vDSO sizes, 4 KiB
    /// and 16 KiB pages) and §15 TV0 for x86_64: the executable's file VMAs (named
    /// `exe_path`), the BSS and `[heap]` (`start_brk`/`brk` as observed), `[vvar]`
    /// (`[vvar_vclock]` on x86) and `[vdso]` ending at `mmap_base` (starting at it in the
    /// legacy layout), and the initial `[stack]` ending at `STACK_TOP`. BSS, heap and
    /// stack have an `anon_vma` (they were written during start-up).
    ///
    /// # Errors
    ///
    /// `ENOMEM` if `slots` holds fewer than 12 VMAs, `EINVAL` if `exe_path` is longer
    /// than [`super::vma::VMA_NAME_CAP`] bytes.
    pub fn fresh_process(
        slots: &'a mut [VmaSlot],
        params: LayoutParams,
        exe_path: &str,
    ) -> Result<Self, Errno> {
        let mut mm = AddressSpace::new(slots, params);
        let path = vma_name(exe_path).map_err(|_| Errno::EINVAL)?;
        let p = params.page_size();
        let x86 = params.arch == Arch::X86_64;
        let (dev, ino) = if x86 {
            (
                DevId {
                    major: 0xfe,
                    minor: 0,
                },
                10_010_772,
            )
        } else {
            (DevId { major: 0, minor: 2 }, 7)
        };
        let r = VmFlags::VM_READ | MAY;
        let rx = r | VmFlags::VM_EXEC;
        let rw = r | VmFlags::VM_WRITE | VmFlags::VM_ACCOUNT;
        let exe: &[(u64, u64, VmFlags, u64)] = if x86 {
            &[
                (0x400000, 0x401000, r, 0),
                (0x401000, 0x47a000, rx, 0x1000),
                (0x47a000, 0x4a2000, r, 0x7a000),
                (0x4a2000, 0x4a6000, r, 0xa2000),
                (0x4a6000, 0x4a9000, rw, 0xa6000),
            ]
        } else if params.page_shift == 14 {
            &[
                (0x400000, 0x480000, rx, 0),
                (0x48c000, 0x490000, r, 0x8c000),
                (0x490000, 0x494000, rw, 0x90000),
            ]
        } else {
            &[
                (0x400000, 0x480000, rx, 0),
                (0x48c000, 0x490000, r, 0x8c000),
                (0x490000, 0x493000, rw, 0x90000),
            ]
        };
        for &(s, e, f, off) in exe {
            mm.insert_raw(Vma {
                vm_start: s,
                vm_end: e,
                vm_flags: f,
                vm_pgoff: off >> params.page_shift,
                anon_vma: None,
                anon_vma_fork_child: false,
                kind: VmaKind::File {
                    dev,
                    ino,
                    path,
                    file: FileId(0),
                },
            })?;
        }
        let (bss_start, start_brk, brk) = if x86 {
            (0x4a9000, 0x9be000, 0x9e0000)
        } else if params.page_shift == 14 {
            (0x494000, 0x4ac000, 0x4d4000)
        } else {
            (0x493000, 0x4a9000, 0x4cb000)
        };
        let mut data = rw;
        if !x86 && params.config_arm64_mte {
            data |= VmFlags::VM_MTE_ALLOWED;
        }
        for (s, e) in [(bss_start, start_brk), (start_brk, brk)] {
            let id = mm.fresh_anon_id();
            mm.insert_raw(Vma {
                anon_vma: Some(id),
                ..Vma::new_anon(s, e, data, params.page_shift).map_err(|_| Errno::EINVAL)?
            })?;
        }
        mm.set_brk_area(start_brk, brk);
        // vDSO: one request of the combined size, the first mapping of the process.
        let vvar =
            VmFlags::VM_READ | VmFlags::VM_MAYREAD | VmFlags::VM_PFNMAP | VmFlags::VM_DONTEXPAND;
        let vdso = VmFlags::VM_READ | VmFlags::VM_EXEC | MAY | VmFlags::VM_DONTEXPAND;
        let parts: &[(u64, VmFlags, VmaKind)] = if x86 {
            &[
                (4, vvar, VmaKind::Vvar),
                (2, vvar, VmaKind::VvarVclock),
                (2, vdso, VmaKind::Vdso),
            ]
        } else if params.page_shift == 12 && params.version != KernelVersion::V6_1 {
            &[(2, vvar, VmaKind::Vvar), (2, vdso, VmaKind::Vdso)]
        } else {
            &[(2, vvar, VmaKind::Vvar), (1, vdso, VmaKind::Vdso)]
        };
        let total: u64 = parts.iter().map(|x| x.0 * p).sum();
        let mut s = if mm.topdown() {
            mm.mmap_base.saturating_sub(total)
        } else {
            mm.mmap_base
        };
        for &(n, f, k) in parts {
            mm.insert_raw(Vma {
                vm_start: s,
                vm_end: s + n * p,
                vm_flags: f,
                vm_pgoff: 0,
                anon_vma: None,
                anon_vma_fork_child: false,
                kind: k,
            })?;
            s += n * p;
        }
        let top = params.stack_top;
        let stack_len = if params.page_shift == 14 {
            9 * p
        } else {
            0x21000
        };
        let mut sf = rw | VmFlags::VM_GROWSDOWN;
        if !x86 && params.config_arm64_mte {
            sf |= VmFlags::VM_MTE_ALLOWED;
        }
        let id = mm.fresh_anon_id();
        mm.insert_raw(Vma {
            anon_vma: Some(id),
            ..Vma::new_anon(top - stack_len, top, sf, params.page_shift)
                .map_err(|_| Errno::EINVAL)?
        })?;
        mm.start_stack = match params.version {
            KernelVersion::V6_1 if !x86 => top - 0x1d0,
            _ => top - 0x1f0,
        };
        Ok(mm)
    }

    fn insert_raw(&mut self, v: Vma) -> Result<(), Errno> {
        self.tree.insert(v).map_err(tree_errno)
    }

    /// Creates an address space from a captured `/proc/PID/maps` text (format of
    /// `params.maps`; an x86 `[vsyscall]` line is skipped). Hidden state is guessed:
    /// `mr mw me` on every VMA except `[vvar]` (`rd mr pf de`), `ac` on private writable
    /// ones, `gd` on `[stack]`, arm64's `VM_MTE_ALLOWED` on `[stack]`, `[heap]` and the
    /// anonymous VMA ending at `start_brk` (and on every anonymous VMA with an MTE CPU),
    /// and a distinct `anon_vma` for those three. Values missing from `hints` are inferred:
    /// `brk` = end of the last `[heap]` VMA, `start_brk` = start of the first (of the
    /// second on 6.1 when two `[heap]` VMAs touch: the first is the BSS), `start_stack` =
    /// 0x1f0 below the end of `[stack]`, `mmap_base` = the end of the highest VMA below
    /// `[stack]` and below the default window (top-down), else the computed one.
    ///
    /// # Errors
    ///
    /// The first [`ParseError`] of the text (then nothing is imported).
    pub fn from_maps(
        slots: &'a mut [VmaSlot],
        params: LayoutParams,
        text: &str,
        hints: ImportHints,
    ) -> Result<Self, ParseError> {
        Self::imported(slots, params, hints, false, |mm| {
            import_maps(text, &params.maps, &mut mm.tree).map(|_| ())
        })
    }

    /// Creates an empty address space, imports into it with `import`, and finishes the
    /// import (brk area, stack, `mmap_base`; `smaps` says the flags are all known).
    fn imported(
        slots: &'a mut [VmaSlot],
        params: LayoutParams,
        hints: ImportHints,
        smaps: bool,
        import: impl FnOnce(&mut Self) -> Result<(), ParseError>,
    ) -> Result<Self, ParseError> {
        let mut mm = AddressSpace::new(slots, params);
        import(&mut mm)?;
        mm.finish_import(hints, smaps);
        Ok(mm)
    }

    /// Creates an address space from a captured `/proc/PID/smaps` text: like
    /// [`AddressSpace::from_maps`], but the `VmFlags:` lines give every visible flag, and an
    /// anonymous VMA with `Anonymous:` > 0 gets an `anon_vma`.
    ///
    /// # Errors
    ///
    /// The first [`ParseError`] of the text (then nothing is imported).
    pub fn from_smaps(
        slots: &'a mut [VmaSlot],
        params: LayoutParams,
        text: &str,
        hints: ImportHints,
    ) -> Result<Self, ParseError> {
        Self::imported(slots, params, hints, true, |mm| {
            import_smaps(text, &params.maps, &mut mm.tree, |_| {})?;
            for e in super::maps_text::SmapsParser::new(text, &params.maps).map_while(Result::ok) {
                if e.vma.kind.is_anonymous() && e.counters.anonymous > 0 {
                    let id = mm.fresh_anon_id();
                    // The VMA was inserted from this very entry, so it is there to update.
                    let updated = mm.tree.update(e.vma.vm_start, |x| x.anon_vma = Some(id));
                    debug_assert!(updated.is_ok(), "an imported VMA is in the tree");
                }
            }
            Ok(())
        })
    }

    fn finish_import(&mut self, hints: ImportHints, full_flags: bool) {
        let p = self.params;
        let mut heap_first: Option<Vma> = None;
        let mut heap_second: Option<Vma> = None;
        let mut heap_last: Option<Vma> = None;
        let mut stack: Option<Vma> = None;
        for v in self.tree.iter() {
            match v.kind {
                VmaKind::Heap => {
                    if heap_first.is_none() {
                        heap_first = Some(*v);
                    } else if heap_second.is_none() {
                        heap_second = Some(*v);
                    }
                    heap_last = Some(*v);
                }
                VmaKind::Stack => stack = Some(*v),
                _ => {}
            }
        }
        let start_brk = hints
            .start_brk
            .unwrap_or_else(|| match (heap_first, heap_second) {
                (Some(a), Some(b))
                    if p.version == KernelVersion::V6_1 && a.vm_end == b.vm_start =>
                {
                    b.vm_start
                }
                (Some(a), _) => a.vm_start,
                _ => 0,
            });
        let brk = hints
            .brk
            .unwrap_or_else(|| heap_last.map_or(start_brk, |h| h.vm_end));
        self.set_brk_area(start_brk, brk);
        if let Some(s) = hints.start_stack {
            self.start_stack = s;
        } else if let Some(s) = stack {
            self.start_stack = s.vm_end.saturating_sub(0x1f0).max(s.vm_start);
        }
        if let Some(b) = hints.mmap_base {
            self.mmap_base = b;
        } else if self.topdown() {
            if let Some(s) = stack {
                let limit = s.vm_start.min(p.default_map_window);
                let mut best = None;
                for v in self.tree.iter() {
                    if v.vm_end <= limit {
                        best = Some(v.vm_end);
                    }
                }
                if let Some(b) = best {
                    self.mmap_base = b;
                }
            }
        }
        // Fix up kinds and hidden flags VMA by VMA (keys do not change).
        let mut cur = 0u64;
        while let Some(v) = self.tree.find_vma(cur).copied() {
            cur = v.vm_end;
            let was_heap = v.kind == VmaKind::Heap;
            let was_stack = v.kind == VmaKind::Stack;
            let bss = v.kind.is_anonymous() && v.vm_end == start_brk && start_brk != 0;
            let mut f = v.vm_flags;
            let mut kind = v.kind;
            if was_heap || was_stack {
                kind = VmaKind::Anonymous;
            }
            if !full_flags {
                match v.kind {
                    VmaKind::Vvar | VmaKind::VvarVclock => {
                        f |= VmFlags::VM_MAYREAD | VmFlags::VM_PFNMAP | VmFlags::VM_DONTEXPAND;
                    }
                    VmaKind::Vdso => f |= MAY | VmFlags::VM_DONTEXPAND,
                    VmaKind::Vsyscall | VmaKind::Special(_) => {}
                    _ => {
                        f |= MAY;
                        if f.contains(VmFlags::VM_MAYSHARE) {
                            if f.contains(VmFlags::VM_WRITE) {
                                f |= VmFlags::VM_SHARED;
                            }
                        } else if f.contains(VmFlags::VM_WRITE) {
                            f |= VmFlags::VM_ACCOUNT;
                        }
                        if was_stack {
                            f |= VmFlags::VM_GROWSDOWN;
                        }
                    }
                }
            }
            let data_like = was_heap || was_stack || bss;
            if p.arch == Arch::Arm64
                && p.config_arm64_mte
                && v.kind.is_anonymous()
                && (data_like || p.cpu_mte)
            {
                f |= VmFlags::VM_MTE_ALLOWED;
            }
            let anon = if v.anon_vma.is_none() && v.kind.is_anonymous() && data_like {
                Some(self.fresh_anon_id())
            } else {
                v.anon_vma
            };
            // `v` was read from the tree in this loop, so it is there to update.
            let updated = self.tree.update(v.vm_start, |x| {
                x.vm_flags = f;
                x.kind = kind;
                x.anon_vma = anon;
            });
            debug_assert!(updated.is_ok(), "an imported VMA is in the tree");
        }
    }
}
