//! `attest sandbox` end to end: the bundled suites pass against the loopback stand-ins.

use std::process::Command;

#[test]
fn sandbox_runs_the_bundled_suites_and_passes_every_kind() {
    let reports = tempfile::tempdir().unwrap();
    // With the Kubernetes binaries (scripts/test sets ATTEST_KUBE_BIN) the sandbox starts the
    // testbed too; without, it would build them (20-40 min), which a test must not do.
    let kubernetes = std::env::var_os("ATTEST_KUBE_BIN").is_some();
    let mut command = Command::new(env!("CARGO_BIN_EXE_attest"));
    command
        .args(["sandbox", "--report-dir"])
        .arg(reports.path());
    if !kubernetes {
        command.arg("--no-kubernetes");
    }
    let output = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    match kubernetes {
        true => assert!(stderr.contains("Kubernetes testbed ready in"), "{stderr}"),
        false => assert!(
            stderr.contains("Kubernetes testbed skipped: --no-kubernetes"),
            "{stderr}"
        ),
    }
    // Real nodes where they can run (root, the images, containerd; scripts/test provides them
    // all), else one line saying why not.
    let real_nodes = kubernetes && stderr.contains("attest: with real nodes k3s-real-01");
    if kubernetes && !real_nodes {
        assert!(stderr.contains("attest: real nodes skipped ("), "{stderr}");
    }
    if std::env::var_os("ATTEST_EXPECT_REAL_NODES").is_some() {
        assert!(real_nodes, "{stderr}");
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["target"], "sandbox");
    let results = json["results"].as_array().unwrap();
    let kinds = [
        "dns",
        "tcp",
        "http",
        "file",
        "command",
        "postgres",
        "sql",
        "pg-provision",
        "pg-crud",
        "pg-isolation",
        "pg-backup",
        "pg-ready",
    ];
    // pg-sentinel: story 5.2 reaches its PostgreSQL through a port-forward to the chart's
    // Service, so it needs the testbed too.
    let kube_kinds = [
        "kube",
        "pod-exec",
        "pod-logs",
        "pod-env",
        "pod-delete",
        "node-drain",
        "pg-sentinel",
    ];
    let kinds: Vec<&str> = match kubernetes {
        true => kinds.iter().chain(kube_kinds.iter()).copied().collect(),
        false => kinds.to_vec(),
    };
    for kind in kinds {
        assert!(
            results
                .iter()
                .any(|r| r["kind"] == kind && r["status"] == "passed"),
            "no passing `{kind}` result in {json:#}"
        );
    }
    for result in results {
        let kube = kube_kinds.contains(&result["kind"].as_str().unwrap());
        let message = result["message"].as_str().unwrap_or_default();
        // Kubernetes kinds, and checks reaching PostgreSQL through a port-forward (story 5.2).
        if !kubernetes && (kube || message.contains("needs the Kubernetes API")) {
            // Without the testbed they are skipped, saying why, never failed or passed.
            assert_eq!(result["status"], "skipped", "{result:#}");
            assert!(message.contains("no Kubernetes testbed"), "{result:#}");
            continue;
        }
        if real_nodes && result["suite"] == "story-5.2" && result["check"] == "volume-is-nfs" {
            // The real pod's claim is a host folder: the NFS criterion is not verified, and
            // the reason says why.
            assert_eq!(result["status"], "skipped", "{result:#}");
            assert!(
                message.contains("not verifiable here") && message.contains("hostPath"),
                "{result:#}"
            );
            continue;
        }
        if !kubernetes && result["message"].as_str().unwrap().contains("needs") {
            // Story 5.2's verifies after a disruption: without the disruption, nothing to verify.
            assert_eq!(result["status"], "skipped", "{result:#}");
            continue;
        }
        assert_eq!(result["status"], "passed", "{result:#}");
        assert!(
            !result["requirements"].as_array().unwrap().is_empty() || result["ac"].is_string(),
            "every sandbox result is tied to a requirement or AC: {result:#}"
        );
    }
    // The sandbox exits non-zero when a run leaves databases or roles behind, so exit 0 above
    // also means teardown removed everything the mutating checks created.
    assert!(!stderr.contains("left these behind"), "{stderr}");
    assert!(reports.path().join("junit.xml").exists());
    assert!(reports.path().join("report.md").exists());

    // Completion notes from the run: the first line says it was the sandbox, and the honest
    // states are there (5.2's pod delete and drain are verified on the testbed, not verified
    // without it; 10.2's NFR29 is measured by no check).
    let evidence = |story: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_attest"))
            .arg("evidence")
            .arg(reports.path().join("report.json"))
            .args(["--story", story])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    for story in ["5.2", "5.5", "10.2"] {
        let notes = evidence(story);
        assert!(
            notes.starts_with("**⚠ Sandbox run, not the live environment**"),
            "{notes}"
        );
        assert!(
            notes.contains("**Re-run**: `attest sandbox suites/story-"),
            "{notes}"
        );
    }
    let notes = evidence("5.2");
    for ac in ["4. ", "5. "] {
        let line = notes
            .lines()
            .find(|l| l.starts_with(ac))
            .unwrap_or_else(|| panic!("no line {ac}in {notes}"));
        match kubernetes {
            true => assert!(
                line.contains("✅ **AC") && line.contains(" verified**"),
                "{notes}"
            ),
            false => assert!(line.contains("not verified"), "{notes}"),
        }
    }
    let notes = evidence("10.2");
    assert!(
        notes.contains("⚠ **NFR29 not verified**: The system scales to 5,000+ documents — no check measures it (AC3 names it)"),
        "{notes}"
    );
    if kubernetes {
        assert!(notes.contains("3 of 3 criteria verified"), "{notes}");
        let notes = evidence("5.5");
        assert!(
            notes.contains("(measured through a port-forward to data/service postgres-postgresql"),
            "{notes}"
        );
    }

    // Story 5.5's checks marked `from: { namespace: apps }`: from here, labelled as measured
    // from outside; the DNS stand-in labelled simulated.
    let vantage = |results: &[serde_json::Value], check: &str| {
        let result = results
            .iter()
            .find(|r| r["suite"] == "story-5.5" && r["check"] == check)
            .unwrap_or_else(|| panic!("no story-5.5::{check}"))
            .clone();
        assert_eq!(result["status"], "passed", "{result:#}");
        result
    };
    let from_apps = ["service-dns", "tcp-connect-latency", "superuser-auth"];
    for check in from_apps {
        let result = vantage(results, check);
        assert_eq!(result["vantage"]["namespace"], "apps", "{result:#}");
        assert_eq!(result["vantage"]["holds"], false, "{result:#}");
        assert!(
            result["vantage"]["measured_from"]
                .as_str()
                .unwrap()
                .starts_with("from outside the cluster (host `"),
            "{result:#}"
        );
    }
    let dns = vantage(results, "service-dns");
    assert!(
        dns["simulated"]
            .as_str()
            .unwrap()
            .contains("DNS stand-in on 127.0.0.1:"),
        "{dns:#}"
    );
    assert!(
        evidence("5.5").contains("not from a pod in namespace `apps` as the criterion asks"),
        "the completion notes say where it was measured"
    );

    // With real nodes the same checks run again from a pod in `apps` (`attest job` with
    // attest's image built from this binary), where the criterion holds; its reports beside.
    if real_nodes {
        assert!(
            stderr.contains("attest: in-cluster run: story-5.5 from namespace apps"),
            "{stderr}"
        );
        assert!(stderr.contains("the pod's attest exited 0"), "{stderr}");
        // The last line is the whole run's verdict: from outside, then from the pod.
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("PASSED ")
                && last.ends_with(" · from a pod in apps: PASSED 3 · 6 not selected by the filter"),
            "{last}"
        );
        assert!(
            stderr.contains("deleted the 6 objects created and the pod"),
            "{stderr}"
        );
        let inside: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(reports.path().join("in-cluster/report.json")).unwrap(),
        )
        .unwrap();
        assert!(
            inside["environment"]["runs in"]
                .as_str()
                .is_some_and(|p| p.contains("in namespace `apps` on node `k3s-real-0")),
            "{inside:#}"
        );
        let results = inside["results"].as_array().unwrap();
        for check in from_apps {
            let result = vantage(results, check);
            assert_eq!(result["vantage"]["holds"], true, "{result:#}");
        }
        let dns = vantage(results, "service-dns");
        assert!(
            dns["simulated"]
                .as_str()
                .unwrap()
                .contains("on 100.64.0.1:53"),
            "{dns:#}"
        );
        // The completion notes of both runs: the results from `apps` where the criteria ask.
        let output = Command::new(env!("CARGO_BIN_EXE_attest"))
            .arg("evidence")
            .arg(reports.path().join("report.json"))
            .arg("--with")
            .arg(reports.path().join("in-cluster/report.json"))
            .args(["--story", "5.5"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let notes = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let ac2: String = notes
            .split("\n2. ")
            .nth(1)
            .and_then(|rest| rest.split("\n3. ").next())
            .unwrap_or_default()
            .to_owned();
        assert!(ac2.starts_with("✅ **AC2 verified**"), "{notes}");
        for check in from_apps {
            let line = ac2
                .lines()
                .find(|l| l.contains(&format!("`{check}`")))
                .unwrap_or_else(|| panic!("no {check} in {ac2}"));
            assert!(
                line.contains("in namespace `apps` on node `k3s-real-0")
                    && line.contains(", as the criterion asks"),
                "{line}"
            );
        }
        assert!(notes.contains("**Also from another run** ("), "{notes}");
        // Only the `from:` checks and what they need ran there.
        let ran: Vec<&str> = results
            .iter()
            .filter(|r| r["status"] != "skipped")
            .filter_map(|r| r["check"].as_str())
            .collect();
        assert_eq!(ran, from_apps, "{inside:#}");
    }
}

