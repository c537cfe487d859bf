//! The node tests need root: `scripts/cluster-up` runs containerd, mounts and changes iptables.
//! Without root they are skipped, one line each on stderr, unless CI is set: CI runs as root, and
//! a node test skipped there is a failure.
//!
//! The node tests are the tests whose names hold [`NODE_TEST_MARK`]: `scripts/test --node`
//! (`sudo scripts/test --node`) runs just those, and `scripts/test` counts the [`SKIPPED`] lines.

/// In the name of every node test, and in no other test's name.
pub const NODE_TEST_MARK: &str = "on_a_real_node";

/// How a skip line starts; `scripts/test` looks for it.
pub const SKIPPED: &str = "skipped (needs root):";

/// Whether `test` (a node test) can run: true as root. Otherwise it prints why not and how to
/// run it, and returns false for the test to return early; with `CI` set (to anything but
/// empty, `0` or `false`) it fails instead.
pub fn node_test_can_run(test: &str) -> bool {
    assert!(test.contains(NODE_TEST_MARK), "{test}: not a node test");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !ci,
        "{test} needs root (scripts/cluster-up) and CI is set: CI must run the node tests, as root"
    );
    // Past the test harness's capture (which takes print! and eprint! only), so that this line
    // shows in `cargo test`'s output although the test passes; in one write, so that no other
    // output lands inside it.
    let line = format!(
        "{SKIPPED} {test}: not run, as this is not root; run the node tests with \
         `sudo scripts/test --node`\n"
    );
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}
