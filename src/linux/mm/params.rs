//! Machine, kernel and per-process parameters of an address space (spec §0, §1.1, §16,
//! §18.1, §18.4), with presets for the kernels the spec observed.

use super::maps_text::MapsFormat;
use super::vma::{AnonVmaMergeRule, MergeParams};
use super::vma_tree::GapParams;

use super::mman::RLIM_INFINITY;

const MIB: u64 = 1 << 20;

/// The architecture whose layout rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// arm64: generic layout and search code (`mm/util.c`, `mm/mmap.c`).
    Arm64,
    /// x86_64: `arch/x86/mm/mmap.c` and `arch/x86/kernel/sys_x86_64.c`, `[vsyscall]` gate.
    X86_64,
}

/// The kernel generation whose generic mm rules apply (§18.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelVersion {
    /// 6.1: no THP-aligned anonymous placement, `MAP_STACK` sets nothing, `VM_ACCOUNT` is
    /// never dropped by `mprotect`, inclusive `[heap]` rule, faulted ranges never join
    /// unfaulted neighbours.
    V6_1,
    /// 6.12: THP-aligned placement, `MAP_STACK` → `nh`, `ac` dropped from never-faulted
    /// VMAs losing write, strict `[heap]` rule, the pre-6.16 `anon_vma` merge rule.
    V6_12,
    /// 6.18: as 6.12 plus the 6.16 `anon_vma` merge rule and sticky `VM_MAYBE_GUARD`.
    V6_18,
}

/// The `/sys/kernel/mm/transparent_hugepage/enabled` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThpMode {
    /// No THP faults.
    Never,
    /// THP only in `MADV_HUGEPAGE` (`hg`) VMAs.
    Madvise,
    /// THP in every VMA without `nh`.
    Always,
}

/// Everything about the machine, the kernel build and the process that the layout rules
/// depend on. Build one with a preset and adjust fields as needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutParams {
    /// Architecture.
    pub arch: Arch,
    /// Kernel generation.
    pub version: KernelVersion,
    /// `PAGE_SHIFT` (12 for 4 KiB, 14 for 16 KiB).
    pub page_shift: u32,
    /// `PMD_SIZE`, the THP size (2 MiB with 4 KiB pages, 32 MiB with 16 KiB).
    pub pmd_size: u64,
    /// `TASK_SIZE`: the largest end a mapping may have (2^52 on LPA2 arm64 6.12 kernels).
    pub task_size: u64,
    /// `DEFAULT_MAP_WINDOW`: the search ceiling unless a hint lies above it.
    pub default_map_window: u64,
    /// `STACK_TOP` with ASLR off (the top `mmap_base` is computed from).
    pub stack_top: u64,
    /// `RLIMIT_STACK` soft limit in bytes ([`RLIM_INFINITY`] for unlimited).
    pub rlimit_stack: u64,
    /// Sysctl `vm.legacy_va_layout` or personality `ADDR_COMPAT_LAYOUT`.
    pub legacy_va_layout: bool,
    /// Effective `mmap_min_addr` (max of the sysctl and `CONFIG_LSM_MMAP_MIN_ADDR`).
    pub mmap_min_addr: u64,
    /// The sysctl (DAC) `vm.mmap_min_addr`, checked for `MAP_FIXED` without `CAP_SYS_RAWIO`.
    pub dac_mmap_min_addr: u64,
    /// The process has `CAP_SYS_RAWIO` (root): `MAP_FIXED` below the DAC limit is allowed.
    pub cap_sys_rawio: bool,
    /// `stack_guard_gap` (256 pages).
    pub stack_guard_gap: u64,
    /// `vm.max_map_count`.
    pub max_map_count: usize,
    /// THP mode.
    pub thp: ThpMode,
    /// arm64 kernel built with `CONFIG_ARM64_MTE`: brk, BSS and stack VMAs carry the hidden
    /// `VM_MTE_ALLOWED` (§18.3 item 8).
    pub config_arm64_mte: bool,
    /// The CPU implements MTE: anonymous mmaps get `VM_MTE_ALLOWED`, `PROT_MTE` is valid.
    pub cpu_mte: bool,
    /// The CPU implements BTI: `PROT_BTI` is valid and sets `bt`.
    pub cpu_bti: bool,
    /// `vm.overcommit_memory == 2` (`MAP_NORESERVE` is then ignored).
    pub overcommit_never: bool,
    /// `(totalram_pages() + total_swap_pages) << PAGE_SHIFT` (MemTotal + SwapTotal of
    /// /proc/meminfo): under the heuristic overcommit mode (`vm.overcommit_memory == 0`) one
    /// charge of more than this fails with `ENOMEM` (`__vm_enough_memory`): an accountable
    /// mmap, mremap growth, brk, mprotect adding write to private memory, stack growth.
    /// `u64::MAX` (the presets) charges without limit, as `vm.overcommit_memory == 1` does.
    pub commit_limit: u64,
    /// maps/smaps text details of this kernel.
    pub maps: MapsFormat,
}

