//! Matrix products of the host's definitions (the exact reference, the CPU emulations):
//! `matrixmultiply`'s packed GEMM kernels, split over row blocks with rayon (matrixmultiply itself
//! runs on one thread), or a [`ProductDevice`] when a run has one.
//!
//! Only the products move to a device. Every rounding a definition makes (quantizing operands,
//! storing results in a format) stays on the host, so a device changes a definition's result by
//! the order of accumulation alone: f32 products accumulate in f32 there too (no TF32), f64 in
//! f64, and integer operands, carried in f64, are exact in any order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use num_traits::Float;
use rayon::prelude::*;

use crate::tensor::Tensor;

/// A scalar the CPU GEMM runs on: `f32` for variants, `f64` for the exact reference.
pub trait Scalar: Float + Send + Sync + std::fmt::Debug + 'static {
    /// `c = a · b` for row-major `a` `[m, k]` and `b` given by its strides, written to row-major `c`.
    ///
    /// # Safety
    /// `a` holds `m * k` values, `c` holds `m * n`, and `b` with strides `(rsb, csb)` stays inside
    /// its allocation for every index `< k` by `< n`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_into(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        b: *const Self,
        rsb: isize,
        csb: isize,
        c: *mut Self,
    );

    /// `x · wᵀ` on `device`, in this scalar's arithmetic.
    fn on_device(
        device: &dyn ProductDevice,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
    ) -> Result<Tensor<Self>, String>;
}

macro_rules! impl_scalar {
    ($t:ty, $gemm:path, $on_device:ident) => {
        impl Scalar for $t {
            fn on_device(
                device: &dyn ProductDevice,
                x: &Tensor<Self>,
                w: &Tensor<Self>,
            ) -> Result<Tensor<Self>, String> {
                device.$on_device(x, w)
            }

            /// # Safety
            /// As [`Scalar::gemm_into`]: the caller guarantees `a` holds `m * k` values, `c`
            /// `m * n` writable ones, and `b` at strides `(rsb, csb)` stays inside its allocation.
            unsafe fn gemm_into(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                b: *const Self,
                rsb: isize,
                csb: isize,
                c: *mut Self,
            ) {
                // SAFETY: by the contract above `a` is `m × k` and `c` `m × n`, both row-major as
                // the strides `(k, 1)` and `(n, 1)` passed here say (C's never alias); `b` keeps
                // the caller's strides, and β = 0 so `c` needs no initialisation.
                $gemm(
                    m, k, n, 1.0, a, k as isize, 1, b, rsb, csb, 0.0, c, n as isize, 1,
                );
            }
        }
    };
}

impl_scalar!(f32, matrixmultiply::sgemm, matmul_nt_f32);
impl_scalar!(f64, matrixmultiply::dgemm, matmul_nt_f64);

/// A device that computes the host's products: `x · wᵀ` for `x` `[m, k]` and `w` `[n, k]`, row
/// major, into `[m, n]`, accumulating in the operands' own type. An error sends the product back
/// to the host's kernels.
pub trait ProductDevice: Send + Sync {
    /// The f32 product, accumulated in f32.
    fn matmul_nt_f32(&self, x: &Tensor<f32>, w: &Tensor<f32>) -> Result<Tensor<f32>, String>;

    /// The f64 product, accumulated in f64.
    fn matmul_nt_f64(&self, x: &Tensor<f64>, w: &Tensor<f64>) -> Result<Tensor<f64>, String>;

    /// Seconds the device has spent computing products so far (its kernels, not the copies).
    fn busy_s(&self) -> f64;

    /// The device, for people.
    fn name(&self) -> String;
}

/// The device the host's products run on, if any.
static DEVICE: RwLock<Option<Arc<dyn ProductDevice>>> = RwLock::new(None);

/// Whether a device has failed a product since it was set (warned once, not per product).
static DEVICE_FAILED: AtomicBool = AtomicBool::new(false);

/// Products smaller than this many multiply-adds stay on the host: their copies to a device and
/// back would cost more than they save.
const MIN_DEVICE_MACS: usize = 1 << 24;

/// Runs the host's products on `device` from now on (none: on the host's kernels). The setting
/// is the process's: a worker serves one device, and sets it for each variant it measures.
pub fn set_product_device(device: Option<Arc<dyn ProductDevice>>) {
    *DEVICE.write().unwrap_or_else(|e| e.into_inner()) = device;
    DEVICE_FAILED.store(false, Ordering::Relaxed);
}

/// The device the host's products run on, if any.
pub fn product_device() -> Option<Arc<dyn ProductDevice>> {
    DEVICE.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Rows per parallel task: enough work per task to amortise packing the weight panel.
const MIN_ROWS_PER_TASK: usize = 16;

/// `x · wᵀ` for `x` `[m, k]` and `w` `[n, k]` (a linear layer's weight layout): `[m, n]`, on the
/// [`product_device`] when one is set and the product is large enough, else on the host.
///
/// Panics if the inner dimensions differ (a programming error: blocks check their shapes).
pub fn matmul_nt<S: Scalar>(x: &Tensor<S>, w: &Tensor<S>) -> Tensor<S> {
    assert_eq!(x.cols, w.cols, "matmul inner dimensions differ");
    let (m, k, n) = (x.rows, x.cols, w.rows);
    if m * k * n >= MIN_DEVICE_MACS {
        if let Some(device) = product_device() {
            match S::on_device(device.as_ref(), x, w) {
                Ok(product) => return product,
                Err(why) => {
                    if !DEVICE_FAILED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "{}: a product failed, computing it on the host: {why}",
                            device.name()
                        );
                    }
                }
            }
        }
    }
    let mut out = vec![S::zero(); m * n];
    if m == 0 || n == 0 {
        return Tensor::new(m, n, out);
    }
    let rows_per_task = m
        .div_ceil(rayon::current_num_threads())
        .max(MIN_ROWS_PER_TASK);
    out.par_chunks_mut(rows_per_task * n)
        .zip(x.data.par_chunks(rows_per_task * k))
        .for_each(|(c, a)| {
            let rows = a.len() / k.max(1);
            // SAFETY: `a` is `rows` full rows of `x` (k values each), `c` the matching `rows` rows
            // of the output (n values each); `w` is `[n, k]` row-major, read as its transpose with
            // row stride 1 and column stride k, so every index stays below n * k.
            unsafe {
                S::gemm_into(
                    rows,
                    k,
                    n,
                    a.as_ptr(),
                    w.data.as_ptr(),
                    1,
                    k as isize,
                    c.as_mut_ptr(),
                )
            };
        });
    Tensor::new(m, n, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &Tensor<f64>, w: &Tensor<f64>) -> Vec<f64> {
        let mut out = Vec::new();
        for i in 0..x.rows {
            for j in 0..w.rows {
                out.push(
                    (0..x.cols)
                        .map(|p| x.data[i * x.cols + p] * w.data[j * w.cols + p])
                        .sum(),
                );
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_across_row_blocks() {
        // 70 rows: several row blocks, the last one short.
        let x = Tensor::new(
            70,
            9,
            (0..630).map(|i| ((i * 7) % 13) as f64 - 6.0).collect(),
        );
        let w = Tensor::new(5, 9, (0..45).map(|i| ((i * 5) % 11) as f64 - 5.0).collect());
        assert_eq!(matmul_nt(&x, &w).data, naive(&x, &w));
        let xf = x.map(|v| v as f32);
        let wf = w.map(|v| v as f32);
        let expect: Vec<f32> = naive(&x, &w).into_iter().map(|v| v as f32).collect();
        assert_eq!(matmul_nt(&xf, &wf).data, expect);
    }
}
