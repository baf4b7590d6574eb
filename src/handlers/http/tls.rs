//! TLS for httpGet: the kubelet's `InsecureSkipVerify`, and the detection of a plain-HTTP
//! answer to our ClientHello (Go's `server gave HTTP response to HTTPS client`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client config of every httpGet hook. The crypto provider is passed explicitly (no
/// process-wide default is installed or read).
pub(crate) fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts any server certificate, like Go's `tls.Config{InsecureSkipVerify: true}`, which is
/// what the kubelet uses for lifecycle (and probe) requests: hooks target pod IPs, for which
/// no certificate could name the address and no CA is configured, so verifying would make
/// every HTTPS hook fail. Like Go, the handshake signatures are still checked against the
/// presented certificate's key (so the peer holds the key of the certificate it sent); only
/// the chain, the name and the validity period are not. This buys no authenticity, only the
/// kubelet's behaviour.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A stream that remembers the first 5 bytes it read: the header of the first TLS record.
/// When the handshake fails, Go checks whether that header is `HTTP/` (a plain HTTP server
/// answering our ClientHello) and reports `server gave HTTP response to HTTPS client`; this
/// does the same without peeking at the socket (which would race with rustls' own reads).
pub(crate) struct FirstBytes<S> {
    inner: S,
    head: [u8; 5],
    len: usize,
}

impl<S> FirstBytes<S> {
    pub fn new(inner: S) -> Self {
        FirstBytes {
            inner,
            head: [0; 5],
            len: 0,
        }
    }
}

/// Whether the first bytes read on `stream` were `HTTP/`.
pub(crate) fn answered_in_http<S>(stream: &FirstBytes<S>) -> bool {
    stream.len == 5 && &stream.head == b"HTTP/"
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.len < this.head.len() {
            let new = &buf.filled()[before..];
            let n = new.len().min(this.head.len() - this.len);
            this.head[this.len..this.len + n].copy_from_slice(&new[..n]);
            this.len += n;
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Go-shaped text of a failed handshake (`tls.Conn.Handshake` errors).
pub(crate) fn handshake_error_text(err: &io::Error) -> String {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::AlertReceived(alert) => {
                format!("remote error: tls: {}", alert_text(*alert))
            }
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                "tls: first record does not look like a TLS handshake".to_owned()
            }
            other => format!("tls: {other}"),
        };
    }
    super::io_error_text(err)
}

fn alert_text(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match alert {
        A::HandshakeFailure => "handshake failure".into(),
        A::ProtocolVersion => "protocol version not supported".into(),
        A::InternalError => "internal error".into(),
        A::BadCertificate => "bad certificate".into(),
        A::UnrecognisedName => "unrecognized name".into(),
        A::CertificateRequired => "certificate required".into(),
        A::NoApplicationProtocol => "no application protocol".into(),
        A::IllegalParameter => "illegal parameter".into(),
        A::DecodeError => "error decoding message".into(),
        A::DecryptError => "error decrypting message".into(),
        A::AccessDenied => "access denied".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}