impl LayoutParams {
    /// Returns the parameters of an arm64 Debian kernel as observed in §18.1: `version`,
    /// 4 KiB (`page_shift` 12) or 16 KiB (14) pages, and a 52-bit user address space
    /// (`VA_BITS=52` on an LPA2 CPU, 6.12 kernels) or a 48-bit one (47-bit with 16 KiB pages).
    ///
    /// Other page shifts are taken as given (PMD = `P * P / 8`).
    pub const fn arm64(version: KernelVersion, page_shift: u32, va52: bool) -> LayoutParams {
        let p = 1u64 << page_shift;
        let window: u64 = if page_shift == 14 { 1 << 47 } else { 1 << 48 };
        let task_size = if va52 { 1 << 52 } else { window };
        let maps = match (version, page_shift) {
            (KernelVersion::V6_1, _) => MapsFormat::ARM64_6_1,
            (_, 14) => MapsFormat::ARM64_6_12_16K,
            _ => MapsFormat::ARM64_6_12,
        };
        LayoutParams {
            arch: Arch::Arm64,
            version,
            page_shift,
            pmd_size: p * (p / 8),
            task_size,
            default_map_window: window,
            stack_top: window,
            rlimit_stack: 8 * MIB,
            legacy_va_layout: false,
            mmap_min_addr: 0x8000,
            dac_mmap_min_addr: 0x1000,
            cap_sys_rawio: true,
            stack_guard_gap: 256 * p,
            max_map_count: 65530,
            thp: ThpMode::Always,
            config_arm64_mte: true,
            cpu_mte: false,
            cpu_bti: true,
            overcommit_never: false,
            commit_limit: u64::MAX,
            maps: MapsFormat { page_shift, ..maps },
        }
    }

    /// Debian arm64 6.1, 4 KiB pages, 48-bit VA (§18.1 column "6.1").
    pub const fn arm64_6_1() -> LayoutParams {
        LayoutParams::arm64(KernelVersion::V6_1, 12, false)
    }

    /// Debian arm64 6.12, 4 KiB pages, 52-bit VA on an LPA2 CPU (§18.1 "6.12/4K").
    pub const fn arm64_6_12() -> LayoutParams {
        LayoutParams::arm64(KernelVersion::V6_12, 12, true)
    }

    /// Debian arm64 6.12, 16 KiB pages, 52-bit VA on an LPA2 CPU (§18.1 "6.12/16K").
    pub const fn arm64_6_12_16k() -> LayoutParams {
        LayoutParams::arm64(KernelVersion::V6_12, 14, true)
    }

    /// arm64 with 4 KiB pages and a 48-bit VA, the layout of the seed notes' machine,
    /// with the 6.12 rules.
    pub const fn arm64_48bit() -> LayoutParams {
        LayoutParams::arm64(KernelVersion::V6_12, 12, false)
    }

    /// The spec's x86_64 machine: 6.18, 4 KiB pages, 47-bit VA (no LA57), THP `madvise`,
    /// effective `mmap_min_addr` 0x10000, unprivileged (§0).
    pub const fn x86_64_6_18() -> LayoutParams {
        let task_size = (1u64 << 47) - 0x1000;
        LayoutParams {
            arch: Arch::X86_64,
            version: KernelVersion::V6_18,
            page_shift: 12,
            pmd_size: 2 * MIB,
            task_size,
            default_map_window: task_size,
            stack_top: task_size,
            rlimit_stack: 8 * MIB,
            legacy_va_layout: false,
            mmap_min_addr: 0x10000,
            dac_mmap_min_addr: 0x1000,
            cap_sys_rawio: false,
            stack_guard_gap: 256 * 0x1000,
            max_map_count: 65530,
            thp: ThpMode::Madvise,
            config_arm64_mte: false,
            cpu_mte: false,
            cpu_bti: false,
            overcommit_never: false,
            commit_limit: u64::MAX,
            maps: MapsFormat::X86_64_6_18,
        }
    }

