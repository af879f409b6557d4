//! The checked-in corpus of nasty parser inputs, shared by each parser's property tests:
//! `tests/corpus/<parser>/<outcome>--<what it is>`, where `<outcome>` names the class of
//! result the parser must give for that file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Runs every file of one parser's corpus through `outcome` (which names the class of result
/// it got) and fails listing each file that panicked or gave another class.
pub fn check(parser: &str, outcome: impl Fn(&[u8]) -> String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(parser);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no corpus files", dir.display());
    let mut wrong = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let (expected, _) = file
            .split_once("--")
            .unwrap_or_else(|| panic!("{file}: corpus names are <outcome>--<what>"));
        let bytes = std::fs::read(path).unwrap();
        // A panic is caught so that every file is tried and the report names them all.
        match catch_unwind(AssertUnwindSafe(|| outcome(&bytes))) {
            Ok(got) if got == expected => {}
            Ok(got) => wrong.push(format!("{file}: got {got}")),
            Err(_) => wrong.push(format!("{file}: panicked")),
        }
    }
    assert!(wrong.is_empty(), "{parser} corpus:\n{}", wrong.join("\n"));
}
