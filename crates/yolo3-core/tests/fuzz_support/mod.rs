//! Machinery shared by the fuzz suites of yolo3-core, yolo3-data and yolo3-model
//! (`tests/fuzz.rs` of each; the other two crates include this file by path).
//!
//! * [`guarded`] runs one case on its own thread: a panic becomes a failure carrying the panic
//!   message, and a case that gives no answer within [`TIME_BOUND`] fails as a hang (its thread
//!   is abandoned; the test goes on or ends, it never waits for it).
//! * [`fuzz`] runs a bounded number of proptest cases (the CI mode); [`fuzz_long`] loops over
//!   fresh runners with new seeds until `YOLO3_FUZZ_SECONDS` (default 600) have passed, then
//!   prints `fuzz <name>: N cases in S s, F failures` to the real stderr (not captured).
//! * Inputs are [`Bytes`]: arbitrary bytes, concatenations of a format's tokens, or a valid
//!   seed file changed by a few [`Edit`]s (numbers replaced by huge, negative, NaN or empty
//!   ones, fields and lines dropped, duplicated or cut, bytes spliced in, a BOM, CRLF, very
//!   long lines). Edits shrink well: proptest removes them one by one.
//!
//! Seeds: `YOLO3_FUZZ_SEED=<u64>` fixes the proptest seed (it is printed with every failure).

#![allow(dead_code)]

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// How long one case may take before it counts as a hang. Cases take milliseconds; the bound
/// only tells a reader that returns from one that does not, so it is far beyond what a loaded
/// 2-core machine makes of the slowest case (a hang costs this once per shrinking step).
pub(crate) const TIME_BOUND: Duration = Duration::from_secs(60);

/// Bytes shown escaped (`\xff`, `\n`) and cut to a readable length in failure messages.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 4000;
        let n = self.0.len();
        let shown = &self.0[..n.min(SHOWN)];
        write!(f, "{n} bytes b\"{}\"", shown.escape_ascii())?;
        if n > SHOWN {
            write!(f, "... ({} more bytes)", n - SHOWN)?;
        }
        Ok(())
    }
}

/// What a case checks: `Ok(true)` when the reader returned a value that passed the
/// invariants, `Ok(false)` when it returned a proper typed error, `Err(message)` when an
/// invariant does not hold.
pub(crate) type Check<T> = Arc<dyn Fn(T) -> Result<bool, String> + Send + Sync>;

/// The panic message of a payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Runs `check(input)` on a new thread with the time bound; panics and hangs become `Err`.
/// `Ok` says whether the reader accepted the input.
pub(crate) fn guarded<T: Send + 'static>(check: &Check<T>, input: T) -> Result<bool, String> {
    guarded_within(check, input, TIME_BOUND)
}

/// [`guarded`] with an explicit time bound.
pub(crate) fn guarded_within<T: Send + 'static>(
    check: &Check<T>,
    input: T,
    bound: Duration,
) -> Result<bool, String> {
    let (tx, rx) = mpsc::channel();
    let check = Arc::clone(check);
    let handle = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let result = check(input);
            let _ = tx.send(result);
        })
        .map_err(|e| format!("cannot spawn the case thread: {e}"))?;
    match rx.recv_timeout(bound) {
        Ok(result) => {
            let _ = handle.join();
            result.map_err(|m| format!("invariant violated: {m}"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "no answer within {:.1} s (hang); the case thread is abandoned",
            bound.as_secs_f64()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
            Ok(()) => Err("the case thread ended without an answer".into()),
        },
    }
}

/// The base seed: `YOLO3_FUZZ_SEED`, else a random one.
fn base_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    if let Some(s) = std::env::var("YOLO3_FUZZ_SEED").ok().and_then(|s| s.trim().parse().ok()) {
        return s;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // A hang costs TIME_BOUND per shrinking step; keep shrinking bounded.
        max_shrink_time: 120_000,
        max_shrink_iters: 2048,
        ..Config::default()
    })
}

/// Runs `cases` cases of `check` on inputs from `strategy`; fails with the minimal input.
pub(crate) fn fuzz<S>(name: &str, cases: u32, strategy: &S, check: &Check<S::Value>)
where
    S: Strategy,
    S::Value: Send + 'static,
{
    let seed = base_seed();
    let accepted = AtomicU64::new(0);
    let result = runner(cases, seed).run(strategy, |input| {
        let ok = guarded(check, input).map_err(TestCaseError::fail)?;
        accepted.fetch_add(u64::from(ok), Ordering::Relaxed);
        Ok(())
    });
    match result {
        Ok(()) => eprintln!(
            "fuzz {name}: {cases} cases, {} accepted by the reader",
            accepted.load(Ordering::Relaxed)
        ),
        Err(TestError::Fail(reason, input)) => {
            panic!("fuzz {name}: {reason}\nminimal input: {input:?}\n(YOLO3_FUZZ_SEED={seed})")
        }
        Err(TestError::Abort(reason)) => panic!("fuzz {name}: aborted: {reason}"),
    }
}

