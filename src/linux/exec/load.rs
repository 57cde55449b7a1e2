//! `load_elf_binary` and `load_elf_interp` (fs/binfmt_elf.c) on a [`Process`]: the checks
//! before the point of no return, then the new address space, segment by segment.

use super::elf::{self, Elf, ProgramHeader, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X};
use super::{max_arg_strlen, ExecArgs, ExecError, ExecFile, ExecInfo};
use crate::addr::VirtAddr;
use crate::arch::AccessKind;
use crate::linux::mm::mman::{self, MapFlags, Prot};
use crate::linux::mm::vma::{Vma, VmaKind};
use crate::linux::mm::vmflags::VmFlags;
use crate::linux::mm::{Arch, Errno, KernelVersion, LayoutParams, OpenFile};
use crate::linux::paging::Touch;
use crate::linux::process::Process;
use crate::phys::PhysMemory;

/// The largest power-of-two `p_align` of the `PT_LOAD`s, page aligned
/// (`maximum_alignment`).
fn maximum_alignment(e: &Elf<'_>, page: u64) -> u64 {
    let a = e
        .loads()
        .filter(|p| p.p_align.is_power_of_two())
        .map(|p| p.p_align)
        .max()
        .unwrap_or(0);
    a.checked_next_multiple_of(page).unwrap_or(a)
}

/// `total_mapping_size`: from the page of the first `PT_LOAD` to the end of the last.
fn total_mapping_size(e: &Elf<'_>, page: u64) -> u64 {
    let (Some(first), Some(last)) = (e.loads().next(), e.loads().last()) else {
        return 0;
    };
    last.p_vaddr
        .wrapping_add(last.p_memsz)
        .wrapping_sub(first.p_vaddr & !(page - 1))
}

/// The checks `load_elf_binary` makes of every `PT_LOAD` (`EINVAL`).
fn segment_ok(ph: &ProgramHeader, task_size: u64) -> bool {
    ph.p_vaddr < task_size
        && ph.p_filesz <= ph.p_memsz
        && ph.p_memsz <= task_size
        && task_size - ph.p_memsz >= ph.p_vaddr
}

/// Checks the argument and environment strings as `bprm_stack_limits` and
/// `copy_strings` do, and returns their size on the stack (the filename, every string
/// with its NUL, and the 8 bytes above them).
fn string_bytes(params: &LayoutParams, args: &ExecArgs<'_>) -> Result<u64, Errno> {
    let max = max_arg_strlen(params);
    let mut total = 0u64;
    for s in core::iter::once(&args.filename)
        .chain(args.envp.iter())
        .chain(args.argv.iter())
    {
        let n = s.len() as u64 + 1;
        if n > max {
            return Err(Errno::E2BIG);
        }
        total += n;
    }
    let limit = (args.rlimit_stack / 4).clamp(128 << 10, 6 << 20);
    let ptrs = (args.argv.len().max(1) + args.envp.len()) as u64 * 8;
    if limit <= ptrs || total > limit - ptrs {
        return Err(Errno::E2BIG);
    }
    Ok(total + 8)
}

/// `make_prot` with arm64's `arch_elf_adjust_prot` (PROT_BTI on executable segments of a
/// BTI-marked image, when it is the one that runs first).
fn make_prot(p_flags: u32, bti: bool) -> Prot {
    let mut p = Prot::empty();
    if p_flags & PF_R != 0 {
        p |= mman::PROT_READ;
    }
    if p_flags & PF_W != 0 {
        p |= mman::PROT_WRITE;
    }
    if p_flags & PF_X != 0 {
        p |= mman::PROT_EXEC;
        if bti {
            p |= mman::PROT_BTI;
        }
    }
    p
}

