//! An HTTPS client for tests: one TLS connection per [`TlsClient::connect`],
//! with a chosen SNI, trust anchors, ALPN and optional client certificate,
//! reporting what the server presented.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::Reply;

/// Accepts any server certificate: the tests inspect what was presented
/// instead of trusting it.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How to connect.
#[derive(Clone, Debug, Default)]
pub struct TlsClient {
    /// PEM CA bundle to verify the server against; `None`: accept any
    /// certificate.
    pub trust: Option<String>,
    /// ALPN protocols to offer (default `h2`, `http/1.1`).
    pub alpn: Option<Vec<&'static str>>,
    /// PEM client certificate chain and key.
    pub client_cert: Option<(String, String)>,
}

/// An established TLS connection and what the handshake settled.
#[derive(Debug)]
pub struct TlsConn {
    /// The negotiated ALPN protocol.
    pub alpn: Option<String>,
    /// DER of the certificate the server presented.
    pub server_cert: Vec<u8>,
    /// The negotiated protocol version, as rustls names it.
    pub version: String,
    sender: Sender,
}

#[derive(Debug)]
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl TlsConn {
    /// Sends a GET for `path` with `host` as Host/`:authority`.
    pub async fn get(&mut self, host: &str, path: &str) -> Result<Reply, String> {
        let req = |uri: String| {
            Request::get(uri)
                .header(http::header::HOST, host)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())
        };
        let resp = match &mut self.sender {
            Sender::H1(s) => s.send_request(req(path.to_owned())?).await,
            Sender::H2(s) => s.send_request(req(format!("https://{host}{path}"))?).await,
        }
        .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .map_err(|_| "body timed out".to_owned())?
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: StatusCode::from_u16(parts.status.as_u16()).map_err(|e| e.to_string())?,
            headers: parts.headers,
            body,
        })
    }

    /// The DNS names of the server certificate.
    pub fn server_names(&self) -> Vec<String> {
        cert_names(&self.server_cert)
    }
}

/// DNS names of a DER certificate's subject alternative names.
pub fn cert_names(der: &[u8]) -> Vec<String> {
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(der)
    );
    tls_names(&pem)
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn tls_names(pem: &str) -> Vec<String> {
    // The product's own parser; the test checks what it reads against the
    // names the test put in.
    tls::cert_info(pem.as_bytes())
        .map(|i| i.dns_names)
        .unwrap_or_default()
}

impl TlsClient {
    /// Connects to `addr` sending `sni` (none when `None`), and completes
    /// the handshake and the HTTP handshake for the negotiated protocol.
    pub async fn connect(&self, addr: SocketAddr, sni: Option<&str>) -> Result<TlsConn, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.trust {
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots
                        .add(cert.map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider.clone()))),
        };
        let mut config = match &self.client_cert {
            Some((chain, key)) => {
                let certs = CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let key =
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| e.to_string())?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self
            .alpn
            .clone()
            .unwrap_or_else(|| vec!["h2", "http/1.1"])
            .into_iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        config.enable_sni = sni.is_some();
        let name = ServerName::try_from(sni.unwrap_or("gatehouse.invalid").to_owned())
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
        let (_, session) = stream.get_ref();
        let alpn = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let server_cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let version = format!("{:?}", session.protocol_version());
        let io = TokioIo::new(stream);
        let sender = if alpn.as_deref() == Some("h2") {
            let (s, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http/1.1 handshake: {e}"))?;
            tokio::spawn(conn);
            Sender::H1(s)
        };
        Ok(TlsConn {
            alpn,
            server_cert,
            version,
            sender,
        })
    }
}
