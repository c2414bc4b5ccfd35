//! Sources in order: a source that does not answer is passed over and reported; a source that
//! serves wrong target bytes is skipped for the next one and reported.

use std::sync::Arc;

use crate::support::{Bed, Steered};

#[test]
fn an_unreachable_first_relay_is_passed_over_and_reported() {
    let mut bed = Bed::new();
    let dead = "file:///nonexistent/relay-1".to_string();
    let real = bed.url();
    bed.relays = vec![dead.clone(), real.clone()];
    let fetcher = Arc::new(Steered {
        refused: vec![dead.clone()],
        ..Steered::default()
    });
    let report = bed.agent_with(fetcher).cycle().unwrap();
    assert_eq!(report.source.as_deref(), Some(real.as_str()));
    assert_eq!(bed.pattern(), "pattern 18.523.00");
    let status = bed.state().status().unwrap();
    assert_eq!(status.rejected.len(), 1, "{:?}", status.rejected);
    assert!(
        status.rejected[0].starts_with(&format!("rejected {dead}"))
            && status.rejected[0].contains("connection refused"),
        "{:?}",
        status.rejected
    );
}

#[test]
fn a_relay_serving_wrong_target_bytes_is_skipped_for_the_next_and_reported() {
    let mut bed = Bed::new();
    // Two relays over the same repository; the first tampers with every target.
    let first = bed.url();
    let second = format!("{first}/../repo");
    bed.relays = vec![first.clone(), second];
    let fetcher = Arc::new(Steered {
        tampered: vec![format!("{first}/targets/")],
        ..Steered::default()
    });
    let report = bed.agent_with(fetcher).cycle().unwrap();
    assert_eq!(
        report.source.as_deref(),
        Some(first.as_str()),
        "metadata from the first"
    );
    assert_eq!(
        bed.pattern(),
        "pattern 18.523.00",
        "verified bytes from the second"
    );
    let status = bed.state().status().unwrap();
    assert_eq!(status.last_result, "ok");
    assert!(
        status
            .rejected
            .iter()
            .any(|r| r.starts_with(&format!("rejected {first}/targets"))),
        "{:?}",
        status.rejected
    );
}

#[test]
fn when_no_source_answers_modules_go_offline_with_the_reason_and_content_stays() {
    let bed = Bed::new();
    bed.agent().cycle().unwrap();
    let fetcher = Arc::new(Steered {
        refused: vec![bed.url()],
        ..Steered::default()
    });
    bed.agent_with(fetcher).cycle().unwrap();
    let status = bed.state().status().unwrap();
    assert_eq!(status.last_result, "failed");
    let m = &status.modules[0];
    assert_eq!(m.status, model::protocol::ModuleState::Offline);
    assert!(
        m.reason
            .as_deref()
            .unwrap()
            .starts_with("update source unreachable since"),
        "{m:?}"
    );
    assert_eq!(
        bed.pattern(),
        "pattern 18.523.00",
        "what was installed stays"
    );
}
