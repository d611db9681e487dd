//! One proxied connection: two directions, each a reader that stamps chunks with their
//! arrival time and a writer that passes them through the toxics of its stream, in order.
//!
//! Toxics can change while the connection lives; the writer sees every change at once
//! (a `watch` channel). Whether a connection gets a toxic (its toxicity) is drawn once per
//! connection and toxic, from the proxy's seeded RNG.
//!
//! While a stream has no toxic, its direction only reads and writes: no timestamps, no
//! channel, and no lock per chunk. It learns of a new toxic or a close from an atomic check
//! and a per-link waker the proxy wakes ([`LinkCtl::wake`]), not from the proxy-wide watch
//! channel, whose waiter list every link would otherwise lock on every chunk.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use super::toxic::{Stream, Toxic, ToxicType};

/// The toxics of a proxy, as the links see them.
pub type ToxicSet = Arc<Vec<Toxic>>;

/// Shared control of one link: closing or resetting it from either direction or the proxy.
#[derive(Debug, Default)]
pub struct LinkCtl {
    closed: AtomicBool,
    reset: AtomicBool,
    notify: Notify,
    /// The task of each direction's fast path ([`Stream::Upstream`], then downstream).
    wakers: [AtomicWaker; 2],
}

impl LinkCtl {
    /// Close the link (FIN both ways), or reset it (RST) when `reset`.
    pub fn close(&self, reset: bool) {
        if reset {
            self.reset.store(true, Ordering::SeqCst);
        }
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.wake();
    }
    /// Wake the fast paths: the toxics changed (or the link closed), look again.
    pub fn wake(&self) {
        for w in &self.wakers {
            w.wake();
        }
    }
    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
    async fn wait_closed(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_closed() {
                return;
            }
            n.await;
        }
    }
}

const CHUNK: usize = 32 * 1024;

/// Run a link until both directions end. `rng_seed` decides toxicity per toxic.
pub async fn run(
    client: TcpStream,
    upstream: TcpStream,
    toxics: watch::Receiver<ToxicSet>,
    ctl: Arc<LinkCtl>,
    rng_seed: u64,
) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (crd, cwr) = client.into_split();
    let (urd, uwr) = upstream.into_split();
    let up = direction(
        crd,
        uwr,
        Stream::Upstream,
        toxics.clone(),
        ctl.clone(),
        rng_seed,
    );
    let down = direction(
        urd,
        cwr,
        Stream::Downstream,
        toxics,
        ctl.clone(),
        rng_seed ^ 0x9e37_79b9_7f4a_7c15,
    );
    let (a, b) = tokio::join!(up, down);
    // Both halves of each socket are back: close (or reset) for real.
    for (rd, wr) in [(a.0, b.1), (b.0, a.1)] {
        if let (Some(rd), Some(wr)) = (rd, wr) {
            if let Ok(stream) = rd.reunite(wr) {
                if ctl.reset.load(Ordering::SeqCst) {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                drop(stream);
            }
        }
    }
}

type Halves = (Option<OwnedReadHalf>, Option<OwnedWriteHalf>);

async fn direction(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    stream: Stream,
    mut toxics: watch::Receiver<ToxicSet>,
    ctl: Arc<LinkCtl>,
    seed: u64,
) -> Halves {
    // Fast path: while no toxic is set on this stream, copy chunks straight through.
    let mut buf = vec![0u8; CHUNK];
    loop {
        if toxics
            .borrow_and_update()
            .iter()
            .any(|t| t.stream == stream)
        {
            break;
        }
        match fast_read(&mut rd, &mut buf, &toxics, &ctl, stream).await {
            FastRead::Data(n) => {
                if wr.write_all(&buf[..n]).await.is_err() {
                    return (Some(rd), Some(wr));
                }
            }
            FastRead::End => {
                let _ = wr.shutdown().await;
                return (Some(rd), Some(wr));
            }
            FastRead::Closed => return (Some(rd), Some(wr)),
            FastRead::ProxyGone => {
                ctl.close(false);
                return (Some(rd), Some(wr));
            }
            FastRead::ToxicsChanged => {}
        }
    }
    // A toxic arrived: from now on a reader stamps chunks and a writer applies the toxics.
    let (tx, rx) = mpsc::channel::<(Instant, Bytes)>(64);
    let reader = read_side(rd, tx, ctl.clone());
    let writer = write_side(wr, rx, stream, toxics, ctl.clone(), seed);
    let (rd, wr) = tokio::join!(reader, writer);
    (rd, wr)
}

