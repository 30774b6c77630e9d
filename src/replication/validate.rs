//! Checks of a ReplicationPolicy spec that CEL cannot express: cycles among `from` links,
//! cron syntax, tag regex and semver syntax, bandwidth quantities. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::replication_policy::{Destination, ReplicationPolicySpec};
pub use crate::issue::Issue;

/// Every problem of the spec, in a stable order (empty when valid).
pub fn validate(spec: &ReplicationPolicySpec) -> Vec<Issue> {
    let mut problems = Vec::new();
    problems.extend(from_links(&spec.destinations));
    if let Some(schedule) = &spec.trigger.schedule
        && let Err(e) = parse_schedule(schedule)
    {
        problems.push(Issue {
            reason: "InvalidSchedule",
            field: "spec.trigger.schedule".into(),
            message: format!("{e}; use 5 cron fields (minute hour day-of-month month day-of-week), e.g. \"*/30 * * * *\""),
        });
    }
    if let Some(tags) = &spec.tags {
        if let Some(re) = &tags.regex
            && let Err(e) = regex::Regex::new(&format!("^(?:{re})$"))
        {
            problems.push(Issue {
                reason: "InvalidTagFilter",
                field: "spec.tags.regex".into(),
                message: format!(
                    "not a valid regular expression: {}",
                    first_line(&e.to_string())
                ),
            });
        }
        if let Some(range) = &tags.semver
            && let Err(e) = semver::VersionReq::parse(range)
        {
            problems.push(Issue {
                reason: "InvalidTagFilter",
                field: "spec.tags.semver".into(),
                message: format!("not a semantic-version range ({e}); write e.g. \">=1.2, <2\""),
            });
        }
        for (field, globs) in [
            ("spec.tags.include", &tags.include),
            ("spec.tags.exclude", &tags.exclude),
        ] {
            problems.extend(bad_globs(field, globs));
        }
    }
    if let Some(repos) = &spec.repositories {
        for (field, globs) in [
            ("spec.repositories.include", &repos.include),
            ("spec.repositories.exclude", &repos.exclude),
        ] {
            problems.extend(bad_globs(field, globs));
        }
    }
    if let Some(limit) = &spec.bandwidth_limit
        && crate::sync_config::parse_quantity(&limit.0).is_none()
    {
        problems.push(Issue {
            reason: "InvalidBandwidthLimit",
            field: "spec.bandwidthLimit".into(),
            message: format!(
                "{:?} is not a positive byte quantity; write e.g. \"50Mi\" or \"10000000\"",
                limit.0
            ),
        });
    }
    problems
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn bad_globs(field: &str, globs: &[String]) -> Vec<Issue> {
    globs
        .iter()
        .filter_map(|g| {
            globset::Glob::new(g).err().map(|e| Issue {
                reason: "InvalidFilter",
                field: field.to_string(),
                message: format!("{g:?} is not a valid glob: {e}"),
            })
        })
        .collect()
}

/// Problems of the `from` links: unknown names, self-references and cycles. Each cycle is
/// reported once, naming its members in the order the links run.
pub fn from_links(destinations: &[Destination]) -> Vec<Issue> {
    let names: BTreeSet<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
    let parent: BTreeMap<&str, &str> = destinations
        .iter()
        .filter_map(|d| d.from.as_deref().map(|f| (d.name.as_str(), f)))
        .collect();
    let mut problems = Vec::new();
    for (child, from) in &parent {
        if !names.contains(from) {
            problems.push(Issue {
                reason: "UnknownDestination",
                field: format!("spec.destinations[{child}].from"),
                message: format!("names {from:?}, which is not a destination of this policy; name one of {names:?} or remove `from`"),
            });
        }
    }
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for start in parent.keys() {
        let mut path = vec![*start];
        let mut at = *start;
        while let Some(next) = parent.get(at) {
            if let Some(pos) = path.iter().position(|n| n == next) {
                let cycle = &path[pos..];
                if cycle.iter().all(|n| !reported.contains(n)) {
                    reported.extend(cycle.iter().copied());
                    let mut shown: Vec<&str> = cycle.to_vec();
                    shown.push(cycle[0]);
                    problems.push(Issue {
                        reason: "CyclicDestinations",
                        field: format!("spec.destinations[{}].from", cycle[0]),
                        message: format!(
                            "`from` links form a cycle ({}), so no destination in it is ever fed; let one of them be fed by the source (remove its `from`)",
                            shown.join(" <- ")
                        ),
                    });
                }
                break;
            }
            path.push(next);
            at = next;
        }
    }
    problems
}

/// Parses a 5-field cron expression (UTC) into a schedule.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!("{expr:?} has {fields} fields, not 5"));
    }
    format!("0 {expr}")
        .parse::<cron::Schedule>()
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::replication_policy::{Endpoint, TagFilter};

    fn dest(name: &str, from: Option<&str>) -> Destination {
        Destination {
            name: name.into(),
            from: from.map(str::to_string),
            endpoint: Endpoint {
                url: Some(format!("https://{name}.example.com")),
                ..Default::default()
            },
        }
    }

    fn spec(destinations: Vec<Destination>) -> ReplicationPolicySpec {
        serde_json::from_value(serde_json::json!({
            "source": {"url": "https://hq.example.com"},
            "destinations": destinations,
        }))
        .expect("valid spec")
    }

    #[test]
    fn a_tree_of_from_links_is_valid() {
        let d = vec![
            dest("east", None),
            dest("west", None),
            dest("city-1", Some("east")),
            dest("city-2", Some("city-1")),
        ];
        assert!(validate(&spec(d)).is_empty());
    }

    #[test]
    fn a_cycle_is_reported_once_with_its_members() {
        let d = vec![
            dest("a", Some("c")),
            dest("b", Some("a")),
            dest("c", Some("b")),
            dest("d", Some("a")),
        ];
        let p = from_links(&d);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].reason, "CyclicDestinations");
        assert!(
            p[0].message.contains("a <- c <- b <- a"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn two_separate_cycles_are_both_reported() {
        let d = vec![
            dest("a", Some("b")),
            dest("b", Some("a")),
            dest("x", Some("y")),
            dest("y", Some("x")),
        ];
        assert_eq!(from_links(&d).len(), 2);
    }

    #[test]
    fn self_reference_is_a_cycle() {
        let p = from_links(&[dest("a", Some("a"))]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "spec.destinations[a].from");
    }

    #[test]
    fn unknown_from_is_reported() {
        let p = from_links(&[dest("a", Some("nowhere"))]);
        assert_eq!(p[0].reason, "UnknownDestination");
        assert!(p[0].message.contains("nowhere"));
    }

    #[test]
    fn schedule_needs_five_valid_fields() {
        assert!(parse_schedule("*/30 * * * *").is_ok());
        assert!(parse_schedule("0 */2 * * 1-5").is_ok());
        assert!(parse_schedule("* * * *").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
        let mut s = spec(vec![dest("a", None)]);
        s.trigger.schedule = Some("every hour".into());
        let p = validate(&s);
        assert_eq!(p[0].field, "spec.trigger.schedule");
    }

    #[test]
    fn bad_regex_semver_and_glob_are_reported_with_fields() {
        let mut s = spec(vec![dest("a", None)]);
        s.tags = Some(TagFilter {
            include: vec!["v[".into()],
            exclude: vec![],
            regex: Some("(unclosed".into()),
            semver: Some(">>1".into()),
        });
        let fields: Vec<String> = validate(&s).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec!["spec.tags.regex", "spec.tags.semver", "spec.tags.include"]
        );
    }
}
