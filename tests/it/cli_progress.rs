//! `--progress` of `flotilla sync` and `flotilla copy`: a live line on stderr when asked
//! (`always`, or `auto` on a terminal), none when stderr is a pipe (`auto`) or `never`.

use crate::support::registry;

use registry::*;

const CLEAR_LINE: &str = "\r\x1b[2K";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_line_only_when_asked_or_on_a_terminal() {
    require_tools();
    let src = Registry::start().await;
    let p = Pusher::new(&src.url());
    p.image(
        "p/app",
        Some("v1"),
        "amd64",
        &[layer(&[("big", &pseudo_random(5, 3 << 20))])],
        false,
    )
    .await;
    let dir = TempDir::new("progress");

    // always: the line is drawn (at least once, at the first tick) and erased at the end.
    let dst = Registry::start().await;
    let pol = policy(dir.path(), &src.url(), &[("d", dst.url(), None)], "");
    let pol = pol.to_str().expect("path");
    let out = flotilla(&["sync", "-f", pol, "--progress", "always"]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(CLEAR_LINE), "no progress line: {err:?}");
    assert!(
        err.ends_with(CLEAR_LINE),
        "line not erased at the end: {err:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 copied"), "{stdout}");

    // auto with stderr a pipe (as here), and never: plain log lines only.
    let dst2 = Registry::start().await;
    let pol2 = policy(dir.path(), &src.url(), &[("d", dst2.url(), None)], "");
    let out = flotilla(&["sync", "-f", pol2.to_str().expect("path")]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains('\x1b'), "escape codes in a pipe: {err:?}");
    let out = flotilla(&["sync", "-f", pol, "--progress", "never"]).await;
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\x1b'));

    // flotilla copy draws the same line.
    let dst3 = Registry::start().await;
    let out = flotilla(&[
        "copy",
        "--src-insecure",
        "--dest-insecure",
        "--progress",
        "always",
        &format!("{}/p/app:v1", src.host()),
        &format!("{}/p/app:v1", dst3.host()),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(CLEAR_LINE), "{err:?}");
    assert!(complete(&dst3.url(), "p/app", "v1").await);
}
