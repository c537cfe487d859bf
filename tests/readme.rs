//! What README.md tells users to type must exist: the two opening commands, and every flag and
//! environment variable in the flag table of `lightsail-gui-operator run`.

use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn readme_opens_with_the_demo_and_test_commands_and_ci_runs_the_test_one() {
    let text = readme();
    let first_block = text
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh code block");
    let commands: Vec<&str> = first_block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["scripts/demo", "scripts/test"], "{first_block}");
    for script in &commands {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
        assert!(path.is_file(), "{script} does not exist");
    }
    let ci =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test"),
        ".ci/run must call the README's test command"
    );
}

#[test]
fn every_flag_and_env_variable_in_the_readme_exists() {
    let out = Command::new(env!("CARGO_BIN_EXE_lightsail-gui-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let text = readme();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| `--")).collect();
    assert!(
        rows.len() >= 15,
        "flag table not found ({} rows)",
        rows.len()
    );
    let mut checked = 0;
    for row in rows {
        let cells: Vec<&str> = row.split('|').collect();
        for cell in &cells[1..3] {
            for name in cell.split('`').skip(1).step_by(2) {
                let documented = if name.starts_with("--") {
                    // `--flag <VALUE>`, a switch that also takes a value (`--flag [<VALUE>]`),
                    // or a bare flag.
                    help.contains(&format!("{name} <"))
                        || help.contains(&format!("{name} [<"))
                        || help.contains(&format!("{name}\n"))
                } else {
                    help.contains(&format!("[env: {name}="))
                };
                assert!(
                    documented,
                    "README names {name}, which `run --help` does not know"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} names checked");
}
