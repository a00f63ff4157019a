//! A Medusa store run for real, outside Kubernetes: the backend this project ships (`deploy/medusa`, installed with
//! its lockfile and built with `medusa build` by scripts/medusa.sh, as its image is), Debian's PostgreSQL and Redis,
//! all on loopback. Every process gets what the provisioner's own objects give its pod: the PostgreSQL
//! StatefulSet's `POSTGRES_*` contract, the Redis StatefulSet's arguments, the bootstrap Job's and the two
//! Deployments' environment (their Secret references resolved from a Secret the provisioner generated, `$(VAR)`
//! expanded as the kubelet does) and their one argument to the image's entrypoint (`bootstrap`, `start`).
//!
//! What is shown: the bootstrap migrates, creates the admin and seeds the store, and reports the publishable key
//! as the provisioner reads it; two more bootstraps at once wait for each other and change nothing; the server and
//! the worker start; readiness asks PostgreSQL and Redis; a customer places an order over the store API with the
//! system payment provider; the worker, not the server, processes its event; the admin signs in, lists the order
//! and gets a session cookie over plain http, and a Secure one behind an https ingress; no secret is in any log.
//! A bootstrap that fails leaves Medusa's own error as the store's reason, and once the cause is fixed, the same
//! Job resumes.
//!
//! Then the storefront (deploy/medusa-storefront, built by scripts/storefront.sh) runs as its Deployment's pod
//! does, with the key the provisioner read back, behind a stand-in for the store's Ingress (the provisioner's own
//! routes, on one host): a shopper orders in Chromium, and the admin and the worker see that order too.
//!
//! What differs from the pods: the Services' names (`postgres`, `redis`) are loopback addresses here, each
//! process listens on a port of its own (`PORT`), the key goes to a file instead of `/dev/termination-log`, the
//! Ingress is a small proxy of this test's, and Debian's PostgreSQL 15 and Redis 7.0 stand in for the images' 17
//! and 7.4. The backend runs on the images' Node.js (scripts/medusa.sh fetches it).

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;
use store_platform_provisioner::{
    medusa::{backend, parse_publishable_key, secret, storefront},
    settings::Settings,
    shared::diagnose::last_words,
};
use store_platform_test_support::{daemon::Daemon, process::free_port};

mod medusa_support;
use medusa_support::*;

