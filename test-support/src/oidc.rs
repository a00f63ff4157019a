//! A real OpenID provider for tests: `tools/oidc/provider.mjs` (the `oidc-provider` package from npm, installed by
//! scripts/tools.sh) on loopback, with the users, groups, clients and keys a test gives it.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::Value;

/// A running provider; killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    pub issuer: String,
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The workspace's root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// An HTTP/1.1 answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), the answer read to its end.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Answer> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

impl OidcProvider {
    /// Starts a provider with `config` (see tools/oidc/provider.mjs) and waits until it serves.
    pub fn start(config: &Value) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the provider");
        let file = dir.path().join("config.json");
        std::fs::write(&file, config.to_string()).expect("the provider's config");
        let mut child = Command::new("node")
            .arg(workspace().join("tools/oidc/provider.mjs"))
            .env("PROVIDER_CONFIG", &file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node tools/oidc/provider.mjs (scripts/tools.sh installs oidc-provider)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the provider's first line");
        let serving: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("the provider did not start ({e}): {first:?}"));
        let port = serving["port"].as_u64().expect("port") as u16;
        Self {
            issuer: serving["issuer"].as_str().expect("issuer").to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            _dir: dir,
        }
    }

    /// A client-credentials access token for `resource`, or the provider's error answer.
    pub async fn client_credentials(
        &self,
        client: &str,
        secret: &str,
        resource: &str,
    ) -> Result<String, Answer> {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
        let body = format!("grant_type=client_credentials&scope=api&resource={resource}");
        let answer = http(
            self.addr,
            "POST",
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &format!("Basic {basic}")),
            ],
            &body,
        )
        .await
        .expect("the token endpoint");
        match answer.json()["access_token"].as_str() {
            Some(token) if answer.status == 200 => Ok(token.to_owned()),
            _ => Err(answer),
        }
    }

    /// Signs with a new key from now on; the old one is no longer published.
    pub async fn rotate_keys(&self) {
        let answer = http(self.addr, "POST", "/_test/rotate", &[], "")
            .await
            .expect("rotate");
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    /// How often its keys (JWKS) were fetched.
    pub async fn key_fetches(&self) -> u64 {
        let answer = http(self.addr, "GET", "/_test/counts", &[], "")
            .await
            .expect("counts");
        answer.json()["jwks"].as_u64().expect("jwks count")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
