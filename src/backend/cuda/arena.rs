//! Device memory a built block owns.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use crate::backend::BackendError;

/// Device memory owned by a built block; pointers stay valid while it lives.
#[derive(Default)]
pub(super) struct Arena {
    slices: Vec<CudaSlice<u8>>,
}

impl Arena {
    pub(super) fn alloc(
        &mut self,
        stream: &Arc<CudaStream>,
        bytes: usize,
    ) -> Result<u64, BackendError> {
        let slice = stream
            .alloc_zeros::<u8>(bytes.max(4))
            .map_err(|e| BackendError::Failed(format!("allocating {bytes} bytes: {e}")))?;
        let ptr = slice.device_ptr(stream).0;
        self.slices.push(slice);
        Ok(ptr)
    }

    pub(super) fn upload(
        &mut self,
        stream: &Arc<CudaStream>,
        bytes: &[u8],
    ) -> Result<u64, BackendError> {
        let slice = stream
            .clone_htod(bytes)
            .map_err(|e| BackendError::Failed(format!("uploading {} bytes: {e}", bytes.len())))?;
        let ptr = slice.device_ptr(stream).0;
        self.slices.push(slice);
        Ok(ptr)
    }

    /// `bytes` uploaded through `staging`, a page-locked buffer: for the hundreds of megabytes of
    /// a weight, which a copy from pageable memory moves at a few GB/s.
    pub(super) fn upload_staged(
        &mut self,
        stream: &Arc<CudaStream>,
        staging: &mut super::staging::Staging,
        bytes: &[u8],
    ) -> Result<u64, BackendError> {
        let slice = staging
            .upload(stream, bytes)
            .map_err(|e| BackendError::Failed(format!("uploading {} bytes: {e}", bytes.len())))?;
        let ptr = slice.device_ptr(stream).0;
        self.slices.push(slice);
        Ok(ptr)
    }

    pub(super) fn upload_f32(
        &mut self,
        stream: &Arc<CudaStream>,
        values: &[f32],
    ) -> Result<u64, BackendError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.upload(stream, &bytes)
    }
}
