//! The README's table of divergences from AWS is the emulator's own list
//! (`nightshift_local::divergence::ALL`), row for row: a divergence added in the code without
//! the README (or the reverse) fails here, with the table the README should hold.

use nightshift_local::divergence::ALL;

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The rows of the table under "Where the emulator differs from AWS", as cells.
fn readme_rows() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("| where | AWS | the emulator | announced |")
        .expect("the README has the divergence table");
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_readme_table_is_the_emulators_list_of_divergences() {
    let expected: Vec<Vec<String>> = ALL
        .iter()
        .map(|d| {
            vec![
                d.place.to_owned(),
                d.aws.to_owned(),
                d.emulator.to_owned(),
                d.trigger.describe().to_owned(),
            ]
        })
        .collect();
    let table: String = expected
        .iter()
        .map(|row| format!("| {} |\n", row.join(" | ")))
        .collect();
    assert_eq!(
        readme_rows(),
        expected,
        "the README's table should read:\n{table}"
    );
}

#[test]
fn the_real_template_is_told_what_concerns_it() -> anyhow::Result<()> {
    use nightshift_local::clock::ClockSpec;
    use nightshift_local::divergence::applicable;
    use nightshift_local::template::{LoadOptions, Template};

    let template = Template::load(
        &workspace_root().join("infra/template.yaml"),
        &LoadOptions::default(),
    )?;
    let ids = |clock: ClockSpec, processes: bool| -> Vec<&str> {
        applicable(&template, &clock, processes)
            .iter()
            .map(|d| d.id)
            .collect()
    };
    // A cron schedule with Input, SQS event sources, functions without reserved
    // concurrency and an SES event destination; no filters, no rate(), no
    // SNS/EventBridge/S3 destinations.
    let always = [
        "scheduler-retries",
        "poller-scaling",
        "function-concurrency",
        "mail-feedback",
    ];
    assert_eq!(ids(ClockSpec::Real, true), always);
    let mut manual = vec!["virtual-clock-timeouts", "function-now"];
    manual.extend(always);
    assert_eq!(ids(ClockSpec::Manual, true), manual);
    Ok(())
}
