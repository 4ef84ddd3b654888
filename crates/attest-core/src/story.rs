//! A story document (Markdown): its acceptance criteria, the FR/NFR IDs they name, and where
//! its "Completion Notes List" is. Read when a suite names the file (`story: {id, file}`).
//!
//! Criteria are the items of the "## Acceptance Criteria" section: numbered items (`1. **Given**
//! …`), or, in stories that write them as unnumbered bold Given/When/Then blocks, each block
//! starting with `**Given**`, numbered by its order. Lines inside code fences belong to the
//! criterion they stand in.

use std::sync::OnceLock;

use regex::Regex;

/// What attest reads from a story document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoryDoc {
    /// The first `# ` heading.
    pub title: Option<String>,
    /// Whether the document has an "Acceptance Criteria" section at all.
    pub has_criteria_section: bool,
    pub criteria: Vec<StoryCriterion>,
    /// Whether the document has a "Completion Notes List" heading to write notes under.
    pub has_completion_notes: bool,
}

/// One acceptance criterion as the story writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryCriterion {
    /// `AC1`, `AC2`, ...
    pub id: String,
    /// One line: the Then and And clauses (without "this validates …").
    pub title: String,
    /// The whole criterion on one line, Markdown emphasis removed.
    pub text: String,
    /// FR/NFR IDs the criterion names, with the description written after them in
    /// parentheses, if any: `this validates FR32 (PostgreSQL persists data to NFS)`.
    pub requirements: Vec<(String, Option<String>)>,
    /// 1-based line of the item in the document.
    pub line: usize,
}

/// A problem in a story document, at its line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn numbered_item() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(\d{1,3})[.)]\s+\S").expect("valid regex"))
}

fn requirement_id() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\b(N?FR\d+[a-z]?)\b(?:\s*\(([^)]*)\))?").expect("valid regex"))
}

/// A heading line: its level and text.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &line[level..];
    if !rest.starts_with(' ') && !rest.is_empty() {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

/// The headings of a Markdown document outside fenced code: (line index, level, text).
pub fn headings<'a>(lines: &'a [&'a str]) -> impl Iterator<Item = (usize, usize, &'a str)> + 'a {
    let mut in_fence = false;
    lines.iter().enumerate().filter_map(move |(index, line)| {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            return None;
        }
        if in_fence {
            return None;
        }
        heading(line).map(|(level, text)| (index, level, text))
    })
}

/// A section of a Markdown document, by line index: its heading, and where it ends (the next
/// heading of its level or higher, or the end of the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub heading: usize,
    pub end: usize,
}

/// The first section whose heading text `is_title` accepts.
pub fn find_section(lines: &[&str], is_title: impl Fn(&str) -> bool) -> Option<Section> {
    let mut found: Option<(usize, usize)> = None;
    for (index, level, text) in headings(lines) {
        match found {
            None if is_title(text) => found = Some((index, level)),
            Some((heading, section_level)) if level <= section_level => {
                return Some(Section {
                    heading,
                    end: index,
                })
            }
            _ => {}
        }
    }
    found.map(|(heading, _)| Section {
        heading,
        end: lines.len(),
    })
}

/// Whether a heading's text names the acceptance criteria section.
fn is_criteria_heading(text: &str) -> bool {
    text.eq_ignore_ascii_case("acceptance criteria")
}

/// Whether a heading's text names the completion notes section.
pub fn is_notes_heading(text: &str) -> bool {
    text.eq_ignore_ascii_case("completion notes list")
}

