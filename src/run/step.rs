//! One step of a workload operation, run: a request to the SUT, a write to the mock org as
//! one of its users, or a command with the SUT contract's environment; then its answer held
//! against the step's expectations, and its captures taken.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crashcart_mocks::SalesforceHandle;
use http::HeaderMap;
use serde_json::{json, Value};

use super::recorder::Recorder;
use crate::scenario::raw::Command;
use crate::scenario::step::{Action, CaptureFrom, Expect, OrgAction, OrgWrite, Step, ValueCheck};
use crate::scenario::template::{self, Lookup};
use crate::transport::{HttpRequest, Transport, TransportError};

/// What a command step runs with: the SUT contract's environment and the SUT's directory.
#[derive(Clone, Debug, Default)]
pub struct CommandEnv {
    /// Working directory.
    pub cwd: PathBuf,
    /// Environment variables (the contract's, `sut.env`, `--sut-env`).
    pub env: Vec<(String, String)>,
    /// Values scrubbed from its output.
    pub secrets: Vec<String>,
}

/// Where steps act.
#[derive(Clone)]
pub struct StepContext {
    /// Base URL of the SUT.
    pub base: String,
    /// How requests reach it.
    pub transport: Transport,
    /// The mock org, for org actions.
    pub org: Option<SalesforceHandle>,
    /// For command steps.
    pub command: Arc<CommandEnv>,
    /// Where command output goes.
    pub recorder: Recorder,
}

/// The operation a step belongs to, as its requests carry it (`x-crashcart-op`, W3C
/// `traceparent`) and its commands' environment (`CRASHCART_OP`, `TRACEPARENT`,
/// OpenTelemetry's environment carrier).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpIdentity<'a> {
    /// The operation's key.
    pub key: &'a str,
    /// Its W3C trace context.
    pub traceparent: &'a str,
}

