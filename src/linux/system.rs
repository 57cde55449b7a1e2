//! Several processes on one simulated machine: `fork` with copy-on-write, `vfork`,
//! `execve` over a live process, `exit`, and switching between them.
//!
//! A [`System`] owns one [`Process`], which holds the machine (physical memory, frames,
//! TLB, page cache, zero pages) and the address space and translation tables of the
//! process running now. The others wait as an [`AddressSpace`] and [`Tables`] each, with
//! their own ASID; switching swaps them in (TTBR0 changes, the TLB keeps every ASID's
//! entries apart). Pages a fork shared are counted per frame, so a page leaves the machine
//! only when the last process that maps it lets it go.

use core::fmt;

use arrayvec::ArrayVec;

use super::exec::{ExecArgs, ExecError, ExecFile, ExecInfo};
use super::mm::errno::Errno;
use super::mm::space::AddressSpace;
use super::mm::vma_tree::VmaSlot;
use super::paging::Tables;
use super::process::{references_shmem, Invariant, Process};
use crate::mmu::{Leaf, MapError};
use crate::phys::PhysMemory;

/// A process id.
pub type Pid = u32;

/// The most processes a [`System`] holds.
pub const MAX_PROCESSES: usize = 32;

/// How a process that is not running holds its address space.
// Without a heap the parked address space lives inline; a borrowed one is rare.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Mm<'a> {
    /// Its own; both `None` while it is the one in the machine.
    Own {
        space: Option<AddressSpace<'a>>,
        tables: Option<Tables>,
    },
    /// A `vfork` child: it runs in the address space of `parent` until it execs or exits.
    Borrowed(Pid),
}

#[derive(Debug)]
struct Task<'a> {
    pid: Pid,
    ppid: Pid,
    mm: Mm<'a>,
}

/// What went wrong in a [`System`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemError {
    /// No process has this pid (`ESRCH`).
    NoSuchProcess(Pid),
    /// The call failed with this errno: `EAGAIN` when [`MAX_PROCESSES`] run, `ENOMEM` when
    /// no VMA storage or no frame is left for the child, `EINVAL` for the exit of the last
    /// process.
    Errno(Errno),
}

