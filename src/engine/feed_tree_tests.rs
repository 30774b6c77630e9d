//! The destination tree: levels, parents, children, descendants, and every problem of the
//! `from` links.

use super::*;

fn tree(links: &[(&str, Option<&str>)]) -> (FeedTree, Vec<TreeProblem>) {
    FeedTree::from_links(links.iter().copied())
}

fn d(name: &str, from: Option<&str>) -> DestinationConfig {
    DestinationConfig {
        name: name.into(),
        from: from.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn levels_parents_and_children_of_a_tree() {
    let dests = vec![
        d("c1", Some("east")),
        d("east", None),
        d("west", None),
        d("c2", Some("west")),
        d("village", Some("c1")),
        d("c3", Some("east")),
    ];
    let t = FeedTree::new(&dests).expect("valid");
    assert_eq!(t.levels(), [vec![1, 2], vec![0, 3, 5], vec![4]]);
    assert_eq!(
        (0..6).map(|i| t.parent(i)).collect::<Vec<_>>(),
        [Some(1), None, None, Some(2), Some(0), Some(1)]
    );
    assert_eq!(t.children(1), [0, 5]);
    assert_eq!(t.children(4), [] as [usize; 0]);
    assert_eq!(t.descendants(1), [0, 5, 4], "nearest first");
    assert_eq!(t.descendants(2), [3]);
    assert!(t.descendants(4).is_empty());
    assert!((0..6).all(|i| t.is_fed(i)));
    assert_eq!((t.len(), t.is_empty()), (6, false));
    assert_eq!(t.parent(99), None);
    assert!(t.children(99).is_empty());
}

#[test]
fn a_cycle_is_reported_once_in_link_order_with_what_hangs_below_it_unfed() {
    // a <- c <- b <- a, and d fed by a.
    let (t, p) = tree(&[
        ("a", Some("c")),
        ("b", Some("a")),
        ("c", Some("b")),
        ("d", Some("a")),
        ("e", None),
    ]);
    assert_eq!(
        p,
        [TreeProblem::Cycle {
            members: vec![0, 2, 1]
        }]
    );
    assert_eq!(t.levels(), [vec![4]]);
    assert!(!t.is_fed(3) && !t.is_fed(0) && t.is_fed(4));
    // Below a: b, d, then c (through b); never a itself.
    assert_eq!(t.descendants(0), [1, 3, 2]);
    let e = FeedTree::new(&[d("a", Some("b")), d("b", Some("a"))]).expect_err("cycle");
    assert_eq!(e, ConfigError::Cycle("a, b".into()));
}

#[test]
fn two_cycles_and_a_self_reference_are_each_reported() {
    let (_, p) = tree(&[
        ("a", Some("b")),
        ("b", Some("a")),
        ("x", Some("y")),
        ("y", Some("x")),
        ("s", Some("s")),
    ]);
    assert_eq!(
        p,
        [
            TreeProblem::Cycle {
                members: vec![0, 1]
            },
            TreeProblem::Cycle {
                members: vec![2, 3]
            },
            TreeProblem::Cycle { members: vec![4] },
        ]
    );
    assert_eq!(
        FeedTree::new(&[d("a", Some("a"))]),
        Err(ConfigError::Cycle("a".into()))
    );
}

#[test]
fn an_unknown_from_is_reported_and_placed_as_if_fed_by_the_source() {
    let (t, p) = tree(&[("a", Some("nowhere")), ("b", Some("a"))]);
    assert_eq!(p, [TreeProblem::UnknownFrom { index: 0 }]);
    assert_eq!(t.levels(), [vec![0], vec![1]]);
    assert_eq!(t.parent(0), None);
    assert_eq!(
        FeedTree::new(&[d("a", Some("zzz"))]),
        Err(ConfigError::UnknownFrom {
            name: "a".into(),
            from: "zzz".into()
        })
    );
}

#[test]
fn duplicates_and_an_empty_list_are_reported() {
    let (t, p) = tree(&[("a", None), ("b", Some("a")), ("a", None)]);
    assert_eq!(p, [TreeProblem::Duplicate { index: 2 }]);
    assert_eq!(
        t.parent(1),
        Some(0),
        "a from resolves to the first of the name"
    );
    assert_eq!(
        FeedTree::new(&[d("a", None), d("a", None)]),
        Err(ConfigError::Duplicate("a".into()))
    );
    let (t, p) = tree(&[]);
    assert_eq!(p, [TreeProblem::NoDestinations]);
    assert!(t.is_empty() && t.levels().is_empty());
    assert_eq!(FeedTree::new(&[]), Err(ConfigError::NoDestinations));
}
