//! Agent benchmark (prints figures; no assertions on time):
//! - time to install a 100 MB engine component (download over loopback, verify, stage, swap);
//! - CPU time and bytes sent/received of an unchanged poll cycle (in-process agent, through a
//!   counting TCP proxy in front of the origin);
//! - idle RSS of the `updraft agent` daemon between polls.
//!
//! Run: `cargo bench -p updraft --bench agent`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tuf::repo::{InitOptions, Repository};
use updraft::launch::{self, Launcher, Logs};

/// CPU time (ns, /proc/self/task/*/schedstat) of this process's threads that belong to the agent:
/// all but the origin server's runtime ("origin") and the proxy ("proxy") threads.
fn agent_cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("origin") || comm.starts_with("proxy") {
            continue;
        }
        total += std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// A TCP proxy to `target` counting bytes in each direction; runs until the process ends.
fn counting_proxy(
    target: std::net::SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let spawn = |f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name("proxy".into())
            .spawn(f)
            .unwrap()
    };
    spawn(Box::new(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let pipe = |mut from: TcpStream, mut to: TcpStream, n: Arc<AtomicU64>| {
                spawn(Box::new(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(k) = from.read(&mut buf) {
                        if k == 0 || to.write_all(&buf[..k]).is_err() {
                            break;
                        }
                        n.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                }));
            };
            pipe(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                up.clone(),
            );
            pipe(server, client, down.clone());
        }
    }));
    format!("http://{addr}")
}

fn write_config(dir: &Path, relay: &str, root: &Path) -> std::path::PathBuf {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\ntrusted_root = {:?}\nrelays = [{relay:?}]\npoll_interval = 3600\n\n[[module]]\nname = \"antimalware\"\ncomponents = [\"antimalware.engine\", \"antimalware.pattern\"]\ninstall_dir = {:?}\n",
            dir.join("state").to_str().unwrap(),
            root.to_str().unwrap(),
            dir.join("av").to_str().unwrap()
        ),
    )
    .unwrap();
    cfg
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let mut repo = Repository::init(&repo_dir, &InitOptions::default()).unwrap();
    let engine: Vec<u8> = (0..100_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let info = |component: &str, kind: model::Kind| model::ContentInfo {
        kind,
        component: component.into(),
        version: "1.0".into(),
        product: None,
        requires_build: None,
        build: None,
        patch_id: None,
        platforms: vec![],
        urgent: false,
    };
    let e = info("antimalware.engine", model::Kind::Engine);
    repo.add_target_bytes(
        "targets",
        &e.target_path("engine.bin").unwrap(),
        &engine,
        Some(e.to_custom()),
    )
    .unwrap();
    let p = info("antimalware.pattern", model::Kind::Pattern);
    repo.add_target_bytes(
        "targets",
        &p.target_path("main.hdb").unwrap(),
        b"pattern",
        Some(p.to_custom()),
    )
    .unwrap();
    repo.publish().unwrap();
    drop(engine);
    let root = repo_dir.join("metadata/1.root.json");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("origin")
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(transport::serve_origin(&repo_dir, "127.0.0.1:0"))
        .unwrap();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let proxy = counting_proxy(server.addr, up.clone(), down.clone());

    // 1. Install of a 100 MB engine.
    let cfg = write_config(tmp.path(), &proxy, &root);
    let agent = agent::Agent::new(agent::AgentConfig::load(&cfg).unwrap()).unwrap();
    let t = Instant::now();
    let r = agent.cycle().unwrap();
    let install = t.elapsed();
    assert_eq!(r.installed.len(), 2, "{r:?}");
    println!(
        "install 100 MB engine (download over loopback + verify + stage + fsync + swap): {:.2} s ({:.0} MB/s)",
        install.as_secs_f64(),
        100.0 / install.as_secs_f64()
    );

    // 2. Unchanged poll cycles: CPU and bytes.
    agent.cycle().unwrap(); // settle (status written once)
    let runs = 200u64;
    let (u0, d0, c0) = (
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        agent_cpu_ns(),
    );
    let t = Instant::now();
    for _ in 0..runs {
        let r = agent.cycle().unwrap();
        assert!(r.timestamp_unchanged && !r.status_written);
    }
    let wall = t.elapsed();
    let cpu = agent_cpu_ns() - c0;
    let (sent, received) = (
        up.load(Ordering::Relaxed) - u0,
        down.load(Ordering::Relaxed) - d0,
    );
    println!(
        "unchanged poll cycle: {:.2} ms CPU (agent threads incl. the HTTP client's), {:.2} ms wall, {} B sent, {} B received per cycle \
         (requests: the spec's probe for the next root, 404, and timestamp.json)",
        cpu as f64 / runs as f64 / 1e6,
        wall.as_secs_f64() * 1000.0 / runs as f64,
        sent / runs,
        received / runs
    );
    drop(agent);

    // 3. Idle RSS of the daemon between polls (after its first cycle, which installs everything).
    let state2 = tmp.path().join("daemon");
    std::fs::create_dir_all(&state2).unwrap();
    let cfg2 = write_config(&state2, &proxy, &root);
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/updraft");
    let bin = if bin.exists() {
        bin
    } else {
        Path::new(env!("CARGO_BIN_EXE_updraft")).to_path_buf()
    };
    let agent = Launcher::new(&bin)
        .daemon(
            &["agent", "--config", cfg2.to_str().unwrap()],
            &[],
            Logs::Discard,
        )
        .unwrap();
    let status = state2.join("state/status.json");
    let first_cycle = launch::eventually(
        "the daemon's first cycle",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || match std::fs::read_to_string(&status) {
            Ok(s) if s.contains("\"last_result\": \"ok\"") => Ok(()),
            Ok(s) => Err(s),
            Err(e) => Err(e.to_string()),
        },
    );
    if let Err(e) = first_cycle {
        eprintln!("{e}");
    }
    // Let it settle between polls before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let pid = agent.id().unwrap();
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = proc_status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?")
        .to_string();
    println!(
        "idle daemon between polls ({}): {}",
        bin.display(),
        rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    );
    agent.kill();
    rt.block_on(server.shutdown()).unwrap();
}
