//! Replays saved fuzz inputs (`fuzz/regressions/<target>/`: crashes the fuzzers found,
//! once fixed, and hand-picked edge cases) through the same property checks the fuzz
//! targets run, on stable Rust, in every test run.

use std::path::PathBuf;

use app::core::fuzzing;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} broke a property", path.display());
        n += 1;
    }
    n
}

#[test]
fn money_inputs_still_hold() {
    assert!(replay("money", fuzzing::money) > 0);
}

#[test]
fn pricing_inputs_still_hold() {
    assert!(replay("pricing", fuzzing::pricing) > 0);
}

#[test]
fn webhook_inputs_still_hold() {
    assert!(replay("webhook", fuzzing::webhook) > 0);
}
