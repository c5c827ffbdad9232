//! The README and the reference pages under `docs/` stay true: the suite example is a real suite,
//! every command and flag they name exists, and every link between them lands.

use std::path::Path;

/// README.md and every page of `docs/`, with their paths.
fn pages() -> Vec<(String, String)> {
    let mut pages = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string("README.md").unwrap(),
    )];
    let mut docs: Vec<_> = std::fs::read_dir("docs")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for path in docs {
        let text = std::fs::read_to_string(&path).unwrap();
        pages.push((path.display().to_string(), text));
    }
    pages
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every relative link of the README and the docs points at a file that exists, and at a
/// heading of it when it names one: moving a section cannot leave a link behind.
#[test]
fn every_link_between_the_pages_lands() {
    let pages = pages();
    assert!(pages.len() >= 8, "README and the reference pages");
    let mut checked = 0;
    for (path, text) in &pages {
        let dir = Path::new(path).parent().unwrap();
        for (at, _) in text.match_indices("](") {
            let target = &text[at + 2..];
            let target = &target[..target.find(')').unwrap()];
            if target.starts_with("http") {
                continue;
            }
            let (file, heading) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                Path::new(path).to_owned()
            } else {
                dir.join(file)
            };
            assert!(file.exists(), "{path}: the link {target} names no file");
            if !heading.is_empty() {
                let linked = std::fs::read_to_string(&file).unwrap();
                let headings: Vec<String> = linked
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    headings.iter().any(|h| h == heading),
                    "{path}: the link {target} names no heading of {}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} links");
}

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

/// Every `precheck` command the code blocks of the README and the docs show is a subcommand, and
/// every flag written on it, or at the head of a bullet of the "Command line" section (flags of
/// `run`), is in that subcommand's `--help`: the pages cannot name a command or flag precheck does
/// not have.
#[test]
fn every_command_and_flag_the_readme_names_exists() {
    let readme: String = pages().into_iter().map(|(_, text)| text + "\n").collect();
    let mut commands: Vec<String> = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let code = line.split(" #").next().unwrap().trim();
        let joined = format!("{pending}{code}");
        if let Some(continued) = joined.strip_suffix('\\') {
            pending = continued.to_owned();
            continue;
        }
        pending.clear();
        if let Some(at) = joined.find("precheck ") {
            let command = &joined[at + "precheck ".len()..];
            if command.starts_with(|c: char| c.is_ascii_lowercase()) {
                commands.push(command.to_owned());
            }
        }
    }
    assert!(commands.len() >= 13, "{commands:?}");
    let section =
        &readme[readme.find("## Command line").unwrap()..readme.find("## Exit codes").unwrap()];
    for bullet in section.lines().filter(|l| l.starts_with("- `--")) {
        let flag = bullet[3..].split(['`', ' ']).next().unwrap();
        commands.push(format!("run {flag}"));
    }
    let help = |subcommand: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_precheck"))
            .args([subcommand, "--help"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "precheck {subcommand} is not a command"
        );
        String::from_utf8(output.stdout).unwrap()
    };
    for command in &commands {
        let subcommand = command.split_whitespace().next().unwrap();
        let text = help(subcommand);
        for flag in command
            .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '|' | '('))
            .filter(|word| word.starts_with("--"))
        {
            let flag = flag.split('=').next().unwrap();
            assert!(
                text.contains(flag),
                "README: `precheck {command}`: {flag} is not in `precheck {subcommand} --help`"
            );
        }
    }
}
