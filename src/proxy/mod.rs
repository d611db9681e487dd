//! The TCP chaos proxy: one listener per upstream, network faults as Toxiproxy toxics, and
//! Toxiproxy's HTTP API so existing clients (`toxiproxy_rust` among them) drive it unmodified.
//!
//! - [`toxic`]: the toxic model (types, streams, toxicity, attributes).
//! - [`link`]: one proxied connection and how toxics act on its chunks.
//! - [`api`]: the Toxiproxy HTTP API (`/proxies`, `/populate`, `/reset`, `/version`).
//! - [`network`]: the engine's network-fault backends (this proxy, or an external Toxiproxy).
//!
//! Safety: listen and upstream addresses must be loopback unless the proxy was created with
//! `allow_remote`.

pub mod api;
pub mod link;
pub mod network;
pub mod toxic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use link::{LinkCtl, ToxicSet};
use toxic::Toxic;

/// What went wrong, with the HTTP status the API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProxyError {
    /// HTTP status for the API.
    pub status: u16,
    /// Toxiproxy's wording where it has one.
    pub message: String,
}

impl ProxyError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn not_found() -> Self {
        Self::new(404, "proxy not found")
    }
}

/// A proxy as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyInfo {
    /// Name.
    pub name: String,
    /// The address it listens on.
    pub listen: String,
    /// Where it forwards.
    pub upstream: String,
    /// False: connections are refused.
    pub enabled: bool,
    /// Its toxics, in order.
    pub toxics: Vec<Toxic>,
}

struct Proxy {
    name: String,
    listen: Mutex<SocketAddr>,
    upstream: Mutex<String>,
    enabled: AtomicBool,
    toxics: watch::Sender<ToxicSet>,
    accept: Mutex<Option<JoinHandle<()>>>,
    /// A second descriptor of the listening socket, to close it at once on disable (the
    /// accept task, aborted, drops its own only when the runtime next polls it).
    listening: Mutex<Option<std::net::TcpListener>>,
    links: Mutex<Vec<Weak<LinkCtl>>>,
    connections: AtomicU64,
}

impl Proxy {
    fn info(&self) -> ProxyInfo {
        ProxyInfo {
            name: self.name.clone(),
            listen: self.listen.lock().to_string(),
            upstream: self.upstream.lock().clone(),
            enabled: self.enabled.load(Ordering::SeqCst),
            toxics: self.toxics.borrow().as_ref().clone(),
        }
    }

    /// Change the toxics, then tell every live link (their fast paths do not watch the
    /// channel): every change of the toxics goes through here.
    fn change_toxics(&self, change: impl FnOnce(&mut ToxicSet)) {
        self.toxics.send_modify(change);
        self.wake_links();
    }

    /// Wake every live link's fast path.
    fn wake_links(&self) {
        for l in self.links.lock().iter() {
            if let Some(l) = l.upgrade() {
                l.wake();
            }
        }
    }

    fn close_links(&self, reset: bool) {
        for l in self.links.lock().drain(..) {
            if let Some(l) = l.upgrade() {
                l.close(reset);
            }
        }
    }

