//! A `docker-registry` process that sends push/delete notifications to Flotilla's receiver
//! (the way a registry Flotilla does not run is wired up by hand). Needs `support/registry.rs`
//! included as `registry` in the same test crate.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::{INSTALL_HINT, REGISTRY_BIN, TempDir, require_tools};

/// A registry notifying `receiver_url` with `token`; killed on drop.
pub struct NotifyingRegistry {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl NotifyingRegistry {
    /// Starts one on a free port with its own storage.
    pub fn start(receiver_url: &str, token: &str) -> Self {
        require_tools();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let dir = TempDir::new("notifying-registry");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: flotilla-test\nnotifications:\n  endpoints:\n  - name: flotilla\n    url: {receiver_url}\n    headers:\n      Authorization: [\"Bearer {token}\"]\n    timeout: 2s\n    threshold: 3\n    backoff: 200ms\n    ignoredmediatypes: [application/octet-stream]\n    ignore:\n      actions: [pull]\n",
            root = dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN} ({e}): {INSTALL_HINT}"));
        let r = NotifyingRegistry {
            port,
            dir,
            child: Some(child),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "registry on {port} did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for NotifyingRegistry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
