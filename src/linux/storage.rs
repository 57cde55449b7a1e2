//! Building a simulated process for the command-line tools: storage, parameters, start
//! state (fresh, or imported from maps/smaps text) and paging.

use crate::mmu::Contents;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::addr::PhysAddr;
use crate::linux::exec::{elf, AuxValues, ExecArgs, ExecFile, ExecInfo};
use crate::linux::host_files::HostFiles;
use crate::linux::mm::vma_tree::VmaSlot;
use crate::linux::mm::Arch;
use crate::linux::mm::{AddressSpace, ImportHints, LayoutParams};
use crate::linux::paging::{CachedPage, DataMode, Paging, PagingConfig};
use crate::linux::process::Process;
use crate::linux::system::System;
use crate::mmu::FrameAllocator;
use crate::phys::{MemoryError, PhysMemory, SliceMemory, SparseMemory};

/// Entries in the simulated TLB.
pub const TLB_ENTRIES: usize = 1024;
/// Where simulated RAM starts.
pub const RAM_BASE: u64 = 0x4000_0000;

/// The simulated process type the tools use.
pub type SimProcess<'s> = Process<'s, 's, SimMemory<'s>, TLB_ENTRIES>;

/// The page-cache slots a process gets at most (one per frame below that).
pub const MAX_CACHED_PAGES: usize = 1 << 20;

/// The physical memory of a tool's process: sparse pages that hold only what is written
/// (a page whose words are all zero takes no host memory, so a frame the kernel would
/// zero on a first-touch fault costs nothing until data is stored in it; with
/// [`DataMode::None`] only page tables are ever written), or, for an emulator that maps
/// the same bytes ([`ProcessStorage::with_flat_ram`]), host RAM for every simulated byte.
#[derive(Debug)]
pub enum SimMemory<'s> {
    /// Every byte backed by one host buffer.
    Ram(SliceMemory<'s>),
    /// Only pages holding a non-zero word stored.
    Sparse(SparseMemory),
}

impl PhysMemory for SimMemory<'_> {
    #[inline]
    fn read_u64(&self, pa: PhysAddr) -> Result<u64, MemoryError> {
        match self {
            SimMemory::Ram(m) => m.read_u64(pa),
            SimMemory::Sparse(m) => m.read_u64(pa),
        }
    }

    #[inline]
    fn read_entry(&self, table: PhysAddr, offset: u64) -> Result<u64, MemoryError> {
        match self {
            SimMemory::Ram(m) => m.read_entry(table, offset),
            SimMemory::Sparse(m) => m.read_entry(table, offset),
        }
    }

    #[inline]
    fn write_u64(&mut self, pa: PhysAddr, value: u64) -> Result<(), MemoryError> {
        match self {
            SimMemory::Ram(m) => m.write_u64(pa, value),
            SimMemory::Sparse(m) => m.write_u64(pa, value),
        }
    }

    fn compare_exchange_u64(
        &mut self,
        pa: PhysAddr,
        current: u64,
        new: u64,
    ) -> Result<Result<(), u64>, MemoryError> {
        match self {
            SimMemory::Ram(m) => m.compare_exchange_u64(pa, current, new),
            SimMemory::Sparse(m) => m.compare_exchange_u64(pa, current, new),
        }
    }

    #[inline]
    fn zero(&mut self, pa: PhysAddr, len: u64) -> Result<(), MemoryError> {
        match self {
            SimMemory::Ram(m) => m.zero(pa, len),
            SimMemory::Sparse(m) => m.zero(pa, len),
        }
    }
}

/// The simulated processes the tools use (see [`ProcessStorage::build_system`]).
pub type SimSystem<'s> = System<'s, 's, SimMemory<'s>, TLB_ENTRIES>;

/// The VMA slots of each process a [`SimSystem`] creates besides the first (a fork of a
/// process with more VMAs fails with `ENOMEM`).
pub const CHILD_SLOTS: usize = 8192;

/// The memory a simulated process lives in: VMA slots, RAM and frame-allocator metadata;
/// with [`ProcessStorage::with_processes`], the VMA slots of more processes and the map
/// counts of shared pages.
pub struct ProcessStorage {
    slots: Vec<VmaSlot>,
    /// Host RAM for every simulated byte ([`ProcessStorage::with_flat_ram`]), else empty.
    ram: Vec<u8>,
    phys_mem: u64,
    data: DataMode,
    frame_words: Vec<u64>,
    cache: Vec<CachedPage>,
    files: HostFiles,
    children: Vec<VmaSlot>,
    child_slots: usize,
    shares: Vec<u16>,
}

