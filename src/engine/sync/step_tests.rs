//! The relay decision of one destination for one artifact, without a registry.

use super::*;

fn copy() -> Result<Action, String> {
    Ok(Action::Copy)
}

fn done(s: Step) -> Status {
    match s {
        Step::Done(s) => s,
        Step::Copy => panic!("expected a settled status, got a copy"),
    }
}

#[test]
fn a_destination_fed_by_the_source_or_a_holding_feeder_is_copied() {
    assert!(matches!(step(&copy(), false, None, false), Step::Copy));
    for copied in [true, false] {
        let holds = Status::Holds { copied };
        assert!(matches!(
            step(&copy(), false, Some(("east", Some(&holds))), false),
            Step::Copy
        ));
    }
}

#[test]
fn a_destination_whose_feeder_failed_is_not_copied_and_says_why() {
    let failed = Status::Failed("boom".into());
    let s = done(step(&copy(), false, Some(("east", Some(&failed))), false));
    assert!(
        matches!(&s, Status::Failed(m) if m.contains("east") && m.contains("its copy failed")),
        "{s:?}"
    );
    let conflict = Status::Conflict(Digest::of(b"other"));
    let s = done(step(&copy(), false, Some(("east", Some(&conflict))), false));
    assert!(
        matches!(&s, Status::Failed(m) if m.contains("conflict")),
        "{s:?}"
    );
    // A feeder left out (unreachable) does not feed either.
    let s = done(step(
        &copy(),
        false,
        Some(("east", Some(&Status::LeftOut))),
        false,
    ));
    assert!(matches!(s, Status::Failed(_)), "{s:?}");
    // Nor one that settled nothing (not planned).
    let s = done(step(&copy(), false, Some(("east", None)), false));
    assert!(matches!(s, Status::Failed(_)), "{s:?}");
}

#[test]
fn what_needs_no_copy_is_settled_whatever_the_feeder() {
    let failed = Status::Failed("boom".into());
    let feeder = Some(("east", Some(&failed)));
    assert!(matches!(
        done(step(&Ok(Action::Skip), false, feeder, false)),
        Status::Holds { copied: false }
    ));
    let found = Digest::of(b"theirs");
    assert!(matches!(
        done(step(&Ok(Action::Conflict { found: found.clone() }), false, None, false)),
        Status::Conflict(f) if f == found
    ));
    assert!(matches!(
        done(step(&Err("lookup failed".into()), false, None, false)),
        Status::Failed(m) if m == "lookup failed"
    ));
    // Left out wins over everything.
    assert!(matches!(
        done(step(&copy(), true, None, false)),
        Status::LeftOut
    ));
    assert!(matches!(
        done(step(&Err("x".into()), true, feeder, false)),
        Status::LeftOut
    ));
}

#[test]
fn a_dry_run_counts_the_copy_as_made_so_the_tree_below_plans_from_it() {
    assert!(matches!(
        done(step(&copy(), false, None, true)),
        Status::Holds { copied: true }
    ));
    let planned = Status::Holds { copied: true };
    assert!(matches!(
        done(step(&copy(), false, Some(("east", Some(&planned))), true)),
        Status::Holds { copied: true }
    ));
}
