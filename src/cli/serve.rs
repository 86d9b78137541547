//! `ace serve`: the engine configured from the environment, its `/metrics` and `/health` served
//! until the process is stopped; with `--otlp`, OTLP/HTTP trace exports on `POST /v1/traces` too.

use ace::ServeOptions;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (localhost by default; 0.0.0.0 exposes it to the network).
    #[arg(long, default_value = "127.0.0.1:9464", env = "ACE_METRICS_ADDR")]
    listen: String,
    /// Take OpenTelemetry traces (OTLP/HTTP, protobuf or JSON) on POST /v1/traces and record
    /// their GenAI spans (docs/integrations/otlp.md).
    #[arg(long, env = "ACE_OTLP")]
    otlp: bool,
    /// The largest OTLP request body in bytes, before and after gzip (larger: 413).
    #[arg(long, default_value_t = ace::otlp::DEFAULT_MAX_BODY, env = "ACE_OTLP_MAX_BODY")]
    otlp_max_body: usize,
}

pub(crate) fn run(args: &ServeArgs) -> ace::Result<()> {
    let engine = ace::from_env()?;
    // The token comes from the environment only: a command-line argument shows in `ps`.
    let mut options = ServeOptions::default().otlp(args.otlp).otlp_max_body(args.otlp_max_body);
    if let Ok(token) = std::env::var("ACE_METRICS_TOKEN")
        && !token.is_empty()
    {
        options = options.token(token);
    }
    let protected = options.token.is_some();
    let server = ace::serve_with(&engine, args.listen.as_str(), options)?;
    println!(
        "serving http://{}/ (the live page), /api/, /metrics and /health{}{} (store: {})",
        server.local_addr(),
        if args.otlp { " and OTLP traces on POST /v1/traces" } else { "" },
        if protected { " (bearer token required)" } else { "" },
        engine.store().backend()
    );
    loop {
        std::thread::park();
    }
}
