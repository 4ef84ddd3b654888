//! `attest rbac`: least-privilege RBAC for exactly the checks a run would select, as YAML for
//! `kubectl apply -f -`. Also the suite selection `attest job` shares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::console::{report_load_errors, report_load_warnings, Failure};
use crate::run::{split_positionals, suite_files};
use attest_core::exit;
use attest_core::k8s::rbac::{self, Account, CheckNeeds, KindResource, Rbac};
use attest_core::k8s::{KubeClusters, KubeOptions};
use attest_core::load::{self, Purpose, Suite, VarSources, VariableSource};
use attest_core::redact::Redactor;
use attest_core::runner;
use attest_core::safety::Safety;

/// Which checks: the suite selection, filters, variables and opt-ins of `attest run`.
#[derive(Args, Debug, Clone)]
pub struct Selection {
    /// Suite files or folders (default `suites/`), then optionally one name filter.
    #[arg(value_name = "PATH|FILTER")]
    pub positional: Vec<String>,
    /// YAML file of variable values (`name: value`); may be given more than once.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars: Vec<PathBuf>,
    /// Set a variable, over everything else.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = crate::run::AssignmentParser)]
    pub set: Vec<(String, String)>,
    /// Include mutating checks (as `attest run --allow-mutating` would run them).
    #[arg(long)]
    pub allow_mutating: bool,
    /// Include destructive checks too; implies --allow-mutating.
    #[arg(long)]
    pub allow_destructive: bool,
    #[command(flatten)]
    pub names: crate::run::NameFilters,
    /// Kubeconfig to discover the resources of CRDs with (without it, their plural is guessed
    /// and the output says so). Nothing else is read from the cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for that discovery. `attest job` takes several: a fleet run, one
    /// Job per cluster side by side, with merged reports.
    #[arg(long, value_name = "NAME")]
    pub context: Vec<String>,
}

/// The ServiceAccount an in-cluster run uses.
#[derive(Args, Debug, Clone)]
pub struct AccountArgs {
    /// The ServiceAccount's name.
    #[arg(long, value_name = "NAME", default_value = "attest")]
    pub service_account: String,
    /// The ServiceAccount's namespace (and the Job's); default `default` (`attest job`: the
    /// namespace its context sets, if it sets one).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct RbacArgs {
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub account: AccountArgs,
}

/// The suites loaded, and per check whether the selection runs it.
pub struct Selected {
    pub suites: Vec<Suite>,
    pub chosen: Vec<Vec<bool>>,
    /// Knows every secret value given (`--set`, vars files, environment).
    pub redactor: Redactor,
    /// The name filter, if one was given.
    pub filter: Option<String>,
}

impl Selected {
    /// The suites with at least one selected check, each with its selected checks.
    pub fn each(&self) -> impl Iterator<Item = (&Suite, Vec<&load::SuiteCheck>)> {
        self.suites
            .iter()
            .zip(&self.chosen)
            .filter_map(|(suite, chosen)| {
                let checks: Vec<_> = suite
                    .checks
                    .iter()
                    .zip(chosen)
                    .filter(|(_, on)| **on)
                    .map(|(c, _)| c)
                    .collect();
                (!checks.is_empty()).then_some((suite, checks))
            })
    }
}

