//! `attest sandbox`: starts the stand-ins of attest-sandbox (and, when its binaries are built,
//! the local Kubernetes testbed) and runs the suites against them.

use std::path::PathBuf;
use std::process::Stdio;

use colored::Colorize;

use attest_core::exit;
use attest_core::load::VarSources;
use attest_sandbox::kube::{self, Binaries};
use attest_sandbox::Sandbox;

use std::sync::Arc;

use attest_core::outcome::Interruption;
use attest_core::runner::StopSignals;

use crate::console::{error_line, exit_code, say, Failure};
use crate::run::{run_suites, RunArgs};
use clap::{Args, Subcommand};

mod in_cluster;

/// Set in the re-executed child that already runs in its own network namespace.
const ISOLATED: &str = "ATTEST_SANDBOX_ISOLATED";

/// Set in the re-executed child: what the parent decided about the Kubernetes testbed
/// (`start:<bin dir>` or `skip:<reason>`), so the child neither plans nor builds again.
const KUBERNETES_DECISION: &str = "ATTEST_SANDBOX_KUBERNETES";

pub fn main(
    args: SandboxArgs,
    runtime: &tokio::runtime::Runtime,
    stop_signals: &Arc<StopSignals>,
) -> Result<u8, Failure> {
    if let Some(word) = subcommand_read_as_filter(&args) {
        return Err(Failure::usage(format!(
            "`{word}` here is read as a name filter, because options before it end the subcommand; \
             to start the sandbox and keep it running, put `{word}` first: `attest sandbox {word} [OPTIONS]`; \
             to select checks whose names contain `{word}`, write a longer filter (e.g. `::{word}`)"
        )));
    }
    // From here on there is something to stop cleanly: the build, then the stand-ins.
    stop_signals.arm();
    // Found or built first, in the host's network namespace: the build downloads Go modules,
    // which the loopback-only namespace the run moves into cannot reach.
    let kubernetes = match decided_in_parent() {
        Some(decided) => decided,
        None => match plan_kubernetes(&args) {
            Kubernetes::Build => {
                let stop = stop_signals.cancel.clone();
                match runtime.block_on(kube::build(async move { stop.cancelled().await })) {
                    Ok(dir) => Kubernetes::Start(dir),
                    Err(e) => Kubernetes::Skip(format!("the build failed: {e}")),
                }
            }
            other => other,
        },
    };
    if let Some(signal) = stop_signals.interruption() {
        eprintln!("attest: {} while preparing the sandbox", signal.name());
        return Ok(signal.exit_code());
    }
    if let Some(code) = run_isolated(&args, &kubernetes, runtime, stop_signals) {
        return code;
    }
    // Signals are caught from the start (`StopSignals`): the default action would kill us
    // with a PostgreSQL server, a Kubernetes control plane and temporary folders in place.
    let mut sandbox = runtime.block_on(Sandbox::start()).map_err(Failure::usage)?;
    let mut kube_skipped = None;
    match kubernetes {
        Kubernetes::Start(bin_dir) => {
            eprintln!(
                "attest: starting the local Kubernetes testbed ({})",
                bin_dir.display()
            );
            let real_nodes = match real_nodes(&args, &bin_dir) {
                Ok(images) => {
                    eprintln!(
                        "attest: with real nodes {} (kubelet + containerd): the stories' PostgreSQL (data/postgres-postgresql) runs on one for real",
                        kube::nodes::NODE_NAMES.join(", ")
                    );
                    Some(images)
                }
                Err(why) => {
                    eprintln!(
                        "attest: real nodes skipped ({why}): kwok's simulated nodes only; the stories' PostgreSQL pod is a stand-in whose exec and port-forward reach the host's throwaway PostgreSQL"
                    );
                    None
                }
            };
            let with_real_nodes = real_nodes.is_some();
            match runtime.block_on(sandbox.start_kubernetes(bin_dir, real_nodes)) {
                Ok(()) => {
                    let testbed = sandbox.kube.as_ref().expect("just started");
                    eprintln!(
                        "attest: Kubernetes testbed ready in {:.1}s; kubeconfig {}",
                        testbed.startup_time().as_secs_f64(),
                        testbed.kubeconfig().display()
                    );
                }
                Err(message) => {
                    stop(sandbox, runtime);
                    let failure =
                        Failure::usage(format!("the Kubernetes testbed did not start: {message}"));
                    return Err(match with_real_nodes {
                        true => failure.with_hint(
                            "run with simulated nodes only: attest sandbox --no-real-nodes; without the testbed: --no-kubernetes",
                        ),
                        false => failure.with_hint("run without it: attest sandbox --no-kubernetes"),
                    });
                }
            }
        }
        Kubernetes::Skip(reason) => {
            eprintln!("attest: Kubernetes testbed skipped: {reason}");
            kube_skipped = Some(reason);
        }
        Kubernetes::Build => unreachable!("built above"),
    }
    if let Some(signal) = stop_signals.interruption() {
        eprintln!(
            "attest: {} while starting the sandbox; removing it",
            signal.name()
        );
        stop(sandbox, runtime);
        return Ok(signal.exit_code());
    }
    let code = match args.action {
        Some(SandboxAction::Up) => {
            // On stdout, so scripts can read the vars file path; status lines stay on stderr.
            {
                use std::io::Write;
                let mut stdout = std::io::stdout();
                let _ = writeln!(
                    stdout,
                    "{}\n{}",
                    "attest sandbox is up:".bold(),
                    sandbox.describe()
                );
                let _ = stdout.flush();
            }
            say("Press Ctrl-C (or send SIGTERM) to stop and remove it.");
            runtime.block_on(stop_signals.cancel.cancelled());
            exit::SUCCESS
        }
        None => {
            let mut run = args.run;
            // The sandbox is throwaway: mutating checks are safe to run in it.
            run.allow_mutating = true;
            // Kubernetes checks talk to the testbed; without it they are skipped, saying why.
            // Every suite's checks, whatever context it names, go to the testbed (unless
            // another cluster is given).
            let on_testbed = run.kubeconfig.is_none() && sandbox.has_kubernetes();
            // So is its testbed: destructive checks (pod-delete, node-drain) run there. With
            // another cluster (`--kubeconfig`), they still need --allow-destructive.
            if on_testbed {
                run.allow_destructive = true;
            }
            if run.kubeconfig.is_none() {
                run.kubeconfig = sandbox.kubeconfig();
                run.context = run.context.or_else(|| sandbox.kube_context());
            }
            run.kube_unavailable = kube_skipped
                .map(|reason| format!("no Kubernetes testbed in this sandbox: {reason}"));
            if on_testbed && sandbox.postgres_on_real_node() {
                // The claim is bound to a host folder there: the API would show it is not NFS.
                run.unverifiable.push((
                    "story-5.2::volume-is-nfs".to_owned(),
                    "the sandbox's PostgreSQL runs on real nodes whose claim is bound to a host folder (hostPath) both nodes mount, not NFS: this kernel has no NFS client or server".to_owned(),
                ));
            }
            // Without CoreDNS, cluster names are answered by the sandbox's DNS stand-in: say so.
            run.simulated
                .push(simulated_dns(&format!("on {}", sandbox.dns.addr())));
            let mut set = sandbox.variables();
            // With the testbed, Paperless's password is read from its Secret, as from a real
            // cluster (story 10.2's `kubernetes_secret`); without it, it is handed over.
            set.extend(
                sandbox
                    .secret_variables()
                    .into_iter()
                    .filter(|(name, _)| !(on_testbed && name == "paperless_db_password")),
            );
            // Provided, not `--set`: suites that use other names are not an error.
            let extra = VarSources {
                provided: set,
                ..VarSources::default()
            };
            let target = run.target.clone().unwrap_or_else(|| "sandbox".into());
            // Said and mapped now: the sandbox still has to be stopped after a failed run.
            let mut code = exit_code(run_suites(&run, extra, target, runtime, stop_signals));
            if on_testbed && !args.no_in_cluster && stop_signals.interruption().is_none() {
                code = exit::worst([code, in_cluster::run(&sandbox, &run, runtime, stop_signals)]);
            }
            match runtime.block_on(sandbox.leftovers()) {
                Ok(left) if left.is_empty() => code,
                Ok(left) => {
                    error_line(&format!(
                        "the run left these behind in the sandbox PostgreSQL: {}",
                        left.join(", ")
                    ));
                    code.max(exit::CHECK_FAILED)
                }
                Err(e) => {
                    error_line(&format!(
                        "cannot check the sandbox PostgreSQL for leftovers: {e}"
                    ));
                    code.max(exit::CHECK_FAILED)
                }
            }
        }
    };
    Ok(match stop(sandbox, runtime) {
        true => code,
        false => code.max(exit::CHECK_FAILED),
    })
}