impl fmt::Display for SystemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemError::NoSuchProcess(p) => write!(f, "no process {p} (ESRCH)"),
            SystemError::Errno(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for SystemError {}

impl From<Errno> for SystemError {
    fn from(e: Errno) -> Self {
        SystemError::Errno(e)
    }
}

/// Processes on one machine: the running one inside a [`Process`], the others parked.
///
/// # Example
///
/// A fork shares a written page; the child's write copies it.
///
/// ```
/// use pagesim::arch::AccessKind;
/// use pagesim::linux::mm::vma_tree::VmaSlot;
/// use pagesim::linux::mm::{mman, AddressSpace, LayoutParams};
/// use pagesim::linux::paging::{Paging, PagingConfig, Touch};
/// use pagesim::linux::process::Process;
/// use pagesim::linux::system::System;
/// use pagesim::mmu::{Contents, FrameAllocator};
/// use pagesim::phys::SliceMemory;
/// use pagesim::{PhysAddr, VirtAddr};
///
/// let params = LayoutParams::arm64_6_1();
/// let (mut parent_slots, mut child_slots) = ([VmaSlot::EMPTY; 64], [VmaSlot::EMPTY; 64]);
/// let space = AddressSpace::fresh_process(&mut parent_slots, params, "/bin/app")?;
/// let mut ram = vec![0u8; 16 << 20];
/// let mut words = vec![0u64; FrameAllocator::storage_words(4096)];
/// let mut shares = vec![0u16; 4096];
/// let base = PhysAddr::new(0x4000_0000);
/// let frames = FrameAllocator::new(base, 16 << 20, &mut words, Contents::Zeroed)?;
/// let mut paging = Paging::new(PagingConfig::for_layout(&params), SliceMemory::new(base, &mut ram), frames)?;
/// paging.set_share_counts(&mut shares)?;
/// let mut sys: System<'_, '_, _, 64> = System::new(Process::new(space, paging), 1, [&mut child_slots[..]]);
///
/// let rw = mman::PROT_READ | mman::PROT_WRITE;
/// let a = sys.process_mut().mmap(0, 4096, rw, mman::MAP_PRIVATE | mman::MAP_ANONYMOUS)?;
/// let Touch::Done(pa) = sys.process_mut().access(VirtAddr::new(a), AccessKind::Write) else { panic!() };
/// let child = sys.fork()?;
/// assert!(sys.smaps_of(child)?.contains("Shared_Dirty:          4 kB"));
/// sys.switch(child)?;
/// let Touch::Done(copy) = sys.process_mut().access(VirtAddr::new(a), AccessKind::Write) else { panic!() };
/// assert_ne!(copy, pa, "the child's write copied the page");
/// assert!(sys.smaps_of(1)?.contains("Private_Dirty:         4 kB"));
/// sys.exit()?; // back in the parent
/// assert_eq!(sys.current(), 1);
/// sys.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct System<'a, 'f, M: PhysMemory, const N: usize> {
    cpu: Process<'a, 'f, M, N>,
    /// Whose address space and tables are in `cpu`.
    owner: Pid,
    /// Whose calls `cpu` makes (a vfork child runs in its parent's address space).
    current: Pid,
    tasks: ArrayVec<Task<'a>, MAX_PROCESSES>,
    /// VMA storage for the next processes.
    pool: ArrayVec<&'a mut [VmaSlot], MAX_PROCESSES>,
    /// The machine's shmem inode counter (each address space numbers its new shared
    /// anonymous mappings from it while it runs, so that no two objects share a number
    /// and with it their page-cache pages).
    shmem_ino: u64,
}