/// How the process starts.
#[derive(Clone, Copy, Debug)]
pub enum Start<'t> {
    /// A freshly exec'd program.
    Fresh,
    /// A captured /proc/PID/maps.
    Maps(&'t str),
    /// A captured /proc/PID/smaps.
    Smaps(&'t str),
}

impl ProcessStorage {
    /// Allocates storage for `params` and `phys_mem` bytes of RAM (a multiple of 2 MiB),
    /// with page contents stored. The RAM is sparse: host memory holds only the pages a
    /// non-zero word has been written to (page tables, loaded files, data), so a page that
    /// is mapped but never given data (a first-touch write the caller stores nothing
    /// through) costs no host memory and no zeroing.
    pub fn new(params: &LayoutParams, phys_mem: u64) -> Self {
        Self::with_data(params, phys_mem, DataMode::Stored)
    }

    /// Allocates storage as [`ProcessStorage::new`] does; with [`DataMode::None`] data
    /// writes are dropped as well, so only page tables take host memory and `phys_mem`
    /// may exceed the host's many times over.
    pub fn with_data(params: &LayoutParams, phys_mem: u64, data: DataMode) -> Self {
        Self::build_storage(params, phys_mem, data, false)
    }

    /// Allocates storage as [`ProcessStorage::new`] does, with every simulated byte in one
    /// host buffer of `phys_mem` bytes that [`ProcessStorage::ram_host_range`] hands out:
    /// the memory of an emulator whose guest loads and stores reach the same bytes. The
    /// simulation then zeroes each frame a fault takes, as the kernel does.
    pub fn with_flat_ram(params: &LayoutParams, phys_mem: u64) -> Self {
        Self::build_storage(params, phys_mem, DataMode::Stored, true)
    }

    fn build_storage(params: &LayoutParams, phys_mem: u64, data: DataMode, flat: bool) -> Self {
        let phys_mem = phys_mem.max(8 << 20) & !((2 << 20) - 1);
        let frames = (phys_mem >> 12) as usize;
        ProcessStorage {
            slots: vec![VmaSlot::EMPTY; params.slots_needed().min(70_000)],
            ram: if flat {
                vec![0u8; phys_mem as usize]
            } else {
                Vec::new()
            },
            phys_mem,
            data,
            frame_words: vec![0u64; FrameAllocator::storage_words(frames)],
            cache: vec![CachedPage::EMPTY; frames.min(MAX_CACHED_PAGES)],
            files: HostFiles::new(),
            children: Vec::new(),
            child_slots: CHILD_SLOTS,
            shares: Vec::new(),
        }
    }

    /// Returns the host memory that holds the simulated RAM (its first byte is physical
    /// address [`RAM_BASE`]) as a pointer and a length, for an emulator that maps the same
    /// bytes as its guest's physical memory (Unicorn's `mem_map_ptr`), so that the guest's
    /// loads and stores and pagesim's page tables and page copies meet in one place.
    /// `None` unless the storage was made by [`ProcessStorage::with_flat_ram`] (sparse RAM
    /// has no single host range).
    ///
    /// The pointer stays valid while the storage lives and is not moved out of; the
    /// simulation reads and writes the bytes only inside its own calls.
    pub fn ram_host_range(&mut self) -> Option<(*mut u8, usize)> {
        (!self.ram.is_empty()).then_some((self.ram.as_mut_ptr(), self.ram.len()))
    }

    /// Returns the host files the processes built from this storage open (to add
    /// [`HostFiles::alias`]es before building).
    pub fn files_mut(&mut self) -> &mut HostFiles {
        &mut self.files
    }

    /// Adds storage for `more` processes besides the first ([`CHILD_SLOTS`] VMA slots
    /// each) and a map count per frame, so that [`ProcessStorage::build_system`] can fork.
    pub fn with_processes(self, more: usize) -> Self {
        self.with_processes_of(more, CHILD_SLOTS)
    }

    /// [`ProcessStorage::with_processes`] with `slots` VMA slots for each further process
    /// (small machines for fuzzing; a fork of a process with more VMAs fails with ENOMEM).
    pub fn with_processes_of(mut self, more: usize, slots: usize) -> Self {
        self.children = vec![VmaSlot::EMPTY; more * slots.max(1)];
        self.child_slots = slots.max(1);
        self.shares = vec![0u16; (self.phys_mem >> 12) as usize];
        self
    }

    /// Builds the first process of a [`SimSystem`] (pid 1), with the storage of
    /// [`ProcessStorage::with_processes`] for the processes it forks.
    ///
    /// # Errors
    /// As [`ProcessStorage::build`].
    pub fn build_system(
        &mut self,
        params: LayoutParams,
        start: Start<'_>,
        hints: ImportHints,
    ) -> Result<SimSystem<'_>, String> {
        let each = self.child_slots;
        let (mut p, children, shares) = self.build_parts(params, start, hints)?;
        if !shares.is_empty() {
            p.set_share_counts(shares).map_err(|e| e.to_string())?;
        }
        Ok(System::new(p, 1, children.chunks_mut(each)))
    }

    /// Builds the process.
    ///
    /// # Errors
    /// A message for malformed start text or an impossible configuration.
    pub fn build(
        &mut self,
        params: LayoutParams,
        start: Start<'_>,
        hints: ImportHints,
    ) -> Result<SimProcess<'_>, String> {
        Ok(self.build_parts(params, start, hints)?.0)
    }

    /// Builds the process, and hands out the storage of the processes it may fork.
    #[allow(clippy::type_complexity)]
    fn build_parts(
        &mut self,
        params: LayoutParams,
        start: Start<'_>,
        hints: ImportHints,
    ) -> Result<(SimProcess<'_>, &mut [VmaSlot], &mut [u16]), String> {
        let ProcessStorage {
            slots,
            ram,
            phys_mem,
            data,
            frame_words,
            cache,
            files,
            children,
            shares,
            ..
        } = self;
        let space = match start {
            Start::Fresh => {
                let mut s = AddressSpace::fresh_process(slots, params, "/usr/bin/prog")
                    .map_err(|e| e.to_string())?;
                if let Some(b) = hints.mmap_base {
                    s.set_mmap_base(b);
                }
                if let (Some(sb), Some(b)) = (hints.start_brk, hints.brk) {
                    s.set_brk_area(sb, b);
                }
                if let Some(st) = hints.start_stack {
                    s.set_start_stack(st);
                }
                s
            }
            Start::Maps(t) => {
                AddressSpace::from_maps(slots, params, t, hints).map_err(|e| e.to_string())?
            }
            Start::Smaps(t) => {
                AddressSpace::from_smaps(slots, params, t, hints).map_err(|e| e.to_string())?
            }
        };
        let size = *phys_mem;
        let frames =
            FrameAllocator::new(PhysAddr::new(RAM_BASE), size, frame_words, Contents::Zeroed)
                .map_err(|e| e.to_string())?;
        let mem = if ram.is_empty() {
            SimMemory::Sparse(SparseMemory::new(PhysAddr::new(RAM_BASE), size))
        } else {
            SimMemory::Ram(SliceMemory::new(PhysAddr::new(RAM_BASE), ram))
        };
        let mut cfg = PagingConfig::for_layout(&params);
        cfg.data = *data;
        let mut paging = Paging::new(cfg, mem, frames).map_err(|e| e.to_string())?;
        paging.set_page_cache(cache).map_err(|e| e.to_string())?;
        let mut p = Process::new(space, paging);
        p.set_files(files);
        Ok((p, children, shares))
    }
}

