//! pagesim as the MMU of a real emulator: arm64 Linux programs run on Unicorn (QEMU's TCG
//! in its virtual-TLB mode), and every translation the CPU misses, every fault and every
//! memory system call goes to pagesim's model of the process. GPL-2.0 (it links Unicorn).

pub mod kernel;
pub mod machine;
pub mod ram;

pub use kernel::Exit;
pub use machine::{run, Options};
