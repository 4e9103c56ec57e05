//! The Dockerfile parser on good and malformed files: every error names its line.

use berth_build::parser::{parse, Command, Inst};

fn err_line(text: &str) -> (usize, String) {
    let e = parse(text).expect_err(text);
    (e.line, e.msg)
}

#[test]
fn every_instruction_parses() {
    let df = parse(
        r#"# syntax=docker/dockerfile:1
# escape=\
ARG BASE=busybox
FROM ${BASE} AS Build
RUN echo a \
    # a comment inside a continuation
    && echo b
RUN ["echo", "exec"]
RUN --mount=type=cache,target=/c --network=none echo cached
COPY --chown=1:2 --chmod=0640 a b /dst/
COPY --from=build /x /y
ADD --checksum=sha256:00 http://example.invalid/f /f
ENV A=1 B="two words"
ENV C legacy value
ARG X Y=2
WORKDIR /w
USER nobody
CMD echo hi
ENTRYPOINT ["/bin/sh", "-c"]
EXPOSE 80 53/udp
LABEL "k"="v" k2=v2
VOLUME ["/data"]
VOLUME /a /b
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost
HEALTHCHECK NONE
ONBUILD RUN echo triggered
MAINTAINER someone
FROM scratch
COPY --from=0 /x /x
"#,
    )
    .unwrap();
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.stages.len(), 2);
    let s = &df.stages[0];
    assert_eq!(s.name(), Some("build"), "stage names are lower-cased");
    let kw: Vec<&str> = s.steps.iter().map(|i| i.keyword()).collect();
    assert_eq!(
        kw,
        [
            "RUN",
            "RUN",
            "RUN",
            "COPY",
            "COPY",
            "ADD",
            "ENV",
            "ENV",
            "ARG",
            "WORKDIR",
            "USER",
            "CMD",
            "ENTRYPOINT",
            "EXPOSE",
            "LABEL",
            "VOLUME",
            "VOLUME",
            "SHELL",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "HEALTHCHECK",
            "ONBUILD",
            "MAINTAINER"
        ]
    );
    assert_eq!(s.steps[0].line, 5);
    assert_eq!(
        s.steps[0].inst,
        Inst::Run {
            cmd: Command::Shell("echo a     && echo b".into()),
            heredocs: vec![]
        }
    );
    assert_eq!(
        s.steps[1].inst,
        Inst::Run {
            cmd: Command::Exec(vec!["echo".into(), "exec".into()]),
            heredocs: vec![]
        }
    );
    assert_eq!(s.steps[2].flags.get("network"), Some("none"));
    match &s.steps[3].inst {
        Inst::Copy { srcs, dest, .. } => assert_eq!(
            (srcs.clone(), dest.as_str()),
            (vec!["a".to_string(), "b".to_string()], "/dst/")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.steps[3].flags.get("chmod"), Some("0640"));
    assert_eq!(
        s.steps[6].inst,
        Inst::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into())
        ])
    );
    assert_eq!(
        s.steps[7].inst,
        Inst::Env(vec![("C".into(), "legacy value".into())])
    );
    assert_eq!(
        s.steps[8].inst,
        Inst::Arg(vec![("X".into(), None), ("Y".into(), Some("2".into()))])
    );
    match &s.steps[21].inst {
        Inst::Onbuild(inner) => assert_eq!(inner.keyword(), "RUN"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn heredocs_and_directives() {
    let df = parse("# escape=`\nFROM busybox\nRUN <<EOF\necho one `\n  two\nEOF\nRUN cat <<-'A' > /x\n\thello $X\n\tA\nCOPY <<f1 <<f2 /dst/\nx\nf1\ny\nf2\nRUN echo a`\n  b\n").unwrap();
    assert_eq!(df.directives.escape, '`');
    let steps = &df.stages[0].steps;
    match &steps[0].inst {
        Inst::Run { heredocs, .. } => {
            assert_eq!(heredocs.len(), 1);
            assert_eq!(heredocs[0].content, "echo one `\n  two\n");
            assert!(heredocs[0].expand);
        }
        other => panic!("{other:?}"),
    }
    match &steps[1].inst {
        Inst::Run { heredocs, .. } => {
            assert_eq!(heredocs[0].content, "hello $X\n");
            assert!(!heredocs[0].expand, "a quoted delimiter is not expanded");
        }
        other => panic!("{other:?}"),
    }
    match &steps[2].inst {
        Inst::Copy { heredocs, srcs, .. } => {
            assert_eq!(
                heredocs
                    .iter()
                    .map(|h| h.content.as_str())
                    .collect::<Vec<_>>(),
                ["x\n", "y\n"]
            );
            assert_eq!(srcs.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        steps[3].inst,
        Inst::Run {
            cmd: Command::Shell("echo a  b".into()),
            heredocs: vec![]
        }
    );
    assert_eq!(steps[3].line, 15);
}

#[test]
fn malformed_files_name_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "FROM busybox\nRUN true\nFROOM x\n",
            3,
            "unknown instruction: FROOM",
        ),
        (
            "FROM busybox\n\nRUN <<EOF\necho hi\n",
            3,
            "unterminated heredoc",
        ),
        ("FROM busybox\nCMD [\"a\", oops]\n", 2, "invalid JSON"),
        ("FROM busybox\nENTRYPOINT [\"a\",]\n", 2, "invalid JSON"),
        ("# just a comment\n\n", 1, "no FROM"),
        ("RUN echo hi\n", 1, "before the first FROM"),
        ("FROM busybox\nRUN echo \\\n", 2, "line continuation"),
        (
            "FROM busybox\nRUN echo a \\\n  b \\\n\n",
            2,
            "line continuation",
        ),
        ("FROM busybox\nCOPY onlyone\n", 2, "two arguments"),
        (
            "FROM busybox\nCOPY --frum=x a b\n",
            2,
            "unknown flag: --frum",
        ),
        ("FROM busybox\nSHELL /bin/sh\n", 2, "JSON form"),
        (
            "FROM busybox\nHEALTHCHECK --interval=5x CMD true\n",
            2,
            "invalid duration",
        ),
        ("FROM busybox\nHEALTHCHECK echo\n", 2, "CMD or NONE"),
        ("FROM busybox\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD"),
        ("FROM busybox\nENV\n", 2, "ENV"),
        ("FROM busybox\nENV onlykey\n", 2, "KEY=VALUE"),
        ("FROM busybox\nLABEL a\n", 2, "KEY=VALUE"),
        (
            "FROM busybox\nRUN --mount=type=nope,target=/x true\n",
            2,
            "mount type",
        ),
        ("FROM busybox\nWORKDIR\n", 2, "WORKDIR"),
        ("FROM a AS x\nFROM b AS X\n", 2, "duplicate stage name"),
        ("FROM a AS 1x\n", 1, "invalid stage name"),
        ("FROM busybox\nENV A=\"unterminated\n", 2, "quote"),
        ("# escape=x\nFROM busybox\n", 1, "escape"),
    ];
    for (text, line, what) in cases {
        let (l, msg) = err_line(text);
        assert_eq!(l, *line, "{text:?}: {msg}");
        assert!(msg.contains(what), "{text:?}: {msg:?} lacks {what:?}");
        let shown = parse(text).unwrap_err().to_string();
        assert!(
            shown.starts_with(&format!("Dockerfile:{line}: ")),
            "{shown}"
        );
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic sweep beside the cargo-fuzz target (fuzz/).
    let alphabet: &[&str] = &[
        "FROM a\n",
        "RUN ",
        "<<EOF",
        "\nEOF\n",
        "\\\n",
        "[\"x\"",
        "]",
        "\"",
        "'",
        "# escape=`\n",
        "COPY ",
        "--from=",
        "ONBUILD ",
        "$",
        "{",
        "}",
        "\n",
        " ",
        "#",
        "HEALTHCHECK ",
        "CMD ",
        "ARG A=",
        "=",
        "\t",
        "<<-'X'",
        "X\n",
    ];
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..20000 {
        let mut s = String::new();
        for _ in 0..(seed % 12) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        seed = seed.wrapping_add(1);
        if let Ok(df) = parse(&s) {
            for st in &df.stages {
                for i in &st.steps {
                    let _ = i.keyword();
                }
            }
        }
    }
}
