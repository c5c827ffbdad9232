//! The tensor every stage passes around: row-major, two-dimensional.

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

    /// The same values converted element by element.
    pub fn map<U: Copy>(&self, f: impl Fn(T) -> U) -> Tensor<U> {
        Tensor::new(
            self.rows,
            self.cols,
            self.data.iter().map(|&v| f(v)).collect(),
        )
    }
}
