//! vcctl's HTTP clients: one way to make them. TLS is rustls with the aws-lc-rs provider (the
//! one the AWS SDK builds already); the roots are the system's, plus a stack's `tls.trust_ca`.
//! A client may be pinned to an address: `https://<domain>` checked on the host vcctl just
//! deployed to, whatever DNS says yet (curl's `--resolve`), with the certificate still
//! verified for the domain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// How long any one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The system's roots and those in `extra` (a PEM file).
fn roots(extra: Option<&Path>) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    // A system without a CA bundle still verifies against `extra`.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = store.add(cert);
    }
    if let Some(file) = extra {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|it| it.collect::<Result<_, _>>())
            .with_context(|| format!("reading the certificates of `{}` (tls.trust_ca)", file.display()))?;
        anyhow::ensure!(!certs.is_empty(), "`{}` (tls.trust_ca) holds no PEM certificate", file.display());
        for cert in certs {
            store.add(cert).with_context(|| format!("a certificate of `{}` (tls.trust_ca)", file.display()))?;
        }
    }
    Ok(store)
}

/// What a client trusts, and where it sends a name.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Roots beside the system's (a PEM file: `tls.trust_ca`).
    pub ca: Option<PathBuf>,
    /// `domain` is sent to this address, whatever DNS says.
    pub pin: Option<(String, SocketAddr)>,
}

/// A client builder that verifies TLS against the system's roots and `trust.ca`, and sends
/// the pinned domain to its address.
pub fn builder(trust: &Trust) -> Result<reqwest::ClientBuilder> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots(trust.ca.as_deref())?)
        .with_no_client_auth();
    let mut b = reqwest::Client::builder().use_preconfigured_tls(tls);
    if let Some((domain, addr)) = &trust.pin {
        b = b.resolve(domain, *addr);
    }
    Ok(b)
}

/// A client for `trust` whose requests take at most [`TIMEOUT`].
pub fn client_for(trust: &Trust) -> Result<reqwest::Client> {
    builder(trust)?.timeout(TIMEOUT).build().context("building an HTTP client")
}

/// The plain client: system roots, no pin, [`TIMEOUT`].
pub fn client() -> reqwest::Client {
    client_for(&Trust::default()).expect("a client with the system's roots builds")
}

/// A body of at most `limit` bytes: an answer that goes on is cut there, not read to the end.
pub async fn bounded_text(response: reqwest::Response, limit: usize) -> Result<String> {
    Ok(String::from_utf8_lossy(&bounded_bytes(response, limit).await?).into_owned())
}

/// The body's bytes, at most `limit` of them.
pub async fn bounded_bytes(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            anyhow::bail!("the answer is longer than {limit} bytes");
        }
    }
    Ok(body)
}
