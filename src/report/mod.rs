//! Reports read from the result records. Today: the terminal summary.

pub mod terminal;
