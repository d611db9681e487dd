//! A self-contained HTML report of one run: the SLO table, and an SVG timeline with fault
//! bands, requests per dependency per second coloured by status, the breaker state inferred
//! from the traffic (seconds of silence toward a dependency during its outage), and the
//! workload's latency. No scripts, no external assets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::checks::traffic::fault_windows;
use crate::checks::Verdict;
use crate::fault::FaultEvent;
use crate::report::RunReport;
use crate::timeline::{Phase, Timeline};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 1000.0;
const LEFT: f64 = 120.0;
const DEPS: [&str; 3] = ["salesforce", "salesforce-auth", "llm"];

/// The timeline's geometry: seconds on the x axis, one row per dependency, the latency
/// row under them.
struct Frame {
    end_s: f64,
    secs: usize,
    bar_w: f64,
    row_h: f64,
    lat_top: f64,
    lat_h: f64,
    height: f64,
}

impl Frame {
    fn new(t: &Timeline) -> Self {
        let end_s = (t.end_us() as f64 / 1e6).max(1.0);
        let row_h = 60.0;
        let lat_top = 40.0 + row_h * DEPS.len() as f64 + 20.0;
        let lat_h = 120.0;
        Self {
            end_s,
            secs: end_s.ceil() as usize,
            bar_w: ((W - LEFT - 10.0) / end_s).max(1.0),
            row_h,
            lat_top,
            lat_h,
            height: lat_top + lat_h + 40.0,
        }
    }

    fn x(&self, us: u64) -> f64 {
        LEFT + (us as f64 / 1e6) / self.end_s * (W - LEFT - 10.0)
    }
}

/// The SVG timeline.
pub fn timeline_svg(t: &Timeline) -> String {
    let f = Frame::new(t);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {}" width="100%" role="img" aria-label="run timeline">"#,
        f.height
    );
    let faults: Vec<&FaultEvent> = t.faults().collect();
    fault_bands(&mut s, &f, &faults, t.end_us());
    for (row, dep) in DEPS.iter().enumerate() {
        dependency_row(&mut s, &f, t, &faults, row, dep);
    }
    latency_row(&mut s, &f, t);
    // Time axis.
    let step = ((f.end_s / 10.0).ceil() as usize).max(1);
    for i in (0..=f.secs).step_by(step) {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#666">{i}s</text>"##,
            LEFT + i as f64 * f.bar_w,
            f.height - 8.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Fault bands, over every row.
fn fault_bands(s: &mut String, f: &Frame, faults: &[&FaultEvent], end_us: u64) {
    for (i, (start, stop, label)) in fault_windows(faults, None, &[], end_us).iter().enumerate() {
        let (x0, x1) = (f.x(*start), f.x(*stop).max(f.x(*start) + 1.0));
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="20" width="{:.1}" height="{:.1}" fill="#f5c542" opacity="0.25"><title>{} {:.1}s–{:.1}s</title></rect>"##,
            x1 - x0,
            f.height - 40.0,
            esc(label),
            *start as f64 / 1e6,
            *stop as f64 / 1e6
        );
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#8a6d00">{}</text>"##,
            x0 + 2.0,
            10.0 + (i % 2) as f64 * 10.0,
            esc(label)
        );
    }
}

/// Requests to one dependency per second, stacked by status class, and the seconds of an
/// outage with no call at all (the breaker, inferred).
fn dependency_row(
    s: &mut String,
    f: &Frame,
    t: &Timeline,
    faults: &[&FaultEvent],
    row: usize,
    dep: &str,
) {
    let top = 40.0 + f.row_h * row as f64;
    let mut per_sec: Vec<[u32; 3]> = vec![[0; 3]; f.secs + 1];
    for r in t.requests().filter(|r| r.dependency.as_str() == dep) {
        let i = ((r.at_us as f64 / 1e6) as usize).min(f.secs);
        let class = match r.status {
            200..=399 => 0,
            400..=499 if r.status != 429 => 1,
            _ => 2,
        };
        per_sec[i][class] += 1;
    }
    let max = per_sec
        .iter()
        .map(|c| c.iter().sum::<u32>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let _ = write!(
        s,
        r##"<text x="4" y="{:.1}" font-size="12">{dep}</text><text x="4" y="{:.1}" font-size="9" fill="#666">max {max}/s</text>"##,
        top + f.row_h / 2.0,
        top + f.row_h / 2.0 + 12.0
    );
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ccc"/>"##,
        top + f.row_h - 5.0,
        W - 10.0,
        top + f.row_h - 5.0
    );
    for (i, c) in per_sec.iter().enumerate() {
        let mut y = top + f.row_h - 5.0;
        for (k, colour) in [(0usize, "#3a9a4b"), (1, "#e08a1e"), (2, "#c8312b")] {
            if c[k] == 0 {
                continue;
            }
            let h = c[k] as f64 / max * (f.row_h - 12.0);
            y -= h;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"><title>{dep} {i}s: {} {}</title></rect>"#,
                LEFT + i as f64 * f.bar_w,
                (f.bar_w - 1.0).max(0.5),
                c[k],
                ["2xx/3xx", "4xx", "5xx/429/lost"][k]
            );
        }
    }
    for (start, stop, _) in fault_windows(faults, Some(dep), &[], t.end_us()) {
        let (a, b) = (
            (start as f64 / 1e6) as usize,
            ((stop as f64 / 1e6).ceil() as usize).min(f.secs),
        );
        for (i, c) in per_sec.iter().enumerate().take(b).skip(a + 1) {
            if c.iter().sum::<u32>() == 0 {
                let _ = write!(
                    s,
                    r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="4" fill="#555"><title>{dep} {i}s: no calls (breaker open?)</title></rect>"##,
                    LEFT + i as f64 * f.bar_w,
                    top + f.row_h - 4.0,
                    f.bar_w.max(1.0)
                );
            }
        }
    }
}

