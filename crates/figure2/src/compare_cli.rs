//! `figure2 compare`: scenarios under several refresh policies, side by side
//! (`figure2_runner::compare` plays them, `figure2_view::compare` prints them).

use figure2_runner::Scenario;
use figure2_runner::compare::compare;

/// Options of `figure2 compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Scenario files or directories of them.
    #[arg(required = true)]
    pub scenarios: Vec<String>,
    /// Presets to compare, comma-separated (see README "Which refresh policy?").
    #[arg(long, value_delimiter = ',', conflicts_with = "all_presets")]
    pub preset: Vec<String>,
    /// Every shipped preset.
    #[arg(long)]
    pub all_presets: bool,
    /// text, markdown or json.
    #[arg(long, default_value = "text", value_parser = ["text", "markdown", "json"])]
    pub format: String,
}

pub async fn run(args: CompareArgs) -> Result<bool, String> {
    let presets: Vec<String> =
        if args.all_presets || args.preset.is_empty() { figure2_runner::compare::all_presets() } else { args.preset };
    let mut json = Vec::new();
    for path in crate::expand(args.scenarios) {
        let scenario = Scenario::load(&path).map_err(|e| e.to_string())?;
        let comparison = compare(&scenario, &presets).await.map_err(|e| e.to_string())?;
        match args.format.as_str() {
            "markdown" => print!("{}", figure2_view::compare::markdown(&comparison)),
            "json" => json.push(comparison),
            _ => println!("{}", figure2_view::compare::text(&comparison)),
        }
    }
    if args.format == "json" {
        println!("{}", figure2_view::compare::json_all(&json));
    }
    Ok(true)
}
