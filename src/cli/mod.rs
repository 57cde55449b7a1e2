//! The std-only command-line front ends, kept in the library so they can be tested.

pub mod at;
pub mod demo;
pub mod json;
pub mod run;
pub mod script;
pub mod sim;
