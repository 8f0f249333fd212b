//! TLS for both listeners: the certificate chain and private key from PEM files, turned
//! into one rustls configuration per protocol (they differ only in ALPN).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ServerConfig, version};

use crate::ServerError;

/// The rustls configurations of the two listeners.
pub struct TlsConfigs {
    pub http: Arc<ServerConfig>,
    pub pgwire: Arc<ServerConfig>,
}

/// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM PKCS#8, PKCS#1 or SEC1 key)
/// and checks that they belong together.
pub fn load(cert: &Path, key: &Path) -> Result<TlsConfigs, ServerError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ServerError::Config(format!(
                "cannot read the TLS certificate {}: {e}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(ServerError::Config(format!(
            "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            cert.display()
        )));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ServerError::Config(format!(
            "cannot read the TLS private key {}: {e}",
            key.display()
        ))
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(|e| ServerError::Config(format!("TLS: {e}")))?
        .with_no_client_auth();
    let config = builder.with_single_cert(chain, private_key).map_err(|e| {
        ServerError::Config(format!(
            "the TLS certificate {} and key {} do not make a usable pair: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    let mut http = config.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut pgwire = config;
    // What PostgreSQL 17 clients ask for when they open TLS directly (sslnegotiation=direct).
    pgwire.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsConfigs {
        http: Arc::new(http),
        pgwire: Arc::new(pgwire),
    })
}
