//! The dependencies of a run, stood up together: the mocks (one clock, so their times line
//! up), chaos proxies in front of them (clients are pointed at the proxies), and the fault
//! engine over all of it. `crashcart serve` and `crashcart run` both use it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crashcart_mocks::llm::{CapturePolicy, Flavour};
use crashcart_mocks::{Clock, LlmHandle, MockLlm, MockSalesforce, SalesforceHandle, TlsMaterial};

use crate::error::Error;
use crate::fault::{Dependencies, FaultEngine};
use crate::proxy::network::EmbeddedNetwork;
use crate::proxy::ChaosProxy;
use crate::transport::sim::SimNetwork;
use crate::transport::Transport;

/// How to start the mock Salesforce.
#[derive(Clone, Debug)]
pub struct SalesforceOptions {
    /// Port (0: any).
    pub port: u16,
    /// Extra schema files.
    pub schemas: Vec<PathBuf>,
    /// Access-token lifetime.
    pub token_ttl: Duration,
    /// Daily API quota.
    pub daily_api_limit: u64,
    /// Serve HTTPS with this material.
    pub tls: Option<TlsMaterial>,
}

impl Default for SalesforceOptions {
    fn default() -> Self {
        Self {
            port: 0,
            schemas: vec![],
            token_ttl: Duration::from_secs(7200),
            daily_api_limit: 15_000,
            tls: None,
        }
    }
}

/// How to start the mock LLM.
#[derive(Clone, Debug, Default)]
pub struct LlmOptions {
    /// Port (0: any).
    pub port: u16,
    /// Server flavour.
    pub flavour: Flavour,
    /// Extra persona files.
    pub personas: Vec<PathBuf>,
    /// Serve only these models (first is the default).
    pub models: Vec<String>,
    /// The accepted API key (`Some("")`: none needed; `None`: the built-in key).
    pub api_key: Option<String>,
    /// Prompt capture.
    pub capture: CapturePolicy,
    /// No delays.
    pub zero_delay: bool,
}

/// What to stand up.
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// Seed of the mocks and the engine.
    pub seed: u64,
    /// Address to bind.
    pub bind: IpAddr,
    /// Allow non-loopback addresses.
    pub allow_remote: bool,
    /// The mock Salesforce, if wanted.
    pub salesforce: Option<SalesforceOptions>,
    /// The mock LLM, if wanted.
    pub llm: Option<LlmOptions>,
    /// Put chaos proxies in front of the mocks.
    pub proxies: bool,
    /// Send network faults to this external Toxiproxy instead (with its proxy names for
    /// Salesforce and the LLM).
    pub external_toxiproxy: Option<(SocketAddr, String, String)>,
}

/// The running dependencies.
pub struct Environment {
    /// The mock Salesforce.
    pub salesforce: Option<MockSalesforce>,
    /// The mock LLM.
    pub llm: Option<MockLlm>,
    /// The proxies (when asked for).
    pub proxy: Option<ChaosProxy>,
    /// The fault engine over mocks and proxies.
    pub engine: FaultEngine,
    /// The run's clock.
    pub clock: Clock,
    /// Simulation mode: the in-process mocks' handles and the transport that reaches them
    /// through the simulated network (no server, no proxy, no socket).
    pub sim: Option<SimWorld>,
}

/// The dependencies of a simulated run.
pub struct SimWorld {
    /// The mock Salesforce.
    pub salesforce: Option<SalesforceHandle>,
    /// The mock LLM.
    pub llm: Option<LlmHandle>,
    /// Reaches the mocks in-process, through the simulated network.
    pub transport: Transport,
    /// The simulated network.
    pub net: Arc<SimNetwork>,
}

/// Host names of the mocks in simulation (their URLs point there).
pub const SIM_SALESFORCE: &str = "salesforce.sim:443";
/// See [`SIM_SALESFORCE`].
pub const SIM_LLM: &str = "llm.sim:11434";

/// Put a proxy named `name` in front of `direct` (a mock's base URL) and return its URL.
async fn front(
    proxy: &ChaosProxy,
    name: &str,
    direct: &str,
    bind: IpAddr,
) -> Result<String, Error> {
    let (scheme, upstream) = direct.split_once("://").unwrap_or(("http", direct));
    let listen = SocketAddr::new(bind, 0).to_string();
    let info = proxy
        .create(name, &listen, upstream, true)
        .await
        .map_err(|e| Error::InvalidInput(format!("proxy {name}: {e}")))?;
    Ok(format!("{scheme}://{}", info.listen))
}