    /// `security_vm_enough_memory_mm` under the heuristic mode: whether a charge of
    /// `pages` pages fits ([`LayoutParams::commit_limit`]).
    ///
    /// # Errors
    /// `ENOMEM` for a charge larger than RAM and swap together.
    pub fn vm_enough_memory(&self, pages: u64) -> Result<(), super::Errno> {
        if pages > self.commit_limit >> (self.page_shift & 63) {
            return Err(super::Errno::ENOMEM);
        }
        Ok(())
    }

    /// Returns `PAGE_SIZE`.
    pub const fn page_size(&self) -> u64 {
        1u64 << (self.page_shift & 63)
    }

    /// Returns `PAGE_ALIGN(x)`, or `None` if it overflows.
    pub const fn page_align(&self, x: u64) -> Option<u64> {
        let m = self.page_size() - 1;
        match x.checked_add(m) {
            Some(v) => Some(v & !m),
            None => None,
        }
    }

    /// Returns whether `x` is a multiple of the page size.
    pub const fn is_page_aligned(&self, x: u64) -> bool {
        x & (self.page_size() - 1) == 0
    }

    /// Returns `TASK_UNMAPPED_BASE`: `PAGE_ALIGN(TASK_SIZE / 3)` on x86_64,
    /// `PAGE_ALIGN(DEFAULT_MAP_WINDOW / 4)` on arm64.
    pub const fn task_unmapped_base(&self) -> u64 {
        let raw = match self.arch {
            Arch::X86_64 => self.task_size / 3,
            Arch::Arm64 => self.default_map_window / 4,
        };
        match self.page_align(raw) {
            Some(v) => v,
            None => raw,
        }
    }

    /// Returns whether the legacy bottom-up layout is used (`mmap_is_legacy`): the sysctl or
    /// personality, and on arm64 also an unlimited `RLIMIT_STACK` (§1.1, §18.2).
    pub const fn legacy_layout(&self) -> bool {
        self.legacy_va_layout
            || (matches!(self.arch, Arch::Arm64) && self.rlimit_stack == RLIM_INFINITY)
    }

    /// Returns `mmap_base` with ASLR off (`arch_pick_mmap_layout`, §1.1): the legacy base,
    /// or `PAGE_ALIGN(top - clamp(rlimit + guard gap, 128 MiB, top / 6 * 5))`.
    pub const fn mmap_base(&self) -> u64 {
        if self.legacy_layout() {
            return self.task_unmapped_base();
        }
        let top = match self.arch {
            Arch::X86_64 => self.default_map_window,
            Arch::Arm64 => self.stack_top,
        };
        let mut gap = self.rlimit_stack;
        if let Some(g) = gap.checked_add(self.stack_guard_gap) {
            gap = g;
        }
        let min_gap = 128 * MIB;
        let max_gap = top / 6 * 5;
        if gap < min_gap {
            gap = min_gap;
        }
        if gap > max_gap {
            gap = max_gap;
        }
        let raw = top.saturating_sub(gap);
        match self.page_align(raw) {
            Some(v) => v,
            None => raw,
        }
    }

    /// Returns `ELF_ET_DYN_BASE`, where a PIE is loaded: `DEFAULT_MAP_WINDOW / 3 * 2` on
    /// x86_64, `2 * DEFAULT_MAP_WINDOW_64 / 3` on arm64.
    pub const fn elf_et_dyn_base(&self) -> u64 {
        match self.arch {
            Arch::X86_64 => self.default_map_window / 3 * 2,
            Arch::Arm64 => self.default_map_window.saturating_mul(2) / 3,
        }
    }

    /// Returns whether anonymous private no-hint mappings of a PMD-multiple length are
    /// placed PMD aligned (§1.6; 6.7+, so not 6.1).
    pub const fn thp_aligned_placement(&self) -> bool {
        !matches!(self.version, KernelVersion::V6_1)
    }

    /// Returns whether `MAP_STACK` sets `VM_NOHUGEPAGE` (6.7+).
    pub const fn map_stack_sets_nohugepage(&self) -> bool {
        !matches!(self.version, KernelVersion::V6_1)
    }

