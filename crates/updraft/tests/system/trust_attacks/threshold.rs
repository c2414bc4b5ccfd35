//! Thresholds through the real agent: a timestamp whose `signatures` list one key id twice is
//! invalid (TUF: key ids in `signatures` must be unique), so the agent installs nothing from it
//! and says why.

use crate::common::*;

#[test]
fn a_duplicated_signature_makes_the_agent_refuse_the_metadata() {
    let bed = AgentBed::new();
    bed.repo.add(
        "antimalware.pattern",
        "18.600.00",
        "pattern",
        b"pattern 18.600.00",
    );
    bed.repo.publish();
    let ts = bed.repo.dir.join("metadata/timestamp.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ts).unwrap()).unwrap();
    let sig = v["signatures"][0].clone();
    v["signatures"].as_array_mut().unwrap().push(sig);
    std::fs::write(&ts, serde_json::to_vec(&v).unwrap()).unwrap();
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    assert!(!bed.path("av/antimalware.pattern.dat").exists());
    let st = bed.status(&cfg);
    assert_eq!(st["last_result"], "failed", "{st:#}");
    assert!(
        st["errors"].to_string().contains("more than once"),
        "{st:#}"
    );
}