/// What one read of the fast path brought.
enum FastRead {
    /// This many bytes are in the buffer.
    Data(usize),
    /// The peer closed its side (or the read failed).
    End,
    /// The link was closed or reset.
    Closed,
    /// The proxy is gone.
    ProxyGone,
    /// The toxics changed: look whether this stream has one now.
    ToxicsChanged,
}

/// One read, unless the link closes or the toxics change first. The waker is registered
/// before the checks, and the proxy wakes it after it changes the toxics, so no change is
/// missed between the check and the wait.
async fn fast_read(
    rd: &mut OwnedReadHalf,
    buf: &mut [u8],
    toxics: &watch::Receiver<ToxicSet>,
    ctl: &LinkCtl,
    stream: Stream,
) -> FastRead {
    let waker = &ctl.wakers[usize::from(stream == Stream::Downstream)];
    std::future::poll_fn(|cx| {
        waker.register(cx.waker());
        if ctl.is_closed() {
            return Poll::Ready(FastRead::Closed);
        }
        match toxics.has_changed() {
            Err(_) => return Poll::Ready(FastRead::ProxyGone),
            Ok(true) => return Poll::Ready(FastRead::ToxicsChanged),
            Ok(false) => {}
        }
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *rd).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(FastRead::End),
            Poll::Ready(Ok(())) => Poll::Ready(FastRead::Data(rb.filled().len())),
            Poll::Ready(Err(_)) => Poll::Ready(FastRead::End),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

async fn read_side(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<(Instant, Bytes)>,
    ctl: Arc<LinkCtl>,
) -> Option<OwnedReadHalf> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            },
            _ = ctl.wait_closed() => break,
        }
    }
    Some(rd)
}

/// Per-link state of the toxics of one direction.
struct Active {
    rng: ChaCha8Rng,
    /// Whether this link got each toxic (toxicity), by name.
    drawn: HashMap<String, bool>,
    /// When a timeout/reset toxic was first seen on this link, by name.
    since: HashMap<String, Instant>,
    sent: u64,
}

impl Active {
    fn applies(&mut self, t: &Toxic) -> bool {
        let rng = &mut self.rng;
        *self
            .drawn
            .entry(t.name.clone())
            .or_insert_with(|| t.toxicity >= 1.0 || rng.random_bool(t.toxicity.clamp(0.0, 1.0)))
    }
}

/// The toxics of this stream that apply to this link, in order.
fn current(set: &ToxicSet, stream: Stream, active: &mut Active) -> Vec<Toxic> {
    let now = Instant::now();
    let list: Vec<Toxic> = set.iter().filter(|t| t.stream == stream).cloned().collect();
    active
        .since
        .retain(|name, _| list.iter().any(|t| &t.name == name));
    let mut out = vec![];
    for t in list {
        if !active.applies(&t) {
            continue;
        }
        if matches!(t.ty(), ToxicType::Timeout | ToxicType::ResetPeer) {
            active.since.entry(t.name.clone()).or_insert(now);
        }
        out.push(t);
    }
    out
}

/// The earliest moment a timeout/reset toxic ends the link, and whether it resets.
fn deadline(list: &[Toxic], active: &Active) -> Option<(Instant, bool)> {
    list.iter()
        .filter_map(|t| {
            let since = *active.since.get(&t.name)?;
            let ms = t.attr("timeout");
            match t.ty() {
                ToxicType::Timeout if ms > 0 => {
                    Some((since + Duration::from_millis(ms as u64), false))
                }
                ToxicType::ResetPeer => Some((since + Duration::from_millis(ms as u64), true)),
                _ => None,
            }
        })
        .min_by_key(|(at, _)| *at)
}