impl<'a, 'f, M: PhysMemory, const N: usize> Process<'a, 'f, M, N> {
    /// `execve` of `exe` (with `interp`, its `PT_INTERP` interpreter, when it names one)
    /// as `load_elf_binary` does it for the layout's architecture and kernel version: the
    /// old address space goes, the stack, the segments (bss included), the interpreter,
    /// brk and the vDSO are set up, and the initial stack (strings, argv, envp, auxv) is
    /// written through the MMU. Read [`super::elf::Elf::interp`] first to know which
    /// interpreter to open.
    ///
    /// # Errors
    /// [`ExecError::Refused`] with the kernel's errno before the point of no return
    /// (`E2BIG`, `ENOEXEC`, `EIO`, `ENOENT` when the interpreter is missing, `ELIBBAD`):
    /// nothing changed. [`ExecError::Killed`] after it (a segment that cannot be mapped, a
    /// bad interpreter type, an entry point past `TASK_SIZE`, out of memory): the process
    /// holds what the kernel holds when it kills the task.
    pub fn exec(
        &mut self,
        exe: &ExecFile<'_>,
        interp: Option<&ExecFile<'_>>,
        args: &ExecArgs<'_>,
    ) -> Result<ExecInfo, ExecError> {
        let params = *self.space().params();
        let machine = match params.arch {
            Arch::X86_64 => elf::EM_X86_64,
            Arch::Arm64 => elf::EM_AARCH64,
        };
        let refused = ExecError::Refused;
        let strings = string_bytes(&params, args).map_err(refused)?;
        let elf = Elf::parse(exe.bytes, machine).map_err(refused)?;
        let interp = match (elf.interp().map_err(refused)?, interp) {
            (None, _) => None,
            (Some(_), None) => return Err(refused(Errno::ENOENT)),
            (Some(_), Some(i)) => Some((
                Elf::parse_interp(i.bytes, machine).map_err(refused)?,
                i.file,
            )),
        };
        // The point of no return.
        let killed = ExecError::Killed;
        let compat = args.personality & super::ADDR_COMPAT_LAYOUT != 0;
        self.exec_reset(args.rlimit_stack, compat).map_err(killed)?;
        let params = *self.space().params();
        let page = params.page_size();
        let top = params.stack_top;
        let arg_start = top - strings;
        self.setup_stack(arg_start, args.rlimit_stack, elf.exec_stack())
            .map_err(killed)?;
        let bti = params.cpu_bti && params.arch == Arch::Arm64;
        let (bias, elf_brk, phdr) = self
            .load_program(&elf, &exe.file, interp.is_some(), bti)
            .map_err(killed)?;
        let mut info = ExecInfo {
            entry: elf.e_entry.wrapping_add(bias),
            load_bias: bias,
            phdr,
            arg_start,
            ..ExecInfo::default()
        };
        info.pc = info.entry;
        if let Some((ie, file)) = &interp {
            let base = self.load_interp(ie, file, bti).map_err(killed)?;
            info.base = base;
            info.pc = ie.e_entry.wrapping_add(base);
        }
        // brk: after the image; a static PIE's goes to ELF_ET_DYN_BASE.
        let start_brk = if elf.e_type == ET_DYN && interp.is_none() {
            params.elf_et_dyn_base()
        } else {
            elf_brk
        };
        let start_brk = start_brk.checked_next_multiple_of(page).unwrap_or(0);
        self.space_mut().set_brk_area(start_brk, start_brk);
        info.start_brk = start_brk;
        if info.entry >= params.task_size {
            return Err(killed(Errno::EINVAL));
        }
        info.vdso = self.map_vdso().map_err(killed)?;
        info.sp = self.create_elf_tables(args, &elf, &info).map_err(killed)?;
        self.space_mut().set_start_stack(info.sp);
        Ok(info)
    }

    /// Drops the old address space and starts the new layout.
    fn exec_reset(&mut self, rlimit_stack: u64, compat_layout: bool) -> Result<(), Errno> {
        self.sync_call(|space, ops| {
            space.exec_reset(rlimit_stack, compat_layout, ops);
            Ok(())
        })
    }

    /// `setup_arg_pages`: the stack VMA from the page of the lowest string byte to
    /// `STACK_TOP`, plus 128 KiB, within `RLIMIT_STACK`.
    fn setup_stack(&mut self, arg_start: u64, rlimit: u64, exec: bool) -> Result<(), Errno> {
        let params = *self.space().params();
        let page = params.page_size();
        let top = params.stack_top;
        let strings = top - (arg_start & !(page - 1));
        let size = strings.max((rlimit & !(page - 1)).min(strings + (128 << 10)));
        let mut flags = VmFlags::VM_READ
            | VmFlags::VM_WRITE
            | VmFlags::VM_MAYREAD
            | VmFlags::VM_MAYWRITE
            | VmFlags::VM_MAYEXEC
            | VmFlags::VM_GROWSDOWN
            | VmFlags::VM_ACCOUNT;
        if exec {
            flags |= VmFlags::VM_EXEC;
        }
        if params.arch == Arch::Arm64 && params.config_arm64_mte {
            flags |= VmFlags::VM_MTE_ALLOWED;
        }
        let start = top.checked_sub(size).ok_or(Errno::ENOMEM)?;
        let space = self.space_mut();
        let id = space.new_anon_vma();
        let mut v = Vma::with_kind(start, top, flags, VmaKind::Anonymous, 0, params.page_shift);
        v.anon_vma = Some(id);
        space.insert_vma(v)?;
        space.set_start_stack(arg_start);
        Ok(())
    }

