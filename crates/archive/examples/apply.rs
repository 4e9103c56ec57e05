//! Applies a layer file into a directory and prints how long it took.
//! Usage: apply LAYER DEST [--direct]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: apply LAYER DEST [--direct]");
        std::process::exit(2);
    }
    let whiteouts = if args.iter().any(|a| a == "--direct") {
        berth_archive::WhiteoutMode::Direct
    } else {
        berth_archive::WhiteoutMode::Overlay
    };
    let dest = std::path::Path::new(&args[2]);
    std::fs::create_dir_all(dest).expect("create dest");
    let file = std::fs::File::open(&args[1]).expect("open layer");
    let start = Instant::now();
    let opts = berth_archive::ApplyOptions {
        whiteouts,
        expected_diff_id: None,
    };
    match berth_archive::apply_layer(file, dest, &opts) {
        Ok(a) => println!(
            "applied {} entries, {} bytes, {} in {:.3} s",
            a.entries,
            a.size,
            a.diff_id,
            start.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
