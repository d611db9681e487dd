//! The TCP chaos proxy seen from a plain HTTP client, its Toxiproxy API (bad input
//! included), the `toxiproxy_rust` client driving it unmodified, and the engine's network
//! faults through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crashcart::fault::{
    Dependencies, DependencyName, Direction, FaultEngine, FaultKind, FaultSpec, Target,
};
use crashcart::proxy::network::EmbeddedNetwork;
use crashcart::proxy::{api, ChaosProxy};
use crashcart_mocks::MockSalesforce;
use serde_json::{json, Value};

struct Rig {
    sf: MockSalesforce,
    proxy: ChaosProxy,
    via: String,
    http: reqwest::Client,
}

impl Rig {
    async fn start() -> Self {
        let sf = MockSalesforce::builder().start().await.unwrap();
        let proxy = ChaosProxy::new(9, false);
        let upstream = sf.local_addr().to_string();
        let info = proxy
            .create("salesforce", "127.0.0.1:0", &upstream, true)
            .await
            .unwrap();
        let via = format!("http://{}", info.listen);
        // A fresh connection per request, so connection-level toxics act on each.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Self {
            sf,
            proxy,
            via,
            http,
        }
    }
    async fn versions(&self, timeout: Duration) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let r = self
            .http
            .get(format!("{}/services/data", self.via))
            .timeout(timeout)
            .send()
            .await?;
        let s = r.status().as_u16();
        Ok((s, r.bytes().await?.to_vec()))
    }
    fn toxic(&self, body: Value) {
        self.proxy.add_toxic("salesforce", &body).unwrap();
    }
}

const LONG: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_proxy_forwards_and_latency_delays_the_answer() {
    let rig = Rig::start().await;
    let direct = rig
        .http
        .get(format!("{}/services/data", rig.sf.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (s, body) = rig.versions(LONG).await.unwrap();
    assert_eq!((s, body.as_slice()), (200, direct.as_ref()));
    rig.toxic(json!({"type": "latency", "attributes": {"latency": 250}}));
    let t = Instant::now();
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2000),
        "{took:?}"
    );
    rig.proxy
        .remove_toxic("salesforce", "latency_downstream")
        .unwrap();
    let t = Instant::now();
    rig.versions(LONG).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

/// One request on a kept-alive connection; the time its answer took.
async fn timed_request(conn: &mut tokio::net::TcpStream) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = Instant::now();
    conn.write_all(b"GET /services/data HTTP/1.1\r\nHost: crashcart\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(LONG, conn.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "the connection closed");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a Content-Length");
            if got.len() >= end + 4 + len {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                return t.elapsed();
            }
        }
    }
}

