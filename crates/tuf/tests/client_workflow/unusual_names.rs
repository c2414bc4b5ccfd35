//! Unusual role names and target paths never escape the metadata or download directory.
use crate::common::*;
use serde_json::json;
use tuf::metadata::TargetFile;

fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn odd_role_names_are_stored_as_safe_file_names() {
    let mut env = Env::new();
    for (i, name) in ["../escape", "a/b", "sp ace", "ünïcødé", "?#%"]
        .into_iter()
        .enumerate()
    {
        let path = format!("r{i}/file");
        env.repo
            .add_delegation(
                "targets",
                name,
                Some(vec![format!("r{i}/*")]),
                None,
                false,
                1,
                1,
            )
            .unwrap();
        env.repo
            .add_target_bytes(name, &path, name.as_bytes(), None)
            .unwrap();
    }
    env.repo.publish().unwrap();
    let mut up = env.updater();
    up.refresh().unwrap();
    for i in 0..5 {
        let info = up.target_info(&format!("r{i}/file")).unwrap().unwrap();
        let p = up
            .download_target(&info, &env.download_dir(), &env.target_url())
            .unwrap();
        assert!(p.starts_with(env.download_dir()));
    }
    // Nothing was written outside the client's metadata directory.
    assert!(!env.tmp.path().join("escape.json").exists());
    for n in names_in(&env.client_dir()) {
        assert!(!n.contains('/') && n.ends_with(".json"), "{n}");
    }
    assert!(env.client_dir().join("..%2Fescape.json").exists());
}

#[test]
fn odd_target_paths_stay_inside_the_download_directory() {
    let mut env = Env::new();
    let odd = ["../x", "a/../b", "q?", "h#", "sp ace", "ünï/cødé", "/abs"];
    for p in odd {
        let body = format!("body of {p}");
        let hash = tuf::crypto::sha256_hex(body.as_bytes());
        let tf = TargetFile {
            length: body.len() as u64,
            hashes: [("sha256".to_string(), hash.clone())].into(),
            custom: Some(json!({"note": p})),
            unknown: Default::default(),
        };
        env.repo.add_target_meta("targets", p, tf).unwrap();
        // Place the file where a file-system mirror would resolve its URL.
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
        let on_disk = std::path::Path::new(&env.target_url())
            .join(dir.trim_start_matches('/'))
            .join(format!("{hash}.{name}"));
        std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
        std::fs::write(&on_disk, &body).unwrap();
    }
    env.repo.publish().unwrap();
    let mut up = env.updater();
    up.refresh().unwrap();
    let dl = env.download_dir();
    for p in odd {
        let info = up.target_info(p).unwrap().unwrap();
        let local = up.download_target(&info, &dl, &env.target_url()).unwrap();
        assert_eq!(local.parent().unwrap(), dl, "{p}");
        assert_eq!(
            std::fs::read_to_string(&local).unwrap(),
            format!("body of {p}")
        );
    }
    assert_eq!(names_in(&dl).len(), odd.len());
    assert!(!env.tmp.path().join("x").exists());
}
