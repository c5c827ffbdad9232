//! The CPU backend: each precision emulated exactly on the CPU.
//!
//! Operands are rounded to the precision's format (round to nearest even), products accumulate in
//! f32 (as tensor cores accumulate FP16/BF16 products), and every operation's output is rounded to
//! the format again. Weights are converted once in `prepare`, like an engine build; the input is
//! converted on every run, as activations are.

use super::{Backend, BackendError, BackendKind, Executable};
use crate::host::HostInfo;
use crate::model::forward::forward;
use crate::model::{Block, Model, Tensor, Weights};
use crate::precision::{Format, Precision};

/// precheck's CPU emulation of each precision.
#[derive(Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    /// The CPU backend, using rayon's global thread pool.
    pub fn new() -> Self {
        CpuBackend
    }
}

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn device_name(&self) -> String {
        let host = HostInfo::current();
        format!("{} ({} threads)", host.cpu_model, host.cpu_threads)
    }

    fn prepare(
        &self,
        model: &Model,
        weights: &Weights,
        precision: Precision,
    ) -> Result<Box<dyn Executable>, BackendError> {
        let format = precision.format();
        let weights = weights.map(|v| format.round(v));
        Ok(Box::new(CpuExecutable {
            block: model.block,
            weights,
            format,
        }))
    }
}

struct CpuExecutable {
    block: Block,
    weights: Weights,
    format: Format,
}

impl Executable for CpuExecutable {
    fn run(&mut self, input: &Tensor) -> Result<Tensor, BackendError> {
        if input.cols != self.block.input_features() {
            return Err(BackendError::Failed(format!(
                "input has {} features, the block takes {}",
                input.cols,
                self.block.input_features()
            )));
        }
        let format = self.format;
        let input = input.map(|v| format.round(v));
        Ok(forward(
            &self.block,
            &self.weights,
            &input,
            &|values: &mut [f32]| format.round_slice(values),
        ))
    }
}
