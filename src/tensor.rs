//! The tensor every stage passes around: row-major, two-dimensional.

use rayon::prelude::*;

/// A row-major 2-D tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T = f32> {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<T>,
}

impl<T: Copy> Tensor<T> {
    /// A tensor of the given shape; panics if `data` has another length (a programming error).
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "tensor data does not match its shape"
        );
        Tensor { rows, cols, data }
    }

    /// The same values converted element by element, over rayon's threads (a model's tensors
    /// run to hundreds of megabytes; one thread copying them, and faulting in their pages, was
    /// most of an emulation's host time).
    pub fn map<U: Copy + Send>(&self, f: impl Fn(T) -> U + Sync + Send) -> Tensor<U>
    where
        T: Sync,
    {
        Tensor::new(
            self.rows,
            self.cols,
            self.data
                .par_iter()
                .with_min_len(PARALLEL_MIN_LEN)
                .map(|&v| f(v))
                .collect(),
        )
    }
}

/// Elements per parallel task of [`Tensor::map`]: small tensors stay on one thread.
const PARALLEL_MIN_LEN: usize = 1 << 14;