/// Reads a story document. Errors: numbered criteria that do not count up from 1, and an
/// Acceptance Criteria section with no criterion in it.
pub fn parse(text: &str) -> Result<StoryDoc, StoryError> {
    let mut doc = StoryDoc::default();
    let lines: Vec<&str> = text.lines().collect();
    for (_, level, title) in headings(&lines) {
        if level == 1 && doc.title.is_none() {
            doc.title = Some(title.to_owned());
        }
        if is_notes_heading(title) {
            doc.has_completion_notes = true;
        }
    }
    let Some(section) = find_section(&lines, is_criteria_heading) else {
        return Ok(doc);
    };
    doc.has_criteria_section = true;
    let (start, end) = (section.heading + 1, section.end);
    let body = &lines[start..end];
    let numbered = body.iter().any(|l| numbered_item().is_match(l));
    // (line index, number as written) of each item's first line, then its lines.
    let mut items: Vec<(usize, Option<u32>, Vec<&str>)> = Vec::new();
    let mut in_fence = false;
    for (offset, line) in body.iter().enumerate() {
        let trimmed = line.trim_start();
        let fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        let starts = !in_fence
            && !fence
            && if numbered {
                numbered_item().is_match(line)
            } else {
                let plain = line.trim_start_matches(['*', '_']);
                line.starts_with("**Given")
                    || line.starts_with("Given ")
                    || plain.starts_with("Given ")
            };
        if fence {
            in_fence = !in_fence;
        }
        if starts {
            let number = numbered_item()
                .captures(line)
                .and_then(|c| c[1].parse::<u32>().ok());
            items.push((start + offset, number, vec![line]));
        } else if let Some(item) = items.last_mut() {
            item.2.push(line);
        }
    }
    if items.is_empty() {
        return Err(StoryError {
            line: start,
            column: 1,
            message: "the \"Acceptance Criteria\" section has no criterion: expected numbered items (`1. **Given** …`) or bold `**Given**` blocks".into(),
        });
    }
    for (position, (index, number, item_lines)) in items.into_iter().enumerate() {
        let expected = position as u32 + 1;
        if let Some(number) = number {
            if number != expected {
                return Err(StoryError {
                    line: index + 1,
                    column: 1,
                    message: format!(
                        "acceptance criterion numbered {number} where {expected} was expected: numbered criteria count up from 1 (attest names them AC1, AC2, … by that number)"
                    ),
                });
            }
        }
        let text = flatten(&item_lines, number.is_some());
        let requirements = mentioned_requirements(&text);
        doc.criteria.push(StoryCriterion {
            id: format!("AC{expected}"),
            title: summary(&text),
            text,
            requirements,
            line: index + 1,
        });
    }
    Ok(doc)
}

/// The criterion on one line: list number, emphasis and fence markers removed, whitespace
/// collapsed.
fn flatten(lines: &[&str], numbered: bool) -> String {
    let mut words: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut line = line.trim();
        if i == 0 && numbered {
            line = numbered_item()
                .find(line)
                .map_or(line, |m| line[m.end() - 1..].trim_start());
        }
        if line.starts_with("```") || line.starts_with("~~~") || line.is_empty() {
            continue;
        }
        let line = line.trim_start_matches("- ");
        words.push(line.replace("**", "").replace('`', ""));
    }
    words
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Then and And clauses of a criterion, without "this validates …"; the whole text when
/// there is no Then. At most 200 characters.
fn summary(text: &str) -> String {
    let then = text.find("Then ").map(|i| &text[i + 5..]).unwrap_or(text);
    let clauses: Vec<&str> = then
        .split(" And ")
        .map(str::trim)
        .filter(|c| !c.to_ascii_lowercase().starts_with("this validates"))
        .collect();
    let mut line = clauses.join("; ");
    if line.is_empty() {
        line = text.to_owned();
    }
    if line.chars().count() > 200 {
        line = line.chars().take(199).collect::<String>() + "…";
    }
    line
}

