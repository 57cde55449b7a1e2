//! Growing a grows-down VMA (the stack) on a fault below it (`expand_downwards`, spec §6).

use super::vmflags::VmFlags;

use super::errno::Errno;
use super::space::{tree_errno, AddressSpace};

impl AddressSpace<'_> {
    /// Grows the `VM_GROWSDOWN` VMA just above `addr` down to cover it, as a page fault
    /// below the stack does: the new start is `addr` rounded down to a page, `vm_pgoff`
    /// moves with it, and the VMA gets an `anon_vma`.
    ///
    /// # Errors
    /// `EFAULT` (the fault becomes SIGSEGV `SEGV_MAPERR`) when no grows-down VMA lies above
    /// `addr`, when the VMA below is accessible, not grows-down, and closer than the stack
    /// guard gap, when the VMA would exceed RLIMIT_STACK, or below `mmap_min_addr`.
    pub fn expand_stack(&mut self, addr: u64) -> Result<(), Errno> {
        let page = self.params.page_size();
        let v = *self.tree.find_vma(addr).ok_or(Errno::EFAULT)?;
        if v.vm_start <= addr {
            return Ok(());
        }
        if !v.vm_flags.contains(VmFlags::VM_GROWSDOWN) {
            return Err(Errno::EFAULT);
        }
        let new_start = addr & !(page - 1);
        if new_start < self.params.mmap_min_addr {
            return Err(Errno::EFAULT);
        }
        if v.vm_end - new_start > self.params.rlimit_stack {
            return Err(Errno::EFAULT);
        }
        if let (_, Some(prev)) = self.tree.find_vma_prev(v.vm_start) {
            let accessible = prev
                .vm_flags
                .intersects(VmFlags::VM_READ | VmFlags::VM_WRITE | VmFlags::VM_EXEC);
            if prev.vm_end > new_start
                || (accessible
                    && !prev.vm_flags.contains(VmFlags::VM_GROWSDOWN)
                    && new_start - prev.vm_end < self.params.stack_guard_gap)
            {
                return Err(Errno::EFAULT);
            }
        }
        let pages = (v.vm_start - new_start) / page;
        // acct_stack_growth charges the growth.
        self.params
            .vm_enough_memory(pages)
            .map_err(|_| Errno::EFAULT)?;
        self.tree
            .update(v.vm_start, |x| {
                x.vm_start = new_start;
                x.vm_pgoff = x.vm_pgoff.wrapping_sub(pages);
            })
            .map_err(tree_errno)?;
        self.anon_vma_prepare(new_start)?;
        Ok(())
    }
}
