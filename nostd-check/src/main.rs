//! A freestanding program that translates one address with pagesim: it must link without
//! std.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use pagesim::arch::{walk, Access, Cpu, El, Regime, Registers};
use pagesim::phys::{PhysMemory, SliceMemory};
use pagesim::{PhysAddr, VirtAddr};

#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {}
}

fn translate() -> u64 {
    let mut ram = [0u8; 0x4000];
    let mut mem = SliceMemory::new(PhysAddr::new(0x4000_0000), &mut ram);
    let _ = mem.write_u64(PhysAddr::new(0x4000_0000), 0x4000_1003);
    let _ = mem.write_u64(PhysAddr::new(0x4000_1000), 0x4000_2003);
    let _ = mem.write_u64(PhysAddr::new(0x4000_2000), 0x4000_3003);
    let _ = mem.write_u64(PhysAddr::new(0x4000_3000), 0x8800_0743);
    let regs = Registers {
        tcr: 0x5_8010_0010,
        sctlr: 1,
        ttbr0: 0x4000_0000,
        ttbr1: 0,
        mair: 0xff,
    };
    let regime = Regime::new(regs, Cpu::MAX);
    match walk(
        &regime,
        &mut mem,
        VirtAddr::new(0x123),
        Access::read(El::El0),
    ) {
        Ok(t) => t.pa.as_u64(),
        Err(f) => f.esr() as u64,
    }
}

/// The precompiled `core` references the unwinding personality even with `panic = "abort"`.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    let pa = translate();
    // Nothing to return to: spin with the result live.
    loop {
        core::hint::black_box(pa);
    }
}
