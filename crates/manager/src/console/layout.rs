//! The console's page frame and the small pieces every page uses.

use maud::{html, Markup, DOCTYPE};

use super::Viewer;
use crate::db::UserRole;

/// The navigation: (path, label, the role it needs).
const NAV: &[(&str, &str, UserRole)] = &[
    ("/console/", "Overview", UserRole::Auditor),
    ("/console/hosts", "Hosts", UserRole::Auditor),
    ("/console/rollouts", "Rollouts", UserRole::Auditor),
    ("/console/relays", "Relay tree", UserRole::Auditor),
    ("/console/groups", "Groups and policy", UserRole::Auditor),
    ("/console/advisories", "Advisories", UserRole::Auditor),
    ("/console/coverage", "Patch coverage", UserRole::Auditor),
    ("/console/plan", "Upgrade plan", UserRole::Auditor),
    ("/console/tokens", "Enrolment", UserRole::Auditor),
    ("/console/users", "Users", UserRole::Admin),
    ("/console/audit", "Audit log", UserRole::Auditor),
];

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Updraft" }
                link rel="stylesheet" href="/console/static/console.css";
                link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml";
            }
            body { (body) }
        }
    }
}

/// A page of the signed-in console: navigation (the current page marked), who is signed in,
/// sign-out, then `body`.
pub fn page(v: &Viewer, here: &str, title: &str, body: Markup) -> Markup {
    let person = &v.0.person;
    bare(
        title,
        html! {
            header {
                nav aria-label="Console" {
                    ul {
                        @for (path, label, _) in NAV.iter().filter(|(_, _, r)| v.may(*r)) {
                            li {
                                @if *path == here {
                                    a href=(path) aria-current="page" { (label) }
                                } @else {
                                    a href=(path) { (label) }
                                }
                            }
                        }
                    }
                }
                form.signout method="post" action="/console/logout" {
                    span { (person.name) " (" (person.role) ")" }
                    (csrf(v))
                    button type="submit" { "Sign out" }
                }
            }
            main {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// The hidden CSRF field of a state-changing form.
pub fn csrf(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.0.csrf); }
}

/// A link to the next page of a list, if there is one (`query` already holds the filters).
pub fn next_link(base: &str, query: &str, next: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = next {
            p.pager {
                a href={ (base) "?" (query) "after=" (urlencode(n)) } rel="next" { "Next page" }
            }
        }
    }
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A status word with its class (online, degraded, offline, …).
pub fn status(word: &str) -> Markup {
    html! { span class={ "status " (word) } { (word) } }
}

/// A step chart of how many hosts had taken a version over time (`took`: RFC 3339 times,
/// oldest first) since `start`, out of `total`: inline SVG (no script, no style attribute).
pub fn adoption_chart(start: &str, took: &[String], total: usize) -> Markup {
    let parse = |t: &str| tuf::metadata::parse_expires("took", t).ok();
    let (Some(t0), true) = (parse(start), total > 0) else {
        return html! {};
    };
    let times: Vec<f64> = took
        .iter()
        .filter_map(|t| parse(t))
        .map(|t| (t - t0).as_seconds_f64().max(0.0))
        .collect();
    let span = times.last().copied().unwrap_or(0.0).max(1.0);
    let (w, h) = (400.0, 120.0);
    let mut points = format!("0,{h}");
    for (i, t) in times.iter().enumerate() {
        let x = t / span * w;
        let y = h - (i as f64 + 1.0) / total as f64 * h;
        points.push_str(&format!(
            " {x:.1},{:.1} {x:.1},{y:.1}",
            h - i as f64 / total as f64 * h
        ));
    }
    let label = format!(
        "{} of {total} hosts took the version within {:.0} s of the rollout's start",
        times.len(),
        span
    );
    html! {
        figure.chart {
            svg viewBox="0 0 400 120" width="400" height="120" role="img" aria-label=(label) {
                rect x="0" y="0" width="400" height="120" fill="#f6f8fa" stroke="#c9d1d9";
                polyline points=(points) fill="none" stroke="#0b5cad" stroke-width="2";
            }
            figcaption { (label) }
        }
    }
}