    /// The program's `PT_LOAD`s; returns the load bias, the end of the image (`elf_brk`)
    /// and `AT_PHDR`.
    fn load_program(
        &mut self,
        e: &Elf<'_>,
        file: &OpenFile,
        has_interp: bool,
        bti: bool,
    ) -> Result<(u64, u64, u64), Errno> {
        let params = *self.space().params();
        let page = params.page_size();
        let task = params.task_size;
        let check_first = params.version >= KernelVersion::V6_18;
        let mut bias = 0u64;
        let mut first = true;
        let mut elf_brk = 0u64;
        let mut phdr = 0u64;
        for ph in e.loads() {
            if check_first && !segment_ok(&ph, task) {
                return Err(Errno::EINVAL);
            }
            let prot = make_prot(ph.p_flags, bti && !has_interp && e.bti());
            let vaddr = ph.p_vaddr;
            let mut flags = mman::MAP_PRIVATE;
            let mut total = 0;
            if !first {
                flags |= mman::MAP_FIXED;
            } else if e.e_type == ET_EXEC {
                flags |= mman::MAP_FIXED_NOREPLACE;
            } else {
                let alignment = maximum_alignment(e, page);
                total = total_mapping_size(e, page);
                if total == 0 {
                    return Err(Errno::EINVAL);
                }
                let mut lb = if has_interp {
                    let mut b = params.elf_et_dyn_base();
                    if alignment != 0 {
                        b &= !(alignment - 1);
                    }
                    flags |= mman::MAP_FIXED_NOREPLACE;
                    b
                } else if alignment > page {
                    let b = self.elf_load(file, 0, &ph, prot, flags, total)?;
                    self.munmap(b, total)?;
                    flags |= mman::MAP_FIXED_NOREPLACE;
                    b & !(alignment - 1)
                } else {
                    0
                };
                lb = lb.wrapping_sub(vaddr) & !(page - 1);
                bias = lb;
            }
            let at = bias.wrapping_add(vaddr);
            let mapped = self.elf_load(file, at, &ph, prot, flags, total)?;
            if first && e.e_type == ET_DYN {
                bias = bias.wrapping_add(mapped.wrapping_sub(at & !(page - 1)));
            }
            first = false;
            if !check_first && !segment_ok(&ph, task) {
                return Err(Errno::EINVAL);
            }
            if ph.p_offset <= e.e_phoff && e.e_phoff < ph.p_offset.saturating_add(ph.p_filesz) {
                phdr = e.e_phoff - ph.p_offset + vaddr;
            }
            elf_brk = elf_brk.max(vaddr.wrapping_add(ph.p_memsz));
        }
        Ok((bias, elf_brk.wrapping_add(bias), phdr.wrapping_add(bias)))
    }

    /// `load_elf_interp`: returns the interpreter's load address.
    fn load_interp(&mut self, e: &Elf<'_>, file: &OpenFile, bti: bool) -> Result<u64, Errno> {
        if e.e_type != ET_EXEC && e.e_type != ET_DYN {
            return Err(Errno::EINVAL);
        }
        let params = *self.space().params();
        let page = params.page_size();
        let mut total = total_mapping_size(e, page);
        if total == 0 {
            return Err(Errno::EINVAL);
        }
        let mut load_addr = 0u64;
        let mut load_addr_set = false;
        for ph in e.loads() {
            let prot = make_prot(ph.p_flags, bti && e.bti());
            let mut flags = mman::MAP_PRIVATE;
            if e.e_type == ET_EXEC || load_addr_set {
                flags |= mman::MAP_FIXED;
            }
            let at = load_addr.wrapping_add(ph.p_vaddr);
            let mapped = self.elf_load(file, at, &ph, prot, flags, total)?;
            total = 0;
            if !load_addr_set && e.e_type == ET_DYN {
                load_addr = mapped.wrapping_sub(ph.p_vaddr & !(page - 1));
                load_addr_set = true;
            }
            let k = load_addr.wrapping_add(ph.p_vaddr);
            if !segment_ok(&ProgramHeader { p_vaddr: k, ..ph }, params.task_size) {
                return Err(Errno::EINVAL);
            }
        }
        Ok(load_addr)
    }

