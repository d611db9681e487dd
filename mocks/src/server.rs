//! The HTTP server every mock runs on: a tokio accept loop serving an axum `Router` over plain
//! TCP or TLS, with per-connection control (so a fault can reset a connection) and a graceful
//! shutdown that also releases held ("dropped") requests.
//!
//! The router itself is transport-agnostic: tests and simulation mode can call it in-process
//! with `tower::ServiceExt::oneshot`, which is the seam between real sockets and the paused clock.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::error::MockError;
use crate::head::{hyper_refusal, HeadPolicy, RawAnswer, Unreadable};
use crate::tls::TlsMaterial;

/// Where and how a mock listens.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Permit a non-loopback bind address. Default false.
    pub allow_non_loopback: bool,
    /// Serve HTTPS with this material instead of plain HTTP.
    pub tls: Option<TlsMaterial>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_non_loopback: false,
            tls: None,
        }
    }
}

/// Per-connection control, reachable from a handler as a request extension.
#[derive(Debug, Default)]
pub struct ConnControl {
    reset: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl ConnControl {
    /// Reset the connection: reads and writes fail from now on and the socket closes with RST.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        for w in self.wakers.lock().drain(..) {
            w.wake();
        }
    }

    /// True once [`ConnControl::reset`] was called.
    pub fn is_reset(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }

    fn park(&self, cx: &Context<'_>) {
        let mut wakers = self.wakers.lock();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
    }
}

/// A TCP stream that can be reset from a handler through its [`ConnControl`].
struct ResettableIo {
    inner: TcpStream,
    ctl: Arc<ConnControl>,
}

impl ResettableIo {
    fn check(&self, cx: &Context<'_>) -> io::Result<()> {
        if self.ctl.is_reset() {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset));
        }
        self.ctl.park(cx);
        Ok(())
    }
}

impl Drop for ResettableIo {
    fn drop(&mut self) {
        if self.ctl.is_reset() {
            // Linger 0 makes close() send RST instead of FIN.
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResettableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A signal that the server is stopping; handlers holding a request open wait on it.
#[derive(Clone, Debug)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// A signal that never fires (for in-process use without a server).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive forever so `stopped` never resolves.
        std::mem::forget(tx);
        Self(rx)
    }

    /// True once the server has begun shutting down.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the server begins shutting down.
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// Creates the stop signal before the server starts, so the router's state can hold it.
#[derive(Debug)]
pub struct StopHandle {
    tx: watch::Sender<bool>,
}

impl StopHandle {
    /// A new handle and the signal its handlers watch.
    pub fn new() -> (Self, StopSignal) {
        let (tx, rx) = watch::channel(false);
        (Self { tx }, StopSignal(rx))
    }
}

/// A running server. Dropping it stops the server (without waiting); prefer [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://...`, without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match self.addr.ip() {
            IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{}", self.addr.port()),
            IpAddr::V4(ip) => format!("{scheme}://{ip}:{}", self.addr.port()),
        }
    }

    /// Stop accepting, release held requests, let in-flight requests finish (up to 5 s), and wait.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Check that an address is loopback, unless non-loopback is explicitly allowed.
pub fn check_loopback(addr: &SocketAddr, allow_non_loopback: bool) -> Result<(), MockError> {
    if addr.ip().is_loopback() || allow_non_loopback {
        Ok(())
    } else {
        Err(MockError::NonLoopback(addr.to_string()))
    }
}

/// Bind and serve `router`. `stop` must be the handle whose signal the router's handlers watch.
pub async fn serve(
    router: Router,
    listen: &ListenConfig,
    stop: StopHandle,
) -> Result<RunningServer, MockError> {
    serve_with(router, listen, stop, None).await
}

/// [`serve`] for a mock with request-head limits: hyper buffers `head.read_buffer` bytes of
/// request head, and its own empty 414 / 431 for a head it cannot read become the service's
/// answer ([`HeadPolicy::unreadable`]).
pub async fn serve_with(
    router: Router,
    listen: &ListenConfig,
    stop: StopHandle,
    head: Option<HeadPolicy>,
) -> Result<RunningServer, MockError> {
    check_loopback(&listen.bind, listen.allow_non_loopback)?;
    let listener = TcpListener::bind(listen.bind)
        .await
        .map_err(|source| MockError::Bind {
            addr: listen.bind.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| MockError::Bind {
        addr: listen.bind.to_string(),
        source,
    })?;
    let acceptor = match &listen.tls {
        Some(tls) => Some(tls.acceptor()?),
        None => None,
    };
    let stop_tx = stop.tx;
    let mut stop_rx = stop_tx.subscribe();
    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, peer)) = accepted else { continue };
                    let conn = Connection { router: router.clone(), acceptor: acceptor.clone(), head };
                    conn.spawn(tcp, peer, &graceful);
                }
                _ = stop_rx.wait_for(|s| *s) => break,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    });
    Ok(RunningServer {
        addr,
        tls: listen.tls.is_some(),
        stop: stop_tx,
        task: Some(task),
    })
}

/// What serving one accepted connection needs.
struct Connection {
    router: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    head: Option<HeadPolicy>,
}

impl Connection {
    /// Serve the connection on its own task (after the TLS handshake, if any), watched by the
    /// graceful shutdown.
    fn spawn(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
    ) {
        let _ = tcp.set_nodelay(true);
        let ctl = Arc::new(ConnControl::default());
        let io = ResettableIo {
            inner: tcp,
            ctl: ctl.clone(),
        };
        let router = self.router;
        let svc =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ctl.clone());
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if let Some(head) = &self.head {
            builder
                .http1()
                .max_buf_size(head.read_buffer.max(MIN_READ_BUFFER));
        }
        let unreadable = self.head.map(|h| h.unreadable);
        match self.acceptor {
            None => {
                let io = Answering::new(io, unreadable);
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), svc)
                    .into_owned();
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = fut.await;
                });
            }
            Some(acceptor) => {
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io)).await
                    else {
                        return;
                    };
                    let io = Answering::new(tls, unreadable);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), svc)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
}

/// hyper's smallest allowed read buffer.
const MIN_READ_BUFFER: usize = 8192;

/// The IO hyper serves a connection on: passes everything through, except that hyper's own
/// empty 414 / 431 (for a head it could not read) is replaced by the service's answer.
struct Answering<T> {
    inner: T,
    unreadable: Option<fn(Unreadable) -> RawAnswer>,
    /// The replacement being written, and how much of it went out.
    replacing: Option<(bytes::Bytes, usize)>,
}

impl<T> Answering<T> {
    fn new(inner: T, unreadable: Option<fn(Unreadable) -> RawAnswer>) -> Self {
        Self {
            inner,
            unreadable,
            replacing: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Answering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Answering<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            if let (Some(answer), Some(kind)) = (this.unreadable, hyper_refusal(buf)) {
                this.replacing = Some((answer(kind).to_http1(), 0));
            }
        }
        let Some((bytes, sent)) = this.replacing.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *sent < bytes.len() {
            let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        this.replacing = None;
        // hyper's bytes count as written: the replacement stood in for them.
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
