//! The other regions of a global stack, read for the global KPI view. Each region keeps its
//! events; only its aggregates travel: every peer serves its minutes as a KPI frame
//! (`GET /api/analytics/aggregates`, `kpi::codec`) to the read token all regions share.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper::http::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::kpi::codec::decode_frame;
use crate::kpi::{Minute, Window};

/// Peers one service reads at most: every region of a global stack but itself.
pub const MAX_PEERS: usize = 16;
/// A peer's whole answer: connect, TLS, request and body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A frame's bytes: a day of minutes at the KPI memory budget's default (64 MiB) encodes to
/// much less, since bins travel as varints.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    /// `scheme://host[:port][/prefix]`, no query.
    pub url: Uri,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerList(pub Vec<Peer>);

/// A region's name, in `VC_PEERS` and in a global stack file: 1-32 of a-z, 0-9 and `-`.
pub fn is_region_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `NAME=URL,NAME=URL`: names of lower-case letters, digits and `-` (at most 32), each
/// once; URLs `http://` or `https://` with a host and nothing past the path.
pub fn parse_peers(s: &str) -> Result<PeerList, String> {
    let mut peers: Vec<Peer> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, url) = item.split_once('=').ok_or_else(|| format!("`{item}`: write NAME=URL"))?;
        let (name, url) = (name.trim(), url.trim());
        if !is_region_name(name) {
            return Err(format!("`{name}`: a peer's name is 1-32 of a-z, 0-9 and -"));
        }
        let uri: Uri = url.parse().map_err(|e| format!("{name}: `{url}` is not a URL ({e})"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none() || uri.query().is_some() {
            return Err(format!("{name}: `{url}` must be http(s)://HOST[:PORT][/PATH], without a query"));
        }
        if peers.iter().any(|p| p.name == name) {
            return Err(format!("{name}: named twice"));
        }
        peers.push(Peer { name: name.to_string(), url: uri });
    }
    if peers.is_empty() {
        return Err("no peer: write NAME=URL[,NAME=URL...]".into());
    }
    if peers.len() > MAX_PEERS {
        return Err(format!("{} peers (at most {MAX_PEERS})", peers.len()));
    }
    Ok(PeerList(peers))
}

/// The peers, the token that reads them and the TLS they are reached with.
pub struct Peers {
    pub list: Vec<Peer>,
    token: String,
    tls: tokio_rustls::TlsConnector,
}

/// What one peer answered: its minutes, or why there are none.
pub type Read = (String, Result<Vec<(i64, Minute)>, String>);

impl Peers {
    pub fn new(list: PeerList, token: String, ca: Option<&Path>) -> Result<Peers> {
        let roots = match ca {
            Some(path) => crate::store::tls::roots_from_bundle(path, "--peer-ca")?,
            None => system_roots()?,
        };
        let tls = tokio_rustls::TlsConnector::from(crate::store::tls::client_config(roots));
        Ok(Peers { list: list.0, token, tls })
    }

    /// Every peer's minutes for `window`, read at once; each within [`FETCH_TIMEOUT`].
    pub async fn read(&self, window: Window) -> Vec<Read> {
        let mut reads = tokio::task::JoinSet::new();
        for (i, peer) in self.list.iter().enumerate() {
            let (peer, token, tls) = (peer.clone(), self.token.clone(), self.tls.clone());
            reads.spawn(async move {
                let got = tokio::time::timeout(FETCH_TIMEOUT, fetch(&peer, &token, &tls, window))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer in {} s", FETCH_TIMEOUT.as_secs())));
                let minutes = got.and_then(|body| decode_frame(&body).map_err(|e| format!("a damaged frame: {e}")));
                (i, (peer.name, minutes))
            });
        }
        let mut answers: Vec<(usize, Read)> = reads.join_all().await;
        answers.sort_by_key(|(i, _)| *i);
        answers.into_iter().map(|(_, read)| read).collect()
    }
}

fn system_roots() -> Result<rustls::RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    anyhow::ensure!(added > 0, "no system root certificate found: give the peers' authorities with --peer-ca");
    Ok(roots)
}

/// One GET of a peer's frame over HTTP/1.1, its body bounded by [`MAX_FRAME_BYTES`].
async fn fetch(peer: &Peer, token: &str, tls: &tokio_rustls::TlsConnector, window: Window) -> Result<Bytes, String> {
    let host = peer.url.host().expect("checked when parsed").trim_start_matches('[').trim_end_matches(']');
    let https = peer.url.scheme_str() == Some("https");
    let port = peer.url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !https {
        return exchange(tcp, peer, token, window).await;
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS with {host}: {e}"))?;
    exchange(stream, peer, token, window).await
}

async fn exchange<S>(stream: S, peer: &Peer, token: &str, window: Window) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(connection);
    let prefix = peer.url.path().trim_end_matches('/');
    let authority = peer.url.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    let request = Request::get(format!("{prefix}/api/analytics/aggregates?window={}", window.as_str()))
        .header(header::HOST, authority)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, crate::http::KPI_FRAME_TYPE)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    let limit = if status == StatusCode::OK { MAX_FRAME_BYTES } else { 4096 };
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| format!("HTTP {status}: the answer: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        let said = String::from_utf8_lossy(&body).chars().take(300).collect::<String>();
        return Err(format!("HTTP {status}: {said}"));
    }
    Ok(body)
}

/// The peers, or why there is no global view: none named, or no read token to read them
/// with. Peers without a token is a warning, not a refusal to start: the region serves its
/// own traffic whatever the global view lacks.
pub fn start(
    list: Option<PeerList>,
    token: Option<&str>,
    ca: Option<&Path>,
) -> Result<Result<Arc<Peers>, &'static str>> {
    match (list, token) {
        (None, _) => Ok(Err("this service knows no other region (VC_PEERS is not set)")),
        (Some(_), None) => {
            tracing::warn!("VC_PEERS is set but VC_READ_TOKEN is not: no global view until it is");
            Ok(Err("VC_PEERS is set but VC_READ_TOKEN is not: the other regions cannot be read"))
        }
        (Some(list), Some(token)) => {
            Ok(Ok(Arc::new(Peers::new(list, token.to_string(), ca).context("the peers (VC_PEERS)")?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_name_what_is_wrong() {
        let list = parse_peers("us=https://us.vc.example.com, ap=http://127.0.0.1:8100/vc").unwrap();
        assert_eq!(list.0.len(), 2);
        assert_eq!(list.0[1].url.port_u16(), Some(8100));
        for (bad, says) in [
            ("us", "NAME=URL"),
            ("US=https://x", "a-z"),
            ("us=ftp://x", "http(s)"),
            ("us=https://x/?a=1", "without a query"),
            ("us=https://x,us=https://y", "named twice"),
            ("", "no peer"),
        ] {
            let err = parse_peers(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let many = (0..17).map(|i| format!("r{i}=http://h{i}")).collect::<Vec<_>>().join(",");
        assert!(parse_peers(&many).unwrap_err().contains("at most 16"));
    }
}
