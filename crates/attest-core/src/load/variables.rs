//! Resolving a suite's variables: defaults, given values, the environment, files, Secrets (through the external-value port), in order of precedence.

use super::*;

/// "`--set a=VALUE`, or `--vars FILE`, or the environment variable `A`".
pub(super) fn ways_to_set(name: &str, spec: Option<&crate::suite::VariableSpec>) -> String {
    let mut ways = vec![format!("`--set {name}=VALUE`"), "`--vars FILE`".to_owned()];
    if let Some(spec) = spec {
        if let Some(env) = &spec.env {
            ways.push(format!("the environment variable `{env}`"));
        }
        if let Some(file) = &spec.file {
            ways.push(format!("the file `{file}`"));
        }
    }
    ways.join(", or ")
}

/// Values of the declared variables: `--set`, provided values, `--vars`, the environment
/// variable, the file, the Kubernetes Secret, then the default, which may refer to other
/// variables (a cycle is an error). Registered names get stand-ins resolved at run time.
pub(super) fn resolve_variables(
    declared: &[Declared],
    registered: &[(String, Pos)],
    given: &Given,
    context: Option<&Node>,
    read_secrets: bool,
    problems: &mut Vec<DeError>,
) -> (HashMap<String, VarValue>, Vec<SuiteVariable>) {
    let mut sources: HashMap<&str, VariableSource> = HashMap::new();
    let mut values: HashMap<String, VarValue> = given
        .overrides
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                VarValue::known(Some(o.value.clone()), false, o.origin.clone()),
            )
        })
        .collect();
    // A value a check registers is the one later checks see, whatever else sets the name.
    for (name, _) in registered {
        values.insert(
            name.clone(),
            VarValue::stand_in(name, VarState::Runtime, false),
        );
    }
    let mut pending: HashMap<&str, &Declared> = HashMap::new();
    for d in declared {
        if values
            .get(&d.name)
            .is_some_and(|v| v.state == VarState::Runtime)
        {
            continue;
        }
        if let Some(o) = given.overrides.get(&d.name) {
            if let Some(v) = values.get_mut(&d.name) {
                v.secret = d.spec.is_secret();
                v.origin = o.origin.clone();
            }
            sources.insert(&d.name, VariableSource::Given(o.value.clone()));
            continue;
        }
        let from_env = d.spec.env.as_ref().and_then(|var| {
            std::env::var(var)
                .ok()
                .map(|v| (v, format!("from the environment variable `{var}`")))
        });
        let from_file = match (&from_env, &d.spec.file) {
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(text) => Some((
                    text.trim_end_matches(['\n', '\r']).to_owned(),
                    format!("from the file `{file}`"),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    let mut error =
                        DeError::new(format!("variable `{}`: cannot read `{file}`: {e}", d.name));
                    error.pos = Some(d.pos);
                    problems.push(error);
                    None
                }
            },
            _ => None,
        };
        match from_env.or(from_file) {
            Some((value, origin)) => {
                sources.insert(&d.name, VariableSource::Given(value.clone()));
                values.insert(
                    d.name.clone(),
                    VarValue::known(Some(value), d.spec.is_secret(), origin),
                );
            }
            None if d.spec.default.is_some() || d.spec.kubernetes_secret.is_some() => {
                pending.insert(&d.name, d);
            }
            None => {
                let value = match given.purpose {
                    Purpose::Run => VarValue::known(None, d.spec.is_secret(), ""),
                    Purpose::Inspect => {
                        VarValue::stand_in(&d.name, VarState::Unset, d.spec.is_secret())
                    }
                };
                values.insert(d.name.clone(), value);
            }
        }
    }
    // Secrets and defaults, in dependency order.
    let mut names: Vec<&str> = pending.keys().copied().collect();
    names.sort_unstable();
    let mut resolver = Resolver {
        pending,
        values,
        stack: Vec::new(),
        problems,
        given,
        context,
        context_value: None,
        context_pending: false,
        context_uses_secret: false,
        read_secrets: read_secrets && given.purpose == Purpose::Run,
        secret_reads: Vec::new(),
    };
    // First, so that a context using a Secret's value is caught whatever the order.
    resolver.context();
    for name in names {
        resolver.resolve(name);
    }
    for (name, secret) in std::mem::take(&mut resolver.secret_reads) {
        if let Some(d) = declared.iter().find(|d| d.name == name) {
            sources.insert(&d.name, VariableSource::KubernetesSecret(secret));
        }
    }
    let values = resolver.values;
    let variables = declared
        .iter()
        .filter(|d| !registered.iter().any(|(name, _)| *name == d.name))
        .map(|d| SuiteVariable {
            name: d.name.clone(),
            secret: d.spec.is_secret(),
            source: sources
                .remove(d.name.as_str())
                .unwrap_or(VariableSource::Suite),
        })
        .collect();
    for d in declared.iter().filter(|d| d.spec.is_secret()) {
        let Some(v) = values.get(&d.name) else {
            continue;
        };
        if v.state != VarState::Known {
            continue;
        }
        if let Some(text) = &v.text {
            given.redactor.add(text);
            if let Err(e) = crate::redact::check_secret(&d.name, text) {
                let mut error = DeError::new(e.to_string());
                error.pos = Some(d.pos);
                problems.push(error);
            }
        }
    }
    (values, variables)
}

