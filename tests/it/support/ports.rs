//! Loopback ports for the processes tests start.

/// A free loopback TCP port: bound, then released (the OS may hand it out again, so bind it
/// soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
