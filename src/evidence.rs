//! `attest evidence`: a story's completion notes from a run's report.json.

use std::path::PathBuf;

use clap::Args;

use attest_core::exit;

use crate::console::{say, Failure};

#[derive(Args, Debug, Clone)]
pub struct EvidenceArgs {
    /// The report.json of a run (`reports/report.json`).
    #[arg(value_name = "REPORT.json")]
    pub report: PathBuf,
    /// The story whose notes to make (`5.2`); may be left out when the run has one story.
    #[arg(long, value_name = "ID")]
    pub story: Option<String>,
    /// Write the notes into this story document's "Completion Notes List", between marker
    /// comments (a second write replaces the block, never anything else).
    #[arg(long, value_name = "STORY.md")]
    pub write: Option<PathBuf>,
    /// An earlier run's report.json: add what changed since (criteria that regressed or
    /// recovered, measurements that moved).
    #[arg(long, value_name = "OLD.json")]
    pub since: Option<PathBuf>,
    /// Another run of the same story (the sandbox's `reports/in-cluster/report.json`, a Job in
    /// `apps`): its results replace this run's where they were measured where the criterion
    /// asks (`from:`), or where this run's did not run. Repeatable.
    #[arg(long = "with", value_name = "OTHER.json")]
    pub with: Vec<PathBuf>,
}

/// `attest evidence`: completion notes from a report.json; exit 2 when the input is wrong or
/// the notes could not be written (then they are printed instead).
pub(crate) fn evidence(args: &EvidenceArgs) -> Result<u8, Failure> {
    use attest_core::evidence::{self, Since, Written};
    let report = evidence::read_report(&args.report).map_err(|e| Failure::usage(e.to_string()))?;
    let story = evidence::find_story(&report, &args.report, args.story.as_deref())
        .map_err(|e| Failure::usage(e.to_string()))?;
    let old = match &args.since {
        Some(path) => Some((
            path.display().to_string(),
            evidence::read_report(path).map_err(|e| Failure::usage(format!("--since: {e}")))?,
        )),
        None => None,
    };
    let since = old.as_ref().map(|(label, report)| Since {
        label: label.clone(),
        report,
    });
    let mut others = Vec::new();
    for path in &args.with {
        let other =
            evidence::read_report(path).map_err(|e| Failure::usage(format!("--with: {e}")))?;
        others.push((path, other));
    }
    let mut story = story.clone();
    let mut also = Vec::new();
    for (path, other) in &others {
        let theirs = evidence::find_story(other, path, story.story.as_deref())
            .map_err(|e| Failure::usage(format!("--with: {e}")))?;
        let (merged, taken) = attest_core::rollup::merge(&story, theirs);
        story = merged;
        also.push((other, taken));
    }
    let story = &story;
    let notes = evidence::notes(&report, story, since.as_ref(), &also);
    let Some(path) = &args.write else {
        print!("{notes}");
        return Ok(exit::SUCCESS);
    };
    let refuse = |why: String| {
        print!("{notes}");
        Err(Failure::usage(format!(
            "`{}` {why}; nothing was written, the notes are printed above",
            path.display()
        )))
    };
    let document = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return refuse(format!("cannot be read: {e}")),
    };
    match evidence::write_into(&document, &notes) {
        Ok((text, how)) => {
            if text != document {
                if let Err(e) = std::fs::write(path, &text) {
                    return refuse(format!("cannot be written: {e}"));
                }
            }
            let what = match (how, text == document) {
                (_, true) => "already held these notes; unchanged",
                (Written::Replaced, false) => "replaced the notes attest wrote before",
                (Written::Added, false) => {
                    "added the notes at the end of its Completion Notes List"
                }
            };
            say(&format!(
                "attest: story {}: {}: {what}",
                story.story.as_deref().unwrap_or_default(),
                path.display()
            ));
            Ok(exit::SUCCESS)
        }
        Err(e) => refuse(e.to_string()),
    }
}