/// A toxic added while a connection lives acts on that connection's next exchange, and its
/// removal lets the connection go fast again: the no-toxic fast path hands over both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toxic_added_to_a_live_connection_acts_on_it_and_its_removal_frees_it() {
    let rig = Rig::start().await;
    let addr = rig.via.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(timed_request(&mut conn).await < Duration::from_millis(200));
    rig.toxic(json!({"name": "slow", "type": "latency", "stream": "upstream", "attributes": {"latency": 250}}));
    let took = timed_request(&mut conn).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");
    rig.proxy.remove_toxic("salesforce", "slow").unwrap();
    rig.toxic(json!({"name": "slow-down", "type": "latency", "attributes": {"latency": 300}}));
    let took = timed_request(&mut conn).await;
    assert!(took >= Duration::from_millis(300), "{took:?}");
    rig.proxy.remove_toxic("salesforce", "slow-down").unwrap();
    // The first exchange after the removal may still be in the toxic's writer; the next is fast.
    timed_request(&mut conn).await;
    let took = timed_request(&mut conn).await;
    assert!(took < Duration::from_millis(200), "{took:?}");

    // An idle connection learns of a toxic without traffic: a reset ends it unprompted.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    timed_request(&mut idle).await;
    rig.toxic(json!({"name": "cut", "type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 50}}));
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(LONG, tokio::io::AsyncReadExt::read(&mut idle, &mut buf))
        .await
        .expect("the idle connection ends without a request");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_blocks_until_the_client_times_out_and_reset_is_a_reset() {
    let rig = Rig::start().await;
    rig.toxic(json!({"name": "cut", "type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}}));
    let t = Instant::now();
    let e = rig.versions(Duration::from_millis(400)).await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(t.elapsed() >= Duration::from_millis(400));
    rig.proxy.remove_toxic("salesforce", "cut").unwrap();
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);

    rig.toxic(json!({"type": "reset_peer", "attributes": {"timeout": 0}}));
    let e = rig.versions(LONG).await.unwrap_err();
    let chain = format!("{e:?}");
    // Depending on when the RST lands, the client reads ECONNRESET, writes into EPIPE, or
    // sees the connection end before an answer: never an HTTP answer, never a timeout.
    assert!(!e.is_timeout() && e.status().is_none(), "{chain}");
    assert!(
        [
            "ConnectionReset",
            "reset",
            "IncompleteMessage",
            "BrokenPipe",
            "closed"
        ]
        .iter()
        .any(|k| chain.contains(k)),
        "{chain}"
    );
    rig.proxy
        .remove_toxic("salesforce", "reset_peer_downstream")
        .unwrap();

    // A timeout toxic with a timeout closes the connection after it.
    rig.toxic(json!({"name": "t", "type": "timeout", "attributes": {"timeout": 100}}));
    let t = Instant::now();
    assert!(rig.versions(LONG).await.is_err());
    assert!(t.elapsed() >= Duration::from_millis(100) && t.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_proxy_refuses_and_limit_data_cuts_the_body() {
    let rig = Rig::start().await;
    rig.proxy.set_enabled("salesforce", false).unwrap();
    let e = rig.versions(LONG).await.unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    rig.proxy.set_enabled("salesforce", true).unwrap();
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);
    rig.toxic(json!({"type": "limit_data", "attributes": {"bytes": 64}}));
    match rig.versions(LONG).await {
        Err(_) => {}
        Ok((_, body)) => panic!(
            "a 64-byte limit cannot carry the answer, got {} bytes",
            body.len()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_and_slicer_slow_the_answer_but_keep_it_whole() {
    let rig = Rig::start().await;
    let (_, direct) = rig.versions(LONG).await.unwrap();
    rig.toxic(json!({"type": "slicer", "attributes": {"average_size": 16, "size_variation": 4, "delay": 2000}}));
    let t = Instant::now();
    let (s, body) = rig.versions(LONG).await.unwrap();
    assert_eq!((s, &body), (200, &direct));
    let slices = direct.len() / 20;
    assert!(
        t.elapsed() >= Duration::from_micros(2000 * slices as u64 / 2),
        "{:?} for {} bytes",
        t.elapsed(),
        direct.len()
    );
    rig.proxy
        .remove_toxic("salesforce", "slicer_downstream")
        .unwrap();
    rig.toxic(json!({"type": "bandwidth", "attributes": {"rate": 1}}));
    let t = Instant::now();
    let (_, body) = rig.versions(LONG).await.unwrap();
    assert_eq!(body, direct);
    let expected = Duration::from_secs_f64(direct.len() as f64 / 1024.0);
    assert!(
        t.elapsed() >= expected.mul_f64(0.8),
        "{:?} vs {expected:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toxiproxy_api_refuses_bad_input_with_4xx() {
    let rig = Rig::start().await;
    let server = api::serve(rig.proxy.clone(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let base = server.base_url();
    let http = reqwest::Client::new();
    let post = |path: &str, body: &str| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        (
            "/proxies/salesforce/toxics",
            r#"{"type":"lava"}"#,
            400,
            "invalid toxic type",
        ),
        (
            "/proxies/salesforce/toxics",
            r#"{"type":"latency","attributes":{"latency":-100}}"#,
            400,
            "must not be negative",
        ),
        (
            "/proxies/salesforce/toxics",
            r#"{"type":"latency","#,
            400,
            "bad request: invalid JSON",
        ),
        (
            "/proxies/nowhere/toxics",
            r#"{"type":"latency"}"#,
            404,
            "proxy not found",
        ),
        (
            "/proxies",
            r#"{"name":"salesforce","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#,
            409,
            "proxy already exists",
        ),
        (
            "/proxies",
            r#"{"listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#,
            400,
            "missing required field: name",
        ),
        (
            "/proxies",
            r#"{"name":"far","listen":"127.0.0.1:0","upstream":"10.1.2.3:443"}"#,
            403,
            "not a loopback address",
        ),
        (
            "/proxies",
            r#"{"name":"x","listen":"127.0.0.1:0","upstream":"nonsense"}"#,
            400,
            "not a host:port address",
        ),
        ("/populate", r#"{"not":"an array"}"#, 400, "JSON array"),
    ];
    for (path, body, status, needle) in cases {
        let r = post(path, body).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
        assert_eq!(v["status"], status);
    }
    assert_eq!(
        post("/proxies/salesforce/toxics", r#"{"type":"latency"}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post("/proxies/salesforce/toxics", r#"{"type":"latency"}"#)
            .await
            .unwrap()
            .status(),
        409,
        "duplicate toxic"
    );
    let r = http
        .delete(format!("{base}/proxies/salesforce/toxics/ghost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = http
        .get(format!("{base}/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["version"], api::VERSION);
    assert_eq!(
        http.post(format!("{base}/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(rig.proxy.info("salesforce").unwrap().toxics.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxy_rust_drives_the_embedded_proxy_unmodified() {
    let sf = MockSalesforce::builder().start().await.unwrap();
    let proxy = ChaosProxy::new(1, false);
    let server = api::serve(proxy.clone(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let api_addr = server.local_addr();
    let upstream = sf.local_addr().to_string();
    // toxiproxy_rust is a blocking client: run it off the async runtime.
    let listen = tokio::task::spawn_blocking(move || {
        let client = toxiproxy_rust::client::Client::new(api_addr);
        assert!(client.is_running());
        let proxies = client
            .populate(vec![toxiproxy_rust::proxy::ProxyPack::new(
                "sf".into(),
                "127.0.0.1:0".into(),
                upstream,
            )])
            .expect("populate");
        assert_eq!(proxies.len(), 1);
        let p = client.find_proxy("sf").expect("find_proxy");
        p.with_latency("downstream".into(), 300, 0, 1.0);
        let toxics = p.toxics().expect("toxics");
        assert_eq!(toxics.len(), 1);
        assert_eq!(toxics[0].r#type, "latency");
        p.proxy_pack.listen.clone()
    })
    .await
    .unwrap();
    assert_ne!(listen, "127.0.0.1:0", "the API reports the bound port");
    let http = reqwest::Client::new();
    let t = Instant::now();
    let r = http
        .get(format!("http://{listen}/services/data"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    tokio::task::spawn_blocking(move || {
        let client = toxiproxy_rust::client::Client::new(api_addr);
        client.reset().expect("reset");
        let p = client.find_proxy("sf").unwrap();
        assert!(p.toxics().unwrap().is_empty());
        p.with_down(|| {
            assert!(
                std::net::TcpStream::connect(&listen).is_err(),
                "down: connections are refused"
            );
        })
        .unwrap();
    })
    .await
    .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_network_faults_go_through_the_proxy_and_guards_remove_them() {
    let rig = Rig::start().await;
    let engine = FaultEngine::new(
        3,
        Dependencies {
            salesforce: Some(rig.sf.handle().clone()),
            llm: None,
            network: Some(Arc::new(EmbeddedNetwork::new(rig.proxy.clone()))),
        },
    );
    let on_sf = Target {
        dependency: Some(DependencyName::Salesforce),
        ..Target::default()
    };
    let g = engine
        .apply(
            FaultSpec::now(FaultKind::Partition {
                direction: Direction::Both,
            })
            .target(on_sf.clone()),
        )
        .unwrap();
    assert_eq!(rig.proxy.info("salesforce").unwrap().toxics.len(), 2);
    assert!(rig
        .versions(Duration::from_millis(300))
        .await
        .unwrap_err()
        .is_timeout());
    drop(g);
    assert!(rig.proxy.info("salesforce").unwrap().toxics.is_empty());
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);
    let g = engine
        .apply(FaultSpec::now(FaultKind::RefuseConnections).target(on_sf.clone()))
        .unwrap();
    assert!(rig.versions(LONG).await.unwrap_err().is_connect());
    drop(g);
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);
    // Flapping a network fault takes its toxics out and puts them back.
    let g = engine
        .apply(
            FaultSpec::now(FaultKind::Partition {
                direction: Direction::Upstream,
            })
            .target(on_sf.clone()),
        )
        .unwrap();
    engine.set_enabled(g.id(), false);
    assert!(rig.proxy.info("salesforce").unwrap().toxics.is_empty());
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);
    engine.set_enabled(g.id(), true);
    assert_eq!(rig.proxy.info("salesforce").unwrap().toxics.len(), 1);
    assert!(rig
        .versions(Duration::from_millis(300))
        .await
        .unwrap_err()
        .is_timeout());
    drop(g);
    engine
        .apply(FaultSpec::now(FaultKind::NetworkLatency {
            latency: Duration::from_millis(50),
            jitter: None,
            direction: Direction::Downstream,
        }))
        .unwrap()
        .forget();
    assert_eq!(rig.proxy.info("salesforce").unwrap().toxics.len(), 1);
    engine.clear_all();
    assert!(rig.proxy.info("salesforce").unwrap().toxics.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_drives_an_external_toxiproxy_through_toxiproxy_rust() {
    use crashcart::proxy::network::ToxiproxyNetwork;
    let rig = Rig::start().await;
    // Our own Toxiproxy API stands in for a Toxiproxy server on another host.
    let server = api::serve(rig.proxy.clone(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let net = Arc::new(ToxiproxyNetwork::new(server.local_addr()));
    let engine = FaultEngine::new(
        5,
        Dependencies {
            salesforce: Some(rig.sf.handle().clone()),
            llm: None,
            network: Some(net),
        },
    );
    let on_sf = Target {
        dependency: Some(DependencyName::Salesforce),
        ..Target::default()
    };
    let slow = engine
        .apply(
            FaultSpec::now(FaultKind::NetworkLatency {
                latency: Duration::from_millis(300),
                jitter: None,
                direction: Direction::Downstream,
            })
            .target(on_sf.clone()),
        )
        .unwrap();
    let limit = engine
        .apply(
            FaultSpec::now(FaultKind::Bandwidth {
                rate_kb: 100_000,
                direction: Direction::Upstream,
            })
            .target(on_sf.clone()),
        )
        .unwrap();
    let t = Instant::now();
    assert_eq!(rig.versions(LONG).await.unwrap().0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    drop(slow);
    let names: Vec<String> = rig
        .proxy
        .info("salesforce")
        .unwrap()
        .toxics
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        ["bandwidth_upstream"],
        "the other fault's toxic is back after the removal"
    );
    drop(limit);
    assert!(rig.proxy.info("salesforce").unwrap().toxics.is_empty());
    let g = engine
        .apply(FaultSpec::now(FaultKind::RefuseConnections).target(on_sf.clone()))
        .unwrap();
    assert!(!rig.proxy.info("salesforce").unwrap().enabled);
    drop(g);
    assert!(rig.proxy.info("salesforce").unwrap().enabled);
    let e = engine
        .apply(FaultSpec::now(FaultKind::ResetPeer { after: None }).target(on_sf))
        .err()
        .unwrap();
    assert!(e.to_string().contains("cannot create reset_peer"), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_can_send_its_network_faults_to_an_external_toxiproxy() {
    use crashcart::run::environment::{EnvOptions, Environment, SalesforceOptions};
    // The "external" Toxiproxy: a proxy set and its API, as another host would run them.
    let external = ChaosProxy::new(2, false);
    let server = api::serve(external.clone(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let env = Environment::start(&EnvOptions {
        seed: 1,
        bind: "127.0.0.1".parse().unwrap(),
        allow_remote: false,
        salesforce: Some(SalesforceOptions::default()),
        llm: None,
        proxies: false,
        external_toxiproxy: Some((server.local_addr(), "sf-remote".into(), "llm-remote".into())),
    })
    .await
    .unwrap();
    let upstream = env.salesforce.as_ref().unwrap().local_addr().to_string();
    external
        .create("sf-remote", "127.0.0.1:0", &upstream, true)
        .await
        .unwrap();
    assert!(env.proxy.is_none(), "no embedded proxies");
    let g = env
        .engine
        .apply(
            FaultSpec::now(FaultKind::Partition {
                direction: Direction::Upstream,
            })
            .target(Target {
                dependency: Some(DependencyName::Salesforce),
                ..Target::default()
            }),
        )
        .unwrap();
    assert_eq!(
        external.info("sf-remote").unwrap().toxics.len(),
        1,
        "the toxic went to the external server"
    );
    drop(g);
    assert!(external.info("sf-remote").unwrap().toxics.is_empty());
    env.shutdown().await;
    server.shutdown().await;
}
