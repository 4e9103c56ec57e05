//! berth's benchmarks, each side by side with the other tools installed here.
//!   cargo run --release -p berth-bench -- [all|runtime|images|commit] [--runs N]
//! Speed goals live here, never in timed tests.

mod commit;
mod engine;
mod images;
mod runtime;
mod stats;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.iter().find(|a| !a.starts_with("--")).map(String::as_str).unwrap_or("all");
    let runs = args
        .windows(2)
        .find(|w| w[0] == "--runs")
        .map(|w| w[1].parse::<usize>())
        .transpose()?;
    let _ = runs;
    match which {
        "all" => {
            runtime::run(runs)?;
            images::run(runs)?;
            commit::run(runs)?;
        }
        "runtime" => runtime::run(runs)?,
        "images" => images::run(runs)?,
        "commit" => commit::run(runs)?,
        "engine" => engine::run(runs)?,
        other => anyhow::bail!("unknown benchmark {other:?}: all, runtime, images, commit"),
    }
    Ok(())
}
