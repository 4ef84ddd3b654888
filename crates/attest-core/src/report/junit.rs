//! `junit.xml`: one testsuite per suite file, one testcase per check, for CI gates. Valid
//! against the Jenkins JUnit schema (properties on testsuites only).

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::outcome::{timestamp, Outcome, RunRecord, Status, SuiteRecord};

pub fn render(record: &RunRecord) -> String {
    let mut report = Report::new("attest");
    report.set_time(
        record
            .finished_at
            .duration_since(record.started_at)
            .unwrap_or_default(),
    );
    for suite in &record.suites {
        report.add_test_suite(test_suite(record, suite));
    }
    let xml = report.to_string().expect("JUnit report serializes");
    without_root_skipped(xml)
}

/// quick-junit always writes `skipped` on `<testsuites>`, which the Jenkins schema (and so
/// Jenkins' own parser) does not allow there; per-suite counts keep the number.
pub(crate) fn without_root_skipped(xml: String) -> String {
    let Some(start) = xml.find("<testsuites ") else {
        return xml;
    };
    let end = start + xml[start..].find('>').unwrap_or(0);
    let head = &xml[start..end];
    match head.find(" skipped=\"") {
        Some(at) => {
            let value_end = head[at + 10..]
                .find('"')
                .map(|i| at + 10 + i + 1)
                .unwrap_or(at);
            format!(
                "{}{}{}",
                &xml[..start + at],
                &xml[start + value_end..end],
                &xml[end..]
            )
        }
        None => xml,
    }
}

fn test_suite(record: &RunRecord, suite: &SuiteRecord) -> TestSuite {
    let mut test_suite = TestSuite::new(suite.id.as_str());
    test_suite.set_timestamp(chrono::DateTime::<chrono::Utc>::from(suite.started_at));
    test_suite.set_time(suite.duration);
    let mut properties = vec![
        Property::new("title", suite.title.as_str()),
        Property::new("file", suite.path.as_str()),
        Property::new("target", record.target.as_str()),
        Property::new("started_at", timestamp(suite.started_at)),
        Property::new("attest_version", record.attest_version),
        // The whole run's verdict, so a CI page that shows one suite still says what the run
        // did not verify.
        Property::new("verdict", record.verdict_line()),
    ];
    if let Some(story) = &suite.story {
        properties.push(Property::new("story", story.as_str()));
    }
    for (id, text) in &suite.requirements {
        properties.push(Property::new(format!("requirement.{id}"), text.as_str()));
    }
    // The roll-up of the suite's story, criterion by criterion and requirement by
    // requirement: `criterion.AC2` = `verified: <criterion>`. Properties sit on the testsuite
    // only: the Jenkins schema allows none inside a testcase.
    if let Some(story) = crate::rollup::rollup(record)
        .into_iter()
        .find(|s| s.suites.contains(&suite.id))
    {
        for c in &story.criteria {
            let mut value = c.state.as_str().to_owned();
            if !c.title.is_empty() {
                value.push_str(&format!(": {}", c.title));
            }
            if let Some(why) = c
                .why
                .as_deref()
                .filter(|_| c.state != crate::rollup::State::Verified)
            {
                value.push_str(&format!(" ({why})"));
            }
            properties.push(Property::new(format!("criterion.{}", c.id), value));
        }
        for r in &story.requirements {
            let mut value = r.state.as_str().to_owned();
            if let Some(why) = &r.why {
                value.push_str(&format!(" ({why})"));
            }
            properties.push(Property::new(format!("requirement-state.{}", r.id), value));
        }
    }
    test_suite.add_properties(properties);
    for outcome in &suite.outcomes {
        test_suite.add_test_case(test_case(outcome, suite));
    }
    if !suite.teardown_failures.is_empty() {
        // A failed cleanup may leave things behind: make it a visible error, not a log line.
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_type("teardown");
        status.set_message("teardown failed; resources may be left behind");
        status.set_description(suite.teardown_failures.join("\n"));
        let mut case = TestCase::new("teardown", status);
        case.set_classname(suite.id.as_str());
        test_suite.add_test_case(case);
    }
    test_suite
}

/// Name shown by every CI consumer: id, title and what it covers.
fn case_name(outcome: &Outcome) -> String {
    let mut covers: Vec<&str> = outcome.requirements.iter().map(String::as_str).collect();
    covers.extend(outcome.acceptance.iter().map(String::as_str));
    if covers.is_empty() {
        format!("{}: {}", outcome.check, outcome.title)
    } else {
        format!(
            "{}: {} [{}]",
            outcome.check,
            outcome.title,
            covers.join(", ")
        )
    }
}

/// The criteria and requirements a check covers, with their text, one per line: the
/// testcase's system-out starts with them, since a testcase may carry no properties.
fn covers_lines(outcome: &Outcome, suite: &SuiteRecord) -> String {
    let mut lines = Vec::new();
    for ac in &outcome.acceptance {
        let title = suite
            .criteria
            .iter()
            .find(|c| &c.id == ac)
            .map(|c| c.title.as_str())
            .filter(|t| !t.is_empty());
        lines.push(match title {
            Some(title) => format!("covers {ac}: {title}"),
            None => format!("covers {ac}"),
        });
    }
    for id in &outcome.requirements {
        lines.push(match suite.requirements.get(id).filter(|t| !t.is_empty()) {
            Some(text) => format!("covers {id}: {text}"),
            None => format!("covers {id}"),
        });
    }
    let notes = outcome.measurement_notes();
    match &outcome.via {
        Some(via) if outcome.vantage.is_none() => lines.push(format!(
            "measured through a port-forward to {via} (timings include the API server hop)"
        )),
        _ => {}
    }
    lines.extend(notes);
    lines.join("\n")
}

fn test_case(outcome: &Outcome, suite: &SuiteRecord) -> TestCase {
    let status = match outcome.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Skipped => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(outcome.message.as_str());
            status
        }
        Status::Failed | Status::Error => {
            let kind = if outcome.status == Status::Failed {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type(outcome.kind);
            status.set_message(outcome.message.as_str());
            status.set_description(outcome.details());
            status
        }
    };
    let mut case = TestCase::new(case_name(outcome), status);
    case.set_classname(outcome.suite.as_str());
    case.set_time(outcome.duration);
    let covers = covers_lines(outcome, suite);
    let body = match outcome.status {
        Status::Passed => format!("{}\n{}", outcome.message, outcome.details()),
        _ => String::new(),
    };
    let out = [covers, body]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if !out.is_empty() {
        case.set_system_out(out);
    }
    case
}

#[cfg(test)]
mod tests {
    use super::without_root_skipped;

    #[test]
    fn drops_skipped_from_the_root_only() {
        let xml = r#"<?xml version="1.0"?><testsuites name="a" skipped="2" tests="3"><testsuite skipped="2"/></testsuites>"#;
        assert_eq!(
            without_root_skipped(xml.to_owned()),
            r#"<?xml version="1.0"?><testsuites name="a" tests="3"><testsuite skipped="2"/></testsuites>"#
        );
    }
}
