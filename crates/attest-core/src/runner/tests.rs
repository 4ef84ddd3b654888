use super::execute::gave_up;
use super::*;
use crate::outcome::SuiteRecord;

#[test]
fn giving_up_keeps_the_last_observation_and_counts_attempts() {
    let last = Verdict::fail("status.phase is Pending")
        .subject("v1/PersistentVolumeClaim data/data-0")
        .mismatch("status.phase", "Bound", "Pending");
    let verdict = gave_up(
        last,
        5,
        Duration::from_secs(10),
        "no time left for another attempt",
    );
    assert_eq!(verdict.status, Status::Failed);
    assert_eq!(
        verdict.summary,
        "gave up after 5 attempts in 10.0 s (no time left for another attempt); last: status.phase is Pending"
    );
    assert_eq!(verdict.evidence.mismatches.len(), 1);
}

/// A kind that panics, and one that registers an undo step, for the runner's own tests.
#[derive(Debug)]
struct Panics;
impl crate::checks::Kind for Panics {
    const DESCRIPTION: &'static str = "panics";
    fn target(&self) -> String {
        "nowhere".into()
    }
    async fn observe(&self, _ctx: &CheckContext) -> Verdict {
        panic!("index out of bounds")
    }
}
#[derive(Debug)]
struct Creates(Arc<std::sync::atomic::AtomicBool>);
impl crate::checks::Kind for Creates {
    const DESCRIPTION: &'static str = "creates something to undo";
    fn target(&self) -> String {
        "somewhere".into()
    }
    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let undone = self.0.clone();
        ctx.on_teardown("undo", async move {
            undone.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        Verdict::pass("created")
    }
}

fn check(id: &str, check: Box<dyn crate::checks::Check>) -> SuiteCheck {
    SuiteCheck {
        decl: crate::suite::CheckDecl {
            id: id.into(),
            title: id.into(),
            description: None,
            covers: Vec::new(),
            timeout: Duration::from_secs(5),
            retry: None,
            needs: Vec::new(),
            safety: None,
            register: None,
            ignore: None,
            from: None,
            kind: "test",
            check,
        },
        location: "t.yaml:1:1".into(),
        safety: Safety::ReadOnly,
        requirements: Vec::new(),
        acceptance: Vec::new(),
        exports: Vec::new(),
        unavailable: None,
        via: None,
    }
}

fn test_suite(id: &str, checks: Vec<SuiteCheck>) -> Suite {
    Suite {
        id: id.into(),
        title: id.into(),
        story: None,
        story_file: None,
        criteria: Vec::new(),
        description: None,
        requirements: Default::default(),
        path: "t.yaml".into(),
        warnings: Vec::new(),
        kube_context: None,
        variables: Vec::new(),
        checks,
    }
}

/// Runs `suites` side by side as the runner does, every check selected; their records, as the
/// record consumer of the run's events keeps them.
async fn run_suites(suites: Vec<Suite>, allow: Safety) -> Vec<SuiteRecord> {
    let suites: Vec<Arc<Suite>> = suites.into_iter().map(Arc::new).collect();
    let recorder = Arc::new(Recorder::new(suites.clone(), Redactor::default()));
    let exclusive = Exclusive::default();
    let tasks: Vec<_> = suites
        .iter()
        .enumerate()
        .map(|(index, suite)| {
            let env = SuiteEnv {
                ahead: true,
                run_id: "r".into(),
                allow,
                stop: Arc::new(StopSignals::unwired()),
                redactor: Redactor::default(),
                services: Services::default(),
                events: Observers::default().with(recorder.clone()),
                denials: Vec::new(),
                site: Arc::new(super::Site::here()),
                exclusive: exclusive.clone(),
            };
            let decisions = vec![Decision::Run; suite.checks.len()];
            tokio::spawn(run_suite(index, suite.clone(), decisions, env))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    recorder.records()
}

#[tokio::test]
async fn a_panicking_check_is_an_error_and_the_rest_of_its_suite_still_runs_and_tears_down() {
    let undone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let suite = test_suite(
        "s",
        vec![
            check("creates", Box::new(Creates(undone.clone()))),
            check("panics", Box::new(Panics)),
            check("after", Box::new(Creates(Arc::default()))),
        ],
    );
    let [record] = &run_suites(vec![suite], Safety::ReadOnly).await[..] else {
        panic!("one suite, one record")
    };
    let statuses: Vec<_> = record.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [Status::Passed, Status::Error, Status::Passed]);
    assert!(
        record.outcomes[1]
            .message
            .contains("the check panicked: index out of bounds"),
        "{}",
        record.outcomes[1].message
    );
    assert!(
        undone.load(std::sync::atomic::Ordering::SeqCst),
        "teardown ran"
    );
}

/// Which check ran, from when to when.
type RunLog = Arc<Mutex<Vec<(&'static str, Instant, Instant)>>>;

/// Sleeps, and records when it ran.
#[derive(Debug)]
struct Sleeps(&'static str, RunLog);
impl crate::checks::Kind for Sleeps {
    const DESCRIPTION: &'static str = "sleeps";
    async fn observe(&self, _ctx: &CheckContext) -> Verdict {
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(60)).await;
        self.1.lock().unwrap().push((self.0, start, Instant::now()));
        Verdict::pass("slept")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_check_and_the_rest_of_its_suite_run_while_other_suites_wait() {
    let log: RunLog = Arc::default();
    let mut drain = check("drain", Box::new(Sleeps("drain", log.clone())));
    drain.safety = Safety::Destructive;
    let disrupting = test_suite(
        "a",
        vec![
            check("write", Box::new(Sleeps("write", log.clone()))),
            drain,
            check("verify", Box::new(Sleeps("verify", log.clone()))),
        ],
    );
    let others = test_suite(
        "b",
        (0..6)
            .map(|_| check("other", Box::new(Sleeps("other", log.clone()))))
            .collect(),
    );
    let [a, b] = &run_suites(vec![disrupting, others], Safety::Destructive).await[..] else {
        panic!("two suites, two records")
    };
    assert!(a
        .outcomes
        .iter()
        .chain(&b.outcomes)
        .all(|o| o.status == Status::Passed));
    let log = log.lock().unwrap();
    let (alone_from, alone_to) = (
        log.iter().find(|e| e.0 == "drain").unwrap().1,
        log.iter().find(|e| e.0 == "verify").unwrap().2,
    );
    for (name, start, end) in log.iter().filter(|e| e.0 == "other") {
        assert!(
            *end <= alone_from || *start >= alone_to,
            "`{name}` overlapped the drain or its verification"
        );
    }
    // Without a destructive check the suites do run side by side.
    let overlapped = log
        .iter()
        .filter(|e| e.0 == "other")
        .any(|(_, start, end)| {
            let write = log.iter().find(|e| e.0 == "write").unwrap();
            *start < write.2 && *end > write.1
        });
    assert!(
        overlapped,
        "read-only checks of two suites ran one after the other"
    );
}

#[test]
fn a_second_signal_hurries_and_the_first_decides_the_exit_code() {
    let stop = StopSignals::unwired();
    stop.arm();
    stop.signal(Interruption::Sigterm);
    assert!(stop.cancel.is_cancelled() && !stop.hurry.is_cancelled());
    stop.signal(Interruption::Sigint);
    assert!(stop.hurry.is_cancelled());
    assert_eq!(stop.interruption(), Some(Interruption::Sigterm));
    assert_eq!(Interruption::Sigterm.exit_code(), 143);
}

/// A kind whose query is known before it runs, on the connection to `host`.
#[derive(Debug)]
struct Asks(crate::checks::connection::ConnectionSpec, String);
impl Asks {
    fn on(host: &str, query: &str) -> Box<Asks> {
        let connection = crate::checks::connection::ConnectionSpec {
            host: Some(host.into()),
            ..Default::default()
        };
        Box::new(Asks(connection, query.into()))
    }
}
impl crate::checks::Kind for Asks {
    const DESCRIPTION: &'static str = "asks a known query";
    fn query_ahead(&self) -> Option<crate::checks::QueryAhead<'_>> {
        Some(crate::checks::QueryAhead {
            connection: &self.0,
            query: &self.1,
        })
    }
    async fn observe(&self, _ctx: &CheckContext) -> Verdict {
        Verdict::pass("asked")
    }
}

#[test]
fn queries_are_sent_ahead_only_for_runs_that_nothing_before_them_can_stop() {
    let mut checks = vec![
        check("a", Asks::on("h1", "SELECT 1")),
        check("b", Asks::on("h1", "SELECT 2")),
        check("c", Asks::on("h1", "SELECT 3")),
        // Another connection ends the run.
        check("d", Asks::on("h2", "SELECT 4")),
        check("e", Asks::on("h2", "SELECT 5")),
        // Each of these is left out: it needs another, it polls, it is not read-only, or its
        // kind does not know its query.
        check("f", Asks::on("h2", "SELECT 6")),
        check("g", Asks::on("h2", "SELECT 7")),
        check("h", Asks::on("h2", "SELECT 8")),
        check("i", Box::new(Panics)),
        // Alone: a run needs two.
        check("j", Asks::on("h2", "SELECT 9")),
    ];
    checks[5].decl.needs = vec!["e".into()];
    checks[6].decl.retry = Some(crate::suite::Retry {
        interval: crate::duration::HumanDuration(Duration::from_secs(1)),
        attempts: None,
        attempt_timeout: None,
    });
    checks[7].safety = Safety::Mutating;
    let suite = test_suite("s", checks);
    let env = SuiteEnv {
        ahead: true,
        run_id: "r".into(),
        allow: Safety::Mutating,
        stop: Arc::new(StopSignals::unwired()),
        redactor: Redactor::default(),
        services: Services::default(),
        events: Observers::default(),
        denials: Vec::new(),
        site: Arc::new(super::Site::here()),
        exclusive: Exclusive::default(),
    };
    let mut decisions = vec![Decision::Run; suite.checks.len()];
    let positions = |aheads: &[Option<Ahead>]| -> Vec<Option<usize>> {
        aheads
            .iter()
            .map(|a| a.as_ref().map(|a| a.position))
            .collect()
    };
    let aheads = queries_ahead(&suite, &decisions, &env);
    assert_eq!(
        positions(&aheads),
        [
            Some(0),
            Some(1),
            Some(2),
            Some(0),
            Some(1),
            None,
            None,
            None,
            None,
            None
        ]
    );
    let same = |x: usize, y: usize| {
        Arc::ptr_eq(
            &aheads[x].as_ref().unwrap().pipeline,
            &aheads[y].as_ref().unwrap().pipeline,
        )
    };
    assert!(same(0, 2) && same(3, 4) && !same(0, 3));
    // A check the filter leaves out splits a run too: `c` is left alone.
    decisions[1] = Decision::NotSelected;
    assert_eq!(
        positions(&queries_ahead(&suite, &decisions, &env)),
        [
            None,
            None,
            None,
            Some(0),
            Some(1),
            None,
            None,
            None,
            None,
            None
        ]
    );
}
