//! `chronosdb database …` and `chronosdb token …`: manage a running server's databases and
//! API tokens over its HTTP API, so that scripts need neither SQL nor curl. Both need an
//! admin token (`--token` or `CHRONOSDB_TOKEN`) unless the server runs without auth.

use clap::{Args, Subcommand};

use crate::ServerError;

/// Where the server is and how to prove being its admin; shared by both commands.
#[derive(Debug, Args)]
pub struct ServerConnection {
    /// HTTP base URL of the server (`https://…` when it runs with TLS; a private CA is
    /// trusted through `SSL_CERT_FILE=ca.pem`).
    #[arg(
        long,
        env = "CHRONOSDB_URL",
        default_value = "http://127.0.0.1:8086",
        global = true
    )]
    url: String,
    /// Admin token of the server.
    #[arg(long, env = "CHRONOSDB_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    #[command(flatten)]
    server: ServerConnection,
    #[command(subcommand)]
    action: DatabaseAction,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    server: ServerConnection,
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// List the tokens (names, databases, permissions; never secrets).
    List,
    /// Create a token and print its secret, this once.
    Create {
        name: String,
        /// The database the token is for; leave out with `--permission admin`.
        #[arg(long)]
        db: Option<String>,
        /// read, write, read_write, or admin.
        #[arg(long, default_value = "read")]
        permission: String,
        /// Lifetime, e.g. 12h, 30d, 4w (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke a token: it is refused from now on.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
enum DatabaseAction {
    /// List the databases and their number of tables.
    List,
    /// Create an empty database.
    Create {
        name: String,
        /// Keep points this long (e.g. 30d, 12h, 4w); older ones are dropped.
        #[arg(long)]
        retention: Option<String>,
    },
    /// Set a database's retention period (e.g. 30d), or `none` to keep points forever.
    SetRetention { name: String, retention: String },
    /// Drop a database and delete its files.
    Drop { name: String },
}

impl ServerConnection {
    fn endpoint(&self, what: &str) -> String {
        format!("{}/api/v3/configure/{what}", self.base_url())
    }

    /// The server's base URL, without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// `request` with the token, if one was given.
    pub(crate) fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token.as_deref() {
            Some(token) => request.header("Authorization", format!("Token {token}")),
            None => request,
        }
    }

    /// Sends `request` with the token; the answer's JSON, or its error as a message.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, ServerError> {
        let (url, token) = (&self.url, self.token.as_deref());
        let request = self.authorize(request);
        let response = request
            .send()
            .await
            .map_err(|e| ServerError::Admin(format!("cannot reach {url}: {}", error_chain(&e))))?;
        let status = response.status();
        let unreadable =
            |e: String| ServerError::Admin(format!("unreadable answer from {url}: {e}"));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("no message").to_string();
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED && token.is_none() {
                " (give the admin token with --token or CHRONOSDB_TOKEN)"
            } else {
                ""
            };
            return Err(ServerError::Admin(format!("{status}: {message}{hint}")));
        }
        Ok(body)
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message hides e.g. a certificate
/// the client does not trust).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub async fn token(args: TokenArgs) -> Result<(), ServerError> {
    let client = reqwest::Client::new();
    let url = args.server.endpoint("token");
    let request = match &args.action {
        TokenAction::List => client.get(&url),
        TokenAction::Create {
            name,
            db,
            permission,
            expires_in,
        } => client
            .post(&url)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "name": name,
                    "db": db,
                    "permission": permission,
                    "expires_in": expires_in,
                })
                .to_string(),
            ),
        TokenAction::Revoke { name } => client.delete(&url).query(&[("name", name)]),
    };
    let body = args.server.send(request).await?;
    match &args.action {
        TokenAction::List => {
            for t in body["tokens"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\texpires_at={}",
                    t["name"].as_str().unwrap_or_default(),
                    t["db"].as_str().unwrap_or("*"),
                    t["permission"].as_str().unwrap_or_default(),
                    t["expires_at"]
                );
            }
        }
        TokenAction::Create { name, .. } => {
            println!("{}", body["token"].as_str().unwrap_or_default());
            eprintln!("created token {name}; its secret is shown only this once");
        }
        TokenAction::Revoke { name } => println!("revoked token {name}"),
    }
    Ok(())
}

pub async fn database(args: DatabaseArgs) -> Result<(), ServerError> {
    let client = reqwest::Client::new();
    let url = args.server.endpoint("database");
    let request = match &args.action {
        DatabaseAction::List => client.get(&url),
        DatabaseAction::Create { name, retention } => client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "db": name, "retention_period": retention }).to_string()),
        DatabaseAction::SetRetention { name, retention } => client
            .put(&url)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "db": name, "retention_period": retention }).to_string()),
        DatabaseAction::Drop { name } => client.delete(&url).query(&[("db", name)]),
    };
    let body = args.server.send(request).await?;
    match &args.action {
        DatabaseAction::List => {
            for db in body["databases"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{} table(s)\tretention={}",
                    db["name"].as_str().unwrap_or_default(),
                    db["tables"],
                    db["retention_period"].as_str().unwrap_or("none")
                );
            }
        }
        DatabaseAction::Create { name, .. } => println!("created database {name}"),
        DatabaseAction::SetRetention { name, .. } => println!(
            "database {name} keeps points for {}",
            body["retention_period"].as_str().unwrap_or("ever")
        ),
        DatabaseAction::Drop { name } => println!(
            "dropped database {name} ({} file(s) deleted)",
            body["files_deleted"]
        ),
    }
    Ok(())
}
