//! `pagesim at`: AT instructions as JSON lines.
//!
//! Each input line is one object: `tcr`, `ttbr0`, `ttbr1`, `sctlr`, `mair`, `va` (hex
//! strings), `op` (an [`AtOp`] name), optional `writes` (`[[pa, value], …]`, the only
//! non-zero words of physical memory) and optional `ram_base` / `ram_size` (default RAM is
//! 0x4000_0000 to 0x8000_0000; walks outside it are external aborts). Each output line is
//! `{"par": "0x…", "updates": [["0x…pa", "0x…new"], …]}` or `{"error": "…"}`.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::json::Hex;
use pagesim::addr::{PhysAddr, VirtAddr};
use pagesim::arch::{at, AtOp, Cpu, Regime, Registers};
use pagesim::phys::{PhysMemory, SparseMemory};

/// Default RAM base for `pagesim at`.
pub const DEFAULT_RAM_BASE: u64 = 0x4000_0000;
/// Default RAM size for `pagesim at`.
pub const DEFAULT_RAM_SIZE: u64 = 0x4000_0000;

/// One input line.
#[derive(Deserialize)]
struct Query {
    tcr: Hex,
    sctlr: Hex,
    ttbr0: Hex,
    ttbr1: Hex,
    mair: Hex,
    va: Hex,
    op: String,
    #[serde(default)]
    writes: Option<Vec<(Hex, Hex)>>,
    #[serde(default)]
    ram_base: Option<Hex>,
    #[serde(default)]
    ram_size: Option<Hex>,
}

/// One output line.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Par { par: Hex, updates: Vec<(Hex, Hex)> },
    Error { error: String },
}

/// Answers one input line with one output line (without the newline).
pub fn answer_line(line: &str, cpu: Cpu) -> String {
    let answer = run_query(line, cpu).unwrap_or_else(|error| Answer::Error { error });
    // Serialising strings and hex strings cannot fail.
    serde_json::to_string(&answer).unwrap_or_else(|_| String::from("{\"error\":\"\"}"))
}

fn run_query(line: &str, cpu: Cpu) -> Result<Answer, String> {
    let q: Query = serde_json::from_str(line).map_err(|e| format!("invalid query: {e}"))?;
    let regs = Registers {
        tcr: q.tcr.0,
        sctlr: q.sctlr.0,
        ttbr0: q.ttbr0.0,
        ttbr1: q.ttbr1.0,
        mair: q.mair.0,
    };
    let op: AtOp = q.op.parse().map_err(|e| format!("field `op`: {e}"))?;
    let base = q.ram_base.map_or(DEFAULT_RAM_BASE, |h| h.0);
    let size = q.ram_size.map_or(DEFAULT_RAM_SIZE, |h| h.0);
    let base_pa = PhysAddr::try_new(base).map_err(|e| format!("field `ram_base`: {e}"))?;
    let mut mem = SparseMemory::new(base_pa, size);
    for (i, (pa, val)) in q.writes.unwrap_or_default().into_iter().enumerate() {
        if pa.0 & 7 != 0 {
            return Err(format!("writes[{i}]: pa {:#x} is not 8-byte aligned", pa.0));
        }
        let pa = PhysAddr::try_new(pa.0).map_err(|e| format!("writes[{i}]: {e}"))?;
        mem.write_u64(pa, val.0)
            .map_err(|_| format!("writes[{i}]: pa {:#x} is outside RAM", pa.as_u64()))?;
    }
    let regime = Regime::new(regs, cpu);
    let r = at(&regime, &mut mem, op, VirtAddr::new(q.va.0));
    Ok(Answer::Par {
        par: Hex(r.par),
        updates: r
            .update
            .map(|u| (Hex(u.pa.as_u64()), Hex(u.new)))
            .into_iter()
            .collect(),
    })
}

/// Reads queries from `input` until end of file and writes one answer line per input line.
/// Blank lines are skipped.
///
/// # Errors
/// I/O errors of `input` or `output`.
pub fn run<R: BufRead, W: Write>(input: R, mut output: W, cpu: Cpu) -> io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        output.write_all(answer_line(&line, cpu).as_bytes())?;
        output.write_all(b"\n")?;
    }
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""tcr":"0x580100010","sctlr":"0x1","ttbr0":"0x40000000","ttbr1":"0x40100000","mair":"0xff""#;

    #[test]
    fn success_with_af_update() {
        let line = format!(
            r#"{{{BASE},"va":"0x5000","op":"S1E1R","writes":[["0x40000000","0x40001003"],["0x40001000","0x40002003"],["0x40002000","0x40003003"],["0x40003028","0x88005343"]]}}"#
        );
        let line = line.replace("0x580100010", "0x8580100010");
        assert_eq!(
            answer_line(&line, Cpu::MAX),
            r#"{"par":"0xff00000088005b80","updates":[["0x40003028","0x88005743"]]}"#
        );
    }

    #[test]
    fn fault_and_errors() {
        let line = format!(r#"{{{BASE},"va":"0x0","op":"S1E0R"}}"#);
        assert_eq!(
            answer_line(&line, Cpu::MAX),
            r#"{"par":"0x809","updates":[]}"#
        );
        assert!(answer_line("{", Cpu::MAX).starts_with("{\"error\":"));
        assert!(
            answer_line(&format!(r#"{{{BASE},"va":"0x0","op":"S1E2R"}}"#), Cpu::MAX)
                .contains("error")
        );
        // The offending value is named.
        assert!(answer_line(r#"{"tcr":"zz"}"#, Cpu::MAX).contains("zz"));
        let line = format!(r#"{{{BASE},"va":"0x0","op":"S1E1R","writes":[["0x1","0x2"]]}}"#);
        assert!(answer_line(&line, Cpu::MAX).contains("aligned"));
        let line = format!(r#"{{{BASE},"va":"0x0","op":"S1E1R","writes":[["0x8","0x2"]]}}"#);
        assert!(answer_line(&line, Cpu::MAX).contains("outside RAM"));
    }

    #[test]
    fn walk_outside_ram_is_external_abort() {
        // TTBR0 at 0x1000, outside the default RAM: FST 0x14 (level 0).
        let line = format!(r#"{{{BASE},"va":"0x0","op":"S1E1R"}}"#)
            .replace("\"ttbr0\":\"0x40000000\"", "\"ttbr0\":\"0x1000\"");
        assert_eq!(
            answer_line(&line, Cpu::MAX),
            r#"{"par":"0x829","updates":[]}"#
        );
    }
}
