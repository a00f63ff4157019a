//! The gateway's small HTTP client for its identity provider: JSON documents (discovery, keys) and form posts (the
//! token endpoint), over TLS with the system's roots plus an optional private CA, each with a timeout and a size
//! limit.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls_pki_types::{CertificateDer, pem::PemObject as _};

/// The largest answer read from the provider.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the provider answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Http {
    /// A client trusting the system's CA certificates and, if given, the PEM certificates in `ca_file`.
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system certificate rustls cannot use is skipped, as every TLS client does.
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("cannot read the CA file {}: {e}", path.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "the CA file {} holds no certificate",
                path.display()
            );
            for cert in certs {
                roots.add(cert)?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let url = request.uri().to_string();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{url}: the answer could not be read: {e}"))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{url} did not answer within {:?}", self.timeout))?
    }

    /// GETs a JSON document; anything but 200 is an error.
    pub async fn get_json(&self, url: &str) -> Result<Bytes, String> {
        let request = Request::get(url)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| format!("{url}: {e}"))?;
        let answer = self.send(request).await?;
        if answer.status != StatusCode::OK {
            return Err(format!("{url} answered {}", answer.status));
        }
        Ok(answer.body)
    }

    /// POSTs an `application/x-www-form-urlencoded` form, with HTTP basic credentials if given.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Answer, String> {
        let body = form_encode(form);
        let mut request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some((user, password)) = basic {
            use base64::Engine as _;
            // RFC 6749 2.3.1: the client id and secret are form-encoded before they are joined.
            let pair = format!(
                "{}:{}",
                form_encode_value(user),
                form_encode_value(password)
            );
            let mut value = http::HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
            .map_err(|e| e.to_string())?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        self.send(request).await
    }
}

/// One value, `application/x-www-form-urlencoded`.
pub fn form_encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Pairs, `application/x-www-form-urlencoded` (also a URL's query).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode_value(k), form_encode_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded_as_browsers_do() {
        assert_eq!(
            form_encode(&[
                ("redirect_uri", "http://x/cb?a=1"),
                ("scope", "openid email")
            ]),
            "redirect_uri=http%3A%2F%2Fx%2Fcb%3Fa%3D1&scope=openid+email"
        );
        assert_eq!(form_encode_value("é:~"), "%C3%A9%3A%7E");
    }
}
