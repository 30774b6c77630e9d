//! Checks of a ReplicationPolicy spec that CEL cannot express: cycles among `from` links,
//! cron syntax, tag regex and semver syntax, bandwidth quantities. Pure: no I/O.

use super::reasons;
use std::collections::BTreeSet;

use crate::api::replication_policy::{Destination, ReplicationPolicySpec};
use crate::engine::feed_tree::{FeedTree, TreeProblem};
use crate::engine::filter::{self, FilterError, FilterProblem, GlobList};
use crate::engine::referrers::ReferrerFilter;
use crate::field_path::FieldPath;
pub use crate::issue::Issue;
use crate::sync_config::referrer_rules;

/// Every problem of the spec, in a stable order (empty when valid).
pub fn validate(spec: &ReplicationPolicySpec) -> Vec<Issue> {
    let mut problems = from_links(&spec.destinations);
    if let Some(schedule) = &spec.trigger.schedule
        && let Err(e) = parse_schedule(schedule)
    {
        problems.push(Issue {
            reason: reasons::INVALID_SCHEDULE,
            field: FieldPath::spec()
                .field("trigger")
                .field("schedule")
                .to_string(),
            message: format!("{e}; use 5 cron fields (minute hour day-of-month month day-of-week), e.g. \"*/30 * * * *\""),
        });
    }
    problems.extend(filter_problems(spec).into_iter().map(filter_issue));
    if let Some(limit) = &spec.bandwidth_limit
        && crate::sync_config::parse_quantity(&limit.0).is_none()
    {
        problems.push(Issue {
            reason: reasons::INVALID_BANDWIDTH_LIMIT,
            field: FieldPath::spec().field("bandwidthLimit").to_string(),
            message: format!(
                "{:?} is not a positive byte quantity; write e.g. \"50Mi\" or \"10000000\"",
                limit.0
            ),
        });
    }
    problems
}

/// Every repository and tag rule that does not compile, compiled as the engine compiles
/// them, in the order of the spec's fields.
fn filter_problems(spec: &ReplicationPolicySpec) -> Vec<FilterError> {
    let mut problems = Vec::new();
    let mut globs = |list: GlobList, patterns: &[String]| {
        for (i, g) in patterns.iter().enumerate() {
            problems.extend(filter::glob(list, i, g).err());
        }
    };
    if let Some(repos) = &spec.repositories {
        globs(GlobList::RepositoriesInclude, &repos.include);
        globs(GlobList::RepositoriesExclude, &repos.exclude);
    }
    if let Some(tags) = &spec.tags {
        globs(GlobList::TagsInclude, &tags.include);
        globs(GlobList::TagsExclude, &tags.exclude);
        problems.extend(
            tags.regex
                .as_deref()
                .and_then(|r| filter::tag_regex(r).err()),
        );
        problems.extend(
            tags.semver
                .as_deref()
                .and_then(|r| filter::semver_range(r).err()),
        );
    }
    problems.extend(ReferrerFilter::new(&referrer_rules(spec)).err());
    problems
}

/// The condition text of a rule that does not compile: the engine's error, which names the
/// field, and a hint.
fn filter_issue(e: FilterError) -> Issue {
    let (reason, hint) = match e.problem {
        FilterProblem::Glob { .. } => (
            "InvalidFilter",
            "`*` matches within a path segment, `**` across, `{a,b}` either",
        ),
        FilterProblem::Regex { .. } => ("InvalidTagFilter", "RE2 syntax, anchored at both ends"),
        FilterProblem::Semver { .. } => ("InvalidTagFilter", "write e.g. \">=1.2, <2\""),
    };
    Issue {
        reason,
        field: e.field.to_string(),
        message: format!("{}; {hint}", e.problem),
    }
}

fn from_field(destination: &str) -> String {
    FieldPath::spec()
        .field("destinations")
        .key(destination)
        .field("from")
        .to_string()
}

/// Problems of the destination tree: no destination, a name used twice (the API server
/// enforces both through the schema, `minItems` and list-map keys; files given to
/// `flotilla sync` have no such check), unknown `from` names, self-references and cycles.
/// Each cycle is reported once, naming its members in the order the links run.
pub fn from_links(destinations: &[Destination]) -> Vec<Issue> {
    let (_, problems) = FeedTree::from_links(
        destinations
            .iter()
            .map(|d| (d.name.as_str(), d.from.as_deref())),
    );
    problems
        .into_iter()
        .map(|p| tree_issue(destinations, p))
        .collect()
}