/// Resolves variables whose value depends on others (defaults, Secret references), each once.
pub(super) struct Resolver<'a> {
    pub(super) pending: HashMap<&'a str, &'a Declared>,
    pub(super) values: HashMap<String, VarValue>,
    /// Names being resolved, to report a cycle.
    pub(super) stack: Vec<String>,
    pub(super) problems: &'a mut Vec<DeError>,
    pub(super) given: &'a Given<'a>,
    /// The suite's `kubernetes:` as written; its context is expanded on the first Secret read.
    pub(super) context: Option<&'a Node>,
    pub(super) context_value: Option<Option<String>>,
    pub(super) context_pending: bool,
    pub(super) context_uses_secret: bool,
    /// Running, and some check of the suite will run.
    pub(super) read_secrets: bool,
    /// The Secrets variables are read from (variable, reference), whether or not this load
    /// reads them.
    pub(super) secret_reads: Vec<(String, crate::k8s::secrets::SecretRef)>,
}

/// A text with its variables' values in place.
pub(super) struct Expansion {
    pub(super) text: String,
    /// `Known`, or the state of a variable it uses that has no value yet.
    pub(super) state: VarState,
    pub(super) unavailable: Option<Arc<Unavailable>>,
}

impl Resolver<'_> {
    pub(super) fn problem(&mut self, pos: Pos, message: String) {
        let mut error = DeError::new(message);
        error.pos = Some(pos);
        self.problems.push(error);
    }

    /// Resolves one variable, first the variables its default or Secret reference use.
    pub(super) fn resolve(&mut self, name: &str) {
        if self.values.contains_key(name) {
            return;
        }
        let Some(d) = self.pending.get(name).copied() else {
            return;
        };
        let default_pos = d.default_node.as_ref().map_or(d.pos, |n| n.pos);
        if let Some(start) = self.stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = self.stack[start..].to_vec();
            cycle.push(name.to_owned());
            self.problem(
                default_pos,
                format!(
                    "the defaults of variables refer to each other in a cycle: {}; give one of them a plain value",
                    cycle.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" → ")
                ),
            );
            self.values.insert(
                name.to_owned(),
                VarValue::known(Some(String::new()), d.spec.is_secret(), ""),
            );
            return;
        }
        if let Some(secret) = &d.spec.kubernetes_secret {
            if let Some(value) = self.read_secret(d, secret) {
                self.values.insert(name.to_owned(), value);
                return;
            }
        }
        if self.values.contains_key(name) {
            // Set while reporting a cycle through it.
            return;
        }
        let default = d.spec.default.clone().unwrap_or_default();
        let origin = format!("the default on line {}", d.pos.line);
        self.stack.push(name.to_owned());
        let expansion = self.expand(
            &default,
            &format!("default of `{name}`"),
            &format!("the default of `{name}`"),
            default_pos,
            true,
        );
        self.stack.pop();
        if self.values.contains_key(name) {
            return;
        }
        let mut value = VarValue::known(Some(expansion.text), d.spec.is_secret(), origin);
        value.state = expansion.state;
        value.unavailable = expansion.unavailable;
        self.values.insert(name.to_owned(), value);
    }

    /// The value of a variable from a Kubernetes Secret; `None` when the Secret or key is
    /// missing and a default is declared (the default applies).
    pub(super) fn read_secret(
        &mut self,
        d: &Declared,
        secret: &crate::k8s::secrets::SecretRef,
    ) -> Option<VarValue> {
        let secret_value = d.spec.is_secret();
        let unavailable = |u: Unavailable| {
            let mut value = VarValue::stand_in(&d.name, VarState::Unavailable, secret_value);
            value.unavailable = Some(Arc::new(u));
            Some(value)
        };
        if self.context_pending {
            // The context is being worked out and uses this variable: reported there.
            self.context_uses_secret = true;
            return Some(VarValue::stand_in(&d.name, VarState::Unset, secret_value));
        }
        let what = format!("`kubernetes_secret` of `{}`", d.name);
        self.stack.push(d.name.clone());
        let fields = [&secret.namespace, &secret.name, &secret.key]
            .map(|text| self.expand(text, &what, &what, d.pos, true));
        self.stack.pop();
        let [namespace, name, key] = fields;
        for field in [&namespace, &name, &key] {
            if field.state == VarState::Runtime {
                self.problem(
                    d.pos,
                    format!("{what} is read before the run: it cannot use a value registered by a check"),
                );
            }
            if field.state != VarState::Known {
                let mut value = VarValue::stand_in(&d.name, field.state, secret_value);
                value.unavailable = field.unavailable.clone();
                return Some(value);
            }
        }
        let secret = crate::k8s::secrets::SecretRef {
            namespace: namespace.text,
            name: name.text,
            key: key.text,
        };
        self.secret_reads.push((d.name.clone(), secret.clone()));
        if !self.read_secrets {
            // Listing, linting, or no check of the suite selected: no cluster is read.
            return Some(VarValue::stand_in(&d.name, VarState::Unset, secret_value));
        }
        let context = self.context();
        let Some(external) = self.given.external else {
            return unavailable(Unavailable {
                message: format!(
                    "{} needs the Kubernetes API, which this run has no access to",
                    secret.describe()
                ),
                hint: None,
                skip: true,
            });
        };
        match external.kubernetes_secret(context.as_deref(), &secret) {
            Lookup::Found(text) => {
                if secret_value && crate::redact::check_secret(&d.name, &text).is_err() {
                    return unavailable(Unavailable {
                        message: format!(
                            "{} holds a value under 8 characters or a well-known default: it cannot be masked without mangling other output, and it is guessable",
                            secret.describe()
                        ),
                        hint: Some("set a generated password (charts and operators generate one when none is given)".into()),
                        skip: false,
                    });
                }
                // Registered with the redactor with the other secrets, below.
                Some(VarValue::known(
                    Some(text),
                    secret_value,
                    format!("from {}", secret.describe()),
                ))
            }
            Lookup::Absent(_) if d.spec.default.is_some() => None,
            Lookup::Absent(why) => unavailable(Unavailable {
                message: why,
                hint: Some(format!(
                    "check the Secret's name, namespace and key; or give `{}` a value with {}",
                    d.name,
                    ways_to_set(&d.name, Some(&d.spec))
                )),
                skip: false,
            }),
            Lookup::Unavailable(mut u) => {
                let ways = ways_to_set(&d.name, Some(&d.spec));
                u.hint = Some(match u.hint {
                    Some(hint) => format!("{hint}; or give `{}` a value with {ways}", d.name),
                    None => format!("give `{}` a value with {ways}", d.name),
                });
                unavailable(u)
            }
        }
    }

    /// The suite's kubeconfig context (`kubernetes: {context: …}`), expanded once.
    pub(super) fn context(&mut self) -> Option<String> {
        if let Some(found) = &self.context_value {
            return found.clone();
        }
        self.context_pending = true;
        let node = self.context.and_then(|k| k.get("context"));
        let found = match node.and_then(|n| n.scalar()) {
            Some((text, _)) if !yaml::is_null_text(text) => {
                let pos = node.map_or(Pos::default(), |n| n.pos);
                let text = text.to_owned();
                let expansion = self.expand(
                    &text,
                    "`kubernetes.context`",
                    "`kubernetes.context`",
                    pos,
                    false,
                );
                if self.context_uses_secret || expansion.state == VarState::Runtime {
                    self.problem(
                        pos,
                        "`kubernetes.context` must be known before the run: it cannot use a variable read from a Secret or registered by a check".into(),
                    );
                }
                Some(expansion.text).filter(|c| !c.is_empty())
            }
            _ => None,
        };
        self.context_pending = false;
        self.context_value = Some(found.clone());
        found
    }

    /// `text` with the values of the variables it uses, resolving them first. `what` names
    /// it in messages ("default of `a`"; `in_what` after "in": "the default of `a`").
    /// Unknown variables are reported unless `report_unknown` is false (the file's scan
    /// reports those outside `variables:`).
    pub(super) fn expand(
        &mut self,
        text: &str,
        what: &str,
        in_what: &str,
        pos: Pos,
        report_unknown: bool,
    ) -> Expansion {
        let tokens = match interpolate::tokens(text) {
            Ok(tokens) => tokens,
            Err(e) => {
                self.problem(pos, format!("{what}: {}", e.message));
                return Expansion {
                    text: text.to_owned(),
                    state: VarState::Known,
                    unavailable: None,
                };
            }
        };
        let refs = interpolate::references(&tokens);
        for (reference, _) in &refs {
            self.resolve(&reference.name);
        }
        let mut state = VarState::Known;
        let mut unavailable = None;
        for (reference, required) in &refs {
            match self.values.get(&reference.name) {
                Some(v) if v.state != VarState::Known => {
                    state = v.state;
                    unavailable = unavailable.or_else(|| v.unavailable.clone());
                }
                Some(v) if v.text.is_some() => {}
                _ if !required => {}
                None if !report_unknown => {}
                found => {
                    let message = if found.is_some() {
                        format!(
                            "{in_what} uses `${{{}}}`, which has no value",
                            reference.name
                        )
                    } else {
                        format!(
                            "unknown variable `{}` in {in_what}: declare it under `variables:` or pass `--set {}=VALUE`",
                            reference.name, reference.name
                        )
                    };
                    self.problem(pos, message);
                }
            }
        }
        let lookup = |n: &str| self.values.get(n).and_then(|v| v.text.as_deref());
        Expansion {
            text: interpolate::expand(&tokens, &lookup).unwrap_or_default(),
            state,
            unavailable,
        }
    }
}
