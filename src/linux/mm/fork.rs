//! The VMA side of `fork` (`dup_mmap`): the child's address space is a copy of the
//! parent's, less the `VM_DONTCOPY` VMAs, with a new `anon_vma` for each VMA that has one
//! (`anon_vma_fork`) and none for `VM_WIPEONFORK` VMAs.

use super::space::AddressSpace;
use super::vma::Vma;
use super::vma_tree::{VmaSlot, VmaTree};
use super::vmflags::VmFlags;

impl<'a> AddressSpace<'a> {
    /// Builds the child's address space over `slots` as `dup_mmap` does (the VMAs whose
    /// page-table entries the child gets a copy of are those [`fork_copies_pages`] names).
    ///
    /// `mlock` flags are not inherited (`VM_LOCKED`, `VM_LOCKONFAULT`). A copied VMA with an
    /// `anon_vma` gets a new one in the child whose chain also holds the parent's, so the
    /// child's merges treat it as a fork child.
    ///
    /// # Errors
    /// The storage back when `slots` cannot hold the child's VMAs (`ENOMEM` for the
    /// caller; nothing of the parent changes).
    pub fn fork_into<'b>(
        &self,
        slots: &'b mut [VmaSlot],
    ) -> Result<AddressSpace<'b>, &'b mut [VmaSlot]> {
        let mut child = AddressSpace {
            tree: VmaTree::new(slots),
            params: self.params,
            mmap_base: self.mmap_base,
            start_brk: self.start_brk,
            brk: self.brk,
            start_stack: self.start_stack,
            next_anon_id: self.next_anon_id,
            next_shmem_ino: self.next_shmem_ino,
        };
        for v in self.tree.iter() {
            if v.vm_flags.contains(VmFlags::VM_DONTCOPY) {
                continue;
            }
            let mut c = *v;
            c.vm_flags
                .remove(VmFlags::VM_LOCKED | VmFlags::VM_LOCKONFAULT);
            if c.vm_flags.contains(VmFlags::VM_WIPEONFORK) {
                c.anon_vma = None;
                c.anon_vma_fork_child = false;
            } else if c.anon_vma.is_some() {
                c.anon_vma = Some(child.fresh_anon_id());
                c.anon_vma_fork_child = true;
            }
            if child.tree.insert(c).is_err() {
                return Err(child.into_slots());
            }
        }
        Ok(child)
    }
}

/// Returns whether `fork` copies the page-table entries of `v` into the child
/// (`vma_needs_copy`: the VMA has an `anon_vma`, and is neither `VM_DONTCOPY` nor
/// `VM_WIPEONFORK`). The child of any other VMA faults its pages in afresh: from the page
/// cache for files and shmem, as zero pages or new pages for anonymous memory.
pub fn fork_copies_pages(v: &Vma) -> bool {
    v.anon_vma.is_some()
        && !v
            .vm_flags
            .intersects(VmFlags::VM_DONTCOPY | VmFlags::VM_WIPEONFORK)
}
