//! The text picture of a [`Fleet`]: a table of Registries, then per policy a header line and
//! the tree of destinations under the source, in aligned columns. Pure: colour is a parameter.

use super::fleet::{
    ConditionStatus, DestinationNode, FeedProblem, Fleet, Phase, PolicyView, RegistryView,
};

/// Longest last error shown, in characters (`-o wide` and `-o json` have it in full).
pub const ERROR_WIDTH: usize = 80;

/// How to draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// Wrap states in ANSI colours.
    pub color: bool,
    /// Last errors in full (still on one line) instead of cut at [`ERROR_WIDTH`].
    pub wide: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Paint {
    Plain,
    Bold,
    Green,
    Yellow,
    Red,
}

impl Paint {
    fn code(self) -> Option<&'static str> {
        match self {
            Paint::Plain => None,
            Paint::Bold => Some("1"),
            Paint::Green => Some("32"),
            Paint::Yellow => Some("33"),
            Paint::Red => Some("31"),
        }
    }
}

/// One table cell: its visible text and how to paint it.
struct Cell {
    text: String,
    paint: Paint,
}

fn cell(text: impl Into<String>, paint: Paint) -> Cell {
    Cell {
        text: text.into(),
        paint,
    }
}

fn plain(text: impl Into<String>) -> Cell {
    cell(text, Paint::Plain)
}

