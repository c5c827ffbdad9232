//! precheck's CUDA kernels compile with NVRTC, here and in CI, without a GPU.
//!
//! Needs `libnvrtc.so.13` on the library path: `pip install "nvidia-cuda-nvrtc==13.0.*"` (the CUDA
//! of the GPU machines) and add its `nvidia/cu13/lib` to `LD_LIBRARY_PATH`, as `.ci/run` does.
#![cfg(feature = "cuda")]

use precheck::backend::cuda::kernels;
use precheck::precision::kernels::{classify, KernelClass};

#[test]
fn every_kernel_compiles_with_nvrtc_for_ada_and_hopper_and_is_in_the_kernel_table() {
    // SAFETY: only tries to load the library.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    assert!(
        present,
        "libnvrtc not found: pip install \"nvidia-cuda-nvrtc==13.0.*\" and add its nvidia/cu13/lib \
         to LD_LIBRARY_PATH"
    );
    let entries: Vec<&str> = kernels::SOURCE
        .split("extern \"C\" __global__ void ")
        .skip(1)
        // The name is the last word before the parameters (a launch-bounds macro may precede it).
        .map(|rest| {
            let head = &rest[..rest.find('(').unwrap()];
            head.split_whitespace().last().unwrap()
        })
        .collect();
    assert!(entries.len() >= 14, "kernels.cu has {entries:?}");
    for kernel in &entries {
        // The kernel trace must know precheck's own kernels, or it reports them unclassified.
        assert_eq!(
            classify(kernel),
            KernelClass::Auxiliary,
            "{kernel} is missing from the kernel table"
        );
    }
    for (major, minor) in [(8, 9), (9, 0), (10, 0)] {
        let ptx =
            kernels::compile(major, minor).unwrap_or_else(|e| panic!("sm_{major}{minor}: {e}"));
        let text = ptx.to_src();
        for kernel in &entries {
            assert!(
                text.contains(&format!(".entry {kernel}(")),
                "sm_{major}{minor}: no kernel {kernel}"
            );
        }
    }
}

/// Workers after the first read the PTX from the kernel cache: the same text as NVRTC's, without
/// NVRTC; an unreadable entry is compiled again and rewritten.
#[test]
fn the_kernel_cache_gives_nvrtcs_ptx_and_survives_a_broken_entry() {
    let dir = tempfile::tempdir().unwrap();
    let compiled = kernels::compile(9, 0).unwrap().to_src();
    let first = kernels::compile_cached(9, 0, dir.path()).unwrap().to_src();
    assert_eq!(first, compiled);
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let started = std::time::Instant::now();
    assert_eq!(
        kernels::compile_cached(9, 0, dir.path()).unwrap().to_src(),
        compiled
    );
    assert!(
        started.elapsed().as_millis() < 200,
        "{:?}",
        started.elapsed()
    );
    std::fs::write(&entries[0], "garbage").unwrap();
    assert_eq!(
        kernels::compile_cached(9, 0, dir.path()).unwrap().to_src(),
        compiled
    );
    assert_eq!(std::fs::read_to_string(&entries[0]).unwrap(), compiled);
}
