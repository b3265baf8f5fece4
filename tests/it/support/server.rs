//! What every test server shares: a listener on 127.0.0.1 (a free port), a thread per connection,
//! and a stop when dropped that closes the listener and every open connection and waits for the
//! threads. The servers (token server, fault proxy, hostile registry) only say how a connection
//! is served.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The open connections of a server, closed when it stops.
#[derive(Default)]
pub struct Connections {
    stopping: AtomicBool,
    /// Clones of open connections, by id (a proxy adds its upstream ones).
    open: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Connections {
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections::default())
    }

    /// The server is stopping: a connection's thread should end.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Closes `stream` too when the server stops.
    pub fn track(&self, stream: &TcpStream) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            self.open.lock().unwrap().insert(id, clone);
        }
        id
    }

    /// Forgets a connection, so that dropping its last handle closes it.
    pub fn untrack(&self, id: u64) {
        self.open.lock().unwrap().remove(&id);
    }
}

/// A listener on 127.0.0.1 and a free port: `(listener, "127.0.0.1:PORT")`.
pub fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let host = listener.local_addr().unwrap().to_string();
    (listener, host)
}

/// A running server; stopped when dropped.
pub struct Server {
    host: String,
    conns: Arc<Connections>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Accepts on `listener` (from [`bind`], answering at `host`), serving each connection on a
    /// thread of its own with `serve`.
    pub fn start(listener: TcpListener, host: &str, conns: Arc<Connections>, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let serve = Arc::new(serve);
        let accepting = conns.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopping() {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = accepting.track(&stream);
                let (serve, conns) = (serve.clone(), accepting.clone());
                let worker = std::thread::spawn(move || {
                    serve(stream);
                    conns.untrack(id);
                });
                let mut workers = accepting.workers.lock().unwrap();
                workers.retain(|w| !w.is_finished());
                workers.push(worker);
            }
        });
        Server { host: host.to_string(), conns, accept: Some(accept) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.conns.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host); // wake the accept loop
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (_, conn) in self.conns.open.lock().unwrap().drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = self.conns.workers.lock().unwrap().drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
    }
}
