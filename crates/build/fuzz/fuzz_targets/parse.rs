//! Any bytes: the parser answers Ok or an error naming a line inside the file, never panics;
//! every word of a parsed file expands (or fails) without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    match berth_build::parser::parse(&text) {
        Ok(df) => {
            let vars = [("A".to_string(), "x y".to_string())].into_iter().collect();
            for st in &df.stages {
                for ins in st.steps.iter().chain(std::iter::once(&st.from)) {
                    assert!(ins.line >= 1 && ins.line <= lines);
                    let _ = berth_build::lex::expand_words(&ins.original, &vars, df.directives.escape);
                }
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= lines.max(1), "line {} of {lines}", e.line),
    }
    let _ = berth_build::ignore::Ignore::parse(&text).excluded("a/b/c");
});
