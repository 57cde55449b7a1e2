//! Guest instructions per second on a memory-bound loop over 100 MiB (a store every 64
//! bytes: `str xzr, [x0], #64; cmp; b.lo`), in one criterion run:
//!
//! - `pagesim/walks_N`: the program (`tests/programs/loop.c`, static) maps 100 MiB and
//!   walks it N times; the first walk's page faults are pagesim's, later walks run from
//!   Unicorn's TLB and pagesim's fills (exec, libc start-up and exit included);
//! - `unicorn_mmu_off/walks_N`: the same three instructions, N walks, on Unicorn alone
//!   with its MMU off (its fastest mode), over RAM it maps itself.
//!
//! A walk is 100 MiB / 64 × 3 = 4,915,200 instructions: `walks_11 - walks_1` is the time
//! of ten steady-state walks, and `walks_1` with pagesim is the first touch.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use pagesim_emu::{run, Options};
use unicorn_engine::{Arch, Arm64CpuModel, Mode, Prot, RegisterARM64, Unicorn};

const SIZE: u64 = 100 << 20;

fn program() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/loop.c");
    let out = std::env::temp_dir().join(format!("pagesim-emu-loop-{}", std::process::id()));
    let st = std::process::Command::new("aarch64-linux-gnu-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("aarch64-linux-gnu-gcc");
    assert!(st.success());
    out
}

/// Unicorn alone, MMU off: the loop at 0x1000, 100 MiB of RAM at 0x1000_0000.
fn unicorn_alone(passes: u64) {
    let code: [u32; 6] = [
        0xf804_041f, // 1: str xzr, [x0], #64
        0xeb01_001f, //    cmp x0, x1
        0x54ff_ffc3, //    b.lo 1b
        0xaa02_03e0, //    mov x0, x2
        0xf100_0463, //    subs x3, x3, #1
        0x54ff_ff61, //    b.ne 1b
    ];
    let mut uc = Unicorn::new(Arch::ARM64, Mode::LITTLE_ENDIAN).unwrap();
    uc.ctl_set_cpu_model(Arm64CpuModel::MAX as i32).unwrap();
    uc.ctl_set_page_size(4096).unwrap();
    uc.mem_map(0x1000, 0x1000, Prot::ALL).unwrap();
    uc.mem_map(0x1000_0000, SIZE, Prot::ALL).unwrap();
    let bytes: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    uc.mem_write(0x1000, &bytes).unwrap();
    uc.reg_write(RegisterARM64::X0, 0x1000_0000).unwrap();
    uc.reg_write(RegisterARM64::X1, 0x1000_0000 + SIZE).unwrap();
    uc.reg_write(RegisterARM64::X2, 0x1000_0000).unwrap();
    uc.reg_write(RegisterARM64::X3, passes).unwrap();
    uc.emu_start(0x1000, 0x1000 + bytes.len() as u64, 0, 0)
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let exe = program();
    let exe = exe.to_str().unwrap();
    let opts = Options::default();
    let mut g = c.benchmark_group("loop_100mib");
    g.sample_size(10);
    // One walk and eleven: the difference is ten steady-state walks (4,915,200
    // instructions each), set-up and first touch cancelling out.
    for passes in [1u64, 11] {
        g.bench_function(format!("pagesim/walks_{passes}"), |b| {
            b.iter(|| run(exe, &[passes.to_string()], &opts).unwrap())
        });
        g.bench_function(format!("unicorn_mmu_off/walks_{passes}"), |b| {
            b.iter(|| unicorn_alone(passes))
        });
    }
    g.finish();
    let _ = std::fs::remove_file(exe);
}

criterion_group!(benches, bench);
criterion_main!(benches);
