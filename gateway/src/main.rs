//! `mimi-gateway`: serve verified discovery lookups over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mimi_gateway::api::{router, Gateway};
use mimi_resolver::args::ResolverArgs;
use mimi_resolver::Resolver;

#[derive(Parser)]
#[command(
    name = "mimi-gateway",
    version,
    about = "HTTP discovery gateway: verified SII → SSI lookups as JSON (mimi-dns)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the JSON API and the lookup page.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8053")]
    listen: SocketAddr,
    #[command(flatten)]
    resolver: ResolverArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Command::Serve(args) = Cli::parse().command;
    let parsed = args.resolver.parse().map_err(anyhow::Error::msg)?;
    let resolver = Resolver::new(parsed.options)?;
    let gateway = Arc::new(Gateway {
        resolver,
        region: parsed.region,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "serving");
    axum::serve(listener, router(gateway)).await?;
    Ok(())
}
