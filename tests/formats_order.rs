//! What the formats imply, measured: on normal data, precision orders accuracy
//! (fp32 > tf32 ≈ fp16 > bf16 > fp8_e4m3 > fp8_e5m2 > fp4); outlier channels cost per-tensor
//! recipes more than per-block ones.

mod common;

use common::precheck;

use std::collections::HashMap;

use precheck::results::read_records;

/// `1 − cos` of every variant, by id.
fn errors() -> HashMap<String, f64> {
    let out = tempfile::tempdir().unwrap();
    precheck()
        .args(["run", "tests/suites/formats_order.yaml", "--out"])
        .arg(out.path())
        .assert()
        .code(0);
    let (records, _) = read_records(&out.path().join("results.jsonl")).unwrap();
    records
        .into_iter()
        .map(|r| (r.id, 1.0 - r.accuracy.unwrap().cos))
        .collect()
}

#[test]
fn formats_order_accuracy_and_outliers_hurt_per_tensor_more() {
    let e = errors();
    let plain = |p: &str| e[&format!("plain/{p}/cpu")];
    let spiked = |p: &str| e[&format!("outliers/{p}/cpu")];
    let order = ["fp32", "tf32", "bf16", "fp8_e4m3", "fp8_e5m2", "nvfp4"];
    for pair in order.windows(2) {
        assert!(
            plain(pair[0]) < plain(pair[1]),
            "{} ({:e}) should beat {} ({:e})",
            pair[0],
            plain(pair[0]),
            pair[1],
            plain(pair[1])
        );
    }
    assert!(plain("fp16") < plain("bf16"));
    assert!(plain("fp8_e5m2") < plain("mxfp4"));
    // tf32 ≈ fp16: both have a 10-bit mantissa, within a factor of 10 of each other.
    assert!(plain("tf32") / plain("fp16") < 10.0 && plain("fp16") / plain("tf32") < 10.0);
    let growth = |p: &str| spiked(p) / plain(p);
    assert!(
        growth("int8_tensor") > 2.0 * growth("int8_block32"),
        "int8: per-tensor x{:.1}, per-block x{:.1}",
        growth("int8_tensor"),
        growth("int8_block32")
    );
    assert!(
        growth("fp4_tensor") > 1.5 * growth("nvfp4"),
        "fp4: per-tensor x{:.1}, nvfp4 x{:.1}",
        growth("fp4_tensor"),
        growth("nvfp4")
    );
}
