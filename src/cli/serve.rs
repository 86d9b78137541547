//! `ace serve`: the engine configured from the environment, its `/metrics` and `/health` served
//! until the process is stopped.

use ace::ServeOptions;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (localhost by default; 0.0.0.0 exposes it to the network).
    #[arg(long, default_value = "127.0.0.1:9464", env = "ACE_METRICS_ADDR")]
    listen: String,
}

pub(crate) fn run(args: &ServeArgs) -> ace::Result<()> {
    let engine = ace::from_env()?;
    // The token comes from the environment only: a command-line argument shows in `ps`.
    let mut options = ServeOptions::default();
    if let Ok(token) = std::env::var("ACE_METRICS_TOKEN")
        && !token.is_empty()
    {
        options = options.token(token);
    }
    let protected = options.token.is_some();
    let server = ace::serve_with(&engine, args.listen.as_str(), options)?;
    println!(
        "serving http://{}/metrics and /health{} (store: {})",
        server.local_addr(),
        if protected { " (bearer token required)" } else { "" },
        engine.store().backend()
    );
    loop {
        std::thread::park();
    }
}
