//! The part of an ELF64 file that `execve` reads (spec `linux-exec.md` §3–§5, §10): the
//! file header and the program headers, checked as `load_elf_binary` and `load_elf_phdrs`
//! check them. A raw view over the bytes; nothing is copied and no input panics.

use crate::linux::mm::Errno;

/// `ET_EXEC`.
pub const ET_EXEC: u16 = 2;
/// `ET_DYN`.
pub const ET_DYN: u16 = 3;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `EM_AARCH64`.
pub const EM_AARCH64: u16 = 183;
/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = 3;
/// `PT_PHDR`.
pub const PT_PHDR: u32 = 6;
/// `PT_GNU_STACK`.
pub const PT_GNU_STACK: u32 = 0x6474_e551;
/// `PT_GNU_PROPERTY`.
pub const PT_GNU_PROPERTY: u32 = 0x6474_e553;
/// `PF_X`.
pub const PF_X: u32 = 1;
/// `PF_W`.
pub const PF_W: u32 = 2;
/// `PF_R`.
pub const PF_R: u32 = 4;
/// The size of an ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// The size of an ELF64 program header (`e_phentsize` must equal it).
pub const PHDR_SIZE: usize = 56;
/// The largest program header table `load_elf_phdrs` reads (`ELF_MIN_ALIGN`-independent
/// bound of 64 KiB).
pub const MAX_PHDRS_SIZE: usize = 65536;
/// `PATH_MAX`.
pub const PATH_MAX: u64 = 4096;

/// One program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags` (`PF_R`, `PF_W`, `PF_X`).
    pub p_flags: u32,
    /// `p_offset`.
    pub p_offset: u64,
    /// `p_vaddr`.
    pub p_vaddr: u64,
    /// `p_filesz`.
    pub p_filesz: u64,
    /// `p_memsz`.
    pub p_memsz: u64,
    /// `p_align`.
    pub p_align: u64,
}

