//! precheck's CUDA kernels compile with NVRTC, here and in CI, without a GPU.
//!
//! Needs `libnvrtc.so.13` on the library path: `pip install "nvidia-cuda-nvrtc==13.0.*"` (the CUDA
//! of the GPU machines) and add its `nvidia/cu13/lib` to `LD_LIBRARY_PATH`, as `.ci/run` does.
#![cfg(feature = "cuda")]

use precheck::backend::cuda::kernels;

#[test]
fn kernels_compile_with_nvrtc_for_ada_and_hopper() {
    // SAFETY: only tries to load the library.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    assert!(
        present,
        "libnvrtc not found: pip install \"nvidia-cuda-nvrtc==13.0.*\" and add its nvidia/cu13/lib \
         to LD_LIBRARY_PATH"
    );
    for (major, minor) in [(8, 9), (9, 0), (10, 0)] {
        let ptx =
            kernels::compile(major, minor).unwrap_or_else(|e| panic!("sm_{major}{minor}: {e}"));
        let text = ptx.to_src();
        for kernel in [
            "convert",
            "amax",
            "quantize_fp8",
            "gated_act",
            "quantize_int8_rows",
            "rescale",
            "mx_dequant",
            "nvfp4_dequant",
            "rotary",
            "softmax_rows",
            "gated_act_scaled",
            "rescale_rotary",
            "gated_act_int8_rows",
            "amax_history_push",
        ] {
            assert!(
                text.contains(&format!(".entry {kernel}(")),
                "sm_{major}{minor}: no kernel {kernel}"
            );
        }
    }
}
