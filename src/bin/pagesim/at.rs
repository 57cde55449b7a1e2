//! `pagesim at`: AT instructions as JSON lines.
//!
//! Each input line is one object: `tcr`, `ttbr0`, `ttbr1`, `sctlr`, `mair`, `va` (hex
//! strings), `op` (an [`AtOp`] name), optional `writes` (`[[pa, value], …]`, the only
//! non-zero words of physical memory) and optional `ram_base` / `ram_size` (default RAM is
//! 0x4000_0000 to 0x8000_0000; walks outside it are external aborts). Each output line is
//! `{"par": "0x…", "updates": [["0x…pa", "0x…new"], …]}` or `{"error": "…"}`.

use std::io::{self, BufRead, Write};

use serde_json::Value;

use crate::json::{hex, json_string, opt_u64_field, u64_field, u64_value};
use pagesim::addr::{PhysAddr, VirtAddr};
use pagesim::arch::{at, AtOp, Cpu, Regime, Registers};
use pagesim::phys::{PhysMemory, SparseMemory};

/// Default RAM base for `pagesim at`.
pub const DEFAULT_RAM_BASE: u64 = 0x4000_0000;
/// Default RAM size for `pagesim at`.
pub const DEFAULT_RAM_SIZE: u64 = 0x4000_0000;

/// Answers one input line with one output line (without the newline).
pub fn answer_line(line: &str, cpu: Cpu) -> String {
    match run_query(line, cpu) {
        Ok(s) => s,
        Err(e) => format!("{{\"error\":{}}}", json_string(&e)),
    }
}

fn run_query(line: &str, cpu: Cpu) -> Result<String, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    if !v.is_object() {
        return Err("expected a JSON object".into());
    }
    let regs = Registers {
        tcr: u64_field(&v, "tcr")?,
        sctlr: u64_field(&v, "sctlr")?,
        ttbr0: u64_field(&v, "ttbr0")?,
        ttbr1: u64_field(&v, "ttbr1")?,
        mair: u64_field(&v, "mair")?,
    };
    let va = u64_field(&v, "va")?;
    let op: AtOp = match v.get("op") {
        Some(Value::String(s)) => s.parse().map_err(|e| format!("field `op`: {e}"))?,
        Some(_) => return Err("field `op`: expected a string".into()),
        None => return Err("missing field `op`".into()),
    };
    let base = opt_u64_field(&v, "ram_base")?.unwrap_or(DEFAULT_RAM_BASE);
    let size = opt_u64_field(&v, "ram_size")?.unwrap_or(DEFAULT_RAM_SIZE);
    let base_pa = PhysAddr::try_new(base).map_err(|e| format!("field `ram_base`: {e}"))?;
    let mut mem = SparseMemory::new(base_pa, size);
    match v.get("writes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ws)) => {
            for (i, w) in ws.iter().enumerate() {
                let pair = match w {
                    Value::Array(p) if p.len() == 2 => p,
                    _ => return Err(format!("writes[{i}]: expected [pa, value]")),
                };
                let pa = u64_value(&pair[0]).map_err(|e| format!("writes[{i}] pa: {e}"))?;
                let val = u64_value(&pair[1]).map_err(|e| format!("writes[{i}] value: {e}"))?;
                if pa & 7 != 0 {
                    return Err(format!("writes[{i}]: pa {pa:#x} is not 8-byte aligned"));
                }
                let pa = PhysAddr::try_new(pa).map_err(|e| format!("writes[{i}]: {e}"))?;
                mem.write_u64(pa, val)
                    .map_err(|_| format!("writes[{i}]: pa {:#x} is outside RAM", pa.as_u64()))?;
            }
        }
        Some(_) => return Err("field `writes`: expected an array".into()),
    }
    let regime = Regime::new(regs, cpu);
    let r = at(&regime, &mut mem, op, VirtAddr::new(va));
    let mut out = format!("{{\"par\":\"{}\",\"updates\":[", hex(r.par));
    if let Some(u) = r.update {
        out.push_str(&format!("[\"{}\",\"{}\"]", hex(u.pa.as_u64()), hex(u.new)));
    }
    out.push_str("]}");
    Ok(out)
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
        assert!(answer_line(r#"{"tcr":"zz"}"#, Cpu::MAX).contains("tcr"));
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
