//! The `chronosdb` binary: `serve` runs a node; `bench` loads the TSBS devops data set
//! into a running server over HTTP and reports the ingest rate.

mod admin;
mod backup;
mod bench;
mod bench_queries;
mod config;
mod store;
mod tls;

use std::sync::Arc;

use chronosdb_catalog::auth::Authenticator;
use chronosdb_catalog::tokens::TokenStore;
use chronosdb_http::{HttpConfig, HttpTls};
use chronosdb_pgwire::PgFrontend;
use chronosdb_query::QueryEngine;
use chronosdb_storage::{CompactionConfig, Engine, EngineConfig, WriteLimits};
use clap::{Parser, Subcommand};

/// Errors that stop the server at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] chronosdb_storage::StorageError),
    #[error(transparent)]
    Query(#[from] chronosdb_query::QueryError),
    #[error("{0}")]
    Bench(String),
    #[error("{0}")]
    Admin(String),
}

#[derive(Debug, Parser)]
#[command(
    name = "chronosdb",
    version,
    about = "A time-series database that speaks InfluxDB line protocol and PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a chronosdb node: HTTP line-protocol ingest and the PostgreSQL wire protocol.
    Serve(config::ServeArgs),
    /// Generate the TSBS devops cpu-only data set and load it into a server over HTTP.
    Bench(bench::BenchArgs),
    /// Time the TSBS devops queries over the wire against chronosdb or InfluxDB 1.x.
    BenchQueries(bench_queries::QueryBenchArgs),
    /// List, create or drop the databases of a running server.
    Database(admin::DatabaseArgs),
    /// List, create or revoke the API tokens of a running server.
    Token(admin::TokenArgs),
    /// Copy a consistent snapshot of a running server to a directory or object store;
    /// run again to the same place, it copies only new files (and resumes an interrupted
    /// backup).
    Backup(backup::BackupArgs),
    /// Rebuild a data directory from a backup (the server must not be running on it).
    Restore(backup::RestoreArgs),
}

/// mimalloc rather than the system allocator: planning and executing a query makes tens of
/// thousands of small allocations, and glibc's malloc/free was ~15 % of server CPU on the
/// single-series benchmark queries (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The HTTP client of the admin commands (reqwest) finds its TLS crypto here; rustls is
    // built with aws-lc-rs only, so this cannot conflict with another provider.
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Deep statements plan, run and drop on these threads' stacks (up to the depth that
    // chronosdb_query::statement_depth admits).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(chronosdb_query::statement_depth::QUERY_THREAD_STACK)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::BenchQueries(args) => bench_queries::run(args).await,
            Command::Database(args) => admin::database(args).await,
            Command::Token(args) => admin::token(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: config::ServeArgs) -> Result<(), ServerError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .map_err(|e| ServerError::Config(format!("invalid --log filter: {e}")))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Bad certificate files stop the server before anything is created or opened.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
        _ => None,
    };
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        ServerError::Config(format!(
            "cannot create data directory {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let object_store = store::build(args.object_store.as_deref(), &args.data_dir)?;
    let engine = Engine::open(EngineConfig {
        wal_dir: args.data_dir.join("wal"),
        object_store,
        wal_flush_interval: args.wal_flush_interval,
        persist_buffer_bytes: args.buffer_size,
        persist_max_age: args.persist_interval,
        persist_when_idle: args.persist_when_idle,
        retention_check_interval: args.retention_check_interval,
        compaction: CompactionConfig {
            interval: args.compaction_interval,
            target_bytes: args.compaction_target_size as u64,
            min_files: args.compaction_min_files.into(),
        },
        write_limits: WriteLimits {
            max_series_key_bytes: args.max_series_key_size,
            max_string_field_bytes: args.max_string_field_size,
        },
    })
    .await?;
    let http = tokio::net::TcpListener::bind(args.http_bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: args.http_bind,
            source,
        })?;
    let pg = tokio::net::TcpListener::bind(args.pg_bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: args.pg_bind,
            source,
        })?;
    let http_addr = http.local_addr().map_err(|source| ServerError::Bind {
        addr: args.http_bind,
        source,
    })?;
    let pg_addr = pg.local_addr().map_err(|source| ServerError::Bind {
        addr: args.pg_bind,
        source,
    })?;
    let auth = Arc::new(authenticator(&args)?);
    let mut query = QueryEngine::new(engine.clone(), args.query_memory)?;
    if let Some(root) = store::local_root(args.object_store.as_deref(), &args.data_dir) {
        query = query.with_local_files(root);
    }
    let mut frontend =
        PgFrontend::new(query, auth.clone()).with_idle_timeout(Some(args.pg_idle_timeout));
    let mut http_tls = None;
    if let Some(tls) = tls {
        frontend = frontend.with_tls(tls.pgwire, args.require_tls);
        http_tls = Some(HttpTls {
            config: tls.http,
            required: args.require_tls,
        });
    }
    let frontend = Arc::new(frontend);
    // Tests and scripts read this line to find the ports.
    println!(
        "chronosdb listening: http={http_addr} pg={pg_addr} data_dir={} tls={}",
        args.data_dir.display(),
        match (&http_tls, args.require_tls) {
            (None, _) => "off",
            (Some(_), false) => "on",
            (Some(_), true) => "required",
        }
    );
    tracing::info!(%http_addr, %pg_addr, "chronosdb is ready");
    let http_config = HttpConfig {
        max_request_bytes: args.max_request_size,
    };
    tokio::select! {
        r = chronosdb_http::serve(http, http_tls, engine.clone(), auth, http_config) => {
            r.map_err(|source| ServerError::Bind { addr: http_addr, source })?;
        }
        r = chronosdb_pgwire::serve(pg, frontend) => {
            r.map_err(|source| ServerError::Bind { addr: pg_addr, source })?;
        }
        _ = shutdown_signal() => {
            tracing::info!("shutting down: persisting the write buffer");
            if let Err(e) = engine.persist().await {
                tracing::warn!(error = %e, "persist at shutdown failed; the WAL still holds every write");
            }
        }
    }
    Ok(())
}

/// The token checker: off with `--without-auth` (said loudly), else the tokens of
/// `<data-dir>/tokens.json`, made with an admin token on first start. That token is
/// printed once, here; only its hashes are kept.
fn authenticator(args: &config::ServeArgs) -> Result<Authenticator, ServerError> {
    if args.without_auth {
        eprintln!(
            "WARNING: authentication is OFF (--without-auth): anyone who can reach this server can read, write and drop every database. Use it for local development only."
        );
        tracing::warn!("authentication is off (--without-auth)");
        return Ok(Authenticator::disabled());
    }
    let path = args.data_dir.join("tokens.json");
    let (store, admin) = TokenStore::open(&path).map_err(|e| ServerError::Config(e.to_string()))?;
    if let Some(admin) = admin {
        // Tests and scripts read this line to find the token.
        println!("chronosdb admin token: {}", admin.token);
        eprintln!(
            "A new admin token was created and is shown only this once; keep it safe.\n\
             Use it as 'Authorization: Token <token>' over HTTP and as the password of user \"admin\" over pgwire\n\
             (e.g. PGPASSWORD=<token> psql -h 127.0.0.1 -p 5433 -U admin mydb)."
        );
    }
    Ok(Authenticator::new(store))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