/// Stops everything; false (after saying why) if the Kubernetes testbed left something.
fn stop(mut sandbox: Sandbox, runtime: &tokio::runtime::Runtime) -> bool {
    let kube = runtime.block_on(sandbox.stop_kubernetes());
    if let Err(e) = &kube {
        error_line(&format!("the Kubernetes testbed did not stop cleanly: {e}"));
    }
    runtime.block_on(sandbox.dns.shutdown());
    runtime.block_on(sandbox.postgres.stop());
    drop(sandbox.workspace);
    kube.is_ok()
}

/// Whether the testbed gets real nodes here: their images' folder, or why not (one line).
fn real_nodes(args: &SandboxArgs, bin_dir: &std::path::Path) -> Result<PathBuf, String> {
    use kube::nodes;
    if args.no_real_nodes {
        return Err("--no-real-nodes".to_owned());
    }
    if args.action.is_some() {
        // Even in a namespace of its own, the `attest run` line it prints could not carry what
        // the sandbox knows (story 5.2's volume is a host folder there, not NFS), so that
        // check would fail instead of saying it cannot be verified.
        return Err(
            "`attest sandbox up` stays in the host's network namespace, so other shells reach its stand-ins, and real nodes never run there: their links, routes and iptables chains would be the host's"
                .to_owned(),
        );
    }
    let images = nodes::images_dir()?;
    match nodes::unavailable(bin_dir, &images) {
        Some(why) => Err(why),
        None => Ok(images),
    }
}