/// FR/NFR IDs `text` names, each with the description in parentheses after it, if any.
pub fn mentioned_requirements(text: &str) -> Vec<(String, Option<String>)> {
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    for captures in requirement_id().captures_iter(text) {
        let id = captures[1].to_owned();
        let description = captures.get(2).map(|m| m.as_str().trim().to_owned());
        match found.iter_mut().find(|(known, _)| *known == id) {
            Some(entry) if entry.1.is_none() => entry.1 = description,
            Some(_) => {}
            None => found.push((id, description)),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBERED: &str = "# Story 5.2: NFS\n\n## Acceptance Criteria\n\n1. **Given** a chart\n   **When** I set it\n   **Then** storage is requested\n\n2. **Given** a PVC\n   **Then** it is Bound\n   **And** it uses nfs-client\n   **And** this validates FR32 (PostgreSQL persists data to NFS)\n\n## Tasks\n\n1. not a criterion\n\n### Completion Notes List\n\n1. done\n";

    #[test]
    fn numbered_criteria_with_their_requirements() {
        let doc = parse(NUMBERED).unwrap();
        assert_eq!(doc.title.as_deref(), Some("Story 5.2: NFS"));
        assert!(doc.has_completion_notes);
        assert_eq!(doc.criteria.len(), 2);
        assert_eq!(doc.criteria[0].id, "AC1");
        assert_eq!(doc.criteria[0].title, "storage is requested");
        assert_eq!(doc.criteria[0].line, 5);
        assert_eq!(doc.criteria[1].title, "it is Bound; it uses nfs-client");
        assert_eq!(
            doc.criteria[1].requirements,
            vec![(
                "FR32".to_owned(),
                Some("PostgreSQL persists data to NFS".to_owned())
            )]
        );
    }

    #[test]
    fn unnumbered_given_blocks_are_numbered_by_order_with_their_code() {
        let text = "## Acceptance Criteria\n\n**Given** PostgreSQL runs\n**When** I configure\n**Then** Helm values include:\n```yaml\nenv:\n  **Given**: not a block\n```\n\n**Given** credentials\n**Then** database `paperless` exists\n**And** this validates NFR29 (scales)\n\n## Tasks\n";
        let doc = parse(text).unwrap();
        assert_eq!(doc.criteria.len(), 2);
        assert_eq!(doc.criteria[0].id, "AC1");
        assert!(
            doc.criteria[0].text.contains("env:"),
            "{:?}",
            doc.criteria[0]
        );
        assert_eq!(doc.criteria[1].id, "AC2");
        assert_eq!(doc.criteria[1].title, "database paperless exists");
        assert_eq!(doc.criteria[1].requirements[0].0, "NFR29");
        assert!(!doc.has_completion_notes);
    }

    #[test]
    fn numbering_must_count_up_from_one() {
        let text = "## Acceptance Criteria\n\n1. **Given** a\n\n3. **Given** b\n";
        let err = parse(text).unwrap_err();
        assert_eq!((err.line, err.column), (5, 1));
        assert!(
            err.message.contains("numbered 3 where 2"),
            "{}",
            err.message
        );
    }

    #[test]
    fn an_empty_section_is_an_error_and_no_section_is_none() {
        let err = parse("## Acceptance Criteria\n\nTBD\n\n## Tasks\n").unwrap_err();
        assert_eq!(err.line, 1);
        let doc = parse("# Paperless\n\n## Storage\n").unwrap();
        assert!(!doc.has_criteria_section && doc.criteria.is_empty());
    }

    /// The user's stories (copied into tests/data/stories) parse as the issue describes.
    #[test]
    fn the_users_stories_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/stories");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let s52 = parse(&read("5-2-configure-nfs-persistence-for-postgresql.md")).unwrap();
        assert_eq!(s52.criteria.len(), 5);
        assert_eq!(s52.criteria[2].requirements[0].0, "FR32");
        assert!(s52.has_completion_notes);
        let s55 = parse(&read("5-5-test-application-connectivity-to-postgresql.md")).unwrap();
        assert_eq!(s55.criteria.len(), 5);
        assert_eq!(s55.criteria[3].requirements[0].0, "FR35");
        assert!(s55.criteria[3]
            .text
            .contains("postgres-postgresql.data.svc.cluster.local"));
        let s102 = parse(&read("10-2-configure-postgresql-backend.md")).unwrap();
        assert_eq!(s102.criteria.len(), 3);
        assert_eq!(s102.criteria[1].requirements[0].0, "FR66");
        assert_eq!(s102.criteria[2].requirements[0].0, "NFR29");
        assert!(s102.criteria[0]
            .text
            .contains("PAPERLESS_DBENGINE: postgresql"));
        for name in [
            "paperless-ngx-document-management.md",
            "postgresql-database-service.md",
        ] {
            let doc = parse(&read(name)).unwrap();
            assert!(
                !doc.has_criteria_section && !doc.has_completion_notes,
                "{name}"
            );
        }
    }
}