/// The long mode's duration per reader: `YOLO3_FUZZ_SECONDS`, default 600.
pub(crate) fn long_duration() -> Duration {
    let secs = std::env::var("YOLO3_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// Runs `check` on fresh runners (`batch` cases each, a new seed each) until
/// [`long_duration`] has passed, collects every failure, prints the count and fails if any
/// case failed.
pub(crate) fn fuzz_long<S>(name: &str, batch: u32, strategy: &S, check: &Check<S::Value>)
where
    S: Strategy,
    S::Value: Send + 'static,
{
    let duration = long_duration();
    let start = Instant::now();
    let deadline = start + duration;
    let counted = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    let base = base_seed();
    let mut failures: Vec<String> = Vec::new();
    let mut round = 0u64;
    while Instant::now() < deadline && failures.len() < 20 {
        let seed = base.wrapping_add(round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        round += 1;
        let result = runner(batch, seed).run(strategy, |input| {
            if Instant::now() >= deadline {
                return Ok(());
            }
            counted.fetch_add(1, Ordering::Relaxed);
            let ok = guarded(check, input).map_err(TestCaseError::fail)?;
            accepted.fetch_add(u64::from(ok), Ordering::Relaxed);
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => failures
                .push(format!("{reason}\nminimal input: {input:?}\n(YOLO3_FUZZ_SEED={seed})")),
            Err(TestError::Abort(reason)) => failures.push(format!("aborted: {reason}")),
        }
    }
    let line = format!(
        "fuzz {name}: {} cases in {:.0} s, {} failures ({} accepted by the reader)\n",
        counted.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        failures.len(),
        accepted.load(Ordering::Relaxed)
    );
    // Straight to the process's stderr, so the count shows without --nocapture.
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert!(failures.is_empty(), "fuzz {name}: {}", failures.join("\n\n"));
}

// ------------------------------------------------------------------ inputs and mutations

/// Numbers that readers tend to mishandle.
pub(crate) const WEIRD_NUMBERS: &[&str] = &[
    "",
    "0",
    "-0",
    "-1",
    "-7",
    "0.5",
    "1.5",
    "3.",
    ".5",
    "+3",
    "1e39",
    "-1e39",
    "3.4e38",
    "340282360000000000000000000000000000000",
    "1e308",
    "1e309",
    "1e-45",
    "5e-324",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "infinity",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1000000",
    "65536",
    "0x10",
    "1_000",
    "1e",
    "--1",
    "00000000000000000001",
    "\u{661}",
];

/// Short byte strings spliced in by [`Edit::Token`]: separators of every format, line ends,
/// a BOM, a NUL, invalid or partial UTF-8 and unusual white space.
pub(crate) const SPECIAL_TOKENS: &[&[u8]] = &[
    b"\xef\xbb\xbf",
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b",",
    b" ",
    b"\t",
    b"=",
    b"<",
    b">",
    b"&",
    b"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b"-",
    b".",
    b"e",
    b"#",
    b";",
    b"/",
    b"\\",
    b"\xe2\x80\xa8",
    b"\xc2\xa0",
    b"\xc3\xa9",
    b"\xff",
    b"\xc3",
];

/// About how long a line or token a long-line edit makes.
const LONG_BYTES: usize = 100_000;

/// Inputs are cut to this length after each edit, so edits cannot compound into megabytes.
pub(crate) const MAX_INPUT: usize = 300_000;

/// One change to an input file. Positions are [`Index`]es into the list of numbers, fields,
/// lines or bytes present when the edit is applied (an edit with nothing to act on does
/// nothing).
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    /// Replace a number with another text.
    Number(Index, String),
    /// Remove a field (a run of bytes between separators).
    DropField(Index),
    /// Write a field twice.
    DupField(Index),
    /// Replace a field by `n` copies of itself (a very long token).
    LongField(Index, u16),
    /// Remove a line.
    DropLine(Index),
    /// Write a line twice.
    DupLine(Index),
    /// Exchange two lines.
    SwapLines(Index, Index),
    /// Cut a line at a position (its line end stays).
    CutLine(Index, Index),
    /// Repeat a line's content `n` times on one line (a very long line).
    LongLine(Index, u16),
    /// Cut the whole input at a position.
    Truncate(Index),
    /// Splice random bytes in.
    Insert(Index, Vec<u8>),
    /// Splice a [`SPECIAL_TOKENS`] entry in.
    Token(Index, &'static [u8]),
    /// Remove up to `n` bytes.
    Delete(Index, u8),
    /// XOR one byte with a mask.
    Flip(Index, u8),
    /// Prepend a UTF-8 byte-order mark.
    Bom,
    /// Turn every `\n` into `\r\n`.
    Crlf,
    /// Turn every `\n` into a lone `\r`.
    CrOnly,
}

fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b",=<>\"'[]{}:;/".contains(&b)
}

fn is_number_byte(b: u8) -> bool {
    b.is_ascii_digit() || b".+-eE".contains(&b)
}

/// Maximal runs of bytes satisfying `inside` (and containing a byte satisfying `needed`).
fn runs(
    data: &[u8],
    inside: impl Fn(u8) -> bool,
    needed: impl Fn(u8) -> bool,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if inside(data[i]) {
            let start = i;
            while i < data.len() && inside(data[i]) {
                i += 1;
            }
            if data[start..i].iter().any(|&b| needed(b)) {
                out.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Lines as `(start, end_without_newline, end_with_newline)`.
fn lines(data: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i, i + 1));
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push((start, data.len(), data.len()));
    }
    out
}

fn pick<T: Copy>(items: &[T], at: Index) -> Option<T> {
    (!items.is_empty()).then(|| items[at.index(items.len())])
}

/// A position in `0..=len`.
fn position(len: usize, at: Index) -> usize {
    at.index(len + 1)
}

impl Edit {
    /// Applies the edit to `data`.
    pub(crate) fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Self::Number(at, text) => {
                let numbers = runs(data, is_number_byte, |b| b.is_ascii_digit());
                if let Some((s, e)) = pick(&numbers, *at) {
                    data.splice(s..e, text.bytes());
                }
            }
            Self::DropField(at) => {
                if let Some((s, e)) = pick(&runs(data, |b| !is_separator(b), |_| true), *at) {
                    data.drain(s..e);
                }
            }
            Self::DupField(at) => {
                if let Some((s, e)) = pick(&runs(data, |b| !is_separator(b), |_| true), *at) {
                    let field = data[s..e].to_vec();
                    data.splice(e..e, field);
                }
            }
            Self::LongField(at, n) => {
                if let Some((s, e)) = pick(&runs(data, |b| !is_separator(b), |_| true), *at) {
                    let copies = usize::from(*n).min(LONG_BYTES / (e - s)).max(1);
                    let field = data[s..e].repeat(copies);
                    data.splice(s..e, field);
                }
            }
            Self::DropLine(at) => {
                if let Some((s, _, e)) = pick(&lines(data), *at) {
                    data.drain(s..e);
                }
            }
            Self::DupLine(at) => {
                if let Some((s, _, e)) = pick(&lines(data), *at) {
                    let mut line = data[s..e].to_vec();
                    if line.last() != Some(&b'\n') {
                        line.insert(0, b'\n');
                    }
                    data.splice(e..e, line);
                }
            }
            Self::SwapLines(a, b) => {
                let ls = lines(data);
                if let (Some(x), Some(y)) = (pick(&ls, *a), pick(&ls, *b)) {
                    let (x, y) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                    if x.0 != y.0 {
                        let first = data[x.0..x.1].to_vec();
                        let second = data[y.0..y.1].to_vec();
                        data.splice(y.0..y.1, first);
                        data.splice(x.0..x.1, second);
                    }
                }
            }
            Self::CutLine(line, at) => {
                if let Some((s, e, _)) = pick(&lines(data), *line) {
                    let cut = s + position(e - s, *at);
                    data.drain(cut..e);
                }
            }
            Self::LongLine(line, n) => {
                if let Some((s, e, _)) = pick(&lines(data), *line) {
                    let content = data[s..e].to_vec();
                    let copies = usize::from(*n).min(LONG_BYTES / (content.len() + 1)).max(1);
                    let mut long = Vec::with_capacity((content.len() + 1) * copies);
                    for k in 0..copies {
                        if k > 0 {
                            long.push(b' ');
                        }
                        long.extend_from_slice(&content);
                    }
                    data.splice(s..e, long);
                }
            }
            Self::Truncate(at) => {
                let cut = position(data.len(), *at);
                data.truncate(cut);
            }
            Self::Insert(at, bytes) => {
                let p = position(data.len(), *at);
                data.splice(p..p, bytes.iter().copied());
            }
            Self::Token(at, token) => {
                let p = position(data.len(), *at);
                data.splice(p..p, token.iter().copied());
            }
            Self::Delete(at, n) => {
                let p = position(data.len(), *at);
                let e = (p + usize::from(*n)).min(data.len());
                data.drain(p..e);
            }
            Self::Flip(at, mask) => {
                if !data.is_empty() {
                    let p = at.index(data.len());
                    data[p] ^= (*mask).max(1);
                }
            }
            Self::Bom => {
                data.splice(0..0, *b"\xef\xbb\xbf");
            }
            Self::Crlf | Self::CrOnly => {
                let mut out = Vec::with_capacity(data.len() + data.len() / 8);
                for &b in data.iter() {
                    if b == b'\n' {
                        if matches!(self, Self::Crlf) {
                            out.extend_from_slice(b"\r\n");
                        } else {
                            out.push(b'\r');
                        }
                    } else {
                        out.push(b);
                    }
                }
                *data = out;
            }
        }
    }
}

/// A replacement number: a [`WEIRD_NUMBERS`] entry or a random integer or float.
pub(crate) fn number_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(WEIRD_NUMBERS).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| format!("{v:e}")),
        1 => any::<f32>().prop_map(|v| v.to_string()),
        2 => (0u32..2000).prop_map(|v| v.to_string()),
    ]
    .boxed()
}

