//! The `pagesim` command-line tool.

fn main() {}