enum Kubernetes {
    Start(PathBuf),
    /// Not built yet, Go is here: build before anything else starts.
    Build,
    Skip(String),
}

impl Kubernetes {
    /// How the parent hands its decision to the isolated child.
    fn encode(&self) -> Option<String> {
        match self {
            Kubernetes::Start(dir) => Some(format!("start:{}", dir.display())),
            Kubernetes::Skip(reason) => Some(format!("skip:{reason}")),
            Kubernetes::Build => None,
        }
    }
}

/// The decision the parent made, in the isolated child.
fn decided_in_parent() -> Option<Kubernetes> {
    let value = std::env::var(KUBERNETES_DECISION).ok()?;
    if let Some(dir) = value.strip_prefix("start:") {
        Some(Kubernetes::Start(PathBuf::from(dir)))
    } else {
        value
            .strip_prefix("skip:")
            .map(|reason| Kubernetes::Skip(reason.to_owned()))
    }
}

/// A name filter that is really the `up` subcommand written after an option
/// (`attest sandbox --no-kubernetes up`): clap reads it as a filter.
fn subcommand_read_as_filter(args: &SandboxArgs) -> Option<&str> {
    if args.action.is_some() {
        return None;
    }
    let sandbox = SandboxAction::augment_subcommands(clap::Command::new("sandbox"));
    args.run.positional.iter().map(String::as_str).find(|word| {
        !std::path::Path::new(word).exists()
            && sandbox.get_subcommands().any(|sub| sub.get_name() == *word)
    })
}

/// Whether to start the Kubernetes testbed: yes when its binaries are built; when they are
/// not and Go is here, build them (said up front; the build shows its progress); otherwise
/// skip it, saying why and what would enable it.
fn plan_kubernetes(args: &SandboxArgs) -> Kubernetes {
    if args.no_kubernetes {
        return Kubernetes::Skip("--no-kubernetes".to_owned());
    }
    match kube::locate() {
        Binaries::Ready(dir) => Kubernetes::Start(dir),
        Binaries::Missing { reason, go: true } => {
            eprintln!(
                "attest: {reason}; building them now with `{}` (once: about 9 minutes on 2 cores \
                 with an empty Go cache; progress below; skip with --no-kubernetes)",
                kube::build_command()
            );
            Kubernetes::Build
        }
        Binaries::Missing { reason, go: false } => Kubernetes::Skip(format!(
            "{reason} and Go is not installed; install Go >= 1.26 (https://go.dev/dl) and run `{}` to enable it",
            kube::build_command()
        )),
    }
}