#[test]
fn a_medusa_store_bootstraps_once_and_takes_orders_over_http_and_in_its_storefront() {
    let app = medusa_app();
    let settings = Settings::local();
    let secret = values(&secret::credentials(STORE, OWNER));
    let mut databases = Databases::start(&settings, &secret);
    let key_file = databases.dir.path().join("termination-log");

    // The first bootstrap: migrations, the admin, the seed; the key where the provisioner reads it.
    let first = run(
        bootstrap_command(&app, &databases, &secret, &key_file),
        Duration::from_secs(900),
    );
    let first_output = text(&first);
    assert!(first.status.success(), "bootstrap failed:\n{first_output}");
    let message = std::fs::read_to_string(&key_file).expect("the termination log");
    let key = parse_publishable_key(&message)
        .unwrap_or_else(|| panic!("no publishable key in the termination message {message:?}"))
        .to_owned();
    assert!(
        first_output.contains(&format!("publishable-key: {key}")),
        "{first_output}"
    );
    let after_first = counts(&databases);

    // Two more at once, as a retried Job beside a slow one: one waits for the other's lock, and neither changes a row.
    let [second, third] = [(); 2].map(|()| {
        let file = tempfile::NamedTempFile::new_in(databases.dir.path())
            .expect("a temporary file")
            .into_temp_path();
        let mut command = bootstrap_command(&app, &databases, &secret, &file);
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a bootstrap");
        (child, file)
    });
    let mut waited = 0;
    for (child, file) in [second, third] {
        let output = child.wait_with_output().expect("wait for a bootstrap");
        let output_text = text(&output);
        assert!(
            output.status.success(),
            "a repeated bootstrap failed:\n{output_text}"
        );
        assert_eq!(
            std::fs::read_to_string(&file)
                .expect("the termination log")
                .trim(),
            key,
            "{output_text}"
        );
        waited += usize::from(output_text.contains("another bootstrap of this store is running"));
    }
    assert_eq!(
        waited, 1,
        "exactly one of two bootstraps started together waits for the other's lock"
    );
    assert_eq!(
        counts(&databases),
        after_first,
        "a repeated bootstrap changed the store"
    );

    // The two Deployments' pods.
    let server_pod = container_of(backend::server(STORE, &settings));
    let worker_pod = container_of(backend::worker(STORE, &settings));
    let server = Backend::start(&app, &databases, &secret, &server_pod, "server");
    let worker = Backend::start(&app, &databases, &secret, &worker_pod, "worker");
    let ready = http("GET", &server.url("/store-platform/ready"), &[], None);
    assert_eq!(ready.status, 200, "{}\n{}", ready.body, server.daemon.log());
    assert_eq!(
        ready.body,
        json!({"ready": true, "checks": {"postgres": "ok", "redis": "ok"}})
    );
    let worker_ready = |databases: &Databases| probe(&app, databases, &secret, &worker_pod);
    let answer = worker_ready(&databases);
    assert!(
        answer.status.success(),
        "the worker's readiness probe: {}",
        text(&answer)
    );
    assert_eq!(
        http("GET", &server.url("/app/"), &[], None).status,
        200,
        "the server serves the admin dashboard at /app"
    );
    assert_eq!(
        http("GET", &worker.url("/app/"), &[], None).status,
        404,
        "the worker serves no admin dashboard"
    );

    // A customer, over the store API only.
    let order_id = place_order(&server, &key, &settings, "ada@example.com");

    // The admin signs in with the Secret's login and finds the order.
    let email = &secret[secret::ADMIN_EMAIL];
    let token = admin_token_via(&[], &server.url, email, &secret[secret::ADMIN_PASSWORD]);
    let bearer = format!("Bearer {token}");
    let orders = admin_orders_via(&[], &server.url, &token);
    let listed = orders["orders"].as_array().expect("orders");
    assert!(
        listed
            .iter()
            .any(|o| o["id"] == order_id.as_str() && o["email"] == "ada@example.com"),
        "{orders}"
    );
    let wrong = json!({"email": email, "password": "not-the-password"});
    assert_eq!(
        http(
            "POST",
            &server.url("/auth/user/emailpass"),
            &[],
            Some(&wrong)
        )
        .status,
        401
    );

    // The dashboard's session over plain http on *.localhost: a cookie that is not Secure, and that works.
    let origin = settings.origin(STORE);
    let session = http(
        "POST",
        &server.url("/auth/session"),
        &[("authorization", &bearer), ("origin", &origin)],
        None,
    );
    let cookies = session.header("set-cookie");
    assert_eq!(session.status, 200, "{}", session.headers);
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("connect.sid="))
        .expect("a session cookie");
    assert!(!cookie.to_ascii_lowercase().contains("secure"), "{cookie}");
    let pair = cookie.split(';').next().expect("the cookie's pair");
    let me = http(
        "GET",
        &server.url("/admin/users/me"),
        &[("cookie", pair), ("origin", &origin)],
        None,
    )
    .ok("me");
    assert_eq!(me["user"]["email"], email.as_str());

    // The worker processes the order's event; the server does not.
    let line = format!("order placed: {order_id}");
    wait_for_log(
        &worker.daemon,
        &line,
        "the worker never processed order.placed",
    );
    assert!(
        !server.daemon.log().contains(&line),
        "the server processed an event:\n{}",
        server.daemon.log()
    );

    // The storefront, as its Deployment runs it (the image's command: `node server.mjs`), with the key the
    // provisioner read back, behind the store's routes; a shopper orders in Chromium, on a phone-sized screen.
    let storefront_pod = container_of(storefront::deployment(STORE, &settings));
    assert_eq!(
        (&storefront_pod.command, &storefront_pod.args),
        (&None, &None),
        "the storefront runs its image's command"
    );
    let config = storefront::config(STORE, &key).data.expect("data");
    let shop_dir = storefront_dir();
    let storefront_port = free_port();
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(&shop_dir)
        .env_clear()
        .env("PATH", path(&app))
        .envs(environment_with(&storefront_pod, &secret, &config))
        .env("PORT", storefront_port.to_string());
    let mut shop = Daemon::spawn(
        "storefront",
        command,
        &databases.dir.path().join("storefront.log"),
    )
    .expect("start the storefront");
    shop.wait_for(
        ([127, 0, 0, 1], storefront_port).into(),
        Duration::from_secs(30),
    );
    let health = format!("http://127.0.0.1:{storefront_port}/healthz");
    assert_eq!(
        http("GET", &health, &[], None).status,
        200,
        "the probes' path"
    );
    let host = format!(
        "http://{STORE}.localhost:{}/",
        ingress(server.port, storefront_port)
    );
    let shots = databases.dir.path().join("screenshots");
    let browser = run(
        {
            let mut command = Command::new("node");
            command
                .arg(shop_dir.join("e2e/order.mjs"))
                .current_dir(&shop_dir)
                .env("PATH", path(&app))
                .env("STOREFRONT_URL", &host)
                .env("CUSTOMER_EMAIL", "erika@example.com")
                .env("SCREENSHOTS", &shots);
            command
        },
        Duration::from_secs(300),
    );
    let browsed = text(&browser);
    assert!(
        browser.status.success(),
        "the order in Chromium failed (screenshots in {}):\n{browsed}\nstorefront:\n{}",
        shots.display(),
        shop.log()
    );
    let shop_order = browsed
        .lines()
        .find_map(|line| line.strip_prefix("order: "))
        .expect("the browser test names the order")
        .trim()
        .to_owned();
    let orders = admin_orders_via(&[], &server.url, &token);
    assert!(
        orders["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .any(|o| o["id"] == shop_order.as_str() && o["email"] == "erika@example.com"),
        "the admin does not list the storefront's order {shop_order}: {orders}"
    );
    wait_for_log(
        &worker.daemon,
        &format!("order placed: {shop_order}"),
        "the worker never processed the storefront's order",
    );
    drop(shop);

    // Behind an https ingress (VPS settings), the same sign-in sets a Secure cookie when the ingress says https.
    let mut vps = Settings::local();
    vps.scheme = "https";
    let https_pod = container_of(backend::server(STORE, &vps));
    let https = Backend::start(&app, &databases, &secret, &https_pod, "server-https");
    let session = http(
        "POST",
        &https.url("/auth/session"),
        &[
            ("authorization", &bearer),
            ("x-forwarded-proto", "https"),
            ("origin", &vps.origin(STORE)),
        ],
        None,
    );
    assert_eq!(session.status, 200, "{}", session.headers);
    let cookies = session.header("set-cookie");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("connect.sid="))
        .expect("a session cookie");
    assert!(cookie.to_ascii_lowercase().contains("secure"), "{cookie}");
    drop(https);

    // No secret in any output.
    let logs = [
        first_output,
        server.daemon.log(),
        worker.daemon.log(),
        databases.postgres.log(),
    ];
    for (name, value) in &secret {
        if name == secret::ADMIN_EMAIL {
            continue;
        }
        for log in &logs {
            assert!(
                !log.contains(value.as_str()),
                "the secret {name} is in a log:\n{log}"
            );
        }
    }

    // Readiness means Redis too: without it the server is not ready, though /health still says OK.
    drop(databases.redis.take());
    let reply = http("GET", &server.url("/store-platform/ready"), &[], None);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["checks"]["postgres"], "ok");
    assert_ne!(reply.body["checks"]["redis"], "ok");
    assert_eq!(http("GET", &server.url("/health"), &[], None).status, 200);
    let answer = worker_ready(&databases);
    assert!(
        !answer.status.success(),
        "the worker is ready without Redis"
    );
    assert!(text(&answer).contains("\"redis\""), "{}", text(&answer));
}

