//! Robustness of the keras `anchors.txt` reader ([`Anchors::parse`] and [`Anchors::read`]):
//! arbitrary bytes and mutations of valid anchor files must give an [`Anchors`] or a typed
//! [`CoreError`], never a panic or a hang (each case runs on its own thread under a time
//! bound, see `fuzz_support`).
//!
//! An accepted file must describe usable anchors: 9 or 6 positive finite sizes, a mask that
//! names existing anchors, and text that reads back to the same anchors.
//!
//! `cargo test -p yolo3-core --test fuzz` runs a bounded number of cases;
//! `cargo test -p yolo3-core --test fuzz -- --ignored fuzz_anchors_long` runs for
//! `YOLO3_FUZZ_SECONDS` (default 600) and prints how many cases ran.

mod fuzz_support;

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use yolo3_core::{Anchors, CoreError, TinyMask};

use fuzz_support::{fuzz, fuzz_long, next_id, text_input, Bytes, Check};

/// Valid anchor files: keras' nine, the six tiny ones, one pair per line, decimals.
const SEEDS: &[&str] = &[
    "10,13,  16,30,  33,23,  30,61,  62,45,  59,119,  116,90,  156,198,  373,326\n",
    "10,14,  23,27,  37,58,  81,82,  135,169,  344,319",
    "10 14\n23 27\n37 58\n81 82\n135 169\n344 319\n",
    "1.5,2.25, 3,4, 5,6, 7,8, 9,10, 11,12, 13,14, 15,16, 17.75,18\r\n",
];

const TOKENS: &[&str] = &["10", "13", "0", "-3", "1e39", "nan", "2.5", ",", ", ", " ", "\n", "\t"];

/// Checks an accepted anchor set.
fn check_anchors(a: &Anchors) -> Result<(), String> {
    let n = a.sizes().len();
    if n != 9 && n != 6 {
        return Err(format!("{n} anchors accepted without a mask"));
    }
    if let Some(s) = a
        .sizes()
        .iter()
        .find(|s| !(s[0] > 0.0 && s[1] > 0.0 && s[0].is_finite() && s[1].is_finite()))
    {
        return Err(format!("anchor {s:?} is not a positive finite size"));
    }
    if a.mask().is_empty() || a.mask().iter().flatten().any(|&m| m >= n) {
        return Err(format!("mask {:?} for {n} anchors", a.mask()));
    }
    Ok(())
}

struct Fixture {
    dir: tempfile::TempDir,
}

fn anchors_check() -> Check<(Bytes, bool)> {
    let fixture = Arc::new(Fixture { dir: tempfile::tempdir().unwrap() });
    Arc::new(move |(input, darknet_mask): (Bytes, bool)| {
        let tiny = if darknet_mask { TinyMask::Darknet } else { TinyMask::Keras };
        // The file reader (UTF-8 check, BOM) ...
        let path: PathBuf = fixture.dir.path().join(format!("anchors-{}.txt", next_id()));
        std::fs::write(&path, &input.0).map_err(|e| format!("cannot write the case: {e}"))?;
        let from_file = Anchors::read(&path, tiny);
        let _ = std::fs::remove_file(&path);
        // ... and the text parser on the same content.
        let text = String::from_utf8_lossy(&input.0);
        let from_text = Anchors::parse(&text, "<fuzz>", tiny);
        for result in [&from_file, &from_text] {
            match result {
                Ok(a) => {
                    check_anchors(a)?;
                    let again = Anchors::parse(&a.to_text(), "<again>", tiny).map_err(|e| {
                        format!("to_text() of accepted anchors does not parse: {e}")
                    })?;
                    if &again != a {
                        return Err(format!("to_text() round trip changed {a:?} into {again:?}"));
                    }
                }
                Err(CoreError::AnchorsFile { .. } | CoreError::Io { .. }) => {}
                Err(e) => return Err(format!("unexpected error kind: {e:?}")),
            }
        }
        Ok(from_file.is_ok())
    })
}

fn anchors_input() -> impl Strategy<Value = (Bytes, bool)> {
    (text_input(SEEDS, TOKENS), any::<bool>())
}

#[test]
fn seeds_are_valid() {
    for seed in SEEDS {
        let a = Anchors::parse(seed, "seed", TinyMask::Keras).unwrap();
        check_anchors(&a).unwrap();
    }
}

/// The harness itself: a panic and a hang are reported as failures, not as passes, and a
/// hang does not block the test.
#[test]
fn harness_reports_panics_and_hangs() {
    let check: Check<u8> = Arc::new(|n: u8| match n {
        0 => Ok(true),
        1 => panic!("boom"),
        _ => loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
    });
    // Long enough for a panic's backtrace to be symbolised (RUST_BACKTRACE=1 takes over
    // 200 ms on a loaded machine), which must not read as a hang.
    let bound = std::time::Duration::from_secs(3);
    assert_eq!(fuzz_support::guarded_within(&check, 0, bound), Ok(true));
    let e = fuzz_support::guarded_within(&check, 1, bound).unwrap_err();
    assert!(e.contains("panicked: boom"), "{e}");
    let e = fuzz_support::guarded_within(&check, 2, bound).unwrap_err();
    assert!(e.contains("hang"), "{e}");
}

#[test]
fn fuzz_anchors() {
    fuzz("anchors", 256, &anchors_input(), &anchors_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_anchors_long() {
    fuzz_long("anchors", 256, &anchors_input(), &anchors_check());
}
