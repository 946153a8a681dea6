//! Flags shared by every subcommand.

use clap::Args;

/// Verbosity and threads, for every subcommand.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// CPU threads for libtorch and the data pipeline, 1-1024 (default: all cores).
    #[arg(long, global = true, value_parser = crate::ranges::threads())]
    pub threads: Option<usize>,
}

impl Global {
    /// Sets up `tracing` on stderr at the chosen level (`RUST_LOG` overrides it), and the
    /// thread counts.
    pub(crate) fn init_logging(&self) {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "debug",
            (false, _) => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
        if let Some(n) = self.threads {
            tch::set_num_threads(n as i32);
            let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
        }
    }

    /// Whether to print informational lines (summaries, tables).
    pub(crate) fn chatty(&self) -> bool {
        !self.quiet
    }
}

/// `--device`: where the network runs.
#[derive(Debug, Args, Clone)]
pub(crate) struct DeviceArg {
    /// cpu, cuda (the first GPU) or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArg {
    /// The libtorch device, checked.
    pub(crate) fn device(&self) -> anyhow::Result<tch::Device> {
        Ok(yolo3_model::parse_device(&self.device)?)
    }
}

/// Large images in tiles (`detect` and `eval`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TileArgs {
    /// Cut each image larger than SIDE pixels into overlapping SIDE x SIDE tiles at full
    /// resolution (each letterboxed to --input), plus one pass over the whole image, and merge
    /// the boxes: for small objects in large photos (32-8192).
    #[arg(long, value_name = "SIDE", value_parser = crate::ranges::count_u32(32, yolo3_model::MAX_INPUT))]
    pub tile: Option<u32>,
    /// Overlap of neighbouring tiles, a fraction of --tile in [0, 0.95]; more than the largest
    /// object's size keeps every object whole in some tile.
    #[arg(long, default_value_t = yolo3_core::tiles::DEFAULT_OVERLAP, requires = "tile", value_parser = crate::ranges::overlap)]
    pub tile_overlap: f64,
}

impl TileArgs {
    /// The tiling asked for, if any.
    pub(crate) fn tiling(&self) -> Option<yolo3_predict::Tiling> {
        self.tile.map(|side| yolo3_predict::Tiling { side, overlap: self.tile_overlap })
    }
}
