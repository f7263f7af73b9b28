//! C misuse through the shared library (`-lsocknotify`): NULL, dangling and made-up
//! handles, NULL arrays with counts, overlapping arrays, file association, and every
//! `registrationResult` code, each checked by `tests/c/misuse.c`.

mod util;

use std::path::Path;
use std::time::Duration;

#[test]
fn c_misuse_gets_documented_codes_through_the_shared_library() {
    let dir = util::scratch("misuse");
    let program = dir.join("misuse");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/misuse.c");
    util::build_shared(&source, &program);
    for backend in util::backends() {
        let output = util::run_program(&program, backend, Duration::from_secs(30));
        let result = util::result_line(&output);
        assert_eq!(
            util::value(&result, "failures"),
            0,
            "{backend}: {}",
            output.stderr
        );
        // Every check ran: a program that stopped early would report fewer.
        assert_eq!(util::value(&result, "checks"), EXPECTED_CHECKS, "{backend}");
    }
}

const EXPECTED_CHECKS: u64 = 77;
