//! Connection start-up: who the client is, and whether it may use the database it asked
//! for.
//!
//! The password is an API token. Over a plain connection it is proven with SCRAM-SHA-256
//! (user name = the token's name, e.g. `admin`), so the token never crosses the wire; over
//! TLS the client sends it as a cleartext password, and any user name will do. A token
//! is accepted only for the startup message's database (admin tokens for any). With
//! authentication off every client is an anonymous admin. The accepted token's record
//! stays in the session, where each statement is checked against it (see `access`).

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_catalog::auth::{AuthError, Authenticator};
use chronosdb_catalog::tokens::{Access, AuthFailure, SCRAM_ITERATIONS, TokenRecord};
use futures::{Sink, SinkExt};
use pgwire::api::auth::sasl::SCRAM_SHA_256_METHOD;
use pgwire::api::auth::sasl::scram::{ScramServerAuth, ScramServerAuthWaitingForClientFinal};
use pgwire::api::auth::{
    DefaultServerParameterProvider, Password, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, ConnectionManager, METADATA_DATABASE, METADATA_USER, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use crate::session_control::{Activity, Cancels};

/// Where a connection's login stands.
#[derive(Debug)]
enum Login {
    /// Waiting for the startup message.
    Started,
    /// SCRAM offered; waiting for the client-first message.
    ScramOffered,
    /// Server-first sent; waiting for the client's proof.
    ScramChallenged(Box<ScramServerAuthWaitingForClientFinal>, TokenRecord),
    /// Cleartext password asked for (TLS connections only).
    PasswordAsked,
}

/// State every connection's start-up shares.
pub struct StartupShared {
    pub auth: Arc<Authenticator>,
    pub connections: Arc<ConnectionManager>,
    pub cancels: Arc<Cancels>,
    pub pids: RandomPidSecretKeyGenerator,
}

/// The start-up handler of one connection.
pub struct Startup {
    shared: Arc<StartupShared>,
    activity: Arc<Activity>,
    login: Mutex<Login>,
    /// Refuse the connection unless it is encrypted.
    require_tls: bool,
}

impl Startup {
    pub fn new(shared: Arc<StartupShared>, activity: Arc<Activity>, require_tls: bool) -> Self {
        Self {
            shared,
            activity,
            login: Mutex::new(Login::Started),
            require_tls,
        }
    }

    /// Registers the authenticated connection (cancel requests, idle check, its token)
    /// and tells the client it may start.
    async fn accept<C>(&self, client: &mut C, record: TokenRecord) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret_key) = self.shared.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        let (handle, guard) = self.shared.connections.register(pid, secret_key);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        self.shared.cancels.register(client);
        self.activity.touch();
        client.session_extensions().insert(self.activity.clone());
        client.session_extensions().insert(record);
        finish_authentication(client, &DefaultServerParameterProvider::default()).await
    }

    /// Refuses the login after counting the failure against the peer.
    async fn refuse(&self, peer: IpAddr, error: AuthError) -> PgWireError {
        if matches!(error, AuthError::Unauthenticated(_)) {
            self.shared.auth.penalize(peer).await;
        }
        login_error(&error)
    }
}

/// The FATAL error a refused login gets: 28P01 for a bad token, 28000 for one that may
/// not use the database.
pub fn login_error(error: &AuthError) -> PgWireError {
    let (code, message) = match error {
        AuthError::Unauthenticated(failure) => (
            "28P01",
            format!(
                "password authentication failed: {failure}; the password is an API token (over SCRAM the user name is the token's name)"
            ),
        ),
        AuthError::Forbidden(message) => ("28000", message.clone()),
    };
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

/// The FATAL error of a plaintext connection to a server that requires TLS (the code
/// PostgreSQL gives when no `pg_hba.conf` line allows a non-SSL connection).
fn tls_required_error() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        "28000".to_string(),
        "this server requires TLS: connect with sslmode=require (or verify-full)".to_string(),
    )))
}