impl Selection {
    /// The one `--context` of a command that talks to one cluster.
    pub fn one_context(&self) -> Result<Option<&str>, Failure> {
        match self.context.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(Failure::usage(
                "--context: this command talks to one cluster; only `attest job` takes several",
            )),
        }
    }

    pub fn allow(&self) -> Safety {
        if self.allow_destructive {
            Safety::Destructive
        } else if self.allow_mutating {
            Safety::Mutating
        } else {
            Safety::ReadOnly
        }
    }

    /// Loads the suites as for listing (no variable needs a value, no Secret is read) and
    /// picks the checks `attest run` with the same flags would run.
    pub fn load(&self) -> Result<Selected, Failure> {
        let (mut paths, filter) = split_positionals(&self.positional).map_err(Failure::usage)?;
        if paths.is_empty() {
            paths.push(PathBuf::from("suites"));
        }
        let files = suite_files(&paths).ok_or(Failure::Listed)?;
        let redactor = Redactor::default();
        let sources = VarSources {
            set: self.set.clone(),
            files: self.vars.clone(),
            ..VarSources::default()
        };
        let loaded = load::load_suites(&files, &sources, &redactor, Purpose::Inspect);
        report_load_warnings(&loaded.warnings, &redactor);
        let suites = loaded.suites.map_err(|errors| {
            report_load_errors(&errors, &redactor);
            Failure::Listed
        })?;
        let args = self.names.arguments(filter.clone());
        let allow = self.allow();
        let selection = runner::Selection::new(args);
        let runs = |suite, check: &attest_core::load::SuiteCheck| {
            let name = runner::trial_name(suite, check);
            let ignored = check.decl.ignore.is_some();
            selection.decide(&name, check.decl.kind, ignored) == runner::Decision::Run
                && check.safety <= allow
        };
        let chosen: Vec<Vec<bool>> = suites
            .iter()
            .map(|suite| {
                suite
                    .checks
                    .iter()
                    .map(|check| runs(suite, check))
                    .collect()
            })
            .collect();
        if chosen.iter().flatten().all(|on| !on) {
            return Err(Failure::usage("no check matched the given filters and opt-ins (mutating and destructive checks need --allow-mutating / --allow-destructive); `attest run --list` shows the check names"));
        }
        Ok(Selected {
            suites,
            chosen,
            redactor,
            filter,
        })
    }
}

/// What each selected check needs, and each Secret its suite's variables are read from.
pub fn needs(selected: &Selected) -> Vec<CheckNeeds> {
    let mut needs = Vec::new();
    for (suite, checks) in selected.each() {
        for check in checks {
            needs.push(CheckNeeds {
                check: runner::trial_name(suite, check),
                permissions: check.decl.check.permissions(),
            });
        }
        for variable in &suite.variables {
            if let VariableSource::KubernetesSecret(secret) = &variable.source {
                needs.push(CheckNeeds {
                    check: format!("{} (variable `{}`)", suite.id, variable.name),
                    permissions: vec![secret.permission()],
                });
            }
        }
    }
    needs
}

/// How long discovering one kind may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// The resources of the kinds the built-in table does not know: discovered with
/// `--kubeconfig`, else left to [`rbac::offline_resource`]'s guess.
fn discovered(
    needs: &[CheckNeeds],
    select: &Selection,
    context: Option<&str>,
    runtime: &tokio::runtime::Runtime,
) -> Result<BTreeMap<(String, String), KindResource>, Failure> {
    let mut found = BTreeMap::new();
    let Some(kubeconfig) = &select.kubeconfig else {
        return Ok(found);
    };
    let clusters = KubeClusters::new(
        KubeOptions {
            kubeconfig: Some(kubeconfig.clone()),
            context: context.map(str::to_owned),
            suite_default: false,
        },
        None,
    );
    let access = clusters.access(None);
    for p in needs.iter().flat_map(|n| &n.permissions) {
        let key = (p.api_version.clone(), p.kind.clone());
        if found.contains_key(&key) || rbac::built_in_resource(&p.api_version, &p.kind).is_some() {
            continue;
        }
        let answer = runtime.block_on(rbac::discover(
            &access,
            &p.api_version,
            &p.kind,
            DISCOVERY_TIMEOUT,
        ));
        match answer {
            Ok(Some(resource)) => {
                found.insert(key, resource);
            }
            // Not installed there: guessed, and the output says so.
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::usage(format!(
                    "cannot discover {} {} through `{}`: {e}",
                    p.api_version,
                    p.kind,
                    kubeconfig.display()
                )));
            }
        }
    }
    Ok(found)
}