impl OpIdentity<'_> {
    fn headers(&self) -> [(&'static str, &str); 2] {
        [
            ("x-crashcart-op", self.key),
            ("traceparent", self.traceparent),
        ]
    }

    fn env(&self) -> [(String, String); 2] {
        [
            ("CRASHCART_OP".into(), self.key.into()),
            ("TRACEPARENT".into(), self.traceparent.into()),
        ]
    }
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StepEnd {
    /// Answered as expected.
    Ok {
        /// Its status (HTTP status, or exit status of a command).
        status: u16,
    },
    /// Answered, but not as expected.
    Fail {
        /// Its status.
        status: Option<u16>,
        /// The first unmet expectation.
        reason: String,
    },
    /// No answer: timeout or connection error (outcome unknown).
    Info {
        /// What happened.
        reason: String,
    },
}

/// An answer to hold against expectations.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

/// Run a step within `timeout`; what it captured goes into `vars`.
pub async fn run_step(
    step: &Step,
    ctx: &StepContext,
    vars: &mut BTreeMap<String, String>,
    values: &BTreeMap<&'static str, String>,
    op: OpIdentity<'_>,
    timeout: Duration,
) -> StepEnd {
    let answer = {
        let lookup = (values, &*vars);
        match &step.action {
            Action::Request {
                method,
                path,
                body,
                headers,
            } => {
                let path = template::render(path, &lookup);
                let mut req = HttpRequest::new(method.clone(), format!("{}{path}", ctx.base));
                for (k, v) in op.headers() {
                    req = req.header(k, v);
                }
                for (k, v) in headers {
                    req = req.header(k, &template::render(v, &lookup));
                }
                if let Some(b) = body {
                    req = req.json(&template::render_json(b, &lookup));
                }
                match ctx.transport.send(req, Some(timeout)).await {
                    Ok(r) => Answer {
                        status: r.status,
                        body: r.json(),
                        headers: r.headers,
                    },
                    Err(TransportError::Timeout) => {
                        return StepEnd::Info {
                            reason: format!("{}: timeout", step.name),
                        }
                    }
                    Err(e) => {
                        return StepEnd::Info {
                            reason: format!("{}: {e}", step.name),
                        }
                    }
                }
            }
            Action::Org(a) => org_action(a, ctx.org.as_ref(), &lookup),
            Action::Run(c) => {
                return match run_command(c, ctx, op, timeout).await {
                    Ok(code) => judge_exit(&step.name, &step.expect, code),
                    Err(reason) => StepEnd::Info {
                        reason: format!("{}: {reason}", step.name),
                    },
                }
            }
        }
    };
    let lookup = (values, &*vars);
    if let Err(reason) = judge(&step.expect, &answer, &lookup) {
        return StepEnd::Fail {
            status: Some(answer.status),
            reason: format!("{}: {reason}", step.name),
        };
    }
    for c in &step.captures {
        match capture(&c.from, &answer) {
            Some(v) => {
                vars.insert(c.var.clone(), v);
            }
            None => {
                return StepEnd::Fail {
                    status: Some(answer.status),
                    reason: format!(
                        "{}: nothing to capture into {} ({})",
                        step.name,
                        c.var,
                        match &c.from {
                            CaptureFrom::Pointer(p) => format!("no {p} in the body"),
                            CaptureFrom::Header(h) => format!("no {h} header"),
                        }
                    ),
                }
            }
        }
    }
    StepEnd::Ok {
        status: answer.status,
    }
}

/// An org write as one of its users, answered as the REST API answers it.
fn org_action(a: &OrgAction, org: Option<&SalesforceHandle>, lookup: &impl Lookup) -> Answer {
    let answer = |status: u16, body: Value| Answer {
        status,
        headers: HeaderMap::new(),
        body,
    };
    let Some(org) = org else {
        return answer(
            503,
            json!([{"errorCode": "NO_MOCK_ORG", "message": "the scenario runs no mock Salesforce"}]),
        );
    };
    let fields = template::render_json(
        &Value::Object(a.fields.clone().into_iter().collect()),
        lookup,
    );
    let id = a.id.as_deref().map(|i| template::render(i, lookup));
    let done = match (a.write, id) {
        (OrgWrite::Create, _) => org
            .create_as(&a.object, fields, &a.user)
            .map(|id| answer(201, json!({"id": id, "success": true, "errors": []}))),
        (OrgWrite::Update, Some(id)) => org
            .update_as(&a.object, &id, fields, &a.user)
            .map(|()| answer(204, Value::Null)),
        (OrgWrite::Delete, Some(id)) => org
            .delete_as(&a.object, &id, &a.user)
            .map(|()| answer(204, Value::Null)),
        (_, None) => Ok(answer(
            400,
            json!([{"errorCode": "MISSING_ID", "message": "no record id"}]),
        )),
    };
    done.unwrap_or_else(|e| answer(e.status.as_u16(), json!([e.to_json()])))
}

/// Run a command to its end; its exit status, or why it has none. Past `timeout` (or when
/// the operation is dropped) its whole process group ends: SIGTERM, then SIGKILL after
/// [`COMMAND_GRACE`]. Its environment carries the operation's identity.
async fn run_command(
    c: &Command,
    ctx: &StepContext,
    op: OpIdentity<'_>,
    timeout: Duration,
) -> Result<u16, String> {
    let argv = super::sut::argv(c);
    let env = [ctx.command.env.as_slice(), &op.env()].concat();
    let mut child = super::sut::guarded(&argv, &ctx.command.cwd, &env)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", argv[0]))?;
    let group = GroupGuard(child.id().map(|p| p as i32).unwrap_or(0));
    let readers =
        super::sut::forward_output(&mut child, &ctx.recorder, &ctx.command.secrets, |_| {});
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            group.signal(libc::SIGTERM);
            if tokio::time::timeout(COMMAND_GRACE, child.wait())
                .await
                .is_err()
            {
                group.signal(libc::SIGKILL);
                let _ = child.wait().await;
            }
            return Err("timeout".into());
        }
    };
    // Stragglers of its group (a child it left behind) end with it.
    drop(group);
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
    }
    match status.code() {
        Some(code) => Ok(code as u16),
        None => Err("killed by a signal".into()),
    }
}

/// Between SIGTERM and SIGKILL for a command step past its time.
pub const COMMAND_GRACE: Duration = Duration::from_secs(2);

/// A command's process group, killed when dropped (the step ended, timed out, or the
/// operation was dropped mid-step).
struct GroupGuard(i32);

