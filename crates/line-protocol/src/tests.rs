//! Unit tests of the parser: every construct of the line protocol, and the errors.

use super::*;

fn one(input: &str) -> ParsedLine<'_> {
    let mut lines = parse_lines(input.as_bytes());
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0).expect("line parses")
}

fn err(input: &str) -> LineError {
    let mut lines = parse_lines(input.as_bytes());
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0).expect_err("line is refused")
}

#[test]
fn simple_point() {
    let p = one("cpu,host=a,region=eu usage=1.5,count=3i 1700000000000000000");
    assert_eq!(p.measurement, "cpu");
    assert_eq!(
        p.tags,
        vec![("host".into(), "a".into()), ("region".into(), "eu".into())]
    );
    assert_eq!(
        p.fields,
        vec![
            ("usage".into(), FieldValue::Float(1.5)),
            ("count".into(), FieldValue::Integer(3))
        ]
    );
    assert_eq!(p.timestamp, Some(1_700_000_000_000_000_000));
    assert!(matches!(p.measurement, Cow::Borrowed(_)));
}

#[test]
fn optional_timestamp_and_no_tags() {
    let p = one("mem free=10u");
    assert_eq!(p.tags, vec![]);
    assert_eq!(p.fields[0].1, FieldValue::UInteger(10));
    assert_eq!(p.timestamp, None);
}

#[test]
fn every_value_type() {
    let p = one(r#"m f=-1.5e3,g=2,h=.5,i=-42i,u=42u,s="hi",b1=t,b2=TRUE,b3=False,b4=f 0"#);
    let values: Vec<_> = p.fields.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        values,
        vec![
            FieldValue::Float(-1500.0),
            FieldValue::Float(2.0),
            FieldValue::Float(0.5),
            FieldValue::Integer(-42),
            FieldValue::UInteger(42),
            FieldValue::String("hi".into()),
            FieldValue::Boolean(true),
            FieldValue::Boolean(true),
            FieldValue::Boolean(false),
            FieldValue::Boolean(false),
        ]
    );
    assert_eq!(p.timestamp, Some(0));
}

#[test]
fn all_boolean_spellings() {
    for t in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(
            one(&format!("m b={t}")).fields[0].1,
            FieldValue::Boolean(true)
        );
    }
    for f in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(
            one(&format!("m b={f}")).fields[0].1,
            FieldValue::Boolean(false)
        );
    }
}

#[test]
fn escapes_in_names_and_values() {
    let p = one(r#"my\ meas\,ure,ta\ g\=k=v\,a\ l\=ue fi\,eld\ k\=ey="a \"quoted\" \\ str" 1"#);
    assert_eq!(p.measurement, "my meas,ure");
    assert_eq!(p.tags, vec![("ta g=k".into(), "v,a l=ue".into())]);
    assert_eq!(p.fields[0].0, "fi,eld k=ey");
    assert_eq!(
        p.fields[0].1,
        FieldValue::String(r#"a "quoted" \ str"#.into())
    );
}

#[test]
fn backslash_before_ordinary_char_is_literal() {
    let p = one(r"m\x,t=a\b v=1");
    assert_eq!(p.measurement, r"m\x");
    assert_eq!(p.tags[0].1, r"a\b");
    // An equals sign is literal in a measurement.
    assert_eq!(one("a=b v=1").measurement, "a=b");
}

#[test]
fn string_with_commas_spaces_and_newline() {
    let lines = parse_lines(b"m s=\"a, b=c\nd\" 5\nm v=2 6");
    assert_eq!(lines.len(), 2);
    let first = lines[0].as_ref().expect("parses");
    assert_eq!(first.fields[0].1, FieldValue::String("a, b=c\nd".into()));
    assert_eq!(first.timestamp, Some(5));
    assert_eq!(lines[1].as_ref().expect("parses").timestamp, Some(6));
}

#[test]
fn blank_comment_and_crlf_lines() {
    let body = b"# a comment\n\n   \ncpu v=1 1\r\n  # indented comment\ncpu v=2 2\n\n";
    let lines = parse_lines(body);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.is_ok()));
}

#[test]
fn errors_name_the_line() {
    let body = b"cpu v=1 1\ncpu v=oops 2\ncpu 3\ncpu v=4 4";
    let lines = parse_lines(body);
    assert_eq!(lines.len(), 4);
    assert!(lines[0].is_ok());
    let e = lines[1].as_ref().expect_err("bad value");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("double-quoted"), "{e}");
    assert_eq!(lines[2].as_ref().expect_err("no fields").line, 3);
    assert!(lines[3].is_ok());
}

