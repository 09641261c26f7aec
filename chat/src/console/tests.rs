use super::*;

#[test]
fn words_and_targets() {
    assert_eq!(split_word("  bob   hello  there "), ("bob", "hello  there"));
    assert_eq!(split_word("bob"), ("bob", ""));
    assert_eq!(split_word(""), ("", ""));
    assert!(matches!(target_of("bob"), Some(Target::User(u)) if u == "bob"));
    assert!(matches!(target_of("#7"), Some(Target::Group(GroupRef::Id(7)))));
    // A name is resolved against my groups later.
    assert!(matches!(target_of("#team"), Some(Target::Group(GroupRef::Name(n))) if n == "team"));
    assert!(target_of("").is_none() && target_of("#").is_none());
}

#[test]
fn a_message_keeps_its_text_whole_and_other_verbs_take_quoted_words() {
    assert_eq!(
        words_of("send", "bob hello  'there'").unwrap(),
        ["bob", "hello  'there'"]
    );
    assert_eq!(words_of("group-send", "team").unwrap(), ["team"]);
    assert_eq!(
        words_of("add-friend", "bob --note 'hi, it is me'").unwrap(),
        ["bob", "--note", "hi, it is me"]
    );
    assert!(words_of("join", "team --note 'open").is_err());
}

#[test]
fn every_subcommand_parses_as_a_console_line() {
    let parse = |line: &str| {
        let (name, rest) = split_word(line);
        let words = words_of(name, rest).expect("words");
        Line::try_parse_from(std::iter::once(name.to_owned()).chain(words)).map(|l| l.verb)
    };
    assert!(matches!(parse("friends"), Ok(Verb::Friends)));
    assert!(matches!(parse("approve team bob"),
        Ok(Verb::Approve { group: GroupRef::Name(ref g), ref who }) if g == "team" && who == "bob"));
    assert!(matches!(parse("group-send 7 hello all of you"),
        Ok(Verb::GroupSend { group: GroupRef::Id(7), ref text }) if text == "hello all of you"));
    assert!(matches!(parse("recall 42"), Ok(Verb::Recall { message_id: 42 })));
    assert!(parse("approve team").is_err(), "a missing USER is an error");
    assert!(parse("recall soon").is_err());
}

#[test]
fn every_command_is_unique_and_described() {
    let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), COMMANDS.len());
    for c in COMMANDS {
        assert!(!c.name.starts_with('/') && !c.name.contains(' '), "{}", c.name);
    }
    for needed in ["help", "to", "history", "quit"] {
        assert!(
            COMMANDS.iter().any(|c| c.name == needed && !c.help.is_empty()),
            "{needed}"
        );
    }
    for verb in NOT_HERE.iter().chain(TEXT_LAST) {
        assert!(
            Line::command().find_subcommand(verb).is_some(),
            "{verb} is a subcommand"
        );
    }
}
