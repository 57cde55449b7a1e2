//! Memory accesses and address translation (AT) instructions.

use core::fmt;
use core::str::FromStr;

/// The kind of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Fetch,
}

/// The Exception level an access is made from (or checked as, for unprivileged accesses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum El {
    /// EL0, user.
    El0,
    /// EL1, kernel.
    El1,
}

/// One memory access to translate: its kind, Exception level, PSTATE.PAN, size and whether
/// it is an AT instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    kind: AccessKind,
    el: El,
    pan: bool,
    at: bool,
    size: u8,
}

impl Access {
    /// Creates an access of `kind` from `el`, one byte, PAN clear.
    #[inline]
    pub const fn new(kind: AccessKind, el: El) -> Access {
        Access {
            kind,
            el,
            pan: false,
            at: false,
            size: 1,
        }
    }

    /// Creates a data read from `el`.
    #[inline]
    pub const fn read(el: El) -> Access {
        Access::new(AccessKind::Read, el)
    }

    /// Creates a data write from `el`.
    #[inline]
    pub const fn write(el: El) -> Access {
        Access::new(AccessKind::Write, el)
    }

    /// Creates an instruction fetch from `el`.
    #[inline]
    pub const fn fetch(el: El) -> Access {
        Access::new(AccessKind::Fetch, el)
    }

    /// Returns this access with PSTATE.PAN set to `pan` (it matters only for EL1 data
    /// accesses).
    #[inline]
    pub const fn with_pan(mut self, pan: bool) -> Access {
        self.pan = pan;
        self
    }

    /// Returns this access with a size in bytes (1, 2, 4, 8 or 16; other values count as
    /// 1). The size decides alignment faults on Device memory.
    #[inline]
    pub const fn with_size(mut self, size: u8) -> Access {
        self.size = match size {
            2 | 4 | 8 | 16 => size,
            _ => 1,
        };
        self
    }

    /// Returns the access kind.
    #[inline]
    pub const fn kind(&self) -> AccessKind {
        self.kind
    }

    /// Returns the Exception level the access is checked at.
    #[inline]
    pub const fn el(&self) -> El {
        self.el
    }

    /// Returns PSTATE.PAN for this access.
    #[inline]
    pub const fn pan(&self) -> bool {
        self.pan
    }

    /// Returns whether this is an AT instruction (no exception, no dirty update, no
    /// alignment check).
    #[inline]
    pub const fn is_at(&self) -> bool {
        self.at
    }

    /// Returns the access size in bytes.
    #[inline]
    pub const fn size(&self) -> u8 {
        self.size
    }

    /// Returns whether the access is a data write.
    #[inline]
    pub const fn is_write(&self) -> bool {
        matches!(self.kind, AccessKind::Write)
    }

    /// Returns whether the access is an instruction fetch.
    #[inline]
    pub const fn is_fetch(&self) -> bool {
        matches!(self.kind, AccessKind::Fetch)
    }

    /// Returns whether the access is checked with EL0 permissions.
    #[inline]
    pub const fn is_el0(&self) -> bool {
        matches!(self.el, El::El0)
    }
}

/// The stage-1 EL1&0 address translation instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtOp {
    /// `AT S1E1R`: EL1 read, PAN not checked.
    S1E1R,
    /// `AT S1E1W`: EL1 write, PAN not checked.
    S1E1W,
    /// `AT S1E0R`: EL0 read.
    S1E0R,
    /// `AT S1E0W`: EL0 write.
    S1E0W,
    /// `AT S1E1RP`: EL1 read, PAN-checked (run with PSTATE.PAN = 1).
    S1E1RP,
    /// `AT S1E1WP`: EL1 write, PAN-checked (run with PSTATE.PAN = 1).
    S1E1WP,
}

impl AtOp {
    /// Every AT operation, in encoding order.
    pub const ALL: [AtOp; 6] = [
        AtOp::S1E1R,
        AtOp::S1E1W,
        AtOp::S1E0R,
        AtOp::S1E0W,
        AtOp::S1E1RP,
        AtOp::S1E1WP,
    ];

    /// Returns the access this instruction checks: kind, EL, and PAN (set for the P forms).
    pub const fn access(self) -> Access {
        let (kind, el, pan) = match self {
            AtOp::S1E1R => (AccessKind::Read, El::El1, false),
            AtOp::S1E1W => (AccessKind::Write, El::El1, false),
            AtOp::S1E0R => (AccessKind::Read, El::El0, false),
            AtOp::S1E0W => (AccessKind::Write, El::El0, false),
            AtOp::S1E1RP => (AccessKind::Read, El::El1, true),
            AtOp::S1E1WP => (AccessKind::Write, El::El1, true),
        };
        Access {
            kind,
            el,
            pan,
            at: true,
            size: 1,
        }
    }

    /// Returns the instruction's name, e.g. `S1E1RP`.
    pub const fn name(self) -> &'static str {
        match self {
            AtOp::S1E1R => "S1E1R",
            AtOp::S1E1W => "S1E1W",
            AtOp::S1E0R => "S1E0R",
            AtOp::S1E0W => "S1E0W",
            AtOp::S1E1RP => "S1E1RP",
            AtOp::S1E1WP => "S1E1WP",
        }
    }
}

impl fmt::Display for AtOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Returned when parsing an unknown AT operation name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownAtOp;

impl core::error::Error for UnknownAtOp {}

impl fmt::Display for UnknownAtOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown AT operation (expected S1E1R, S1E1W, S1E0R, S1E0W, S1E1RP or S1E1WP)")
    }
}

impl FromStr for AtOp {
    type Err = UnknownAtOp;

    /// Parses `S1E1R` … `S1E1WP`, case-insensitively, with an optional `AT ` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = if s.len() > 3 && s[..3].eq_ignore_ascii_case("AT ") {
            s[3..].trim_start()
        } else {
            s
        };
        AtOp::ALL
            .iter()
            .copied()
            .find(|op| op.name().eq_ignore_ascii_case(s))
            .ok_or(UnknownAtOp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_names_round_trip() {
        for op in AtOp::ALL {
            assert_eq!(op.name().parse::<AtOp>(), Ok(op));
        }
        assert_eq!("at s1e1wp".parse::<AtOp>(), Ok(AtOp::S1E1WP));
        assert!("S1E2R".parse::<AtOp>().is_err());
        assert!("".parse::<AtOp>().is_err());
        assert!("AT ".parse::<AtOp>().is_err());
    }

    #[test]
    fn at_access_semantics() {
        assert!(AtOp::S1E1RP.access().pan());
        assert!(!AtOp::S1E1R.access().pan());
        assert!(AtOp::S1E0W.access().is_el0() && AtOp::S1E0W.access().is_write());
        assert!(AtOp::S1E1W.access().is_at());
    }
}
