//! `edgevote cost`: the flags of the cost model, the price file read from disk, and the report
//! printed. The model itself is the `edgevote-cost` crate.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use edgevote_cost::{CostConfig, CostInputs, NaiveEdge};

/// `edgevote cost` arguments.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Model inputs (boxed: they are many, and the command enum stays small).
    #[command(flatten)]
    pub inputs: Box<InputFlags>,
    /// Prices to use instead of the list prices: a flat TOML file of `key = number` lines
    /// (keys as in the assumptions list); unknown keys are refused.
    #[arg(long)]
    pub price_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--naive-edge`: where the naive design's edge runs ([`NaiveEdge`]).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NaiveEdgeFlag {
    /// Cloudflare Workers: billed per request and per CPU millisecond.
    Workers,
    /// The edgevote host on Fargate behind CloudFront, with group commit off
    /// (`forward_outbound = true`: the component sends each vote itself, as on Spin).
    Host,
}

/// The value a flag takes for an input of this type (`--voters 5` sets `Some(5)`).
pub trait InputFlag {
    /// What the flag parses.
    type Flag: Clone;
    /// The input's value for the flag's.
    fn from_flag(flag: Self::Flag) -> Self;
}

/// Inputs whose flag parses the input's own type.
macro_rules! plain_input_flags {
    ($($ty:ty),+) => {$(
        impl InputFlag for $ty {
            type Flag = $ty;
            fn from_flag(flag: $ty) -> Self {
                flag
            }
        }
    )+};
}

plain_input_flags!(f64, u32, u64);

impl<T: InputFlag> InputFlag for Option<T> {
    type Flag = T::Flag;
    fn from_flag(flag: T::Flag) -> Self {
        Some(T::from_flag(flag))
    }
}

impl InputFlag for NaiveEdge {
    type Flag = NaiveEdgeFlag;
    fn from_flag(flag: NaiveEdgeFlag) -> Self {
        match flag {
            NaiveEdgeFlag::Workers => NaiveEdge::Workers,
            NaiveEdgeFlag::Host => NaiveEdge::Host,
        }
    }
}

/// Declares [`InputFlags`], one flag per input of the model's table
/// (`edgevote_cost::cost_inputs`): its doc is the flag's help, its type gives the flag's. The
/// default, unit, check and source stay the model's business.
macro_rules! input_flags {
    ($( $(#[doc = $doc:literal])+ $name:ident: $ty:ty = $($model:expr),+; )+) => {
        /// Command-line overrides of [`CostInputs`]; a flag left out keeps the default.
        #[derive(Debug, Clone, Default, Args)]
        pub struct InputFlags {
            $(
                $(#[doc = $doc])+
                #[arg(long, allow_negative_numbers = true)]
                pub $name: Option<<$ty as InputFlag>::Flag>,
            )+
        }

        impl InputFlags {
            /// Applies the flags that are set to `inputs`; returns the names of those inputs.
            pub fn apply(&self, inputs: &mut CostInputs) -> BTreeSet<String> {
                let mut set = BTreeSet::new();
                $(
                    if let Some(flag) = self.$name.clone() {
                        inputs.$name = <$ty as InputFlag>::from_flag(flag);
                        set.insert(stringify!($name).to_owned());
                    }
                )+
                set
            }
        }
    };
}

edgevote_cost::cost_inputs!(input_flags);

/// Prints the cost report of the arguments.
pub fn run(args: CostArgs) -> anyhow::Result<ExitCode> {
    let config = config_of(&args)?;
    let report = edgevote_cost::estimate(&config)?;
    let text = if args.json {
        edgevote_cost::render_json(&report)?
    } else {
        edgevote_cost::render_text(&report)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the report");
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration the arguments describe (defaults, then flags, then the price file).
fn config_of(args: &CostArgs) -> anyhow::Result<CostConfig> {
    let mut inputs = CostInputs::default();
    let flags_set = args.inputs.apply(&mut inputs);
    let config = CostConfig::new(inputs, flags_set)?;
    let Some(path) = &args.price_file else {
        return Ok(config);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading price file {}", path.display()))?;
    Ok(config.with_price_file(path.display().to_string(), &text)?)
}
