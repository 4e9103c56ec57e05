//! berth's benchmarks, each side by side with the other tools installed here.
//!   cargo run --release -p berth-bench -- [all|runtime|engine|images|commit|network|pull|build|api] [--runs N]
//! Speed goals live here, never in timed tests.

mod api;
mod build;
mod cmd;
mod commit;
mod dockerd;
mod engine;
mod images;
mod network;
mod podman;
mod pull;
mod runtime;
mod stats;

/// A binary built beside this one (scripts/build-release puts them all in one directory).
pub fn beside_me(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{name} not found beside {}: build it with scripts/build-release",
                exe.display()
            )
        })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The first word that is neither a flag nor a flag's value.
    let which = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--runs"))
        .map_or("all", |(_, a)| a.as_str());
    let runs = args
        .windows(2)
        .find(|w| w[0] == "--runs")
        .map(|w| w[1].parse::<usize>())
        .transpose()?;
    anyhow::ensure!(runs != Some(0), "--runs must be at least 1");
    match which {
        "all" => {
            runtime::run(runs)?;
            engine::run(runs)?;
            images::run(runs)?;
            commit::run(runs)?;
            network::run(runs)?;
            pull::run(runs, &beside_me("berth")?)?;
            build::run(runs)?;
            api::run_bench(runs)?;
        }
        "build" => build::run(runs)?,
        "runtime" => runtime::run(runs)?,
        "images" => images::run(runs)?,
        "commit" => commit::run(runs)?,
        "engine" => engine::run(runs)?,
        "network" => network::run(runs)?,
        "pull" => pull::run(runs, &beside_me("berth")?)?,
        "api" => api::run_bench(runs)?,
        other => anyhow::bail!("unknown benchmark {other:?}: all, runtime, engine, images, commit, network, pull, build, api"),
    }
    Ok(())
}
