//! A relay serves the standard TUF layout: clients (ours and python-tuf's) download through it;
//! metadata comes from memory with strong ETags and 304s; targets support Range and If-Range;
//! `/healthz`, `/status` and `/metrics` report what it does.
use crate::common::*;
use reqwest::header;

#[test]
fn clients_download_through_a_relay_with_etags_ranges_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    let out = relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    assert_eq!(out["changed"], true);
    assert_eq!(out["downloaded"], 2);
    // A second sync with nothing new changes nothing and downloads nothing.
    let again = relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    assert_eq!(
        (again["changed"].as_bool(), again["downloaded"].as_u64()),
        (Some(false), Some(0))
    );
    drop(origin);

    let relay = relay_offline(&repo.root_v1, &cache);
    let target = "content/antimalware.pattern/18.523.00/antimalware.pattern.dat";
    let body = client_download(
        &tmp.path().join("md"),
        &repo.root_v1,
        &relay.base,
        target,
        &tmp.path().join("dl"),
    )
    .unwrap();
    assert_eq!(body, b"pattern 18.523.00");

    let c = http();
    // Metadata: strong ETag, short cache for timestamp.json, 304 on If-None-Match.
    let ts = c
        .get(format!("{}/metadata/timestamp.json", relay.base))
        .send()
        .unwrap();
    assert_eq!(ts.status(), 200);
    let etag = ts.headers()[header::ETAG].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    assert_eq!(ts.headers()[header::CACHE_CONTROL], "public, max-age=10");
    let nm = c
        .get(format!("{}/metadata/timestamp.json", relay.base))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .unwrap();
    assert_eq!(nm.status(), 304);
    assert!(nm.bytes().unwrap().is_empty());
    let other = c
        .get(format!("{}/metadata/timestamp.json", relay.base))
        .header(header::IF_NONE_MATCH, "\"nope\"")
        .send()
        .unwrap();
    assert_eq!(other.status(), 200);
    let root1 = c
        .get(format!("{}/metadata/1.root.json", relay.base))
        .send()
        .unwrap();
    assert_eq!(
        root1.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        root1.bytes().unwrap(),
        std::fs::read(&repo.root_v1).unwrap()
    );
    assert_eq!(
        c.get(format!("{}/metadata/9.root.json", relay.base))
            .send()
            .unwrap()
            .status(),
        404
    );

    // Targets: hash-prefixed name, Range, If-Range, HEAD.
    let hash = tuf::crypto::sha256_hex(b"pattern 18.523.00");
    let url = format!(
        "{}/targets/content/antimalware.pattern/18.523.00/{hash}.antimalware.pattern.dat",
        relay.base
    );
    let part = c
        .get(&url)
        .header(header::RANGE, "bytes=8-")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 8-16/17");
    assert_eq!(part.bytes().unwrap().as_ref(), b"18.523.00");
    let stale = c
        .get(&url)
        .header(header::RANGE, "bytes=8-")
        .header(header::IF_RANGE, "\"old\"")
        .send()
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().unwrap().len(), 17);
    let fresh = c
        .get(&url)
        .header(header::RANGE, "bytes=0-6")
        .header(header::IF_RANGE, format!("\"{hash}\""))
        .send()
        .unwrap();
    assert_eq!(fresh.status(), 206);
    assert_eq!(
        c.get(&url)
            .header(header::RANGE, "bytes=99-")
            .send()
            .unwrap()
            .status(),
        416
    );
    let head = c.head(&url).send().unwrap();
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "17");
    assert_eq!(head.headers()[header::ACCEPT_RANGES], "bytes");

    // Reports.
    assert_eq!(
        c.get(format!("{}/healthz", relay.base))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok\n"
    );
    let status = get_json(&format!("{}/status", relay.base));
    assert_eq!(status["trusted_versions"]["root"], 1);
    assert_eq!(
        status["view"]["targets"], 4,
        "two targets, each by hash-prefixed and plain path: {status:#}"
    );
    let metrics = c
        .get(format!("{}/metrics", relay.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            "updraft_http_requests_total{server=\"relay\",kind=\"metadata\",outcome=\"not_modified\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("updraft_relay_partial_responses_total 2"),
        "{metrics}"
    );
}

#[test]
fn python_tuf_downloads_through_a_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    let relay = relay_offline(&repo.root_v1, &cache);
    let (md, dl) = (tmp.path().join("py-md"), tmp.path().join("py-dl"));
    std::fs::create_dir_all(&md).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::copy(&repo.root_v1, md.join("root.json")).unwrap();
    let script = format!(
        "{}/tests/python/ngclient_download.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new(python())
        .args([
            &script,
            md.to_str().unwrap(),
            &relay.base,
            dl.to_str().unwrap(),
            "content/ips.rules/2026.11.1/ips.rules.dat",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ngclient via relay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(std::fs::read(path).unwrap(), b"rules 2026.11.1");
}