/// An ELF64 image as `execve` sees it: the header fields it uses, and its program headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elf<'b> {
    bytes: &'b [u8],
    /// `e_type`.
    pub e_type: u16,
    /// `e_machine`.
    pub e_machine: u16,
    /// `e_entry`.
    pub e_entry: u64,
    /// `e_phoff`.
    pub e_phoff: u64,
    /// `e_phnum`.
    pub e_phnum: u16,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl<'b> Elf<'b> {
    /// Reads the header and checks what `load_elf_binary` checks before anything else:
    /// the magic, `e_type` (`ET_EXEC` or `ET_DYN`), `e_machine` (`machine`), and that the
    /// program header table is well formed and inside the file (`load_elf_phdrs`).
    /// `EI_CLASS` is not checked (the 64-bit loader does not: spec §10).
    ///
    /// # Errors
    /// `ENOEXEC` for any of those defects (a short file included).
    pub fn parse(bytes: &'b [u8], machine: u16) -> Result<Elf<'b>, Errno> {
        if bytes.len() < EHDR_SIZE || bytes[..4] != *b"\x7fELF" {
            return Err(Errno::ENOEXEC);
        }
        // Little-endian only: both modelled architectures are.
        let e_type = u16_at(bytes, 16);
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(Errno::ENOEXEC);
        }
        Self::parse_any(bytes, machine).map_err(|_| Errno::ENOEXEC)
    }

    /// Reads an interpreter's header as `load_elf_binary` does before the point of no
    /// return: `EIO` for a file shorter than the header, `ELIBBAD` for a bad magic or
    /// machine, `ENOEXEC` for a bad program header table. Its `e_type` is checked later,
    /// by `load_elf_interp` (see [`Elf::e_type`]).
    ///
    /// # Errors
    /// As above.
    pub fn parse_interp(bytes: &'b [u8], machine: u16) -> Result<Elf<'b>, Errno> {
        if bytes.len() < EHDR_SIZE {
            return Err(Errno::EIO);
        }
        if bytes[..4] != *b"\x7fELF" || u16_at(bytes, 18) != machine {
            return Err(Errno::ELIBBAD);
        }
        Self::parse_any(bytes, machine)
    }

    /// The header fields and `load_elf_phdrs`' checks, whatever `e_type`.
    fn parse_any(bytes: &'b [u8], machine: u16) -> Result<Elf<'b>, Errno> {
        if bytes.len() < EHDR_SIZE || bytes[..4] != *b"\x7fELF" {
            return Err(Errno::ENOEXEC);
        }
        let e_type = u16_at(bytes, 16);
        let e_machine = u16_at(bytes, 18);
        if e_machine != machine {
            return Err(Errno::ENOEXEC);
        }
        let elf = Elf {
            bytes,
            e_type,
            e_machine,
            e_entry: u64_at(bytes, 24),
            e_phoff: u64_at(bytes, 32),
            e_phnum: u16_at(bytes, 56),
        };
        // load_elf_phdrs.
        let phentsize = u16_at(bytes, 54);
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(Errno::ENOEXEC);
        }
        let size = usize::from(elf.e_phnum) * PHDR_SIZE;
        if size == 0 || size > MAX_PHDRS_SIZE {
            return Err(Errno::ENOEXEC);
        }
        match elf.e_phoff.checked_add(size as u64) {
            Some(end) if end <= bytes.len() as u64 => Ok(elf),
            _ => Err(Errno::ENOEXEC),
        }
    }

    /// Returns program header `i` (`None` past `e_phnum`).
    pub fn phdr(&self, i: usize) -> Option<ProgramHeader> {
        if i >= usize::from(self.e_phnum) {
            return None;
        }
        let at = usize::try_from(self.e_phoff).ok()? + i * PHDR_SIZE;
        let b = self.bytes.get(at..at + PHDR_SIZE)?;
        Some(ProgramHeader {
            p_type: u32_at(b, 0),
            p_flags: u32_at(b, 4),
            p_offset: u64_at(b, 8),
            p_vaddr: u64_at(b, 16),
            p_filesz: u64_at(b, 32),
            p_memsz: u64_at(b, 40),
            p_align: u64_at(b, 48),
        })
    }

    /// Returns the program headers in order.
    pub fn phdrs(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        (0..usize::from(self.e_phnum)).filter_map(|i| self.phdr(i))
    }

    /// Returns the `PT_LOAD` headers in order.
    pub fn loads(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        self.phdrs().filter(|p| p.p_type == PT_LOAD)
    }

    /// Returns the interpreter path of the first `PT_INTERP`, if any, as
    /// `load_elf_binary` reads it.
    ///
    /// # Errors
    /// `ENOEXEC` when its size is below 2 or above `PATH_MAX`, or it is not
    /// NUL-terminated (or not UTF-8); `EIO` when it lies past the end of the file.
    pub fn interp(&self) -> Result<Option<&'b str>, Errno> {
        let Some(p) = self.phdrs().find(|p| p.p_type == PT_INTERP) else {
            return Ok(None);
        };
        if p.p_filesz > PATH_MAX || p.p_filesz < 2 {
            return Err(Errno::ENOEXEC);
        }
        let start = usize::try_from(p.p_offset).map_err(|_| Errno::EIO)?;
        let b = start
            .checked_add(p.p_filesz as usize)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or(Errno::EIO)?;
        match b.split_last() {
            Some((0, path)) => core::str::from_utf8(path)
                .map(Some)
                .map_err(|_| Errno::ENOEXEC),
            _ => Err(Errno::ENOEXEC),
        }
    }

    /// Returns whether `PT_GNU_STACK` asks for an executable stack.
    pub fn exec_stack(&self) -> bool {
        self.phdrs()
            .find(|p| p.p_type == PT_GNU_STACK)
            .is_some_and(|p| p.p_flags & PF_X != 0)
    }

    /// Returns whether the `PT_GNU_PROPERTY` note marks the image for BTI
    /// (`GNU_PROPERTY_AARCH64_FEATURE_1_AND` with the BTI bit).
    pub fn bti(&self) -> bool {
        let Some(p) = self.phdrs().find(|p| p.p_type == PT_GNU_PROPERTY) else {
            return false;
        };
        let (Ok(start), Ok(len)) = (usize::try_from(p.p_offset), usize::try_from(p.p_filesz))
        else {
            return false;
        };
        let Some(note) = start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
        else {
            return false;
        };
        // Note header: namesz, descsz, type (NT_GNU_PROPERTY_TYPE_0 = 5), "GNU\0".
        if note.len() < 16 || u32_at(note, 8) != 5 || note[12..16] != *b"GNU\0" {
            return false;
        }
        let descsz = u32_at(note, 4) as usize;
        let Some(desc) = note.get(16..16 + descsz) else {
            return false;
        };
        let mut at = 0;
        while at + 8 <= desc.len() {
            let (pr_type, pr_datasz) = (u32_at(desc, at), u32_at(desc, at + 4) as usize);
            // GNU_PROPERTY_AARCH64_FEATURE_1_AND, bit 0: BTI.
            if pr_type == 0xc000_0000 && pr_datasz >= 4 && at + 12 <= desc.len() {
                return u32_at(desc, at + 8) & 1 != 0;
            }
            at += 8 + pr_datasz.next_multiple_of(8);
        }
        false
    }
}