/// A name Kubernetes accepts for a namespace or ServiceAccount (and as a label value).
pub fn check_name(flag: &str, name: &str) -> Result<(), Failure> {
    if attest_core::validate::is_dns_label(name) {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{flag}: expected a DNS label (lower-case letters, digits and `-`, at most 63, not starting or ending with `-`), found `{name}`"
    )))
}

impl AccountArgs {
    /// The account in `--namespace`, else `default`.
    pub fn account(&self) -> Result<Account, Failure> {
        self.account_in(self.namespace.as_deref().unwrap_or("default"))
    }

    /// The account in `namespace` (which `--namespace`, when given, is).
    pub fn account_in(&self, namespace: &str) -> Result<Account, Failure> {
        check_name("--service-account", &self.service_account)?;
        check_name("--namespace", namespace)?;
        Ok(Account {
            name: self.service_account.clone(),
            namespace: namespace.to_owned(),
        })
    }
}

/// The RBAC of the selected checks; CRDs' resources discovered through `context`.
pub fn generate(
    selected: &Selected,
    select: &Selection,
    context: Option<&str>,
    account: &Account,
    runtime: &tokio::runtime::Runtime,
) -> Result<Rbac, Failure> {
    let needs = needs(selected);
    let known = discovered(&needs, select, context, runtime)?;
    let resource = |api_version: &str, kind: &str, namespaced: bool| {
        known
            .get(&(api_version.to_owned(), kind.to_owned()))
            .cloned()
            .unwrap_or_else(|| rbac::offline_resource(api_version, kind, namespaced))
    };
    rbac::generate(&needs, account, resource)
        .map_err(|e| Failure::usage(selected.redactor.redact(&e.to_string())))
}

/// The comment lines that open the output.
pub fn header(selected: &Selected, rbac: &Rbac, account: &Account, what: &str) -> Vec<String> {
    let suites = selected.each().count();
    let checks: usize = selected.each().map(|(_, c)| c.len()).sum();
    let mut lines = vec![
        format!(
            "{what} for {checks} check(s) of {suites} suite(s), by attest {} ({} rules).",
            env!("CARGO_PKG_VERSION"),
            rbac.rule_count()
        ),
        format!(
            "Everything carries the label {}={}; remove it all with:",
            rbac::ACCOUNT_LABEL,
            account.name
        ),
        format!(
            "  kubectl delete job,configmap,secret,serviceaccount,role,rolebinding,clusterrole,clusterrolebinding -A -l {}={},{}={}",
            rbac::ACCOUNT_LABEL,
            account.name,
            rbac::ACCOUNT_NAMESPACE_LABEL,
            account.namespace
        ),
    ];
    lines.extend(rbac.notes.iter().cloned());
    lines
}

/// Text that is printed, refused if a secret value is in it (a name RBAC needs taken from a
/// secret variable): masking it would print RBAC that grants nothing.
pub fn refuse_secrets(text: &str, redactor: &Redactor, what: &str) -> Result<(), Failure> {
    if redactor.redact(text) == text {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{what} would contain the value of a secret variable (a namespace or object name taken from one?); nothing was printed"
    )))
}

pub fn comments(lines: &[String]) -> String {
    lines.iter().map(|l| format!("# {l}\n")).collect()
}

/// `attest rbac`: prints the RBAC; exit 2 on bad input.
pub fn main(args: RbacArgs, runtime: &tokio::runtime::Runtime) -> Result<u8, Failure> {
    let account = args.account.account()?;
    let context = args.select.one_context()?;
    let selected = args.select.load()?;
    let rbac = generate(&selected, &args.select, context, &account, runtime)?;
    let mut text = comments(&header(&selected, &rbac, &account, "Least-privilege RBAC"));
    text.push_str(&rbac::yaml_documents(&rbac.documents()));
    refuse_secrets(&text, &selected.redactor, "the RBAC")?;
    print!("{text}");
    Ok(exit::SUCCESS)
}
