//! Debian's nginx as a local reverse proxy standing in for an ingress controller: its
//! configuration is generated from an Ingress object as the API server holds it, translating
//! each ingress-nginx annotation to the directive ingress-nginx itself renders for it (an
//! annotation this file does not know fails the test, so a new one cannot go untested).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::Ingress;

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// The nginx binary; panics saying how to install it.
pub fn binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is missing: apt-get install nginx-light (e2e/install-packages.sh)")
}

/// The server-level directives of `ingress`'s ingress-nginx annotations.
pub fn directives(ingress: &Ingress) -> Vec<String> {
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (key, value) in annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(NGINX)?, v)))
    {
        let directive = match key {
            "proxy-body-size" => format!("client_max_body_size {value};"),
            "proxy-request-buffering" => format!("proxy_request_buffering {value};"),
            "proxy-buffering" => format!("proxy_buffering {value};"),
            "proxy-read-timeout" => format!("proxy_read_timeout {value}s;"),
            "proxy-send-timeout" => format!("proxy_send_timeout {value}s;"),
            // The backends' scheme: see `config`.
            "backend-protocol" => continue,
            other => panic!("no nginx translation for the annotation {NGINX}{other}"),
        };
        out.push(directive);
    }
    out
}

/// An nginx configuration serving `ingress`'s rules on loopback `port` (its host, and any
/// other), each backend Service port name mapped to a local `host:port` by `backends`.
pub fn config(
    ingress: &Ingress,
    port: u16,
    dir: &std::path::Path,
    backends: &BTreeMap<String, String>,
) -> String {
    let spec = ingress.spec.as_ref().expect("Ingress spec");
    let scheme = match ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{NGINX}backend-protocol")))
        .map(String::as_str)
    {
        Some("HTTPS") => "https",
        _ => "http",
    };
    let mut locations = String::new();
    for rule in spec.rules.iter().flatten() {
        for p in rule.http.iter().flat_map(|h| &h.paths) {
            let service = p.backend.service.as_ref().expect("a Service backend");
            let name = service
                .port
                .as_ref()
                .and_then(|p| p.name.clone())
                .expect("a named port");
            let upstream = backends
                .get(&name)
                .unwrap_or_else(|| panic!("no local backend for port {name}"));
            let path = p.path.as_deref().unwrap_or("/");
            let matcher = if p.path_type == "Exact" { "= " } else { "" };
            locations.push_str(&format!(
                "    location {matcher}{path} {{ proxy_pass {scheme}://{upstream}; }}\n"
            ));
        }
    }
    let d = dir.display();
    let server = directives(ingress)
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect::<String>();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         access_log {d}/access.log;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n{server}\
         \x20   proxy_http_version 1.1;\n\
         \x20   proxy_set_header Host $http_host;\n\
         \x20   proxy_set_header X-Forwarded-Host $http_host;\n\
         \x20   proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20   proxy_set_header X-Forwarded-For $remote_addr;\n{locations}}}\n}}\n"
    )
}

/// A running nginx; killed on drop.
pub struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
    /// `localhost:PORT`.
    pub host: String,
}

impl Nginx {
    /// Starts nginx with `config` (from [`config`], for `port`) in `dir`, and waits until
    /// it accepts connections.
    pub fn start(config: &str, port: u16, dir: PathBuf) -> Nginx {
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("nginx.conf");
        let startup = dir.join("startup.log");
        let test = Command::new(binary())
            .arg("-e")
            .arg(&startup)
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx refuses the generated config: {}\n{config}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(binary())
            .arg("-e")
            .arg(&startup)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx {
            child: Some(child),
            dir,
            host: format!("localhost:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = n.child.as_mut().map(Child::try_wait) {
                panic!("nginx exited with {status}: {}", n.log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx not up in 20 s: {}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    /// The error log and the access log.
    pub fn log(&self) -> String {
        ["error.log", "access.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
