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
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout
            .read_line(&mut first)
            .expect("the provider's first line");
        // Whatever it says later goes to the test's output (a closed pipe would end it).
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("oidc-provider: {line}");
            }
        });
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

    /// `sub` leaves the organisation: the provider refuses their sign-ins and refresh tokens from now on.
    pub async fn disable_user(&self, sub: &str) {
        let answer = http(
            self.addr,
            "POST",
            "/_test/disable",
            &[("content-type", "application/json")],
            &serde_json::json!({ "sub": sub }).to_string(),
        )
        .await
        .expect("disable");
        assert_eq!(answer.status, 204, "{}", answer.body);
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

/// A URL's parts: `http://host:port/path?query` (http only: tests run on loopback).
fn split_url(url: &str) -> (String, SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.split(':').next().unwrap_or(authority).to_owned();
    let port: u16 = authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80);
    let ip = if host == "localhost" {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        host.parse().expect("an IP address or localhost")
    };
    let path = if path.is_empty() { "/" } else { path };
    (host, SocketAddr::from((ip, port)), path.to_owned())
}

/// A browser's part in a sign-in, over plain HTTP: cookies kept per host (not port, as browsers do), redirects
/// followed one at a time, forms posted.
#[derive(Debug, Default, Clone)]
pub struct Browser {
    cookies: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
}

impl Browser {
    fn cookie_header(&self, host: &str) -> String {
        self.cookies
            .get(host)
            .map(|jar| {
                jar.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// The cookie `name` for `host`.
    pub fn cookie(&self, host: &str, name: &str) -> Option<&str> {
        self.cookies.get(host)?.get(name).map(String::as_str)
    }

    /// One request with the browser's cookies; the cookies it sets are kept (an empty or expired one removed).
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let (host, addr, path) = split_url(url);
        let cookie = self.cookie_header(&host);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !cookie.is_empty() {
            all.push(("cookie", &cookie));
        }
        let answer = http(addr, method, &path, &all, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let jar = self.cookies.entry(host).or_default();
        for (name, value) in &answer.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let first = value.split(';').next().unwrap_or("");
            let Some((key, val)) = first.split_once('=') else {
                continue;
            };
            let expired = value.to_ascii_lowercase().contains("max-age=0")
                || value
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
            if val.is_empty() || expired {
                jar.remove(key.trim());
            } else {
                jar.insert(key.trim().to_owned(), val.to_owned());
            }
        }
        answer
    }

    /// `location` made absolute against `url`.
    fn resolve(url: &str, location: &str) -> String {
        if location.starts_with("http://") {
            return location.to_owned();
        }
        let (_, _, path) = split_url(url);
        let origin = &url[..url.len() - path.len()];
        format!("{origin}{location}")
    }

    /// GETs `url` and follows redirects until `stop(url)` says a URL is not to be followed (it is returned
    /// unvisited) or a page answers; returns the last URL and its answer (None when stopped).
    pub async fn follow(
        &mut self,
        url: &str,
        stop: impl Fn(&str) -> bool,
    ) -> (String, Option<Answer>) {
        let mut url = url.to_owned();
        for _ in 0..20 {
            if stop(&url) {
                return (url, None);
            }
            let answer = self.request("GET", &url, &[], "").await;
            match answer.header("location") {
                Some(location) if (300..400).contains(&answer.status) => {
                    url = Self::resolve(&url, location);
                }
                _ => return (url, Some(answer)),
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Signs in at the provider: from the gateway's `/auth/login` to the provider's sign-in form, submitting
    /// `user`'s credentials, up to the gateway's callback, which is returned unvisited.
    pub async fn sign_in_at_provider(
        &mut self,
        gateway: &str,
        user: &str,
        password: &str,
    ) -> String {
        let is_callback = |url: &str| url.starts_with(gateway) && url.contains("/auth/callback");
        let (form_url, page) = self
            .follow(&format!("{gateway}/auth/login"), is_callback)
            .await;
        let page = page.unwrap_or_else(|| panic!("no sign-in form before {form_url}"));
        assert!(
            page.body.contains("name=\"password\""),
            "expected the sign-in form at {form_url}: {}",
            page.body
        );
        let form = format!(
            "login={}&password={}",
            user,
            password.replace('&', "%26").replace('=', "%3D")
        );
        let answer = self
            .request(
                "POST",
                &form_url,
                &[("content-type", "application/x-www-form-urlencoded")],
                &form,
            )
            .await;
        let location = answer
            .header("location")
            .unwrap_or_else(|| {
                panic!(
                    "the sign-in form answered {}: {}",
                    answer.status, answer.body
                )
            })
            .to_owned();
        let (callback, last) = self
            .follow(&Self::resolve(&form_url, &location), is_callback)
            .await;
        assert!(
            last.is_none(),
            "the provider did not send the browser back: {callback} {:?}",
            last.map(|a| a.body)
        );
        callback
    }
}