impl GroupGuard {
    fn signal(&self, sig: libc::c_int) {
        if self.0 > 0 {
            // SAFETY: signalling the process group created for this command.
            unsafe { libc::killpg(self.0, sig) };
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// `code` is among the expected ones, or (none given) passes `default`.
fn accepted(expected: &[u16], code: u16, default: impl Fn(u16) -> bool) -> bool {
    if expected.is_empty() {
        default(code)
    } else {
        expected.contains(&code)
    }
}

fn judge_exit(name: &str, e: &Expect, code: u16) -> StepEnd {
    if accepted(&e.status, code, |c| c == 0) {
        StepEnd::Ok { status: code }
    } else {
        StepEnd::Fail {
            status: Some(code),
            reason: format!(
                "{name}: exit status {code}, expected {}",
                wanted(&e.status, "0")
            ),
        }
    }
}

fn wanted(status: &[u16], default: &str) -> String {
    if status.is_empty() {
        return default.to_string();
    }
    let s: Vec<String> = status.iter().map(u16::to_string).collect();
    s.join(" or ")
}

/// The first unmet expectation, in words.
fn judge(e: &Expect, a: &Answer, lookup: &impl Lookup) -> Result<(), String> {
    if !accepted(&e.status, a.status, |c| (200..300).contains(&c)) {
        return Err(format!(
            "status {}, expected {}",
            a.status,
            wanted(&e.status, "2xx")
        ));
    }
    for (p, check) in &e.body {
        let v = a.body.pointer(p);
        judge_value(check, v, lookup).map_err(|m| format!("body {p} {m}"))?;
    }
    for (h, check) in &e.headers {
        let v = a
            .headers
            .get(h.as_str())
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()));
        judge_value(check, v.as_ref(), lookup).map_err(|m| format!("header {h} {m}"))?;
    }
    Ok(())
}

fn judge_value(c: &ValueCheck, v: Option<&Value>, lookup: &impl Lookup) -> Result<(), String> {
    match (c.exists, v) {
        (Some(true), None) => return Err("is absent, expected present".into()),
        (Some(false), Some(v)) => return Err(format!("is {}, expected absent", shown(v))),
        _ => {}
    }
    if let Some(want) = &c.equals {
        let want = template::render_json(want, lookup);
        let same = match (v, &want) {
            (Some(v), w) if v == w => true,
            // A header, or a number written as text: compared as text.
            (Some(Value::String(s)), w) if !w.is_string() => {
                let text = w.to_string();
                *s == text
            }
            _ => false,
        };
        if !same {
            return Err(match v {
                Some(v) => format!("is {}, expected {}", shown(v), shown(&want)),
                None => format!("is absent, expected {}", shown(&want)),
            });
        }
    }
    if let Some(p) = &c.matches {
        let text = match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(other) => {
                return Err(format!(
                    "is {}, expected text matching /{}/",
                    shown(other),
                    p.0
                ))
            }
            None => return Err(format!("is absent, expected text matching /{}/", p.0)),
        };
        if !p.0.is_match(&text) {
            return Err(format!(
                "is {}, expected text matching /{}/",
                shown(&Value::String(text)),
                p.0
            ));
        }
    }
    Ok(())
}

/// A value as a reason shows it: numbers, booleans and short identifier-like strings (ids,
/// statuses, codes) as they are; other text only by its length, since an answer may carry
/// patient data and reasons reach the reports.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s)
            if s.len() <= 40
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:-/".contains(c)) =>
        {
            format!("{s:?}")
        }
        Value::String(s) => format!("a text of {} characters", s.chars().count()),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

