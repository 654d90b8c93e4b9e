//! TLS to PostgreSQL, one of two ways. With the server's certificate pinned
//! (`--database-cert`): the connection is encrypted, and accepted only when the server
//! presents exactly that certificate. A fleet's db host has a self-signed certificate, named
//! for its hostname rather than the address the app hosts dial, so neither a CA nor a name
//! can vouch for it; the certificate itself can, as SSH pins a host key. vcctl copies it from
//! the db host. With certificate authorities (`--database-ca`): the server's chain is
//! verified against them for the host in the URL, as libpq's `verify-full` does; for an
//! external database (RDS publishes its bundle).

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// Connects to PostgreSQL over TLS, trusting one certificate or some authorities.
#[derive(Clone)]
pub struct DatabaseTls {
    config: Arc<rustls::ClientConfig>,
}

impl DatabaseTls {
    /// Trusting the certificate in the PEM file at `path` (its first one), and it only.
    pub fn pinned(path: &Path) -> Result<DatabaseTls> {
        // A certificate is a few KiB; the bound keeps a wrong path (a device, a log) cheap.
        let text = read_bounded(path, "--database-cert", 64 * 1024)?;
        let cert = <CertificateDer as rustls_pki_types::pem::PemObject>::from_pem_slice(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: no PEM certificate ({e:?})", path.display()))?;
        Ok(DatabaseTls::new(cert))
    }

    /// Trusting the authorities in the PEM bundle at `path` for the URL's host.
    pub fn verified(path: &Path) -> Result<DatabaseTls> {
        // RDS's bundle of every region is about 150 KiB.
        let roots = roots_from_bundle(path, "--database-ca")?;
        Ok(DatabaseTls { config: client_config(roots) })
    }

    pub fn new(cert: CertificateDer<'static>) -> DatabaseTls {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(Pinned { cert, provider: provider.clone() });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default protocol versions are supported")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        DatabaseTls { config: Arc::new(config) }
    }
}

/// The authorities of the PEM bundle at `path` (given as `option`), at most 1 MiB of it.
pub fn roots_from_bundle(path: &Path, option: &str) -> Result<rustls::RootCertStore> {
    use rustls_pki_types::pem::PemObject;
    let text = read_bounded(path, option, 1024 * 1024)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let cert =
            cert.map_err(|e| anyhow::anyhow!("{}: a certificate that does not parse ({e:?})", path.display()))?;
        roots.add(cert).with_context(|| format!("{}: a certificate that is no authority", path.display()))?;
    }
    anyhow::ensure!(!roots.is_empty(), "{}: no PEM certificate", path.display());
    Ok(roots)
}

/// A TLS client trusting `roots`, on the aws-lc-rs provider (the one crypto library built).
pub fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions are supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn read_bounded(path: &Path, option: &str, limit: u64) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("opening {option} {}", path.display()))?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(text.len() as u64 <= limit, "{} is larger than {limit} bytes: not certificates", path.display());
    Ok(text)
}

/// Accepts the pinned certificate only; the handshake's signatures are checked as usual.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for DatabaseTls {
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
        let name = ServerName::try_from(domain.to_string())?;
        Ok(Connect { connector: tokio_rustls::TlsConnector::from(self.config.clone()), name })
    }
}

pub struct Connect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for Connect {
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move { self.connector.connect(self.name, stream).await.map(TlsStream) })
    }
}

pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_file_that_is_no_certificate_or_too_large_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = DatabaseTls::pinned(&junk).err().expect("junk accepted").to_string();
        assert!(err.starts_with(&format!("{}: no PEM certificate", junk.display())), "{err}");
        let err = DatabaseTls::verified(&junk).err().expect("junk accepted as authorities").to_string();
        assert!(err.starts_with(&format!("{}: no PEM certificate", junk.display())), "{err}");
        let huge = dir.path().join("huge.pem");
        std::fs::write(&huge, vec![b'a'; 64 * 1024 + 1]).unwrap();
        let err = DatabaseTls::pinned(&huge).err().expect("a huge file accepted").to_string();
        assert!(err.contains("is larger than 65536 bytes: not certificates"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = format!("{:#}", DatabaseTls::pinned(&missing).err().expect("a missing file accepted"));
        assert!(err.contains(&format!("opening --database-cert {}", missing.display())), "{err}");
        let err = format!("{:#}", DatabaseTls::verified(&missing).err().expect("a missing bundle accepted"));
        assert!(err.contains(&format!("opening --database-ca {}", missing.display())), "{err}");
    }
}