    /// Returns whether `mprotect` drops `VM_ACCOUNT` from a never-faulted anonymous VMA
    /// that loses write permission (6.6+).
    pub const fn mprotect_drops_account(&self) -> bool {
        !matches!(self.version, KernelVersion::V6_1)
    }

    /// Returns whether `[heap]` uses the inclusive 6.1 test (`start <= brk && end >= start_brk`).
    pub const fn heap_name_inclusive(&self) -> bool {
        matches!(self.version, KernelVersion::V6_1)
    }

    /// Returns whether `MAP_DROPPABLE` exists (6.11+).
    pub const fn has_map_droppable(&self) -> bool {
        !matches!(self.version, KernelVersion::V6_1)
    }

    /// Returns whether `MADV_GUARD_INSTALL`/`MADV_GUARD_REMOVE` exist (6.13+).
    pub const fn has_madv_guard(&self) -> bool {
        matches!(self.version, KernelVersion::V6_18)
    }

    /// Returns whether the x86 `[vsyscall]` gate line is printed after the VMAs.
    pub const fn has_vsyscall(&self) -> bool {
        matches!(self.arch, Arch::X86_64)
    }

    /// Returns the merge-predicate parameters of this kernel.
    pub const fn merge_params(&self) -> MergeParams {
        MergeParams {
            page_shift: self.page_shift,
            anon_rule: match self.version {
                KernelVersion::V6_18 => AnonVmaMergeRule::Since6_16,
                _ => AnonVmaMergeRule::Before6_16,
            },
        }
    }

    /// Returns the free-area search parameters.
    pub const fn gap_params(&self) -> GapParams {
        GapParams {
            mmap_min_addr: self.mmap_min_addr,
            stack_guard_gap: self.stack_guard_gap,
            page_size: self.page_size(),
        }
    }

    /// Returns the number of tree slots that guarantees the simulator never runs out of
    /// storage before the kernel's `max_map_count` limit does (`max + 1` VMAs, plus the
    /// two transient pieces of a split).
    pub const fn slots_needed(&self) -> usize {
        self.max_map_count.saturating_add(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmap_base_table() {
        // §18.2
        let mut p = LayoutParams::arm64_6_1();
        for (rl, base) in [
            (100 << 10, 0xfffff8000000u64),
            (8 * MIB, 0xfffff8000000),
            (124 * MIB, 0xfffff8000000),
            (127 * MIB, 0xfffff8000000),
            (128 * MIB, 0xfffff7f00000),
            (1 << 30, 0xffffbff00000),
            ((1u64 << 63) - 1, 0x2aaaaaaab000),
        ] {
            p.rlimit_stack = rl;
            assert_eq!(p.mmap_base(), base, "rlimit {rl:#x}");
        }
        p.rlimit_stack = RLIM_INFINITY;
        assert_eq!(p.mmap_base(), 0x400000000000);
        let mut q = LayoutParams::arm64_6_12_16k();
        for (rl, base) in [
            (8 * MIB, 0x7ffff8000000u64),
            (124 * MIB, 0x7ffff8000000),
            (127 * MIB, 0x7ffff7d00000),
            (128 * MIB, 0x7ffff7c00000),
            (1 << 30, 0x7fffbfc00000),
            ((1u64 << 63) - 1, 0x155555558000),
        ] {
            q.rlimit_stack = rl;
            assert_eq!(q.mmap_base(), base, "16K rlimit {rl:#x}");
        }
        q.rlimit_stack = RLIM_INFINITY;
        assert_eq!(q.mmap_base(), 0x200000000000);
        assert_eq!(q.pmd_size, 32 * MIB);
        assert_eq!(q.stack_guard_gap, 0x400000);
        // §1.1 (x86)
        let mut x = LayoutParams::x86_64_6_18();
        for (rl, base) in [
            (8 * MIB, 0x7ffff7fff000u64),
            (100 << 10, 0x7ffff7fff000),
            (1 << 30, 0x7fffbfeff000),
            (RLIM_INFINITY, 0x155555556000),
        ] {
            x.rlimit_stack = rl;
            assert_eq!(x.mmap_base(), base, "x86 rlimit {rl:#x}");
        }
        assert_eq!(x.task_unmapped_base(), 0x2aaaaaaab000);
    }
}