    /// Stop accepting, at once: new connections are refused and the address can be bound
    /// again right away, as when Toxiproxy closes its listener.
    fn stop_listening(&self) {
        if let Some(l) = self.listening.lock().take() {
            use std::os::fd::AsRawFd;
            // SAFETY: shutdown(2) on a descriptor this proxy owns (a dup of the listening
            // socket); it takes the socket out of LISTEN, so the port is free to bind again.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
        if let Some(t) = self.accept.lock().take() {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_listening();
        self.close_links(false);
    }
}

struct Shared {
    proxies: Mutex<BTreeMap<String, Arc<Proxy>>>,
    allow_remote: bool,
    seed: u64,
}

/// The set of proxies of one crashcart (what the Toxiproxy API manages). Cloning shares it.
#[derive(Clone)]
pub struct ChaosProxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosProxy")
            .field(
                "proxies",
                &self.shared.proxies.lock().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn check_addr(what: &str, addr: &str, allow_remote: bool) -> Result<(), ProxyError> {
    use std::net::ToSocketAddrs;
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            ProxyError::new(
                400,
                format!("bad request: {what} {addr:?} is not a host:port address ({e})"),
            )
        })?
        .collect();
    if resolved.is_empty() {
        return Err(ProxyError::new(
            400,
            format!("bad request: {what} {addr:?} resolves to nothing"),
        ));
    }
    if !allow_remote && resolved.iter().any(|a| !a.ip().is_loopback()) {
        return Err(ProxyError::new(403, format!("{what} {addr} is not a loopback address; start crashcart with --allow-remote to permit it")));
    }
    Ok(())
}

/// Connect to `upstream`, resolved now: a name that resolved to loopback when the proxy was
/// created may resolve elsewhere later, so the address connected to is the one checked.
async fn connect_checked(upstream: &str, allow_remote: bool) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in tokio::net::lookup_host(upstream).await? {
        if !allow_remote && !addr.ip().is_loopback() {
            last = std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("upstream {upstream} now resolves to {addr}, not loopback"),
            );
            tracing::warn!("{last}");
            continue;
        }
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl ChaosProxy {
    /// An empty set of proxies. Toxicity draws come from `seed`.
    pub fn new(seed: u64, allow_remote: bool) -> Self {
        Self {
            shared: Arc::new(Shared {
                proxies: Mutex::new(BTreeMap::new()),
                allow_remote,
                seed,
            }),
        }
    }

    /// Check a proxy that could be created now: a name, addresses that parse and may be used
    /// (nothing is created).
    pub fn check_new(&self, name: &str, listen: &str, upstream: &str) -> Result<(), ProxyError> {
        if name.is_empty() {
            return Err(ProxyError::new(400, "missing required field: name"));
        }
        if upstream.is_empty() {
            return Err(ProxyError::new(400, "missing required field: upstream"));
        }
        check_addr("listen", listen, self.shared.allow_remote)?;
        check_addr("upstream", upstream, self.shared.allow_remote)
    }

    /// Create a proxy listening on `listen` (port 0 picks one) and forwarding to `upstream`.
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        enabled: bool,
    ) -> Result<ProxyInfo, ProxyError> {
        if name.is_empty() {
            return Err(ProxyError::new(400, "missing required field: name"));
        }
        if upstream.is_empty() {
            return Err(ProxyError::new(400, "missing required field: upstream"));
        }
        let listen = if listen.is_empty() {
            "127.0.0.1:0"
        } else {
            listen
        };
        check_addr("listen", listen, self.shared.allow_remote)?;
        check_addr("upstream", upstream, self.shared.allow_remote)?;
        if self.shared.proxies.lock().contains_key(name) {
            return Err(ProxyError::new(409, "proxy already exists"));
        }
        let listen_addr: SocketAddr = tokio::net::lookup_host(listen)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ProxyError::new(400, format!("bad request: listen {listen:?}")))?;
        let (tx, _) = watch::channel(Arc::new(vec![]));
        let proxy = Arc::new(Proxy {
            name: name.to_string(),
            listen: Mutex::new(listen_addr),
            upstream: Mutex::new(upstream.to_string()),
            enabled: AtomicBool::new(false),
            toxics: tx,
            accept: Mutex::new(None),
            listening: Mutex::new(None),
            links: Mutex::new(vec![]),
            connections: AtomicU64::new(0),
        });
        if enabled {
            self.start_listening(&proxy)?;
        }
        let mut map = self.shared.proxies.lock();
        if map.contains_key(name) {
            return Err(ProxyError::new(409, "proxy already exists"));
        }
        map.insert(name.to_string(), proxy.clone());
        Ok(proxy.info())
    }

    fn start_listening(&self, proxy: &Arc<Proxy>) -> Result<(), ProxyError> {
        let addr = *proxy.listen.lock();
        let (listener, second) = std::net::TcpListener::bind(addr)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                let second = l.try_clone()?;
                Ok((TcpListener::from_std(l)?, second))
            })
            .map_err(|e| ProxyError::new(500, format!("listen {addr}: {e}")))?;
        *proxy.listening.lock() = Some(second);
        let bound = listener
            .local_addr()
            .map_err(|e| ProxyError::new(500, e.to_string()))?;
        *proxy.listen.lock() = bound;
        proxy.enabled.store(true, Ordering::SeqCst);
        let weak = Arc::downgrade(proxy);
        let seed = self.shared.seed;
        let allow_remote = self.shared.allow_remote;
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let Some(proxy) = weak.upgrade() else { break };
                let upstream = proxy.upstream.lock().clone();
                let n = proxy.connections.fetch_add(1, Ordering::Relaxed);
                let ctl = Arc::new(LinkCtl::default());
                {
                    let mut links = proxy.links.lock();
                    links.retain(|l| l.strong_count() > 0);
                    links.push(Arc::downgrade(&ctl));
                }
                let toxics = proxy.toxics.subscribe();
                let link_seed =
                    seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ name_hash(&proxy.name);
                drop(proxy);
                tokio::spawn(async move {
                    // Upstream refused (or no longer loopback): close the client's connection, as
                    // Toxiproxy does.
                    let Ok(up) = connect_checked(&upstream, allow_remote).await else {
                        return;
                    };
                    link::run(client, up, toxics, ctl, link_seed).await;
                });
            }
        });
        *proxy.accept.lock() = Some(task);
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Arc<Proxy>, ProxyError> {
        self.shared
            .proxies
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(ProxyError::not_found)
    }

    /// One proxy.
    pub fn info(&self, name: &str) -> Result<ProxyInfo, ProxyError> {
        Ok(self.get(name)?.info())
    }

    /// Every proxy, by name.
    pub fn list(&self) -> BTreeMap<String, ProxyInfo> {
        self.shared
            .proxies
            .lock()
            .iter()
            .map(|(k, p)| (k.clone(), p.info()))
            .collect()
    }

    /// Enable (listen again) or disable (refuse connections, close open ones) a proxy.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<ProxyInfo, ProxyError> {
        let proxy = self.get(name)?;
        let was = proxy.enabled.load(Ordering::SeqCst);
        if enabled && !was {
            self.start_listening(&proxy)?;
        } else if !enabled && was {
            proxy.enabled.store(false, Ordering::SeqCst);
            proxy.stop_listening();
            proxy.close_links(false);
        }
        Ok(proxy.info())
    }

    /// Change where a proxy forwards (new connections) or listens (re-binds).
    pub async fn update(
        &self,
        name: &str,
        listen: Option<&str>,
        upstream: Option<&str>,
    ) -> Result<ProxyInfo, ProxyError> {
        let proxy = self.get(name)?;
        if let Some(u) = upstream.filter(|u| !u.is_empty()) {
            check_addr("upstream", u, self.shared.allow_remote)?;
            *proxy.upstream.lock() = u.to_string();
        }
        if let Some(l) = listen.filter(|l| !l.is_empty() && *l != proxy.listen.lock().to_string()) {
            check_addr("listen", l, self.shared.allow_remote)?;
            let addr = tokio::net::lookup_host(l)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| ProxyError::new(400, format!("bad request: listen {l:?}")))?;
            proxy.stop_listening();
            *proxy.listen.lock() = addr;
            if proxy.enabled.load(Ordering::SeqCst) {
                self.start_listening(&proxy)?;
            }
        }
        Ok(proxy.info())
    }

    /// Remove a proxy: stop listening and close its connections.
    pub fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let proxy = self
            .shared
            .proxies
            .lock()
            .remove(name)
            .ok_or_else(ProxyError::not_found)?;
        proxy.stop_listening();
        proxy.close_links(false);
        Ok(())
    }

    /// Add a toxic (from its API JSON).
    pub fn add_toxic(&self, name: &str, body: &serde_json::Value) -> Result<Toxic, ProxyError> {
        let proxy = self.get(name)?;
        let toxic = Toxic::from_json(body, None).map_err(|m| ProxyError::new(400, m))?;
        let mut result = Ok(toxic.clone());
        proxy.change_toxics(|set| {
            if set.iter().any(|t| t.name == toxic.name) {
                result = Err(ProxyError::new(409, "toxic already exists"));
            } else {
                let mut v = set.as_ref().clone();
                v.push(toxic.clone());
                *set = Arc::new(v);
            }
        });
        result
    }

    /// Change a toxic's attributes or toxicity.
    pub fn update_toxic(
        &self,
        name: &str,
        toxic: &str,
        body: &serde_json::Value,
    ) -> Result<Toxic, ProxyError> {
        let proxy = self.get(name)?;
        let mut result = Err(ProxyError::new(404, "toxic not found"));
        proxy.change_toxics(|set| {
            if let Some(pos) = set.iter().position(|t| t.name == toxic) {
                match Toxic::from_json(body, Some(&set[pos])) {
                    Ok(mut new) => {
                        new.name = toxic.to_string();
                        let mut v = set.as_ref().clone();
                        v[pos] = new.clone();
                        *set = Arc::new(v);
                        result = Ok(new);
                    }
                    Err(m) => result = Err(ProxyError::new(400, m)),
                }
            }
        });
        result
    }

    /// One toxic.
    pub fn toxic(&self, name: &str, toxic: &str) -> Result<Toxic, ProxyError> {
        let proxy = self.get(name)?;
        let found = proxy
            .toxics
            .borrow()
            .iter()
            .find(|t| t.name == toxic)
            .cloned();
        found.ok_or_else(|| ProxyError::new(404, "toxic not found"))
    }

    /// Remove a toxic.
    pub fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ProxyError> {
        let proxy = self.get(name)?;
        let mut found = false;
        proxy.change_toxics(|set| {
            if set.iter().any(|t| t.name == toxic) {
                found = true;
                *set = Arc::new(set.iter().filter(|t| t.name != toxic).cloned().collect());
            }
        });
        if found {
            Ok(())
        } else {
            Err(ProxyError::new(404, "toxic not found"))
        }
    }

    /// Enable every proxy and remove every toxic (Toxiproxy's `/reset`).
    pub fn reset(&self) {
        let names: Vec<String> = self.shared.proxies.lock().keys().cloned().collect();
        for n in names {
            if let Ok(p) = self.get(&n) {
                p.change_toxics(|set| *set = Arc::new(vec![]));
            }
            let _ = self.set_enabled(&n, true);
        }
    }

    /// Stop every proxy (shutdown): toxics removed, listeners closed, connections closed.
    pub fn shutdown(&self) {
        let proxies: Vec<Arc<Proxy>> = std::mem::take(&mut *self.shared.proxies.lock())
            .into_values()
            .collect();
        for p in proxies {
            p.change_toxics(|set| *set = Arc::new(vec![]));
            p.stop_listening();
            p.close_links(false);
        }
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
