//! The `affected` example program, run against a real repository.

#[path = "../examples/affected.rs"]
mod affected;

use ferry_test_support::TestRepo;

#[test]
fn the_example_prints_the_services_a_commit_range_affects() {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for (name, extra) in [
        ("database", ""),
        (
            "api",
            "depends-on = [\"database\"]\n\n[parameters]\nTable = \"${output:database.TableName}\"\n",
        ),
        ("site", ""),
    ] {
        r.write(&format!("services/{name}/template.yaml"), "Resources: {}\n")
            .write(
                &format!("services/{name}/service.toml"),
                &format!("[service]\ntemplate = \"template.yaml\"\n{extra}"),
            )
            .write(&format!("services/{name}/src/main.py"), "print(1)\n");
    }
    let base = r.commit("base").to_string();
    r.write("services/database/src/main.py", "print(2)\n");
    r.commit("edit database");

    let mut out = Vec::new();
    affected::affected(r.path(), &base, "HEAD", &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{text}");
    // `site` is not affected; `api` is, through the dependency it reads outputs from.
    assert!(lines[0].starts_with("api: "), "{text}");
    assert!(lines[0].contains("database"), "{text}");
    assert!(
        lines[1].starts_with("database: ") && lines[1].contains("services/database/src/main.py"),
        "{text}"
    );

    // Nothing changed between a commit and itself.
    let mut out = Vec::new();
    affected::affected(r.path(), "HEAD", "HEAD", &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "");

    // A base that does not exist is an error, not an empty answer.
    let mut out = Vec::new();
    assert!(affected::affected(r.path(), "no-such-ref", "HEAD", &mut out).is_err());
}
