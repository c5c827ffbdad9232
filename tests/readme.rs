//! The README's suite example is a real suite.

use std::path::Path;

#[test]
fn the_readme_suite_example_is_valid() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme.find("```yaml\n").expect("README has a yaml example") + "```yaml\n".len();
    let len = readme[start..].find("```").unwrap();
    let suite = precheck::suite::from_str(Path::new("README.md"), &readme[start..start + len])
        .unwrap_or_else(|e| panic!("{e}"));
    // 2 models x 5 precisions x 2 GPUs, less q_proj in fp32 on both GPUs.
    assert_eq!(suite.variants.len(), 18);
    let fp16 = suite
        .variants
        .iter()
        .find(|v| v.id == "paligemma_mlp/fp16/h100")
        .unwrap();
    assert_eq!(fp16.gates.cos_min, 0.9995);
    assert_eq!(fp16.gates.max_abs_err, Some(0.1));
    let fp8 = suite
        .variants
        .iter()
        .find(|v| v.id == "q_proj/fp8_e4m3/h200")
        .unwrap();
    assert_eq!(fp8.gates.cos_min, 0.995);
    let rowwise = suite
        .variants
        .iter()
        .find(|v| v.id == "q_proj/fp8_rowwise/h100")
        .unwrap();
    assert_eq!(
        rowwise.precision.matmul.activations.to_string(),
        "fp8_e4m3/per_token"
    );
}
