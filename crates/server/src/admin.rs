//! `chronosdb database …`: manage a running server's databases over its HTTP API, so that
//! scripts need neither SQL nor curl.

use clap::{Args, Subcommand};

use crate::ServerError;

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// HTTP base URL of the server.
    #[arg(
        long,
        env = "CHRONOSDB_URL",
        default_value = "http://127.0.0.1:8086",
        global = true
    )]
    url: String,
    #[command(subcommand)]
    action: DatabaseAction,
}

#[derive(Debug, Subcommand)]
enum DatabaseAction {
    /// List the databases and their number of tables.
    List,
    /// Create an empty database.
    Create { name: String },
    /// Drop a database and delete its files.
    Drop { name: String },
}

fn endpoint(url: &str) -> String {
    format!("{}/api/v3/configure/database", url.trim_end_matches('/'))
}

pub async fn database(args: DatabaseArgs) -> Result<(), ServerError> {
    let client = reqwest::Client::new();
    let url = endpoint(&args.url);
    let request = match &args.action {
        DatabaseAction::List => client.get(&url),
        DatabaseAction::Create { name } => client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "db": name }).to_string()),
        DatabaseAction::Drop { name } => client.delete(&url).query(&[("db", name)]),
    };
    let response = request
        .send()
        .await
        .map_err(|e| ServerError::Admin(format!("cannot reach {}: {e}", args.url)))?;
    let status = response.status();
    let unreadable =
        |e: String| ServerError::Admin(format!("unreadable answer from {}: {e}", args.url));
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message").to_string();
        return Err(ServerError::Admin(format!("{status}: {message}")));
    }
    match &args.action {
        DatabaseAction::List => {
            for db in body["databases"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{} table(s)",
                    db["name"].as_str().unwrap_or_default(),
                    db["tables"]
                );
            }
        }
        DatabaseAction::Create { name } => println!("created database {name}"),
        DatabaseAction::Drop { name } => println!(
            "dropped database {name} ({} file(s) deleted)",
            body["files_deleted"]
        ),
    }
    Ok(())
}