/// `attest sandbox` (not `up`) as root runs in a network namespace of its own with only
/// loopback, so nothing a suite or the testbed does can send a packet off this machine: we
/// re-execute ourselves under `unshare --net` (before any stand-in starts) and pass on the
/// exit code. `up` stays in the host's namespace so other shells can reach the stand-ins;
/// without root or `unshare`/`ip`, the run stays where it is (everything binds 127.0.0.1).
fn run_isolated(
    args: &SandboxArgs,
    kubernetes: &Kubernetes,
    runtime: &tokio::runtime::Runtime,
    stop_signals: &StopSignals,
) -> Option<Result<u8, Failure>> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if args.action.is_some() || std::env::var_os(ISOLATED).is_some() || !root {
        return None;
    }
    let probe = std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", "ip link set lo up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    eprintln!("attest: running the sandbox in a network namespace of its own (loopback only)");
    let mut command = tokio::process::Command::new("unshare");
    command
        .args([
            "--net",
            "sh",
            "-c",
            r#"ip link set lo up && exec "$0" "$@""#,
        ])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ISOLATED, "1")
        .envs(
            kubernetes
                .encode()
                .map(|decision| (KUBERNETES_DECISION, decision)),
        );
    // Not started (no `unshare` after all): the run stays where it is.
    let child = {
        let _context = runtime.enter();
        command.spawn().ok()?
    };
    let status = wait_passing_signals(child, runtime, stop_signals);
    Some(status.map_err(|e| Failure::usage(format!("cannot wait for the isolated sandbox: {e}"))))
}

/// Waits for a child attest to end and returns its exit code. A stop signal is passed on as
/// SIGTERM, so the child cleans up (and writes its reports) before it exits; a Ctrl-C typed at
/// a terminal is not, since the terminal sent it to the child too (a second one would make it
/// hurry).
fn wait_passing_signals(
    mut child: tokio::process::Child,
    runtime: &tokio::runtime::Runtime,
    stop_signals: &StopSignals,
) -> std::io::Result<u8> {
    use std::io::IsTerminal;
    let typed_at_terminal = std::io::stdin().is_terminal();
    let status = runtime.block_on(async {
        tokio::select! {
            status = child.wait() => return status,
            _ = stop_signals.cancel.cancelled() => {}
        }
        let sigint = stop_signals.interruption() == Some(Interruption::Sigint);
        if !(sigint && typed_at_terminal) {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        child.wait().await
    })?;
    Ok(status.code().map_or(exit::INTERRUPTED, |c| c as u8))
}

/// Every DNS check, labelled simulated: the sandbox's stand-in (`on` where it listens)
/// answers it, not CoreDNS.
fn simulated_dns(on: &str) -> (String, String) {
    (
        "[dns]".to_owned(),
        format!(
            "no CoreDNS in the sandbox: its DNS stand-in {on} answers for the testbed's Services"
        ),
    )
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub action: Option<SandboxAction>,
    /// Do not start the local Kubernetes testbed (nor build its binaries).
    #[arg(long, global = true)]
    pub no_kubernetes: bool,
    /// Keep the testbed's nodes simulated (kwok): no kubelet or containerd; the stories'
    /// PostgreSQL pod is then a stand-in for the host's throwaway PostgreSQL.
    #[arg(long, global = true)]
    pub no_real_nodes: bool,
    /// Skip the in-cluster run: with real nodes, the checks marked `from: { namespace: … }`
    /// (story 5.5) run again from a pod there, through `attest job` with attest's image.
    #[arg(long)]
    pub no_in_cluster: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum SandboxAction {
    /// Start the sandbox and keep it running, printing how to reach each piece, until Ctrl-C.
    Up,
}