/// Workload latency: one dot per completed operation.
fn latency_row(s: &mut String, f: &Frame, t: &Timeline) {
    let done: Vec<_> = t.ops().filter(|o| o.phase != Phase::Invoke).collect();
    let max_lat = done
        .iter()
        .filter_map(|o| o.latency_us)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (lat_top, lat_h) = (f.lat_top, f.lat_h);
    let _ = write!(
        s,
        r##"<text x="4" y="{:.1}" font-size="12">workload</text><text x="4" y="{:.1}" font-size="9" fill="#666">latency, max {:.2}s</text>"##,
        lat_top + lat_h / 2.0,
        lat_top + lat_h / 2.0 + 12.0,
        max_lat / 1e6
    );
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ccc"/>"##,
        lat_top + lat_h,
        W - 10.0,
        lat_top + lat_h
    );
    for o in done {
        let l = o.latency_us.unwrap_or(0) as f64;
        let colour = match o.phase {
            Phase::Ok => "#3a9a4b",
            Phase::Fail => "#c8312b",
            _ => "#7b4fc9",
        };
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{colour}"><title>op {} {} {:?} {:.3}s</title></circle>"#,
            f.x(o.at_us),
            lat_top + lat_h - l / max_lat * (lat_h - 5.0),
            o.op,
            esc(&o.name),
            o.phase,
            l / 1e6
        );
    }
}

/// The whole page.
pub fn render(report: &RunReport, t: &Timeline) -> String {
    let mut rows = String::new();
    for slo in &report.slos {
        let (cls, v) = match slo.verdict {
            Verdict::Pass => ("pass", "pass"),
            Verdict::Fail => ("fail", "FAIL"),
            Verdict::Skip => ("skip", "skip"),
        };
        let evidence: String = slo
            .evidence
            .iter()
            .map(|e| format!("<li>{}</li>", esc(e)))
            .collect();
        let _ = write!(rows, "<tr class=\"{cls}\"><td>{}</td><td>{v}</td><td>{}</td><td>{}</td><td><ul>{evidence}</ul></td></tr>", esc(&slo.slo), esc(&slo.measured), esc(&slo.target));
    }
    let status = match (&report.aborted, report.passed()) {
        (Some(a), _) => format!("ABORTED: {}", esc(a)),
        (None, true) => "all SLOs met".into(),
        (None, false) => "SLO FAILED".into(),
    };
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in t.requests() {
        *counts.entry(r.dependency.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let [inv, ok, fail, info] = report.operations;
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>crashcart: {name}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}}
tr.fail td:nth-child(2){{color:#c8312b;font-weight:bold}}tr.pass td:nth-child(2){{color:#3a9a4b}}tr.skip td:nth-child(2){{color:#888}}ul{{margin:0;padding-left:1em}}code{{background:#f3f3f3;padding:1px 4px}}</style></head>
<body><h1>{name}: {status}</h1>
<p>seed <code>{seed}</code> · replay <code>{replay}</code> · {dur:.1}s · workload {inv} operations ({ok} ok, {fail} fail, {info} unknown) · mock requests {counts}</p>
<h2>SLOs</h2><table><tr><th>SLO</th><th>verdict</th><th>measured</th><th>target</th><th>evidence</th></tr>{rows}</table>
<h2>Timeline</h2><p>Yellow bands: faults. Bars: requests per second per dependency (green 2xx/3xx, orange 4xx, red 5xx/429/lost). Dark marks: seconds of silence toward a dependency during its outage (an open breaker, inferred). Dots: workload latency (green ok, red fail, purple unknown).</p>
{svg}
</body></html>
"#,
        name = esc(&report.scenario),
        seed = report.seed,
        replay = esc(&report.replay),
        dur = report.duration_s,
        counts = esc(&counts.join(", ")),
        svg = timeline_svg(t),
    )
}
