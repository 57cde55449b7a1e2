//! `mprotect` (§5): `do_mprotect_pkey` and `mprotect_fixup`, with the `VM_ACCOUNT` rules
//! of §2.2 and the merge/split rules of §4.4.

use super::vmflags::VmFlags;

use super::errno::Errno;
use super::mman::*;
use super::ops::{NoPageOps, PageOps};
use super::params::Arch;
use super::space::AddressSpace;

impl AddressSpace<'_> {
    /// `mprotect(start, len, prot)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned start, invalid `prot` bits, `PROT_GROWSDOWN` on a VMA
    /// without `gd`, both grows bits, a split of a special mapping or an invalid MTE
    /// request; `EACCES` for an access the VMA's `VM_MAY*` bits forbid; `ENOMEM` for a
    /// wrapping range, a range not fully mapped (VMAs before the first hole stay changed)
    /// or a refused split (`map_count >= max_map_count`; earlier splits stay).
    pub fn mprotect(&mut self, start: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        self.mprotect_with(start, len, prot, &mut NoPageOps)
    }

    /// [`AddressSpace::mprotect`] reporting each changed range to `ops`.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::mprotect`].
    pub fn mprotect_with(
        &mut self,
        start: u64,
        len: u64,
        prot: Prot,
        ops: &mut dyn PageOps,
    ) -> Result<(), Errno> {
        let p = self.params;
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot.difference(grows);
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if !p.is_page_aligned(start) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = p.page_align(len).unwrap_or(0);
        let end = start.wrapping_add(len);
        if end <= start {
            return Err(Errno::ENOMEM);
        }
        if !self.arch_validate_prot(prot) {
            return Err(Errno::EINVAL);
        }
        let first = *self
            .tree
            .find_vma_intersection(start, end)
            .ok_or(Errno::ENOMEM)?;
        let mut start = start;
        if grows.intersects(PROT_GROWSDOWN) {
            start = first.vm_start;
            if !first.vm_flags.contains(VmFlags::VM_GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
        } else {
            if first.vm_start > start {
                return Err(Errno::ENOMEM);
            }
            if grows.intersects(PROT_GROWSUP) {
                // No VM_GROWSUP VMA exists on arm64 or x86_64.
                return Err(Errno::EINVAL);
            }
        }
        let mask_off = VmFlags::VM_READ
            | VmFlags::VM_WRITE
            | VmFlags::VM_EXEC
            | if p.arch == Arch::Arm64 {
                VmFlags::VM_ARM64_BTI
            } else {
                VmFlags::empty()
            };
        let prot_bits = self.calc_vm_prot_bits(prot);
        let mut nstart = start;
        let mut tmp = first.vm_start;
        while let Some(vma) = self.tree.find_vma_intersection(nstart, end).copied() {
            if vma.vm_start != tmp {
                return Err(Errno::ENOMEM);
            }
            let newflags = prot_bits | vma.vm_flags.difference(mask_off);
            // newflags >> 4 shifts VM_MAY* onto VM_*.
            let may = VmFlags::from_bits_retain(newflags.bits() >> 4);
            let access = VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC;
            if !newflags.difference(may).intersection(access).is_empty() {
                return Err(Errno::EACCES);
            }
            // arm64 arch_validate_flags: VM_MTE needs VM_MTE_ALLOWED.
            if newflags.contains(VmFlags::VM_MTE) && !newflags.contains(VmFlags::VM_MTE_ALLOWED) {
                return Err(Errno::EINVAL);
            }
            tmp = vma.vm_end.min(end);
            let done_end = self.mprotect_fixup(vma, nstart, tmp, newflags, ops)?;
            tmp = done_end;
            nstart = tmp;
            if nstart >= end {
                break;
            }
        }
        if tmp < end {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// `arch_validate_prot`: R/W/X/SEM, plus `PROT_BTI`/`PROT_MTE` on arm64 CPUs with them.
    fn arch_validate_prot(&self, prot: Prot) -> bool {
        let mut ok = PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM;
        if self.params.arch == Arch::Arm64 {
            if self.params.cpu_bti {
                ok |= PROT_BTI;
            }
            if self.params.cpu_mte {
                ok |= PROT_MTE;
            }
        }
        ok.contains(prot)
    }

    /// `mprotect_fixup` on `[s, e)` of `vma`; returns the end of the VMA now holding it
    /// (`vma_iter_end`).
    fn mprotect_fixup(
        &mut self,
        vma: super::vma::Vma,
        s: u64,
        e: u64,
        mut newflags: VmFlags,
        ops: &mut dyn PageOps,
    ) -> Result<u64, Errno> {
        let oldflags = vma.vm_flags;
        if newflags == oldflags {
            return Ok(vma.vm_end);
        }
        if newflags.contains(VmFlags::VM_WRITE) {
            let blockers = VmFlags::VM_ACCOUNT
                | VmFlags::VM_WRITE
                | VmFlags::VM_HUGETLB
                | VmFlags::VM_SHARED
                | VmFlags::VM_NORESERVE;
            if !oldflags.intersects(blockers) {
                self.params
                    .vm_enough_memory((e - s) >> self.params.page_shift)?;
                newflags |= VmFlags::VM_ACCOUNT;
            }
        } else if self.params.mprotect_drops_account()
            && oldflags.contains(VmFlags::VM_ACCOUNT)
            && vma.kind.is_anonymous()
            && vma.anon_vma.is_none()
        {
            newflags.remove(VmFlags::VM_ACCOUNT);
        }
        let r = self.vma_modify_flags(vma, s, e, newflags, Errno::ENOMEM)?;
        ops.protection_changed(s, e, newflags);
        Ok(r)
    }
}