/// Whether `record` may connect to `database`: it must read or write there.
fn may_connect(record: &TokenRecord, database: &str) -> Result<(), AuthError> {
    if record.allows(Some(database), Access::Read) || record.allows(Some(database), Access::Write) {
        return Ok(());
    }
    Authenticator::authorize(record, Some(database), Access::Read)
}

fn database_of<C: ClientInfo>(client: &C) -> String {
    client
        .metadata()
        .get(METADATA_DATABASE)
        .cloned()
        .unwrap_or_default()
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr().ip();
        let mut login = self.login.lock().await;
        match (message, &*login) {
            (PgWireFrontendMessage::Startup(startup), Login::Started) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.require_tls && !client.is_secure() {
                    return Err(tls_required_error());
                }
                if !self.shared.auth.is_enabled() {
                    return self.accept(client, TokenRecord::anonymous_admin()).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                let (request, next) = if client.is_secure() {
                    (Authentication::CleartextPassword, Login::PasswordAsked)
                } else {
                    (
                        Authentication::SASL(vec![SCRAM_SHA_256_METHOD.to_string()]),
                        Login::ScramOffered,
                    )
                };
                client
                    .send(PgWireBackendMessage::Authentication(request))
                    .await?;
                *login = next;
                Ok(())
            }
            (PgWireFrontendMessage::PasswordMessageFamily(message), Login::PasswordAsked) => {
                let password = message.into_password()?;
                let record = match self
                    .shared
                    .auth
                    .authenticate(peer, Some(&password.password))
                    .await
                {
                    Ok(record) => record,
                    // authenticate() has already counted the failure.
                    Err(failure) => return Err(login_error(&AuthError::Unauthenticated(failure))),
                };
                may_connect(&record, &database_of(client)).map_err(|e| login_error(&e))?;
                self.accept(client, record).await
            }
            (PgWireFrontendMessage::PasswordMessageFamily(message), Login::ScramOffered) => {
                let first = message.into_sasl_initial_response()?;
                if first.auth_method != SCRAM_SHA_256_METHOD {
                    return Err(PgWireError::UnsupportedSASLAuthMethod(first.auth_method));
                }
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let unknown = AuthError::Unauthenticated(AuthFailure::Invalid);
                let Some(record) = self.shared.auth.by_name(&user) else {
                    return Err(self.refuse(peer, unknown).await);
                };
                let Some((salt, salted_password)) = record.scram_secret() else {
                    return Err(self.refuse(peer, unknown).await);
                };
                let data = first.data.ok_or_else(|| {
                    PgWireError::InvalidScramMessage("empty client-first message".to_string())
                })?;
                let mut scram = ScramServerAuth::new();
                scram.set_iterations(SCRAM_ITERATIONS as usize);
                let (server_first, waiting) = scram
                    .on_client_first_message(&data, Password::new(Some(salt), salted_password))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first.into()),
                    ))
                    .await?;
                *login = Login::ScramChallenged(Box::new(waiting), record);
                Ok(())
            }
            (PgWireFrontendMessage::PasswordMessageFamily(message), Login::ScramChallenged(..)) => {
                let Login::ScramChallenged(waiting, record) =
                    std::mem::replace(&mut *login, Login::Started)
                else {
                    return Err(PgWireError::InvalidSASLState);
                };
                let response = message.into_sasl_response()?;
                let server_final = match waiting.on_client_final_message(&response.data) {
                    Ok(server_final) => server_final,
                    Err(_) => {
                        let wrong = AuthError::Unauthenticated(AuthFailure::Invalid);
                        return Err(self.refuse(peer, wrong).await);
                    }
                };
                may_connect(&record, &database_of(client)).map_err(|e| login_error(&e))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(server_final.into()),
                    ))
                    .await?;
                self.accept(client, record).await
            }
            _ => Err(PgWireError::InvalidSASLState),
        }
    }
}