#[test]
fn sandbox_without_postgresql_binaries_names_the_debian_package() {
    let reports = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "--report-dir"])
        .arg(reports.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PG_BINDIR", "/nonexistent")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("postgresql"), "{stderr}");
    assert!(
        stderr.contains("apt-get install") || stderr.contains("Debian"),
        "{stderr}"
    );
}

#[test]
fn sandbox_without_go_or_kubernetes_binaries_runs_the_rest_and_says_how_to_enable_it() {
    let reports = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "--report-dir"])
        .arg(reports.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ATTEST_KUBE_BIN", empty.path())
        // No Go on this PATH (Go lives in /usr/local/go/bin or ~/go), PostgreSQL still found.
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("attest: Kubernetes testbed skipped: "))
        .unwrap_or_else(|| panic!("no skip notice in:\n{stderr}"));
    assert!(
        line.contains("has no executable `kube-apiserver`"),
        "{line}"
    );
    assert!(line.contains("Go is not installed"), "{line}");
    assert!(line.contains("scripts/kube-build"), "{line}");
    assert!(reports.path().join("junit.xml").exists());
    // The last line too: what was not verified, why, and the fix; never a plain PASSED.
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("PASSED "), "{stderr}");
    assert!(
        last.contains("NOT VERIFIED") && last.contains("Go is not installed"),
        "{last}"
    );
}

