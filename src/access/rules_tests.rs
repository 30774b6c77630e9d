use super::*;
use crate::api::access::Action::{Delete, Pull, Push};

fn bundle(rules: serde_json::Value) -> Bundle {
    Bundle {
        rules: serde_json::from_value(rules).expect("rules"),
        admins: Subjects {
            users: vec!["root".into()],
            groups: vec!["ops".into()],
        },
        groups: BTreeMap::from([
            ("team-a".to_string(), vec!["alice".to_string()]),
            ("ops".to_string(), vec!["olga".to_string()]),
        ]),
        ..Bundle::default()
    }
}

fn teams() -> Policy {
    Policy::new(&bundle(serde_json::json!([
        {"repositories": ["library/**"], "anonymous": ["pull"], "users": ["ci"], "actions": ["pull", "push"]},
        {"repositories": ["team-a/**"], "groups": ["team-a"], "actions": ["pull", "push", "delete"]},
        {"repositories": ["team-b/**"], "groups": ["team-a"], "actions": ["pull"]},
        {"repositories": ["team-b/**"], "users": ["bob"], "actions": ["pull", "push"]},
        {"repositories": ["team-b/secret"], "users": ["bob"], "actions": []},
        {"repositories": ["*"], "users": ["*"], "actions": ["pull"]}
    ])))
    .expect("compiles")
}

fn set(a: &[Action]) -> BTreeSet<Action> {
    a.iter().copied().collect()
}

#[test]
fn anonymous_gets_only_what_a_rule_gives_anonymous() {
    let p = teams();
    assert_eq!(p.allowed(Subject::Anonymous, "library/x"), set(&[Pull]));
    assert_eq!(p.allowed(Subject::Anonymous, "library/a/b"), set(&[Pull]));
    assert_eq!(p.allowed(Subject::Anonymous, "team-a/app"), set(&[]));
    assert_eq!(
        p.allowed(Subject::Anonymous, "top"),
        set(&[]),
        "default deny"
    );
    assert!(!p.is_admin(Subject::Anonymous));
}

#[test]
fn first_matching_rule_wins_per_subject() {
    let p = teams();
    let alice = Subject::User("alice");
    assert_eq!(p.allowed(alice, "team-a/app"), set(&[Pull, Push, Delete]));
    assert_eq!(p.allowed(alice, "team-b/app"), set(&[Pull]));
    let bob = Subject::User("bob");
    assert_eq!(p.allowed(bob, "team-b/app"), set(&[Pull, Push]));
    // The later, narrower rule never applies: the team-b/** rule matched first.
    assert_eq!(p.allowed(bob, "team-b/secret"), set(&[Pull, Push]));
    assert_eq!(p.allowed(bob, "team-a/app"), set(&[]));
    // `*` stays within a segment; "*" users is every signed-in user.
    assert_eq!(p.allowed(bob, "top"), set(&[Pull]));
    assert_eq!(
        p.allowed(Subject::User("ci"), "library/x"),
        set(&[Pull, Push])
    );
}

#[test]
fn signed_in_users_keep_what_anonymous_clients_get() {
    let p = teams();
    assert_eq!(p.allowed(Subject::User("alice"), "library/x"), set(&[Pull]));
    let p = Policy::new(&bundle(serde_json::json!([
        {"repositories": ["pub/**"], "anonymous": ["pull"], "users": ["mallory"], "actions": []}
    ])))
    .expect("compiles");
    assert_eq!(p.allowed(Subject::User("mallory"), "pub/x"), set(&[Pull]));
}

#[test]
fn admins_get_everything_and_the_catalog_alone() {
    let p = teams();
    for admin in ["root", "olga"] {
        assert!(p.is_admin(Subject::User(admin)), "{admin}");
        assert_eq!(
            p.allowed(Subject::User(admin), "any/where"),
            set(&[Pull, Push, Delete])
        );
        assert_eq!(
            p.grant(Subject::User(admin), &Scope::Catalog),
            Some(Granted {
                type_: "registry",
                name: "catalog".into(),
                actions: vec!["*"]
            })
        );
    }
    for other in [
        Subject::Anonymous,
        Subject::User("alice"),
        Subject::User("ci"),
    ] {
        assert_eq!(p.grant(other, &Scope::Catalog), None, "{other:?}");
    }
}

#[test]
fn a_grant_is_requested_intersected_with_allowed() {
    let p = teams();
    let scope = parse_scope("repository:team-b/app:pull,push").expect("scope");
    assert_eq!(
        p.grant(Subject::User("alice"), &scope),
        Some(Granted {
            type_: "repository",
            name: "team-b/app".into(),
            actions: vec!["pull"]
        })
    );
    let push = parse_scope("repository:library/x:push").expect("scope");
    assert_eq!(p.grant(Subject::Anonymous, &push), None);
    let all = parse_scope("repository:team-a/app:*").expect("scope");
    assert_eq!(
        p.grant(Subject::User("alice"), &all).map(|g| g.actions),
        Some(vec!["pull", "push", "delete"])
    );
}

#[test]
fn scopes_parse_strictly() {
    assert_eq!(
        parse_scope("repository:a/b:pull,bogus"),
        Some(Scope::Repository {
            name: "a/b".into(),
            actions: set(&[Pull])
        })
    );
    assert_eq!(parse_scope("registry:catalog:*"), Some(Scope::Catalog));
    for ignored in [
        "",
        "repository",
        "repository::pull",
        "registry:other:*",
        "plugin:x:y",
    ] {
        assert_eq!(parse_scope(ignored), None, "{ignored:?}");
    }
    assert_eq!(
        parse_scope(&format!("repository:{}:pull", "a".repeat(600))),
        None
    );
}

#[test]
fn bad_globs_name_the_rule_and_entry() {
    let rules: Vec<AccessRule> = serde_json::from_value(serde_json::json!([
        {"repositories": ["ok/**"], "anonymous": ["pull"]},
        {"repositories": ["fine", "bad[x"], "users": ["a"], "actions": ["pull"]}
    ]))
    .expect("rules");
    let errors = check_rules(&rules);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.access.rules[1].repositories[1]");
    assert_eq!(errors[0].glob, "bad[x");
}
