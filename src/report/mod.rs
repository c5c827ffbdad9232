//! Reports read from the result records. Today: the terminal summary.

mod cells;
pub mod terminal;
