//! Kernel traces through CUPTI's activity API: the name and duration of every kernel a forward
//! pass launches, the evidence fallback detection reads (an FP8 variant whose GEMM ran as
//! `nvjet_sm90_tst_...` ran in BF16).
//!
//! CUPTI delivers records through C callbacks without a user pointer, so the records gather in a
//! process-wide list; one variant is traced at a time.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::{Mutex, OnceLock};

use cudarc::cupti::result::{activity, CuptiError};
use cudarc::cupti::sys::{self, CUptiResult};

use crate::backend::BackendError;
use crate::measure::KernelLaunches;

const BUFFER_BYTES: usize = 4 << 20;
const BUFFER_ALIGN: usize = 8;

/// Kernel name and duration in nanoseconds, as CUPTI reported them.
static RECORDS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

fn layout() -> Layout {
    Layout::from_size_align(BUFFER_BYTES, BUFFER_ALIGN).expect("valid layout")
}

extern "C" fn buffer_requested(buffer: *mut *mut u8, size: *mut usize, max_records: *mut usize) {
    // SAFETY: CUPTI passes valid out-pointers; the buffer is freed in `buffer_completed`.
    unsafe {
        *buffer = alloc(layout());
        *size = BUFFER_BYTES;
        *max_records = 0;
    }
}

extern "C" fn buffer_completed(
    _context: cudarc::driver::sys::CUcontext,
    _stream: u32,
    buffer: *mut u8,
    _size: usize,
    valid: usize,
) {
    let mut found = Vec::new();
    let mut record: *mut sys::CUpti_Activity = std::ptr::null_mut();
    // SAFETY: CUPTI hands back a buffer it filled with `valid` bytes of records.
    while unsafe { activity::get_next_record(buffer, valid, &mut record) }.is_ok() {
        // SAFETY: a record of kind CONCURRENT_KERNEL starts with the fields every version of
        // CUpti_ActivityKernel shares (kind, start, end, ..., name), read here through version 4.
        let kernel = unsafe { &*(record as *const sys::CUpti_ActivityKernel4) };
        if kernel.kind == sys::CUpti_ActivityKind::CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL
            && !kernel.name.is_null()
        {
            let name = unsafe { CStr::from_ptr(kernel.name) }
                .to_string_lossy()
                .into_owned();
            found.push((name, kernel.end.saturating_sub(kernel.start)));
        }
    }
    if let Ok(mut records) = RECORDS.lock() {
        records.extend(found);
    }
    // SAFETY: allocated in `buffer_requested` with the same layout.
    unsafe { dealloc(buffer, layout()) };
}

fn cupti(what: &'static str) -> impl Fn(CuptiError) -> BackendError {
    move |e| BackendError::Failed(format!("CUPTI {what}: {e:?}"))
}

/// Registers the callbacks once per process; `Err` says why CUPTI cannot trace here.
fn registered() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: only tries to load the library.
            if !unsafe { sys::is_culib_present() } {
                return Err("libcupti could not be loaded".into());
            }
            activity::register_callbacks(Some(buffer_requested), Some(buffer_completed))
                .map_err(|e| format!("registering CUPTI callbacks: {e:?}"))
        })
        .clone()
}

/// Runs `launch` with kernel tracing on and returns the kernels it ran, by name, in the order
/// of their first launch. `Ok(None)` when CUPTI is not available here (the record then says so by
/// having no trace).
pub fn trace(
    launch: impl FnOnce() -> Result<(), BackendError>,
) -> Result<Option<Vec<KernelLaunches>>, BackendError> {
    if let Err(why) = registered() {
        tracing::warn!("no kernel trace: {why}");
        return Ok(None);
    }
    let kind = sys::CUpti_ActivityKind::CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
    RECORDS.lock().expect("trace lock").clear();
    activity::enable(kind).map_err(cupti("enable"))?;
    let launched = launch();
    // 1 is CUPTI_ACTIVITY_FLAG_FLUSH_FORCED: deliver incomplete buffers too.
    let flushed = activity::flush_all(1);
    activity::disable(kind).map_err(cupti("disable"))?;
    launched?;
    if let Err(CuptiError(status)) = flushed {
        if status != CUptiResult::CUPTI_SUCCESS {
            return Err(cupti("flush")(CuptiError(status)));
        }
    }
    let records = std::mem::take(&mut *RECORDS.lock().expect("trace lock"));
    Ok(Some(group(records)))
}

/// Groups kernel records by name, keeping first-launch order.
fn group(records: Vec<(String, u64)>) -> Vec<KernelLaunches> {
    let mut order = Vec::new();
    let mut totals: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for (name, ns) in records {
        let entry = totals.entry(name.clone()).or_insert_with(|| {
            order.push(name);
            (0, 0)
        });
        entry.0 += 1;
        entry.1 += ns;
    }
    order
        .into_iter()
        .map(|name| {
            let (launches, ns) = totals[&name];
            KernelLaunches {
                name,
                launches,
                total_us: ns as f64 / 1e3,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_in_first_launch_order() {
        let grouped = group(vec![
            ("b".into(), 1000),
            ("a".into(), 500),
            ("b".into(), 3000),
        ]);
        let summary: Vec<(&str, u32, f64)> = grouped
            .iter()
            .map(|k| (k.name.as_str(), k.launches, k.total_us))
            .collect();
        assert_eq!(summary, [("b", 2, 4.0), ("a", 1, 0.5)]);
    }
}