#[test]
fn refused_inputs() {
    assert!(err("cpu").message.contains("field"));
    assert!(err("cpu ").message.contains("field set"));
    assert!(err(",t=a v=1").message.contains("measurement"));
    assert!(err("cpu,t v=1").message.contains("'='"));
    assert!(err("cpu,t= v=1").message.contains("empty value"));
    assert!(err("cpu v=1 abc").message.contains("timestamp"));
    assert!(
        err("cpu v=1 99999999999999999999")
            .message
            .contains("out of range")
    );
    assert!(err("cpu v=1 1 extra").message.contains("unexpected text"));
    assert!(
        err("cpu v=9223372036854775808i")
            .message
            .contains("out-of-range")
    );
    assert!(err("cpu v=-1u").message.contains("unsigned"));
    assert!(err("cpu v=1e400").message.contains("invalid number"));
    assert!(err("cpu v=inf").message.contains("double-quoted"));
    assert!(err("cpu v=\"open").message.contains("closing"));
    assert!(err("cpu v=").message.contains("missing value"));
    assert!(err("cpu v=1,").message.contains("field"));
}

#[test]
fn invalid_utf8_only_fails_its_line() {
    let body = b"cpu v=1 1\ncpu,h=\xff v=2 2\ncpu v=3 3";
    let lines = parse_lines(body);
    assert_eq!(lines.len(), 3);
    assert!(lines[0].is_ok() && lines[2].is_ok());
    let e = lines[1].as_ref().expect_err("invalid utf8");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("UTF-8"));
}

#[test]
fn negative_timestamp_and_unicode() {
    let p = one("température,lieu=Zürich valeur=1 -5");
    assert_eq!(p.measurement, "température");
    assert_eq!(p.timestamp, Some(-5));
}

#[test]
fn precisions() {
    assert_eq!("s".parse::<Precision>(), Ok(Precision::Second));
    assert_eq!("n".parse::<Precision>(), Ok(Precision::Nanosecond));
    assert_eq!("us".parse::<Precision>(), Ok(Precision::Microsecond));
    assert_eq!("h".parse::<Precision>(), Ok(Precision::Hour));
    assert!("x".parse::<Precision>().is_err());
    assert_eq!(Precision::Second.to_nanos(2), Some(2_000_000_000));
    assert_eq!(Precision::Hour.to_nanos(i64::MAX), None);
    assert_eq!(
        Precision::Second.truncate_nanos(1_500_000_000),
        1_000_000_000
    );
}

#[test]
fn written_lines_parse_back_to_the_same_point() {
    let mut out = Vec::new();
    let tags = [("host name", "a,b=c"), ("empty", ""), ("dc", "eu")];
    let fields = [
        ("f", FieldValue::Float(0.1)),
        ("i", FieldValue::Integer(-7)),
        ("u", FieldValue::UInteger(u64::MAX)),
        ("b", FieldValue::Boolean(true)),
        ("s", FieldValue::String(r#"say "hi" \ bye"#.into())),
        ("n", FieldValue::String("two\nlines".into())),
    ];
    write_line(&mut out, "my cpu,x", &tags, &fields, Some(-12)).expect("encodes");
    write_line(&mut out, "m", &[], &[("v", FieldValue::Float(1.0))], None).expect("encodes");
    let lines: Vec<_> = parse_lines(&out)
        .into_iter()
        .map(|l| l.expect("parses"))
        .collect();
    assert_eq!(lines.len(), 2);
    let p = &lines[0];
    assert_eq!(p.measurement, "my cpu,x");
    assert_eq!(
        p.tags,
        vec![
            ("host name".into(), "a,b=c".into()),
            ("dc".into(), "eu".into())
        ]
    );
    assert_eq!(p.fields.len(), 6);
    for ((key, value), (pk, pv)) in fields.iter().zip(&p.fields) {
        assert_eq!(key, pk);
        assert_eq!(value, pv);
    }
    assert_eq!(p.timestamp, Some(-12));
    assert_eq!(lines[1].timestamp, None);
}

#[test]
fn unwritable_points_are_refused_and_leave_no_bytes() {
    let mut out = b"keep\n".to_vec();
    let bad = write_line(
        &mut out,
        "m",
        &[("t", "a\nb")],
        &[("v", FieldValue::Integer(1))],
        None,
    );
    assert!(matches!(bad, Err(EncodeError::LineBreak { .. })));
    let bad = write_line(
        &mut out,
        "m",
        &[],
        &[("v", FieldValue::Float(f64::NAN))],
        None,
    );
    assert!(matches!(bad, Err(EncodeError::NonFinite { .. })));
    assert_eq!(
        write_line(&mut out, "m", &[], &[], None),
        Err(EncodeError::NoFields)
    );
    assert_eq!(out, b"keep\n");
}