/// Any [`Edit`].
pub(crate) fn edit() -> BoxedStrategy<Edit> {
    let i = any::<Index>;
    prop_oneof![
        6 => (i(), number_text()).prop_map(|(a, t)| Edit::Number(a, t)),
        2 => i().prop_map(Edit::DropField),
        2 => i().prop_map(Edit::DupField),
        1 => (i(), 2u16..20_000).prop_map(|(a, n)| Edit::LongField(a, n)),
        2 => i().prop_map(Edit::DropLine),
        2 => i().prop_map(Edit::DupLine),
        1 => (i(), i()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        2 => (i(), i()).prop_map(|(a, b)| Edit::CutLine(a, b)),
        1 => (i(), 2u16..5_000).prop_map(|(a, n)| Edit::LongLine(a, n)),
        1 => i().prop_map(Edit::Truncate),
        2 => (i(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(a, b)| Edit::Insert(a, b)),
        3 => (i(), proptest::sample::select(SPECIAL_TOKENS)).prop_map(|(a, t)| Edit::Token(a, t)),
        2 => (i(), 1u8..32).prop_map(|(a, n)| Edit::Delete(a, n)),
        2 => (i(), any::<u8>()).prop_map(|(a, m)| Edit::Flip(a, m)),
        1 => Just(Edit::Bom),
        1 => Just(Edit::Crlf),
        1 => Just(Edit::CrOnly),
    ]
    .boxed()
}

/// A seed with 1 to `max_edits` edits applied.
pub(crate) fn mutated(seeds: Vec<Vec<u8>>, max_edits: usize) -> BoxedStrategy<Bytes> {
    (proptest::sample::select(seeds), proptest::collection::vec(edit(), 1..=max_edits))
        .prop_map(|(mut data, edits)| {
            for e in &edits {
                e.apply(&mut data);
                data.truncate(MAX_INPUT);
            }
            Bytes(data)
        })
        .boxed()
}

/// Arbitrary bytes.
pub(crate) fn arbitrary(max_len: usize) -> BoxedStrategy<Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max_len).prop_map(Bytes).boxed()
}

/// Concatenations of a format's tokens (grammar-shaped garbage).
pub(crate) fn token_soup(tokens: &'static [&'static str]) -> BoxedStrategy<Bytes> {
    proptest::collection::vec(proptest::sample::select(tokens), 0..80)
        .prop_map(|parts| Bytes(parts.concat().into_bytes()))
        .boxed()
}

/// The usual input mix: mostly mutated seeds, some token soup, some arbitrary bytes.
pub(crate) fn text_input(seeds: &[&str], tokens: &'static [&'static str]) -> BoxedStrategy<Bytes> {
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    prop_oneof![
        1 => arbitrary(512),
        2 => token_soup(tokens),
        // Few edits stay near the valid file (and often still parse); many go further.
        5 => mutated(seeds.clone(), 2),
        3 => mutated(seeds, 8),
    ]
    .boxed()
}

/// A fresh number per case, for file names that never collide (an abandoned case may still
/// be writing its files).
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
