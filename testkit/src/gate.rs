//! The one gate of every privileged test and benchmark (root, BPF, network namespaces, qemu):
//! a test that cannot run here prints why and skips — or, under
//! `SCANSCOPE_REQUIRE_PRIVILEGED=1` (as `cargo xtask test` and CI run), fails, so CI cannot pass
//! by skipping.

/// The environment variable that turns skips into failures.
pub const REQUIRE_PRIVILEGED: &str = "SCANSCOPE_REQUIRE_PRIVILEGED";

/// Whether skips are failures in this run.
pub fn required() -> bool {
    std::env::var(REQUIRE_PRIVILEGED).as_deref() == Ok("1")
}

/// `why` is `None` when the test can run. Returns true when it must skip (after printing why);
/// panics instead when privileged tests are required.
pub fn skip(why: Option<String>) -> bool {
    match why {
        None => false,
        Some(r) if required() => panic!("privileged test cannot run: {r}"),
        Some(r) => {
            eprintln!("SKIPPED: {r}");
            true
        }
    }
}
