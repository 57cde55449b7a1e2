//! The AArch64 architecture: registers, descriptors, permissions, faults and the stage-1
//! walk (VMSAv8-64, EL1&0 regime).

pub mod access;
pub mod cpu;
pub mod descriptor;
pub mod fault;
pub mod granule;
pub mod mair;
pub mod perms;
pub mod regime;
pub mod walk;

pub use access::{Access, AccessKind, AtOp, El};
pub use cpu::{Compat, Cpu, TxszPolicy};
pub use descriptor::{
    Attributes, DecodedDescriptor, Descriptor, DescriptorFormat, TableAttributes,
};
pub use fault::{Fault, FaultKind};
pub use granule::{Granule, Level};
pub use mair::{DeviceKind, MairAttr};
pub use perms::Permissions;
pub use regime::{Half, Regime, RegimeError, Registers};
pub use walk::{at, walk, walk_pa, AtResult, DescriptorUpdate, Translation};