/// The condition text of one problem of the destination tree.
fn tree_issue(destinations: &[Destination], problem: TreeProblem) -> Issue {
    let list = FieldPath::spec().field("destinations");
    let name = |i: usize| destinations[i].name.as_str();
    match problem {
        TreeProblem::NoDestinations => Issue {
            reason: reasons::NO_DESTINATIONS,
            field: list.to_string(),
            message: "lists no destination; add at least one".into(),
        },
        TreeProblem::Duplicate { index } => Issue {
            reason: reasons::DUPLICATE_DESTINATION,
            field: list.index(index).field("name").to_string(),
            message: format!(
                "{:?} is the name of an earlier destination; names are unique within a policy",
                name(index)
            ),
        },
        TreeProblem::UnknownFrom { index } => {
            let names: BTreeSet<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
            let from = destinations[index].from.as_deref().unwrap_or_default();
            Issue {
                reason: reasons::UNKNOWN_DESTINATION,
                field: from_field(name(index)),
                message: format!(
                    "names {from:?}, which is not a destination of this policy; name one of {names:?} or remove `from`"
                ),
            }
        }
        TreeProblem::Cycle { members } => {
            let mut shown: Vec<&str> = members.iter().map(|&i| name(i)).collect();
            shown.push(shown[0]);
            Issue {
                reason: reasons::CYCLIC_DESTINATIONS,
                field: from_field(shown[0]),
                message: format!(
                    "`from` links form a cycle ({}), so no destination in it is ever fed; let one of them be fed by the source (remove its `from`)",
                    shown.join(" <- ")
                ),
            }
        }
    }
}

/// A schedule that is not a 5-field cron expression.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Not 5 fields.
    #[error("{expr:?} has {fields} fields, not 5")]
    FieldCount {
        /// As written.
        expr: String,
        /// How many it has.
        fields: usize,
    },
    /// 5 fields the cron grammar refuses.
    #[error("{expr:?} is not a valid cron expression: {reason}")]
    Cron {
        /// As written.
        expr: String,
        /// Why, on one line (the cron crate's message also repeats the expression, with
        /// the seconds field this parser adds, and a caret under the error).
        reason: String,
    },
}

/// Parses a 5-field cron expression (UTC) into a schedule.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, ScheduleError> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(ScheduleError::FieldCount {
            expr: expr.to_string(),
            fields,
        });
    }
    format!("0 {expr}")
        .parse::<cron::Schedule>()
        .map_err(|e| ScheduleError::Cron {
            expr: expr.to_string(),
            reason: e
                .to_string()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .to_string(),
        })
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
    fn destinations_are_required_and_named_once() {
        let p = validate(&spec(vec![]));
        assert_eq!(
            p.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["spec.destinations: lists no destination; add at least one"]
        );
        let p = validate(&spec(vec![
            dest("a", None),
            dest("b", None),
            dest("a", None),
        ]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].reason, "DuplicateDestination");
        assert_eq!(p[0].field, "spec.destinations[2].name");
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
            vec![
                "spec.tags.include[0]",
                "spec.tags.regex",
                "spec.tags.semver"
            ]
        );
    }

    #[test]
    fn a_bad_referrer_type_glob_is_reported_with_its_field() {
        let mut s = spec(vec![dest("a", None)]);
        s.referrer_filter = Some(crate::api::verify::ReferrerFilter {
            include: vec![],
            exclude: vec![crate::api::verify::ReferrerRule {
                artifact_type: Some("application/[x".into()),
                annotations: Default::default(),
            }],
        });
        let issues = validate(&s);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].reason, "InvalidFilter");
        assert_eq!(
            issues[0].field,
            "spec.referrerFilter.exclude[0].artifactType"
        );
    }

    /// The condition messages (`field: message`, as `readiness` joins them).
    fn messages(s: &ReplicationPolicySpec) -> Vec<String> {
        validate(s).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn condition_messages_name_the_field_and_the_value() {
        let mut s = spec(vec![dest("a", None)]);
        s.tags = Some(TagFilter {
            semver: Some(">>1".into()),
            regex: Some("(unclosed".into()),
            ..Default::default()
        });
        s.repositories = Some(crate::api::replication_policy::RepositoryFilter {
            include: vec!["team-a/**".into(), "a[b".into()],
            exclude: vec![],
        });
        s.bandwidth_limit = Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "5Xi".into(),
        ));
        s.trigger.schedule = Some("61 * * * *".into());
        let m = messages(&s);
        assert_eq!(m.len(), 5, "{m:#?}");
        assert!(
            m[0].starts_with("spec.trigger.schedule: \"61 * * * *\" is not a valid cron expression: Minutes must be less than 59"),
            "{}",
            m[0]
        );
        assert!(
            m[1].starts_with("spec.repositories.include[1]: invalid glob \"a[b\": "),
            "{}",
            m[1]
        );
        assert_eq!(
            m[2],
            "spec.tags.regex: invalid regex \"(unclosed\": unclosed group; RE2 syntax, anchored at both ends"
        );
        assert!(
            m[3].starts_with("spec.tags.semver: invalid semver range \">>1\": "),
            "{}",
            m[3]
        );
        assert!(
            m[4].starts_with("spec.bandwidthLimit: \"5Xi\" is not"),
            "{}",
            m[4]
        );
        assert!(m.iter().all(|l| !l.contains('\n')), "one line each: {m:#?}");
    }
}