/// The mock LLM's configuration from the options.
fn llm_config(seed: u64, o: &LlmOptions) -> Result<crashcart_mocks::llm::LlmConfig, Error> {
    let mut config = crashcart_mocks::llm::LlmConfig {
        seed,
        flavour: o.flavour,
        capture: o.capture,
        ..Default::default()
    };
    if let Some(key) = &o.api_key {
        config.api_keys = if key.is_empty() {
            vec![]
        } else {
            vec![key.clone()]
        };
    }
    for p in &o.personas {
        config.personas.merge_file(p)?;
    }
    if !o.models.is_empty() {
        config.personas.retain(&o.models)?;
    }
    Ok(config)
}

impl Environment {
    /// Start everything asked for; on failure, what was started is stopped again.
    pub async fn start(opts: &EnvOptions) -> Result<Self, Error> {
        let clock = Clock::new();
        let salesforce = match &opts.salesforce {
            None => None,
            Some(o) => {
                let mut b = MockSalesforce::builder()
                    .seed(opts.seed)
                    .clock(clock.clone())
                    .bind(SocketAddr::new(opts.bind, o.port))
                    .allow_non_loopback(opts.allow_remote)
                    .token_ttl(o.token_ttl)
                    .daily_api_limit(o.daily_api_limit);
                for s in &o.schemas {
                    b = b.schema_file(s);
                }
                if let Some(t) = &o.tls {
                    b = b.tls(t.clone());
                }
                Some(b.start().await?)
            }
        };
        let llm = match &opts.llm {
            None => None,
            Some(o) => {
                let config = match llm_config(opts.seed, o) {
                    Ok(c) => c,
                    Err(e) => {
                        if let Some(sf) = salesforce {
                            sf.shutdown().await;
                        }
                        return Err(e);
                    }
                };
                let mut b = MockLlm::builder()
                    .config(config)
                    .clock(clock.clone())
                    .bind(SocketAddr::new(opts.bind, o.port))
                    .allow_non_loopback(opts.allow_remote);
                if o.zero_delay {
                    b = b.zero_delay();
                }
                match b.start().await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        if let Some(sf) = salesforce {
                            sf.shutdown().await;
                        }
                        return Err(e.into());
                    }
                }
            }
        };
        let mut env = Self {
            engine: FaultEngine::new(opts.seed, Dependencies::default()),
            salesforce,
            llm,
            proxy: None,
            clock,
            sim: None,
        };
        if opts.proxies {
            let proxy = ChaosProxy::new(opts.seed, opts.allow_remote);
            let fronted = async {
                if let Some(sf) = &env.salesforce {
                    let url = front(&proxy, "salesforce", &sf.url(), opts.bind).await?;
                    sf.handle().set_public_url(&url);
                }
                if let Some(llm) = &env.llm {
                    let url = front(&proxy, "llm", &llm.url(), opts.bind).await?;
                    llm.handle().set_public_url(&url);
                }
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = fronted {
                env.shutdown().await;
                return Err(e);
            }
            env.proxy = Some(proxy);
        }
        env.engine = FaultEngine::new(
            opts.seed,
            Dependencies {
                salesforce: env.salesforce.as_ref().map(|s| s.handle().clone()),
                llm: env.llm.as_ref().map(|l| l.handle().clone()),
                network: match &opts.external_toxiproxy {
                    Some((addr, sf, llm)) => Some(Arc::new(
                        crate::proxy::network::ToxiproxyNetwork::new(*addr)
                            .with_proxy_names(sf, llm),
                    )
                        as Arc<dyn crate::fault::NetworkFaults>),
                    None => env.proxy.as_ref().map(|p| {
                        Arc::new(EmbeddedNetwork::new(p.clone()))
                            as Arc<dyn crate::fault::NetworkFaults>
                    }),
                },
            },
        );
        Ok(env)
    }

    /// Stand the same dependencies up in-process for simulation mode: the mocks as routers on
    /// the current clock (paused, in a simulation), network faults in a [`SimNetwork`].
    pub fn start_in_process(opts: &EnvOptions) -> Result<Self, Error> {
        let clock = Clock::new();
        let salesforce = match &opts.salesforce {
            None => None,
            Some(o) => {
                let mut b = MockSalesforce::builder()
                    .seed(opts.seed)
                    .clock(clock.clone())
                    .token_ttl(o.token_ttl)
                    .daily_api_limit(o.daily_api_limit);
                for s in &o.schemas {
                    b = b.schema_file(s);
                }
                Some(b.build_in_process(&format!("http://{SIM_SALESFORCE}"))?)
            }
        };
        let llm = match &opts.llm {
            None => None,
            Some(o) => {
                let mut b = MockLlm::builder()
                    .config(llm_config(opts.seed, o)?)
                    .clock(clock.clone());
                if o.zero_delay {
                    b = b.zero_delay();
                }
                Some(b.build_in_process(&format!("http://{SIM_LLM}"))?)
            }
        };
        let net = Arc::new(SimNetwork::new(opts.seed));
        let mut hosts = vec![];
        if let Some((r, _)) = &salesforce {
            hosts.push((
                SIM_SALESFORCE.to_string(),
                r.clone(),
                Some(crate::fault::DependencyName::Salesforce),
            ));
        }
        if let Some((r, _)) = &llm {
            hosts.push((
                SIM_LLM.to_string(),
                r.clone(),
                Some(crate::fault::DependencyName::Llm),
            ));
        }
        let sf = salesforce.map(|(_, h)| h);
        let llm = llm.map(|(_, h)| h);
        let engine = FaultEngine::new(
            opts.seed,
            Dependencies {
                salesforce: sf.clone(),
                llm: llm.clone(),
                network: Some(net.clone() as Arc<dyn crate::fault::NetworkFaults>),
            },
        );
        Ok(Self {
            salesforce: None,
            llm: None,
            proxy: None,
            engine,
            clock,
            sim: Some(SimWorld {
                salesforce: sf,
                llm,
                transport: Transport::simulated(hosts, net.clone()),
                net,
            }),
        })
    }

    /// The mock Salesforce's handle (served or in-process).
    pub fn salesforce_handle(&self) -> Option<&SalesforceHandle> {
        match &self.sim {
            Some(w) => w.salesforce.as_ref(),
            None => self.salesforce.as_ref().map(MockSalesforce::handle),
        }
    }

    /// Hand every request the mocks complete to `rec` (the journal and the timeline).
    pub fn listen(&self, rec: &super::recorder::Recorder) {
        if let Some(sf) = self.salesforce_handle() {
            rec.listen(&sf.history());
        }
        if let Some(llm) = self.llm_handle() {
            if !self
                .salesforce_handle()
                .is_some_and(|sf| std::sync::Arc::ptr_eq(&sf.history(), &llm.history()))
            {
                rec.listen(&llm.history());
            }
        }
    }

    /// The mock LLM's handle (served or in-process).
    pub fn llm_handle(&self) -> Option<&LlmHandle> {
        match &self.sim {
            Some(w) => w.llm.as_ref(),
            None => self.llm.as_ref().map(MockLlm::handle),
        }
    }

    /// The connection settings clients get (pointing at the proxies when there are some),
    /// named as the SUT contract names them.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![];
        if let Some(sf) = self.salesforce_handle() {
            out.extend(sf.connection_settings().env_pairs());
        }
        if let Some(llm) = self.llm_handle() {
            out.extend(llm.connection_settings().env_pairs());
        }
        out
    }

    /// Where each dependency listens, `name=url` (in simulation: that there is no socket).
    pub fn listening(&self) -> Vec<String> {
        let mut out = vec![];
        if self.sim.is_some() {
            out.push("simulation (in-process, no socket)".to_string());
        }
        if let Some(sf) = &self.salesforce {
            out.push(format!("salesforce={}", sf.url()));
        }
        if let Some(llm) = &self.llm {
            out.push(format!("llm={}", llm.url()));
        }
        if let Some(p) = &self.proxy {
            out.extend(
                p.list()
                    .into_values()
                    .map(|i| format!("proxy {}=http://{}", i.name, i.listen)),
            );
        }
        out
    }

    /// Clear every fault, stop the proxies and the mocks.
    pub async fn shutdown(self) {
        self.engine.clear_all();
        if let Some(p) = &self.proxy {
            p.shutdown();
        }
        if let Some(sf) = self.salesforce {
            sf.shutdown().await;
        }
        if let Some(llm) = self.llm {
            llm.shutdown().await;
        }
    }
}