#[test]
fn a_failing_bootstrap_leaves_medusas_error_and_the_retried_job_resumes() {
    let app = medusa_app();
    let settings = Settings::local();
    let secret = values(&secret::credentials(STORE, OWNER));
    let databases = Databases::start(&settings, &secret);
    // A database the store's user may connect to but not create tables in (PostgreSQL 15 gives PUBLIC no CREATE
    // on the public schema): the migrations fail inside Medusa.
    let role_password = secret[secret::POSTGRES_PASSWORD].clone();
    databases.sql("postgres", "CREATE ROLE shopper LOGIN");
    databases.sql(
        "postgres",
        &format!("ALTER ROLE shopper PASSWORD '{role_password}'"),
    );
    databases.sql("medusa", "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    let key_file = databases.dir.path().join("termination-log");
    let mut command = bootstrap_command(&app, &databases, &secret, &key_file);
    // The same Job, connecting as the restricted role.
    let url = format!(
        "postgres://shopper:{role_password}@127.0.0.1:{}/{}",
        databases.postgres_port,
        secret::DATABASE
    );
    command.env("DATABASE_URL", &url);
    let failed = run(command, Duration::from_secs(600));
    let output = text(&failed);
    assert!(
        !failed.status.success(),
        "the bootstrap succeeded without CREATE on its schema:\n{output}"
    );
    assert!(
        !key_file.exists()
            || std::fs::read_to_string(&key_file)
                .expect("the termination log")
                .is_empty()
    );
    let reason = last_words(&termination_message(&output));
    assert!(
        reason.contains("permission denied for schema public"),
        "the reason: {reason}\n{output}"
    );
    assert!(
        !output.contains(&role_password),
        "the password is in the output:\n{output}"
    );

    // The cause fixed, the retried Job completes the store.
    databases.sql("medusa", "GRANT CREATE ON SCHEMA public TO shopper");
    let mut command = bootstrap_command(&app, &databases, &secret, &key_file);
    command.env("DATABASE_URL", &url);
    let retried = run(command, Duration::from_secs(900));
    assert!(
        retried.status.success(),
        "the retried bootstrap failed:\n{}",
        text(&retried)
    );
    assert!(
        parse_publishable_key(&std::fs::read_to_string(&key_file).expect("the termination log"))
            .is_some()
    );
}
