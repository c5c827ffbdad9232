//! Copies between host memory and the device through a page-locked buffer, filled and emptied
//! over rayon's threads. Copies straight from pageable memory ran at about 3 GB/s on the H200's
//! host: a weight's upload took longer than quantizing it, and a product's copies sixty times
//! the product.

use std::mem::size_of_val;
use std::sync::Arc;

use cudarc::driver::{
    result as driver, CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, DriverError,
    PinnedHostSlice,
};
use rayon::prelude::*;

/// Bytes copied per parallel task between pageable and pinned memory.
const COPY_CHUNK: usize = 1 << 20;

/// A page-locked buffer, grown to the largest copy so far; one copy at a time.
#[derive(Default)]
pub struct Staging {
    pinned: Option<PinnedHostSlice<u8>>,
}

impl Staging {
    /// The buffer, at least `bytes` long.
    fn buffer(&mut self, ctx: &Arc<CudaContext>, bytes: usize) -> Result<&mut [u8], DriverError> {
        if self.pinned.as_ref().is_none_or(|s| s.len() < bytes) {
            // The old buffer goes first: two need not fit at once.
            self.pinned = None;
            // SAFETY: the buffer's bytes are unset; every copy writes the bytes it moves before
            // they are read. Flags 0: cached memory, since the host reads downloads back from it
            // (write-combined memory is slow to read).
            self.pinned = Some(unsafe { ctx.alloc_pinned_with_flags(bytes, 0) }?);
        }
        self.pinned
            .as_mut()
            .expect("allocated above")
            .as_mut_slice()
    }

    /// `values` in a new device allocation, copied when this returns.
    pub fn upload<T: DeviceRepr>(
        &mut self,
        stream: &Arc<CudaStream>,
        values: &[T],
    ) -> Result<CudaSlice<T>, DriverError> {
        let bytes = bytes_of(values);
        let buffer = &mut self.buffer(stream.context(), bytes.len())?[..bytes.len()];
        buffer
            .par_chunks_mut(COPY_CHUNK)
            .zip(bytes.par_chunks(COPY_CHUNK))
            .for_each(|(to, from)| to.copy_from_slice(from));
        // SAFETY: the allocation is written whole by the copy below before anything reads it.
        let device = unsafe { stream.alloc::<T>(values.len()) }?;
        // SAFETY: `device` holds exactly `buffer.len()` bytes; the buffer stays untouched until
        // the stream has synchronized, below.
        unsafe {
            driver::memcpy_htod_async(device.device_ptr(stream).0, buffer, stream.cu_stream())
        }?;
        stream.synchronize()?;
        Ok(device)
    }

    /// The values of `device`, once the work enqueued on `stream` before has written them.
    pub fn download<T: DeviceRepr + Copy + Send + Sync>(
        &mut self,
        stream: &Arc<CudaStream>,
        device: &CudaSlice<T>,
    ) -> Result<Vec<T>, DriverError> {
        let bytes = device.len() * std::mem::size_of::<T>();
        let buffer = &mut self.buffer(stream.context(), bytes)?[..bytes];
        // SAFETY: `device` holds `bytes` bytes; the buffer is read only after the stream has
        // synchronized.
        unsafe {
            driver::memcpy_dtoh_async(buffer, device.device_ptr(stream).0, stream.cu_stream())
        }?;
        stream.synchronize()?;
        // SAFETY: pinned memory is page-aligned, and its first `bytes` bytes are `device.len()`
        // values of `T` the device wrote; `align_to` puts any misalignment in its prefix, which
        // is checked.
        let (prefix, values, _) = unsafe { buffer.align_to::<T>() };
        assert!(prefix.is_empty(), "pinned memory is page-aligned");
        Ok(values
            .par_iter()
            .with_min_len(COPY_CHUNK)
            .copied()
            .collect())
    }
}

/// The bytes of a slice of plain numbers.
fn bytes_of<T: DeviceRepr>(values: &[T]) -> &[u8] {
    // SAFETY: a `DeviceRepr` is plain data the driver copies byte for byte (f32, f64, u8: no
    // padding, every byte initialised); the byte slice covers exactly the values' memory and
    // borrows it for as long.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), size_of_val(values)) }
}