impl Style {
    fn paint(self, text: &str, paint: Paint) -> String {
        match paint.code() {
            Some(code) if self.color && !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }
}

/// Lays rows out in columns two spaces apart (widths in characters, so tree glyphs count as
/// one), with trailing blanks trimmed.
fn table(rows: &[Vec<Cell>], indent: &str, style: Style) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.text.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = indent.to_string();
            for (i, c) in row.iter().enumerate() {
                line.push_str(&style.paint(&c.text, c.paint));
                if i + 1 < row.len() {
                    let pad = widths[i].saturating_sub(c.text.chars().count()) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// Text on one line: whitespace runs (newlines included) become one space, and more than
/// `max` characters are cut to `max` ending in `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `42s ago`, `3m ago`, `5h ago`, `2d ago` (a time slightly ahead of this clock is `0s ago`).
pub fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// The whole picture; empty for an empty fleet.
pub fn render(fleet: &Fleet, style: Style) -> String {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    if !fleet.registries.is_empty() {
        blocks.push(registries(&fleet.registries, style));
    }
    for p in &fleet.policies {
        blocks.push(policy(p, style));
    }
    let mut out = blocks
        .iter()
        .map(|b| b.join("\n"))
        .collect::<Vec<_>>()
        .join("\n\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn registries(list: &[RegistryView], style: Style) -> Vec<String> {
    let mut rows = vec![
        ["REGISTRY", "READY", "STATUS", "REASON", "URL"]
            .into_iter()
            .map(|h| cell(h, Paint::Bold))
            .collect(),
    ];
    for r in list {
        let (word, paint) = match r.ready.status {
            ConditionStatus::True => ("Ready", Paint::Green),
            ConditionStatus::False => ("NotReady", Paint::Red),
            ConditionStatus::Unknown => ("Unknown", Paint::Yellow),
        };
        rows.push(vec![
            plain(format!("{}/{}", r.namespace, r.name)),
            cell(
                format!("{}/{}", r.ready_replicas, r.desired_replicas),
                paint,
            ),
            cell(word, paint),
            plain(r.ready.reason.clone().unwrap_or_else(|| "-".into())),
            plain(r.url.clone().unwrap_or_else(|| "-".into())),
        ]);
    }
    table(&rows, "", style)
}

fn phase_paint(p: Phase) -> Paint {
    match p {
        Phase::Ready => Paint::Green,
        Phase::Degraded | Phase::NotReady => Paint::Red,
        Phase::Syncing | Phase::Suspended | Phase::Pending => Paint::Yellow,
    }
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Suspended => "Suspended",
        Phase::Degraded => "Degraded",
        Phase::Syncing => "Syncing",
        Phase::Ready => "Ready",
        Phase::NotReady => "NotReady",
        Phase::Pending => "Pending",
    }
}

fn policy(p: &PolicyView, style: Style) -> Vec<String> {
    let mut phase = phase_word(p.phase).to_string();
    if let Some(r) = &p.reason {
        phase.push_str(&format!(" ({r})"));
    }
    let counts = format!("{}/{} in sync", p.in_sync, p.destination_count);
    let counts_paint = if p.in_sync == p.destination_count {
        Paint::Green
    } else {
        Paint::Red
    };
    let last = match &p.last_sync {
        None => "never synced".to_string(),
        Some(l) => {
            let when = l
                .seconds_since
                .map(ago)
                .or_else(|| l.completion_time.clone())
                .unwrap_or_else(|| "-".into());
            format!("last sync {when} ({}, {})", l.trigger, l.result)
        }
    };
    let header = format!(
        "{} {}/{}  {}  {}  {last}",
        style.paint("POLICY", Paint::Bold),
        p.namespace,
        p.name,
        style.paint(&phase, phase_paint(p.phase)),
        style.paint(&counts, counts_paint),
    );
    let mut source = format!("{} (source)", p.source.endpoint);
    if let Some(ready) = &p.source.registry_ready {
        source = format!("{} (source, {ready} ready)", p.source.endpoint);
    }
    let mut rows = vec![
        ["DESTINATION", "IN SYNC", "LAST SYNC", "LAG", "LAST ERROR"]
            .into_iter()
            .map(|h| cell(h, Paint::Bold))
            .collect(),
    ];
    let error_width = if style.wide { usize::MAX } else { ERROR_WIDTH };
    tree_rows(&p.destinations, "", error_width, &mut rows);
    let mut lines = vec![header];
    let mut table_lines = table(&rows, "  ", style).into_iter();
    lines.extend(table_lines.next());
    lines.push(format!("  {source}"));
    lines.extend(table_lines);
    lines
}

/// A push lag for a table cell: `0.42s`, `12s`, `3m20s`.
fn lag(millis: i64) -> String {
    match millis {
        m if m < 10_000 => format!("{:.2}s", m as f64 / 1000.0),
        m if m < 120_000 => format!("{}s", m / 1000),
        m => format!("{}m{:02}s", m / 60_000, (m % 60_000) / 1000),
    }
}

fn tree_rows(
    nodes: &[DestinationNode],
    prefix: &str,
    error_width: usize,
    rows: &mut Vec<Vec<Cell>>,
) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, below) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let (mark, mark_paint) = if n.in_sync {
            ("yes", Paint::Green)
        } else {
            ("no", Paint::Red)
        };
        let when = match (&n.seconds_since_sync, &n.last_sync_time) {
            (Some(s), _) => ago(*s),
            (None, Some(raw)) => raw.clone(),
            (None, None) => "never".into(),
        };
        let problem = n.problem.map(|p| match p {
            FeedProblem::UnknownFeeder => format!(
                "from: {} names no destination of this policy",
                n.from.as_deref().unwrap_or_default()
            ),
            FeedProblem::Cycle => "fed through a from cycle: nothing reaches it".to_string(),
        });
        let error = match (problem, &n.last_error) {
            (Some(p), Some(e)) => format!("{p}; {e}"),
            (Some(p), None) => p,
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        rows.push(vec![
            plain(format!("{prefix}{branch}{}", n.name)),
            cell(mark, mark_paint),
            plain(when),
            plain(n.last_push_lag_millis.map_or_else(|| "-".to_string(), lag)),
            cell(one_line(&error, error_width), Paint::Red),
        ]);
        tree_rows(&n.children, &format!("{prefix}{below}"), error_width, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fleet::build;
    use super::super::fleet::tests::{dest, now, policy, registry, tiers};
    use super::*;

    #[test]
    fn the_tree_nests_relays_and_aligns_columns() {
        let mut tiers = tiers();
        if let Some(st) = tiers.status.as_mut() {
            st.destinations[0].last_push_lag_millis = Some(420);
            st.destinations[1].last_push_lag_millis = Some(185_000);
        }
        let fleet = build(
            &[
                registry("default", "hq", 1, 1),
                registry("fleet", "edge", 0, 2),
            ],
            &[tiers],
            now(),
        );
        let text = render(&fleet, Style::default());
        let expected = "\
REGISTRY    READY  STATUS    REASON       URL
default/hq  1/1    Ready     Ready        http://hq.default.svc:5000
fleet/edge  0/2    NotReady  Progressing  http://edge.fleet.svc:5000

POLICY default/tiers  Degraded (DestinationFailed)  4/6 in sync  last sync 3m ago (Schedule, PartiallyFailed)
  DESTINATION   IN SYNC  LAST SYNC  LAG    LAST ERROR
  http://hq.example:5000 (source)
  ├─ region-1   yes      3m ago     0.42s
  │  ├─ city-1  yes      3m ago     -
  │  └─ city-2  no       3m ago     -      tiers/app:v1: connection refused
  └─ region-2   yes      3m ago     3m05s
     ├─ city-3  yes      3m ago     -
     └─ city-4  no       never      -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn no_escape_codes_without_colour_and_colour_only_around_the_words() {
        let fleet = build(&[registry("default", "hq", 1, 1)], &[tiers()], now());
        let plain = render(&fleet, Style::default());
        assert!(!plain.contains('\x1b'), "{plain}");
        let colored = render(
            &fleet,
            Style {
                color: true,
                ..Style::default()
            },
        );
        assert!(colored.contains("\x1b[32myes\x1b[0m"));
        assert!(colored.contains("\x1b[31mno\x1b[0m"));
        assert!(colored.contains("\x1b[31mDegraded (DestinationFailed)\x1b[0m"));
        // Stripping the codes gives back the plain picture: alignment ignores them.
        let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
            .expect("regex")
            .replace_all(&colored, "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn long_and_multi_line_errors_fit_one_line() {
        assert_eq!(one_line("a\n  b\tc ", 80), "a b c");
        let long = "é".repeat(100);
        let cut = one_line(&long, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…') && cut.starts_with("éééé"));
        assert_eq!(one_line("exactly10!", 10), "exactly10!");

        let mut p = tiers();
        if let Some(s) = p.status.as_mut() {
            s.destinations[4].last_error = Some(format!("first line\n{}", "x".repeat(200)));
        }
        let text = render(&build(&[], &[p.clone()], now()), Style::default());
        let line = text
            .lines()
            .find(|l| l.contains("city-2"))
            .expect("city-2 line");
        assert!(
            line.contains("first line xxx") && line.ends_with('…'),
            "{line}"
        );
        let error = &line[line.find("first line").expect("error")..];
        assert_eq!(error.chars().count(), ERROR_WIDTH);
        let wide = render(
            &build(&[], &[p], now()),
            Style {
                wide: true,
                ..Style::default()
            },
        );
        let line = wide.lines().find(|l| l.contains("city-2")).expect("city-2");
        assert!(
            line.ends_with(&format!("first line {}", "x".repeat(200))),
            "{line}"
        );
    }

    #[test]
    fn lags_read_at_a_glance() {
        assert_eq!(lag(420), "0.42s");
        assert_eq!(lag(9_999), "10.00s");
        assert_eq!(lag(12_000), "12s");
        assert_eq!(lag(185_000), "3m05s");
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(-3), "0s ago");
        assert_eq!(ago(59), "59s ago");
        assert_eq!(ago(60), "1m ago");
        assert_eq!(ago(3599), "59m ago");
        assert_eq!(ago(7200), "2h ago");
        assert_eq!(ago(86400 * 3 + 5), "3d ago");
    }

    #[test]
    fn a_pending_policy_and_feed_problems_read_plainly() {
        let p = policy(
            "ns",
            "new",
            vec![dest("a", None), dest("lost", Some("nowhere"))],
            None,
        );
        let text = render(&build(&[], &[p], now()), Style::default());
        let expected = "\
POLICY ns/new  Pending  0/2 in sync  never synced
  DESTINATION  IN SYNC  LAST SYNC  LAG  LAST ERROR
  http://hq.example:5000 (source)
  ├─ a         no       never      -
  └─ lost      no       never      -    from: nowhere names no destination of this policy
";
        assert_eq!(text, expected, "\n{text}");
        assert_eq!(render(&build(&[], &[], now()), Style::default()), "");
    }
}