/// Returns the paging configuration matching a layout.
pub fn paging_config(params: &LayoutParams) -> PagingConfig {
    PagingConfig::for_layout(params)
}

/// Executes the host ELF file at `path` in `p` as `execve(path, argv, envp)` with
/// `RLIMIT_STACK` `rlimit_stack` and the `personality` (see
/// [`crate::linux::exec::ExecArgs::personality`]): the interpreter its `PT_INTERP` names is read from under
/// `sysroot`; file contents, devices and inodes are the host's.
///
/// # Errors
/// A message for a file that cannot be read, or the [`crate::linux::exec::ExecError`] of
/// the exec.
pub fn exec_host(
    p: &mut SimProcess<'_>,
    path: &str,
    argv: &[&str],
    envp: &[&str],
    sysroot: &std::path::Path,
    rlimit_stack: u64,
    personality: u32,
) -> Result<ExecInfo, String> {
    let read = |f: &std::path::Path| std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()));
    let exe_bytes = read(std::path::Path::new(path))?;
    let exe_file = p.open(path).map_err(|e| format!("{path}: {e}"))?;
    let params = *p.space().params();
    let machine = match params.arch {
        Arch::X86_64 => elf::EM_X86_64,
        Arch::Arm64 => elf::EM_AARCH64,
    };
    // The interpreter's name, if the header can be read at all (exec reports the rest).
    let interp_path = elf::Elf::parse(&exe_bytes, machine)
        .ok()
        .and_then(|e| e.interp().ok().flatten().map(String::from));
    let interp_bytes;
    let interp = match &interp_path {
        Some(ip) => {
            let full = sysroot.join(ip.trim_start_matches('/'));
            match std::fs::read(&full) {
                Ok(b) => {
                    interp_bytes = b;
                    let f = p
                        .open(&full.to_string_lossy())
                        .map_err(|e| format!("{}: {e}", full.display()))?;
                    Some(ExecFile {
                        file: f,
                        bytes: &interp_bytes,
                    })
                }
                Err(_) => None,
            }
        }
        None => None,
    };
    let args = ExecArgs {
        filename: path,
        argv,
        envp,
        rlimit_stack,
        personality,
        random: [0x5a; 16],
        aux: AuxValues::observed(params.arch),
    };
    let exe = ExecFile {
        file: exe_file,
        bytes: &exe_bytes,
    };
    p.exec(&exe, interp.as_ref(), &args)
        .map_err(|e| e.to_string())
}
