//! A hostile HTTP server on 127.0.0.1 for slow-retrieval tests (shared by the transport tests
//! and the `trust_attacks` tests of the `updraft` binary): it accepts and says nothing, or sends
//! headers and then drips. Every connection and the server stop when it is dropped, and by
//! themselves after 90 s.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
pub enum Mode {
    /// Accept, read the request, answer nothing.
    Silent,
    /// Headers announcing 100 000 bytes, then one byte per `Duration`.
    Drip(Duration),
}

/// A hostile HTTP server on 127.0.0.1 that serves one mode to every connection; it stops when
/// dropped, and in any case after 90 s.
pub struct Hostile {
    pub base: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    pub fn start(mode: Mode) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(90);
            let mut conns = Vec::new();
            while !stop2.load(Ordering::SeqCst) && Instant::now() < end {
                match listener.accept() {
                    Ok((s, _)) => {
                        let stop3 = stop2.clone();
                        conns.push(std::thread::spawn(move || serve(s, mode, &stop3, end)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            stop2.store(true, Ordering::SeqCst);
            for c in conns {
                let _ = c.join();
            }
        });
        Hostile {
            base,
            stop,
            thread: Some(thread),
        }
    }
}

fn serve(mut s: TcpStream, mode: Mode, stop: &AtomicBool, end: Instant) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let step = match mode {
        Mode::Silent => Duration::from_millis(100),
        Mode::Drip(d) => {
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                .is_err()
            {
                return;
            }
            d
        }
    };
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(step);
        if let Mode::Drip(_) = mode {
            if s.write_all(b"x").is_err() {
                return;
            }
        } else if matches!(s.read(&mut buf), Ok(0)) {
            return; // the client closed the connection
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