/// As root, `attest sandbox` moves into a network namespace with only loopback. Building the
/// testbed downloads Go modules, so it must happen before, where the network is; and when
/// the build fails, its own last lines say why, up to the reports.
#[test]
fn sandbox_builds_the_testbed_before_isolating_and_quotes_a_failed_build() {
    use std::os::unix::fs::PermissionsExt;
    let reports = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let fake = tempfile::tempdir().unwrap();
    let record = fake.path().join("netns");
    // A `go` that answers `version` and fails every build as an unreachable proxy does,
    // after writing down the network namespace it ran in.
    let go = fake.path().join("go");
    std::fs::write(
        &go,
        format!(
            "#!/bin/sh\n[ \"$1\" = version ] && {{ echo 'go version go1.26.8 linux/amd64'; exit 0; }}\n\
             readlink /proc/self/ns/net > '{}'\n\
             echo 'go: example.com/m@v1.0.0: dial tcp: lookup proxy.invalid: network is unreachable' >&2\n\
             exit 1\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "story-5.2::", "--report-dir"])
        .arg(reports.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ATTEST_KUBE_BIN")
        .env("ATTEST_KUBE_CACHE", cache.path())
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", fake.path().display()),
        )
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let built_in = std::fs::read_to_string(&record)
        .unwrap_or_else(|_| panic!("the build never ran `go`:\n{stderr}"));
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        built_in.trim(),
        ours.display().to_string(),
        "the build ran in another network namespace:\n{stderr}"
    );
    // The build runs before the isolated run starts.
    let build = stderr.find("kube-build:").expect("build progress shown");
    if let Some(isolated) = stderr.find("network namespace of its own") {
        assert!(build < isolated, "{stderr}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.path().join("report.json")).unwrap())
            .unwrap();
    let verdict = &json["verdict"];
    assert!(
        verdict["not_verified"].as_u64().unwrap() >= 3,
        "{verdict:#}"
    );
    let reason = verdict["not_verified_by_cause"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("the build failed") && reason.contains("network is unreachable"),
        "{reason}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("NOT VERIFIED") && last.contains("network is unreachable"),
        "{last}"
    );
    let markdown = std::fs::read_to_string(reports.path().join("report.md")).unwrap();
    assert!(markdown.contains("network is unreachable"), "{markdown}");
}

/// `attest sandbox --no-kubernetes up`: clap reads `up` after an option as a name filter;
/// rather than run the checks whose names contain "up", attest says how to write either.
#[test]
fn a_subcommand_written_after_options_is_refused_with_a_hint() {
    let output = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "--no-kubernetes", "up"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`attest sandbox up [OPTIONS]`") && stderr.contains("`::up`"),
        "{stderr}"
    );
    assert!(!stderr.contains("test result"), "nothing ran: {stderr}");
}

/// Without the real nodes' images (here: an empty images cache), the sandbox runs on kwok's
/// nodes, saying why in one line and how to build them; nothing else changes.
#[test]
fn sandbox_without_node_images_runs_on_kwok_nodes_and_says_why() {
    if std::env::var_os("ATTEST_KUBE_BIN").is_none() {
        return; // Needs the testbed's binaries; see the first test.
    }
    let reports = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "story-5.2::", "--report-dir"])
        .arg(reports.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ATTEST_NODE_IMAGES_CACHE", images.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("attest: real nodes skipped ("))
        .unwrap_or_else(|| panic!("no notice in:\n{stderr}"));
    // Not root, no containerd, or (as root with them) the missing images: each names its fix.
    assert!(
        line.contains("scripts/node-images") || line.contains("need root") || line.contains("PATH"),
        "{line}"
    );
    assert!(line.contains("kwok's simulated nodes only"), "{line}");
    assert!(!stderr.contains("with real nodes"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.path().join("report.json")).unwrap())
            .unwrap();
    for result in json["results"].as_array().unwrap() {
        assert_eq!(result["status"], "passed", "{result:#}");
    }
}

/// The iptables rules of this network namespace (IPv4 and IPv6), without timestamps and
/// counters: what must be the same before and after a sandbox whose nodes run in a namespace
/// of their own.
fn firewall() -> String {
    let counters = regex::Regex::new(r"\[\d+:\d+\]").unwrap();
    ["iptables-save", "ip6tables-save"]
        .iter()
        .map(|cmd| {
            let out = Command::new(cmd)
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            String::from_utf8_lossy(&out)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{}\n", counters.replace_all(l, "")))
                .collect::<String>()
        })
        .collect()
}

/// SIGTERM while the sandbox runs with real nodes: it stops, and no container, shim, kubelet,
/// kube-proxy, containerd, mount, cgroup or folder of its testbed is left, and the firewall of
/// the namespace it was started from is as it was (the nodes' and kube-proxy's rules live in
/// the sandbox's own namespace).
#[test]
fn sigterm_of_a_sandbox_with_real_nodes_leaves_nothing_behind() {
    use std::io::BufRead;
    if std::env::var_os("ATTEST_KUBE_BIN").is_none() {
        return; // Needs the testbed's binaries; see the first test.
    }
    let firewall_before = firewall();
    let reports = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "--report-dir"])
        .arg(reports.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (mut line, mut seen, mut kubeconfig) = (String::new(), String::new(), None);
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if let Some((_, path)) = line.trim().split_once("; kubeconfig ") {
            kubeconfig = Some(std::path::PathBuf::from(path));
            break;
        }
        line.clear();
    }
    let Some(kubeconfig) = kubeconfig else {
        let _ = child.kill();
        panic!("the testbed did not start:\n{seen}");
    };
    if !seen.contains("attest: with real nodes") {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("no real nodes here, nothing to check:\n{seen}");
        return;
    }
    // <tmp>/attest-kube-XXXX/work/clusters/<name>/kubeconfig.yaml
    let cluster = kubeconfig.parent().unwrap();
    let name = cluster.file_name().unwrap().to_string_lossy().into_owned();
    let dir = cluster.ancestors().nth(3).unwrap().to_path_buf();
    let cgroups: Vec<std::path::PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .flat_map(|c| {
            let name = &name;
            (1..=2).map(move |i| c.path().join(format!("attest-{name}-{i}")))
        })
        .collect();
    let containers: Vec<String> = cgroups
        .iter()
        .filter(|c| c.starts_with("/sys/fs/cgroup/pids"))
        .flat_map(|c| {
            let out = Command::new("find")
                .arg(c)
                .args(["-name", "cgroup.procs", "-exec", "cat", "{}", "+"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!containers.is_empty(), "no container runs:\n{seen}");
    let ours = |needle: &str| -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(needle))
            .collect()
    };
    assert!(
        !ours(&dir.display().to_string()).is_empty(),
        "the testbed runs"
    );
    let kube_proxy = |procs: Vec<String>| -> Vec<String> {
        procs
            .into_iter()
            .filter(|c| c.contains("kube-proxy") && c.contains("--config="))
            .collect()
    };
    assert!(
        !kube_proxy(ours(&dir.display().to_string())).is_empty(),
        "kube-proxy runs with the real nodes"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(
        matches!(status.code(), Some(143) | Some(0)),
        "{status:?}\n{seen}{rest}"
    );
    let left = ours(&dir.display().to_string());
    assert!(left.is_empty(), "processes left: {left:?}");
    let proxies = kube_proxy(ours(&dir.display().to_string()));
    assert!(proxies.is_empty(), "kube-proxy left: {proxies:?}");
    let alive: Vec<&String> = containers
        .iter()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(alive.is_empty(), "container processes left: {alive:?}");
    for cgroup in &cgroups {
        assert!(!cgroup.exists(), "{} is left", cgroup.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir.display().to_string()),
        "mounts left:\n{mounts}"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    assert_eq!(
        firewall(),
        firewall_before,
        "the firewall of the namespace the sandbox was started from changed"
    );
}