async fn write_side(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Instant, Bytes)>,
    stream: Stream,
    mut toxics: watch::Receiver<ToxicSet>,
    ctl: Arc<LinkCtl>,
    seed: u64,
) -> Option<OwnedWriteHalf> {
    let mut active = Active {
        rng: ChaCha8Rng::seed_from_u64(seed),
        drawn: HashMap::new(),
        since: HashMap::new(),
        sent: 0,
    };
    loop {
        let set = toxics.borrow_and_update().clone();
        let list = current(&set, stream, &mut active);
        let stopped = list.iter().any(|t| t.ty() == ToxicType::Timeout);
        let end = deadline(&list, &active);
        // A deadline already past acts now: the timer would fire only on its next tick, and a
        // fast upstream's answer could slip through first.
        if let Some((at, reset)) = end {
            if at <= Instant::now() {
                ctl.close(reset);
                break;
            }
        }
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some((arrived, data)) => {
                    if stopped {
                        continue; // a timeout toxic drops data until it goes away
                    }
                    if !deliver(&mut wr, arrived, data, &list, &mut active, &ctl).await {
                        break;
                    }
                }
                None => {
                    // The sender closed: honour slow_close, then pass the close on.
                    if let Some(ms) = list.iter().filter(|t| t.ty() == ToxicType::SlowClose).map(|t| t.attr("delay")).max() {
                        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                    }
                    let _ = wr.shutdown().await;
                    break;
                }
            },
            changed = toxics.changed() => {
                if changed.is_err() {
                    // The proxy is gone.
                    ctl.close(false);
                    break;
                }
            }
            _ = sleep_until_opt(end.map(|(at, _)| at)) => {
                ctl.close(end.is_some_and(|(_, reset)| reset));
                break;
            }
            _ = ctl.wait_closed() => break,
        }
    }
    Some(wr)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Pass one chunk through the toxics and write it. False when the link must end.
async fn deliver(
    wr: &mut OwnedWriteHalf,
    arrived: Instant,
    mut data: Bytes,
    list: &[Toxic],
    active: &mut Active,
    ctl: &LinkCtl,
) -> bool {
    let mut slicer = None;
    for t in list {
        match t.ty() {
            ToxicType::Latency => {
                let latency = t.attr("latency");
                let jitter = t.attr("jitter");
                let delta = if jitter > 0 {
                    active.rng.random_range(-jitter..=jitter)
                } else {
                    0
                };
                let ms = (latency + delta).max(0) as u64;
                tokio::time::sleep_until(arrived + Duration::from_millis(ms)).await;
            }
            ToxicType::Bandwidth => {
                let rate = t.attr("rate").max(1) as f64 * 1024.0;
                tokio::time::sleep(Duration::from_secs_f64(data.len() as f64 / rate)).await;
            }
            ToxicType::LimitData => {
                let limit = t.attr("bytes") as u64;
                let room = limit.saturating_sub(active.sent) as usize;
                if data.len() >= room {
                    data.truncate(room);
                    let _ = wr.write_all(&data).await;
                    active.sent += data.len() as u64;
                    ctl.close(false);
                    return false;
                }
            }
            ToxicType::Slicer => slicer = Some(t.clone()),
            ToxicType::SlowClose | ToxicType::Timeout | ToxicType::ResetPeer => {}
        }
    }
    active.sent += data.len() as u64;
    match slicer {
        None => wr.write_all(&data).await.is_ok(),
        Some(t) => {
            let avg = t.attr("average_size").max(1) as usize;
            let var = t.attr("size_variation").max(0) as usize;
            let delay = Duration::from_micros(t.attr("delay") as u64);
            while !data.is_empty() {
                let size = if var > 0 {
                    avg.saturating_sub(var) + active.rng.random_range(0..=2 * var)
                } else {
                    avg
                };
                let piece = data.split_to(size.clamp(1, data.len()));
                if wr.write_all(&piece).await.is_err() {
                    return false;
                }
                if !data.is_empty() && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            true
        }
    }
}