impl<M: PhysMemory, const N: usize> fmt::Debug for System<'_, '_, M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("current", &self.current)
            .field(
                "pids",
                &self
                    .tasks
                    .iter()
                    .map(|t| t.pid)
                    .collect::<ArrayVec<Pid, MAX_PROCESSES>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<'a, 'f, M: PhysMemory, const N: usize> System<'a, 'f, M, N> {
    /// Starts with `first` as process `pid`, and `slots` as the VMA storage of the
    /// processes to come (one slice each; at most [`MAX_PROCESSES`] are kept). The
    /// paging needs share counts ([`crate::linux::paging::Paging::set_share_counts`]) for
    /// a fork to share anonymous pages.
    pub fn new(
        first: Process<'a, 'f, M, N>,
        pid: Pid,
        slots: impl IntoIterator<Item = &'a mut [VmaSlot]>,
    ) -> Self {
        let mut first = first;
        first.join_system();
        let mut tasks = ArrayVec::new();
        tasks.push(Task {
            pid,
            ppid: 0,
            mm: Mm::Own {
                space: None,
                tables: None,
            },
        });
        let shmem_ino = first.space().next_shmem_ino();
        System {
            cpu: first,
            owner: pid,
            current: pid,
            tasks,
            pool: slots.into_iter().take(MAX_PROCESSES).collect(),
            shmem_ino,
        }
    }

    /// Returns the pid whose calls [`System::process_mut`] makes.
    pub const fn current(&self) -> Pid {
        self.current
    }

    /// Returns the pids, in the order the processes were created.
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.tasks.iter().map(|t| t.pid)
    }

    /// Returns the parent of `pid` (0 for the first process and orphans).
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`].
    pub fn ppid(&self, pid: Pid) -> Result<Pid, SystemError> {
        Ok(self.tasks[self.index(pid)?].ppid)
    }

    /// Returns the running process (the current one's address space and the machine).
    pub fn process(&self) -> &Process<'a, 'f, M, N> {
        &self.cpu
    }

    /// Returns the running process, whose calls (mmap, accesses, …) are the current
    /// process's.
    pub fn process_mut(&mut self) -> &mut Process<'a, 'f, M, N> {
        &mut self.cpu
    }

    fn index(&self, pid: Pid) -> Result<usize, SystemError> {
        self.tasks
            .iter()
            .position(|t| t.pid == pid)
            .ok_or(SystemError::NoSuchProcess(pid))
    }

    /// Returns whose address space `pid` runs in: itself, or for a vfork child that has
    /// not exec'd, the process it borrows it from.
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`].
    pub fn owner_of(&self, pid: Pid) -> Result<Pid, SystemError> {
        Ok(match self.tasks[self.index(pid)?].mm {
            Mm::Own { .. } => pid,
            Mm::Borrowed(p) => p,
        })
    }

    /// Puts the address space and tables of `owner` into the machine.
    fn load(&mut self, owner: Pid) -> Result<(), SystemError> {
        if owner == self.owner {
            return Ok(());
        }
        self.settle()?;
        let (i, j) = (self.index(owner)?, self.index(self.owner)?);
        let Mm::Own {
            space: Some(mut space),
            tables: Some(mut tables),
        } = core::mem::replace(
            &mut self.tasks[i].mm,
            Mm::Own {
                space: None,
                tables: None,
            },
        )
        else {
            return Err(SystemError::NoSuchProcess(owner));
        };
        self.shmem_ino = self.shmem_ino.max(self.cpu.space().next_shmem_ino());
        self.cpu.swap_mm(&mut space, &mut tables);
        self.cpu.space_mut().set_next_shmem_ino(self.shmem_ino);
        self.tasks[j].mm = Mm::Own {
            space: Some(space),
            tables: Some(tables),
        };
        self.owner = owner;
        Ok(())
    }

    /// Frees the pages of shmem objects no process maps any more.
    fn gc(&mut self) {
        let System { cpu, tasks, .. } = self;
        cpu.evict_shmem(|inode| {
            tasks.iter().any(|t| match &t.mm {
                Mm::Own { space: Some(s), .. } => references_shmem(s, inode),
                _ => false,
            })
        });
    }

    /// Applies to the parked tables what the per-CPU folio batch moved while others ran.
    fn settle(&mut self) -> Result<(), SystemError> {
        self.gc();
        let System { cpu, tasks, .. } = self;
        for t in tasks.iter_mut() {
            if let Mm::Own {
                tables: Some(tables),
                ..
            } = &mut t.mm
            {
                cpu.paging_mut()
                    .settle_parked(tables)
                    .map_err(|_| Errno::ENOMEM)?;
            }
        }
        cpu.paging_mut().settled();
        Ok(())
    }

    /// Makes `pid` the current process: later calls through [`System::process_mut`] are
    /// its.
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`].
    pub fn switch(&mut self, pid: Pid) -> Result<(), SystemError> {
        let owner = self.owner_of(pid)?;
        self.load(owner)?;
        self.current = pid;
        self.gc();
        Ok(())
    }

    /// Returns the pid a new process gets: the next after the highest in use.
    fn next_pid(&self) -> Pid {
        self.tasks
            .iter()
            .map(|t| t.pid)
            .max()
            .unwrap_or(0)
            .wrapping_add(1)
    }

    /// Returns an ASID no process uses.
    fn free_asid(&self, from: Pid) -> u16 {
        let used = |a: u16| {
            self.tasks.iter().any(|t| match &t.mm {
                Mm::Own {
                    tables: Some(tb), ..
                } => tb.asid() == a,
                _ => false,
            }) || self.cpu.paging().mapper().asid() == a
        };
        let mut a = (from & 0xffff) as u16;
        while a == 0 || a == u16::MAX || used(a) {
            a = a.wrapping_add(1);
        }
        a
    }

    /// Forks the current process (`fork`, `clone` without `CLONE_VM`): the child gets a
    /// copy of the VMAs and of the page-table entries `dup_mmap` copies, sharing the
    /// private pages copy-on-write. The current process stays the parent. Returns the
    /// child's pid.
    ///
    /// # Errors
    /// `EAGAIN` when [`MAX_PROCESSES`] run; `ENOMEM` when no VMA storage is left, or no
    /// frame for the child's tables (the parent is then as before, except that its
    /// private pages are write-protected, which only costs it a fault).
    pub fn fork(&mut self) -> Result<Pid, SystemError> {
        if self.tasks.is_full() {
            return Err(Errno::EAGAIN.into());
        }
        let parent = self.current;
        // A vfork child forks from the address space it runs in.
        self.load(self.owner_of(parent)?)?;
        let slots = self.pool.pop().ok_or(Errno::ENOMEM)?;
        let pid = self.next_pid();
        let mut space = match self.cpu.space().fork_into(slots) {
            Ok(s) => s,
            Err(slots) => {
                self.pool.push(slots);
                return Err(Errno::ENOMEM.into());
            }
        };
        let asid = self.free_asid(pid);
        let mut tables = match self.cpu.paging_mut().new_tables(asid) {
            Ok(t) => t,
            Err(_) => {
                self.pool.push(space.into_slots());
                return Err(Errno::ENOMEM.into());
            }
        };
        if self.cpu.fork_tables(&mut tables).is_err() {
            // Undo: the child's entries go, with the map counts they took.
            self.cpu.swap_mm(&mut space, &mut tables);
            let zapped = self.drop_running_tables();
            self.cpu.swap_mm(&mut space, &mut tables);
            let freed = self.cpu.paging_mut().free_tables(tables);
            self.pool.push(space.into_slots());
            zapped.and(freed.map_err(|_| Errno::ENOMEM))?;
            return Err(Errno::ENOMEM.into());
        }
        self.tasks.push(Task {
            pid,
            ppid: parent,
            mm: Mm::Own {
                space: Some(space),
                tables: Some(tables),
            },
        });
        Ok(pid)
    }

    /// Zaps every page of the running tables (their VMAs stay).
    fn drop_running_tables(&mut self) -> Result<(), Errno> {
        let top = 1u64 << self.cpu.paging().config().va_bits;
        self.cpu.paging_mut().zap(0, top).map_err(|_| Errno::ENOMEM)
    }

    /// Creates a `vfork` child (`vfork`, `clone(CLONE_VM)`): it runs in the current
    /// process's address space until it execs ([`System::exec`]) or exits. The current
    /// process stays the parent. Returns the child's pid.
    ///
    /// # Errors
    /// `EAGAIN` when [`MAX_PROCESSES`] run.
    pub fn vfork(&mut self) -> Result<Pid, SystemError> {
        if self.tasks.is_full() {
            return Err(Errno::EAGAIN.into());
        }
        let owner = self.owner_of(self.current)?;
        let pid = self.next_pid();
        self.tasks.push(Task {
            pid,
            ppid: self.current,
            mm: Mm::Borrowed(owner),
        });
        Ok(pid)
    }

    /// Runs `execve` in the current process: a vfork child first gets an address space of
    /// its own (the parent's stays as it was); then [`Process::exec`] replaces it, freeing
    /// the pages only it held.
    ///
    /// # Errors
    /// [`ExecError`] as [`Process::exec`] gives it; `Refused(ENOMEM)` when a vfork child
    /// finds no VMA storage or frame for its own address space.
    pub fn exec(
        &mut self,
        exe: &ExecFile<'_>,
        interp: Option<&ExecFile<'_>>,
        args: &ExecArgs<'_>,
    ) -> Result<ExecInfo, ExecError> {
        let refused = ExecError::Refused(Errno::ENOMEM);
        if let Ok(i) = self.index(self.current) {
            if let Mm::Borrowed(owner) = self.tasks[i].mm {
                self.load(owner).map_err(|_| refused)?;
                let slots = self.pool.pop().ok_or(refused)?;
                let params = *self.cpu.space().params();
                let mut space = AddressSpace::new(slots, params);
                let asid = self.free_asid(self.current);
                let mut tables = match self.cpu.paging_mut().new_tables(asid) {
                    Ok(t) => t,
                    Err(_) => {
                        self.pool.push(space.into_slots());
                        return Err(refused);
                    }
                };
                // The child's own (empty) address space runs; the parent's is parked.
                self.shmem_ino = self.shmem_ino.max(self.cpu.space().next_shmem_ino());
                self.cpu.swap_mm(&mut space, &mut tables);
                self.cpu.space_mut().set_next_shmem_ino(self.shmem_ino);
                let j = self.index(owner).map_err(|_| refused)?;
                self.tasks[j].mm = Mm::Own {
                    space: Some(space),
                    tables: Some(tables),
                };
                self.tasks[i].mm = Mm::Own {
                    space: None,
                    tables: None,
                };
                self.owner = self.current;
            }
        }
        let r = self.cpu.exec(exe, interp, args);
        self.gc();
        r
    }

    /// Ends the current process (`exit`). The address space goes with its last user
    /// (`mmput`): a vfork child leaves its parent's as it is, a process whose vfork child
    /// still runs in its address space leaves it to that child, and any other process drops
    /// its mappings (`exit_mmap`), so that the pages and tables only it held return to the
    /// machine. The parent becomes current (or, for an orphan, the first process left); the
    /// exited process's children become orphans.
    ///
    /// # Errors
    /// `EINVAL` for the last process.
    pub fn exit(&mut self) -> Result<(), SystemError> {
        if self.tasks.len() <= 1 {
            return Err(Errno::EINVAL.into());
        }
        let pid = self.current;
        let i = self.index(pid)?;
        let ppid = self.tasks[i].ppid;
        let heir = self
            .tasks
            .iter()
            .find(|t| matches!(t.mm, Mm::Borrowed(o) if o == pid))
            .map(|t| t.pid);
        let mut drop_mm = false;
        match (&self.tasks[i].mm, heir) {
            (Mm::Borrowed(_), _) => {}
            (Mm::Own { .. }, Some(h)) => {
                // The first vfork child inherits the address space.
                let placeholder = Mm::Own {
                    space: None,
                    tables: None,
                };
                let mm = core::mem::replace(&mut self.tasks[i].mm, placeholder);
                let hi = self.index(h)?;
                self.tasks[hi].mm = mm;
                for t in self.tasks.iter_mut() {
                    if matches!(t.mm, Mm::Borrowed(o) if o == pid) {
                        t.mm = Mm::Borrowed(h);
                    }
                }
                self.tasks[hi].mm =
                    match core::mem::replace(&mut self.tasks[hi].mm, Mm::Borrowed(h)) {
                        Mm::Borrowed(_) => Mm::Own {
                            space: None,
                            tables: None,
                        },
                        own => own,
                    };
                if self.owner == pid {
                    self.owner = h;
                }
            }
            (Mm::Own { .. }, None) => {
                self.load(pid)?;
                self.cpu.exit_mmap()?;
                drop_mm = true;
            }
        }
        let next = if ppid != pid && self.index(ppid).is_ok() {
            ppid
        } else {
            self.tasks
                .iter()
                .map(|t| t.pid)
                .find(|&p| p != pid)
                .ok_or(SystemError::Errno(Errno::EINVAL))?
        };
        self.switch(next)?;
        let i = self.index(pid)?;
        let task = self.tasks.remove(i);
        if drop_mm {
            if let Mm::Own {
                space: Some(space),
                tables: Some(tables),
            } = task.mm
            {
                self.cpu
                    .paging_mut()
                    .free_tables(tables)
                    .map_err(|_| Errno::ENOMEM)?;
                self.pool.push(space.into_slots());
            }
        }
        for t in self.tasks.iter_mut() {
            if t.ppid == pid {
                t.ppid = 0;
            }
        }
        self.gc();
        Ok(())
    }

    /// Runs `f` with `pid`'s address space in the machine, then puts the current one back.
    fn with_process<R>(
        &mut self,
        pid: Pid,
        f: impl FnOnce(&mut Process<'a, 'f, M, N>) -> R,
    ) -> Result<R, SystemError> {
        let back = self.owner;
        self.load(self.owner_of(pid)?)?;
        let r = f(&mut self.cpu);
        self.load(back)?;
        Ok(r)
    }

    /// Writes /proc/`pid`/maps into `w`.
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`]; `ENOMEM` for a writer error.
    pub fn write_maps_of<W: fmt::Write>(&mut self, pid: Pid, w: &mut W) -> Result<(), SystemError> {
        self.with_process(pid, |p| p.write_maps(w))?
            .map_err(|_| Errno::ENOMEM.into())
    }

    /// Writes /proc/`pid`/smaps into `w`.
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`]; `ENOMEM` for a writer or table error.
    pub fn write_smaps_of<W: fmt::Write>(
        &mut self,
        pid: Pid,
        w: &mut W,
    ) -> Result<(), SystemError> {
        self.with_process(pid, |p| p.write_smaps(w))?
            .map_err(|_| Errno::ENOMEM.into())
    }

    /// Returns /proc/`pid`/maps.
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`].
    #[cfg(feature = "std")]
    pub fn maps_of(&mut self, pid: Pid) -> Result<std::string::String, SystemError> {
        let mut s = std::string::String::new();
        self.write_maps_of(pid, &mut s)?;
        Ok(s)
    }

    /// Returns /proc/`pid`/smaps.
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`].
    #[cfg(feature = "std")]
    pub fn smaps_of(&mut self, pid: Pid) -> Result<std::string::String, SystemError> {
        let mut s = std::string::String::new();
        self.write_smaps_of(pid, &mut s)?;
        Ok(s)
    }

    /// Calls `f` with every leaf of `pid`'s tables (for isolation checks).
    ///
    /// # Errors
    /// [`SystemError::NoSuchProcess`]; `ENOMEM` if the tables cannot be read.
    pub fn for_each_leaf(&mut self, pid: Pid, mut f: impl FnMut(&Leaf)) -> Result<(), SystemError> {
        self.with_process(pid, |p| {
            let paging = p.paging();
            let top = 1u64 << paging.config().va_bits;
            paging.mapper().for_each_leaf(
                paging.mmu().memory(),
                crate::VirtAddr::new(0),
                top,
                |l| {
                    f(l);
                    true
                },
            )
        })?
        .map_err(|_: MapError| Errno::ENOMEM.into())
    }

    /// Checks every process's invariants ([`Process::validate`]) and the machine's frame
    /// accounting over all of them: each frame in use is a table, a zero page, a
    /// page-cache page, or a page mapped by as many leaves as its map count says.
    ///
    /// # Errors
    /// The first [`Invariant`] that does not hold; `SystemError` if a process cannot be
    /// switched in.
    pub fn validate(&mut self) -> Result<(), SystemInvariant> {
        self.settle().map_err(SystemInvariant::System)?;
        let pids: ArrayVec<Pid, MAX_PROCESSES> = self.pids().collect();
        for pid in pids {
            self.with_process(pid, |p| p.validate_mappings())
                .map_err(SystemInvariant::System)?
                .map_err(|e| SystemInvariant::Process(pid, e))?;
        }
        let parked = self.tasks.iter().filter_map(|t| match &t.mm {
            Mm::Own {
                tables: Some(tb), ..
            } => Some(tb),
            _ => None,
        });
        self.cpu
            .validate_with(parked)
            .map_err(|e| SystemInvariant::Process(self.owner, e))
    }
}

/// An invariant of a [`System`] that does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemInvariant {
    /// Process `pid`'s invariant.
    Process(Pid, Invariant),
    /// A process could not be switched in.
    System(SystemError),
}

impl fmt::Display for SystemInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemInvariant::Process(p, e) => write!(f, "process {p}: {e}"),
            SystemInvariant::System(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for SystemInvariant {}