fn capture(from: &CaptureFrom, a: &Answer) -> Option<String> {
    match from {
        CaptureFrom::Pointer(p) => match a.body.pointer(p)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        },
        CaptureFrom::Header(h) => a
            .headers
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::step::Pattern;

    fn answer(status: u16, body: Value) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert("etag", "\"v1\"".parse().unwrap());
        Answer {
            status,
            headers,
            body,
        }
    }

    fn check(equals: Option<Value>, exists: Option<bool>, matches: Option<&str>) -> ValueCheck {
        ValueCheck {
            equals,
            exists,
            matches: matches.map(|m| Pattern(regex::Regex::new(m).unwrap())),
        }
    }

    fn vals() -> BTreeMap<&'static str, String> {
        template::values(1, 0)
    }

    #[test]
    fn the_default_expectation_is_a_2xx() {
        let e = Expect::default();
        assert!(judge(&e, &answer(201, Value::Null), &vals()).is_ok());
        let why = judge(&e, &answer(409, Value::Null), &vals()).unwrap_err();
        assert_eq!(why, "status 409, expected 2xx");
    }

    #[test]
    fn body_and_header_checks_give_the_first_unmet_one() {
        let e = Expect {
            status: vec![201],
            body: vec![
                ("/status".into(), check(Some(json!("booked")), None, None)),
                ("/id".into(), check(None, None, Some("^00U"))),
                ("/gone".into(), check(None, Some(false), None)),
            ],
            headers: vec![("etag".into(), check(None, Some(true), None))],
        };
        let good = answer(201, json!({"status": "booked", "id": "00U000000000001AAA"}));
        assert!(judge(&e, &good, &vals()).is_ok());
        let bad = answer(201, json!({"status": "pending", "id": "00U1"}));
        assert_eq!(
            judge(&e, &bad, &vals()).unwrap_err(),
            r#"body /status is "pending", expected "booked""#
        );
        let bad = answer(201, json!({"status": "booked", "id": "a0X1"}));
        assert!(judge(&e, &bad, &vals()).unwrap_err().contains("/id"));
        let bad = answer(201, json!({"status": "booked", "id": "00U1", "gone": 1}));
        assert!(judge(&e, &bad, &vals())
            .unwrap_err()
            .contains("expected absent"));
    }

    #[test]
    fn equals_is_templated_and_patient_text_is_never_quoted() {
        let v = vals();
        let key = v["key"].clone();
        let e = Expect {
            body: vec![("/key".into(), check(Some(json!("{{key}}")), None, None))],
            ..Expect::default()
        };
        assert!(judge(&e, &answer(200, json!({"key": key})), &v).is_ok());
        let why = judge(
            &e,
            &answer(200, json!({"key": "Ada Lovelace, born 1815, asthma"})),
            &v,
        )
        .unwrap_err();
        assert!(why.contains("a text of 31 characters"), "{why}");
        assert!(!why.contains("Lovelace"));
    }

    #[test]
    fn captures_read_pointers_and_headers() {
        let a = answer(201, json!({"id": "00U1", "n": 3, "none": null}));
        assert_eq!(
            capture(&CaptureFrom::Pointer("/id".into()), &a).as_deref(),
            Some("00U1")
        );
        assert_eq!(
            capture(&CaptureFrom::Pointer("/n".into()), &a).as_deref(),
            Some("3")
        );
        assert_eq!(capture(&CaptureFrom::Pointer("/none".into()), &a), None);
        assert_eq!(
            capture(&CaptureFrom::Header("etag".into()), &a).as_deref(),
            Some("\"v1\"")
        );
    }

    fn context(dir: &std::path::Path) -> StepContext {
        use crate::run::Events;
        use crate::timeline::journal::JournalWriter;
        StepContext {
            base: "http://127.0.0.1:9".into(),
            transport: Transport::sockets(),
            org: None,
            command: Arc::new(CommandEnv {
                cwd: dir.to_path_buf(),
                env: vec![("SALESFORCE_PASSWORD".into(), "s3cret-pw".into())],
                secrets: vec!["s3cret-pw".into()],
            }),
            recorder: Recorder::new(
                crashcart_mocks::Clock::new(),
                Events::none(),
                JournalWriter::create(dir.join("steps.jsonl")),
            ),
        }
    }

    fn run_step_of(cmd: &str) -> Step {
        Step {
            name: "job".into(),
            action: Action::Run(Command::Shell(cmd.into())),
            expect: Expect::default(),
            captures: vec![],
        }
    }

    #[tokio::test]
    async fn a_command_step_carries_the_operation_and_its_output_is_scrubbed() {
        let dir = std::env::temp_dir().join(format!("crashcart-step-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ctx = context(&dir);
        let op = OpIdentity {
            key: "CC-SYN-OP-1-000007",
            traceparent: "00-abc-def-01",
        };
        let step = run_step_of(
            r#"echo "op=$CRASHCART_OP tp=$TRACEPARENT pw=$SALESFORCE_PASSWORD"; exit 3"#,
        );
        let end = run_step(
            &step,
            &ctx,
            &mut BTreeMap::new(),
            &vals(),
            op,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(
            end,
            StepEnd::Fail {
                status: Some(3),
                reason: "job: exit status 3, expected 0".into()
            }
        );
        let lines: Vec<String> = ctx
            .recorder
            .take()
            .into_iter()
            .filter_map(|e| match e {
                crate::timeline::Event::SutLog(l) => Some(l.line.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            lines,
            ["op=CC-SYN-OP-1-000007 tp=00-abc-def-01 pw=[redacted]"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_command_past_its_time_ends_with_its_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("crashcart-step-t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ctx = context(&dir);
        // A child left behind in the background, and a parent that ignores SIGTERM.
        let pidfile = dir.join("child.pid");
        let step = run_step_of(&format!(
            "sleep 60 & echo $! > {}; trap '' TERM; sleep 60",
            pidfile.display()
        ));
        let end = run_step(
            &step,
            &ctx,
            &mut BTreeMap::new(),
            &vals(),
            OpIdentity::default(),
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(
            end,
            StepEnd::Info {
                reason: "job: timeout".into()
            }
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background child is gone too (reaped by init, or a zombie for a moment).
        let gone = (0..50).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the command's background child {pid} survived");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_command_is_judged_by_its_exit_status() {
        let e = Expect::default();
        assert_eq!(judge_exit("job", &e, 0), StepEnd::Ok { status: 0 });
        assert!(
            matches!(judge_exit("job", &e, 3), StepEnd::Fail { reason, .. } if reason == "job: exit status 3, expected 0")
        );
        let e = Expect {
            status: vec![0, 2],
            ..Expect::default()
        };
        assert_eq!(judge_exit("job", &e, 2), StepEnd::Ok { status: 2 });
    }
}