    /// `elf_load`: maps one segment's file part (the whole image's span first when
    /// `total` is not 0), zeroes the rest of its last file page (`padzero`) and maps the
    /// bss beyond it as anonymous memory. Returns where the segment's first page went.
    fn elf_load(
        &mut self,
        file: &OpenFile,
        addr: u64,
        ph: &ProgramHeader,
        prot: Prot,
        flags: MapFlags,
        total: u64,
    ) -> Result<u64, Errno> {
        let page = self.space().params().page_size();
        let pageoff = ph.p_vaddr & (page - 1);
        let (map_addr, zero_start, zero_end);
        if ph.p_filesz > 0 {
            let size = ph
                .p_filesz
                .checked_add(pageoff)
                .and_then(|n| n.checked_next_multiple_of(page))
                .ok_or(Errno::EINVAL)?;
            let off = ph.p_offset.wrapping_sub(pageoff);
            let at = addr & !(page - 1);
            let m = if total > 0 {
                let total = total.checked_next_multiple_of(page).ok_or(Errno::EINVAL)?;
                let m = self.mmap_file(at, total, prot, flags, file, off)?;
                if total > size {
                    self.munmap(m + size, total - size)?;
                }
                m
            } else {
                self.mmap_file(at, size, prot, flags, file, off)?
            };
            map_addr = m;
            zero_start = (m + pageoff)
                .checked_add(ph.p_filesz)
                .ok_or(Errno::EINVAL)?;
            zero_end = (m + pageoff).checked_add(ph.p_memsz).ok_or(Errno::EINVAL)?;
            if ph.p_memsz > ph.p_filesz && zero_start & (page - 1) != 0 {
                let n = (page - (zero_start & (page - 1))) as usize;
                let zeros = [0u8; 256];
                let mut done = 0;
                while done < n {
                    let k = (n - done).min(zeros.len());
                    let r = self.write_user(zero_start + done as u64, &zeros[..k]);
                    if r.is_err() {
                        if prot.contains(mman::PROT_WRITE) {
                            return Err(Errno::EFAULT);
                        }
                        break;
                    }
                    done += k;
                }
            }
        } else {
            map_addr = addr & !(page - 1);
            zero_start = map_addr;
            zero_end = (zero_start + pageoff)
                .checked_add(ph.p_memsz)
                .ok_or(Errno::EINVAL)?;
        }
        if ph.p_memsz > ph.p_filesz {
            // vm_brk_flags: read-write anonymous memory, executable if the segment is.
            let zs = zero_start
                .checked_next_multiple_of(page)
                .ok_or(Errno::EINVAL)?;
            let ze = zero_end
                .checked_next_multiple_of(page)
                .ok_or(Errno::EINVAL)?;
            if ze > zs {
                let mut p = mman::PROT_READ | mman::PROT_WRITE;
                if prot.contains(mman::PROT_EXEC) {
                    p |= mman::PROT_EXEC;
                }
                let f = mman::MAP_PRIVATE | mman::MAP_ANONYMOUS | mman::MAP_FIXED;
                self.mmap(zs, ze - zs, p, f)?;
            }
        }
        Ok(map_addr)
    }

    /// `arch_setup_additional_pages`: the vDSO block where a fresh mapping would go;
    /// returns the `[vdso]` address.
    fn map_vdso(&mut self) -> Result<u64, Errno> {
        let params = *self.space().params();
        let p = params.page_size();
        let x86 = params.arch == Arch::X86_64;
        let mut vvar =
            VmFlags::VM_READ | VmFlags::VM_MAYREAD | VmFlags::VM_PFNMAP | VmFlags::VM_DONTEXPAND;
        if x86 {
            vvar |= VmFlags::VM_IO | VmFlags::VM_DONTDUMP;
        }
        let vdso = VmFlags::VM_READ
            | VmFlags::VM_EXEC
            | VmFlags::VM_MAYREAD
            | VmFlags::VM_MAYWRITE
            | VmFlags::VM_MAYEXEC
            | VmFlags::VM_DONTEXPAND;
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
        let space = self.space_mut();
        let mut s = space.unmapped_area(total)?;
        let mut at = 0;
        for &(n, f, k) in parts {
            space.insert_vma(Vma::with_kind(s, s + n * p, f, k, 0, params.page_shift))?;
            if k == VmaKind::Vdso {
                at = s;
            }
            s += n * p;
        }
        Ok(at)
    }

    /// Writes `data` at `va` as user stores through the MMU (faulting pages in).
    ///
    /// # Errors
    /// The [`Touch`] of the first store that did not complete.
    pub fn write_user(&mut self, va: u64, data: &[u8]) -> Result<(), Touch> {
        let page = self.space().params().page_size();
        let mut done = 0usize;
        while done < data.len() {
            let a = va + done as u64;
            let n = ((page - (a & (page - 1))) as usize).min(data.len() - done);
            let pa = match self.access(VirtAddr::new(a), AccessKind::Write) {
                Touch::Done(pa) => pa,
                t => return Err(t),
            };
            self.write_phys(pa.as_u64(), &data[done..done + n])
                .map_err(|_| Touch::OutOfMemory {
                    addr: VirtAddr::new(a),
                })?;
            done += n;
        }
        Ok(())
    }
}
