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
        .map(|rest| &rest[..rest.find('(').unwrap()])
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
