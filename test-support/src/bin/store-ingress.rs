//! `store-ingress <listen address> <routes file>`: the tests' stand-in for the ingress controller, which the tests
//! cannot run (ingress-nginx comes from no registry they install from). It does what the controller does with a
//! store's Ingress, as far as a browser can tell: each request goes by its `Host` header and the longest matching
//! path prefix (an Ingress's `Prefix` paths match whole segments) to a Service's address, with the headers
//! ingress-nginx adds (`X-Forwarded-Proto`, `-Host`, `-For`). Each connection carries one request (`Connection:
//! close` upstream), so every request goes where its own path says.
//!
//! The routes file has one route per line: `<host> <path prefix> <address:port>`, written by the test from the
//! store's Ingress object and its Services (their ClusterIPs on the real node, loopback ports outside it). A request
//! no route takes is answered 404, as ingress-nginx's default backend does.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

#[derive(Debug)]
struct Route {
    host: String,
    prefix: String,
    upstream: SocketAddr,
}

fn parse_routes(text: &str) -> Result<Vec<Route>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [host, prefix, upstream] = fields[..] else {
                return Err(format!("{line:?} is not `<host> <prefix> <address:port>`"));
            };
            Ok(Route {
                host: host.to_ascii_lowercase(),
                prefix: prefix.to_owned(),
                upstream: upstream.parse().map_err(|e| format!("{upstream:?}: {e}"))?,
            })
        })
        .collect()
}

/// Whether `path` is under `prefix` by whole segments, as an Ingress `Prefix` path matches.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn route<'a>(routes: &'a [Route], host: &str, path: &str) -> Option<&'a Route> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    routes
        .iter()
        .filter(|r| r.host == host && under(path, &r.prefix))
        .max_by_key(|r| r.prefix.trim_end_matches('/').len())
}

fn relay(mut client: TcpStream, routes: &[Route]) -> std::io::Result<()> {
    let peer = client.peer_addr()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 65_536 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.trim_end().split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let mut host = String::new();
    let mut headers = Vec::new();
    for line in lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "host" {
            host = line[line.find(':').map_or(line.len(), |i| i + 1)..]
                .trim()
                .to_owned();
        }
        if !matches!(name.as_str(), "connection" | "keep-alive") {
            headers.push(line.to_owned());
        }
    }
    let Some(route) = route(routes, &host, path) else {
        client.write_all(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nconnection: close\r\n\r\nnot found\n",
        )?;
        return Ok(());
    };
    let mut upstream = TcpStream::connect_timeout(&route.upstream, Duration::from_secs(10))?;
    let mut request = vec![request_line];
    request.extend(headers);
    request.extend([
        "Connection: close".to_owned(),
        "X-Forwarded-Proto: http".to_owned(),
        format!("X-Forwarded-Host: {host}"),
        format!("X-Forwarded-For: {}", peer.ip()),
    ]);
    upstream.write_all(format!("{}\r\n\r\n", request.join("\r\n")).as_bytes())?;
    let mut from_upstream = upstream.try_clone()?;
    let mut to_client = client.try_clone()?;
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_upstream, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let _ = std::io::copy(&mut client, &mut upstream);
    let _ = back.join();
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, file] = &args[..] else {
        eprintln!("usage: store-ingress <listen address> <routes file>");
        return ExitCode::from(64);
    };
    let routes = match std::fs::read_to_string(file)
        .map_err(|e| format!("{file}: {e}"))
        .and_then(|text| parse_routes(&text))
    {
        Ok(routes) if !routes.is_empty() => Arc::new(routes),
        Ok(_) => {
            eprintln!("store-ingress: {file} has no route");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("store-ingress: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("store-ingress: listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("store-ingress: on {listen}: {routes:?}");
    for client in listener.incoming().flatten() {
        let routes = routes.clone();
        std::thread::spawn(move || {
            let _ = relay(client, &routes);
        });
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_whole_segment_prefix_of_the_requests_host_wins() {
        let routes = parse_routes(
            "shop.localhost / 10.0.0.1:80\nshop.localhost /store 10.0.0.2:80\nshop.localhost /static 10.0.0.2:80\n",
        )
        .expect("routes");
        let to =
            |host: &str, path: &str| route(&routes, host, path).map(|r| r.upstream.to_string());
        assert_eq!(
            to("shop.localhost", "/store/products").as_deref(),
            Some("10.0.0.2:80")
        );
        assert_eq!(
            to("shop.localhost:8080", "/static").as_deref(),
            Some("10.0.0.2:80")
        );
        assert_eq!(
            to("SHOP.localhost", "/storefront.js").as_deref(),
            Some("10.0.0.1:80")
        );
        assert_eq!(to("shop.localhost", "/").as_deref(), Some("10.0.0.1:80"));
        assert_eq!(to("other.localhost", "/store"), None);
        assert!(parse_routes("shop.localhost /").is_err());
    }
}
