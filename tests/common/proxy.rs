//! A TCP proxy a test puts between a client agent and its server, to take the server away
//! from the client (and count what the client sends meanwhile) without touching either.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HTTP request the proxy refused while the server was away: when, and its path.
#[derive(Debug, Clone)]
pub struct Refused {
    pub at: Instant,
    pub path: String,
}

struct Shared {
    upstream: String,
    up: AtomicBool,
    stop: AtomicBool,
    refused: Mutex<Vec<Refused>>,
    /// Both ends of every forwarded connection, so a cut also ends the ones already open
    /// (a blocking query in flight would otherwise keep the client in touch).
    live: Mutex<Vec<TcpStream>>,
}

/// Forwards to `upstream` while up. While cut, or when the upstream refuses, it reads each
/// request's head, records it and closes the connection unanswered, as a dead server would.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", super::free_port())).expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            up: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            refused: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(&s, conn));
            }
        });
        Proxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// The address clients are given instead of the server's.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Takes the server away: open connections are closed, new ones refused.
    pub fn cut(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        for s in lock(&self.shared.live).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Brings the server back.
    pub fn restore(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }

    /// Forgets the requests refused so far.
    pub fn clear_refused(&self) {
        lock(&self.shared.refused).clear();
    }

    /// The requests refused since the last [`Proxy::clear_refused`].
    pub fn refused(&self) -> Vec<Refused> {
        lock(&self.shared.refused).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn handle(s: &Shared, mut conn: TcpStream) {
    if s.up.load(Ordering::SeqCst)
        && let Ok(up) = TcpStream::connect_timeout(&parse(&s.upstream), Duration::from_secs(2))
    {
        forward(s, conn, up);
        return;
    }
    // Read the request head so it can be counted, then hang up without an answer.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if head.is_empty() {
        return;
    }
    let line = String::from_utf8_lossy(&head);
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    lock(&s.refused).push(Refused {
        at: Instant::now(),
        path,
    });
    let _ = conn.shutdown(Shutdown::Both);
}

fn parse(addr: &str) -> std::net::SocketAddr {
    addr.parse().expect("upstream is ip:port")
}

fn forward(s: &Shared, conn: TcpStream, up: TcpStream) {
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        conn.try_clone(),
        up.try_clone(),
        conn.try_clone(),
        up.try_clone(),
    ) else {
        return;
    };
    {
        let mut live = lock(&s.live);
        live.push(c3);
        live.push(u3);
    }
    let t = std::thread::spawn(move || pipe(c2, u2));
    pipe(up, conn);
    let _ = t.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
