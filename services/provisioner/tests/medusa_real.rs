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
//! Then the owner's next hour: in the admin API, the owner uploads a product image (into the store's uploads
//! volume), creates a product with it as the dashboard's form does (no shipping profile, no stock location), finds
//! it made sellable, enters its stock; a customer buys it and pays the region's tax; the owner exports the
//! products to CSV (the worker writes the file, the server serves it).
//!
//! Then the storefront (deploy/medusa-storefront, built by scripts/storefront.sh) runs as its Deployment's pod
//! does, with the key the provisioner read back, behind a stand-in for the store's Ingress (the provisioner's own
//! routes, on one host): a shopper buys the owner's product in Chromium, seeing its image come from the store's
//! own address, and the admin and the worker see that order too.
//!
//! The backend runs as its pods do (medusa_support): uid 1000, the application read-only and root's, at the
//! image's path, the uploads volume mounted where the Deployments mount it. What differs from the pods: the
//! Services' names (`postgres`, `redis`) are loopback addresses here, each process listens on a port of its own
//! (`PORT`), the store's address has the stand-in Ingress's port, the key goes to a file instead of
//! `/dev/termination-log`, the Ingress is a small proxy of this test's, and Debian's PostgreSQL 15 and Redis 7.0
//! stand in for the images' 17 and 7.4. The backend runs on the images' Node.js (scripts/medusa.sh fetches it).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;
use store_platform_provisioner::{
    medusa::{
        self, backend, ingress, meta::UPLOADS_PATH, parse_publishable_key, secret, storefront,
    },
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

    // The first bootstrap, twice at once (a retried Job beside a slow one): one runs it (migrations, the admin, the
    // seed), the other waits for its lock and then finds nothing to do; both leave the same key where the
    // provisioner reads it.
    let runs = [
        key_file.clone(),
        databases.dir.path().join("termination-log-2"),
    ]
    .map(|file| {
        let child = bootstrap_command(&app, &databases, &secret, &file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a bootstrap");
        (child, file)
    });
    let mut outputs = Vec::new();
    let mut keys = Vec::new();
    for (child, file) in runs {
        let output = child.wait_with_output().expect("wait for a bootstrap");
        let output_text = text(&output);
        assert!(output.status.success(), "bootstrap failed:\n{output_text}");
        let message = std::fs::read_to_string(&file).expect("the termination log");
        let key = parse_publishable_key(&message)
            .unwrap_or_else(|| panic!("no publishable key in the termination message {message:?}"))
            .to_owned();
        assert!(
            output_text.contains(&format!("publishable-key: {key}")),
            "{output_text}"
        );
        keys.push(key);
        outputs.push(output_text);
    }
    assert_eq!(keys[0], keys[1], "two bootstraps at once report one key");
    let key = keys.remove(0);
    let count = |words: &str| outputs.iter().filter(|o| o.contains(words)).count();
    assert_eq!(
        count("another bootstrap of this store is running"),
        1,
        "exactly one of two bootstraps started together waits for the other's lock:\n{outputs:#?}"
    );
    assert_eq!(
        count("bootstrap: nothing to do"),
        1,
        "the one that waited finds the store bootstrapped:\n{outputs:#?}"
    );
    let first_output = outputs.join("\n");
    let after_first = counts(&databases);

    // Run again (a Job run again, the check after a restore): nothing to do, found without Medusa, no row changed.
    let again = run(
        bootstrap_command(&app, &databases, &secret, &key_file),
        Duration::from_secs(300),
    );
    let again_output = text(&again);
    assert!(again.status.success(), "{again_output}");
    assert!(
        again_output.contains("bootstrap: nothing to do"),
        "{again_output}"
    );
    assert!(!again_output.contains("migrations"), "{again_output}");
    assert_eq!(
        std::fs::read_to_string(&key_file)
            .expect("the termination log")
            .trim(),
        key
    );
    assert_eq!(
        counts(&databases),
        after_first,
        "a repeated bootstrap changed the store"
    );

    // The store's address is the stand-in Ingress's, whose port is chosen before the backends start: the
    // addresses of uploaded files are built on it.
    let ingress_port = free_port();
    let public = format!("http://{STORE}.localhost:{ingress_port}");
    let at_the_ingress = |mut pod: k8s_openapi::api::core::v1::Container| {
        for var in pod.env.iter_mut().flatten() {
            if var.name == "MEDUSA_FILE_URL" {
                assert_eq!(
                    var.value.as_deref(),
                    Some(format!("{}{UPLOADS_PATH}", settings.origin(STORE)).as_str())
                );
                var.value = Some(format!("{public}{UPLOADS_PATH}"));
            }
        }
        pod
    };

    // The two Deployments' pods.
    let server_pod = at_the_ingress(container_of(backend::server(STORE, &settings)));
    let worker_pod = at_the_ingress(container_of(backend::worker(STORE, &settings)));
    let server = Backend::start(&app, &databases, &secret, &server_pod, "server");
    let worker = Backend::start(&app, &databases, &secret, &worker_pod, "worker");
    let ready = http("GET", &server.url("/store-platform/ready"), &[], None);
    assert_eq!(ready.status, 200, "{}\n{}", ready.body, server.daemon.log());
    assert_eq!(
        ready.body,
        json!({"ready": true, "checks": {"postgres": "ok", "redis": "ok"}})
    );
    let worker_ready =
        |databases: &Databases| probe(&app, databases, &secret, &worker_pod, &worker);
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

    // A customer, over the store API only; the region's tax is charged.
    let order = order_of_via(
        &[],
        &server.url,
        &key,
        &settings,
        "ada@example.com",
        SAMPLE_PRODUCT,
    );
    assert_taxed(&order, &settings);
    let order_id = order["id"].as_str().expect("an order id").to_owned();

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

    // The owner's next hour: an image uploaded into the store's volume, a product made with it in the admin and
    // sellable without anything the dashboard's form does not ask for, but its stock.
    let image =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/medusa/product-image.png");
    let owners = owner_adds_a_product_via(&[], &server.url, &token, &settings, &image);
    assert!(
        owners
            .image_url
            .starts_with(&format!("{public}{UPLOADS_PATH}/")),
        "the image's address is not the store's own: {}",
        owners.image_url
    );
    let name = owners.image_url.rsplit('/').next().expect("a file name");
    assert_eq!(
        std::fs::read(databases.uploads.join(name)).expect("the image in the uploads volume"),
        std::fs::read(&image).expect("the image"),
    );
    let bought = order_of_via(
        &[],
        &server.url,
        &key,
        &settings,
        "grace@example.com",
        &owners.handle,
    );
    assert_taxed(&bought, &settings);
    // The products as CSV: the worker writes the export into the volume, the server serves it.
    let csv = export_products_via(&[], &server.url, &token);
    assert!(
        csv.contains(&owners.title) && csv.contains(&owners.id),
        "{csv}"
    );
    // And from CSV: a product imported (the file in the volume, read back to create it) is as sellable.
    let channel = &http(
        "GET",
        &server.url("/admin/sales-channels"),
        &[("authorization", &bearer)],
        None,
    )
    .ok("sales channels")["sales_channels"][0]["id"];
    let imported = import_products_via(
        &[],
        &server.url,
        &token,
        &format!(
            "Product Handle,Product Title,Product Status,Product Description,Product Sales Channel 1,\
             Variant Title,Variant Sku,Variant Manage Inventory,Variant Price {currency},Variant Option 1 Name,\
             Variant Option 1 Value\n\
             imported-cup,Imported Cup,published,\"Imported, from a CSV\",{channel},Default variant,IMPORTED-CUP,\
             true,9.5,Default option,Default option value\n",
            currency = settings.medusa.currency.to_ascii_uppercase(),
            channel = channel.as_str().expect("a channel"),
        ),
        "imported-cup",
    );
    assert_eq!(
        imported["shipping_profile"]["type"], "default",
        "{imported}"
    );

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
    // The store's Ingress, as the provisioner makes it, in front of the server and the storefront.
    let routes = ingress_routes(&ingress::ingress(STORE, &settings), |service, port| {
        assert_eq!(port, 80, "the Services' port");
        match service {
            medusa::meta::SERVER => format!("127.0.0.1:{}", server.port),
            medusa::meta::STOREFRONT => format!("127.0.0.1:{storefront_port}"),
            other => panic!("the Ingress routes to {other}"),
        }
    });
    let _ingress = start_ingress(
        &[],
        ([127, 0, 0, 1], ingress_port).into(),
        &routes,
        databases.dir.path(),
    );
    let host = format!("{public}/");
    // The image, at the store's own address, byte for byte.
    assert_eq!(
        bytes_via(&[], &owners.image_url, &[]),
        std::fs::read(&image).expect("the image")
    );
    let shop_order = buy_in_chromium(
        &[],
        &host,
        (&owners.title, &format!("{public}{UPLOADS_PATH}/")),
        "erika@example.com",
        &databases.dir.path().join("screenshots"),
        || format!("storefront:\n{}", shop.log()),
    );
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

/// A later build of the backend, as an upgrade brings it in a new image: `app`'s files (hard links into `dir`: the
/// same bytes, nothing of `app` changed) with the files of [`next_build_files`] written over them.
fn next_build(
    app: &Path,
    dir: &Path,
    build: &str,
    migrations: &[(&str, &str)],
) -> std::path::PathBuf {
    let next = dir.join(build);
    let copied = Command::new("cp")
        .arg("-al")
        .arg(app)
        .arg(&next)
        .status()
        .expect("cp");
    assert!(copied.success(), "cp -al {}", app.display());
    let server = next.join(".medusa/server");
    for (path, text) in next_build_files(app, build, migrations) {
        let path = server.join(path);
        // A file of `app` is never written through its link: it is unlinked and written anew.
        if path.exists() {
            std::fs::remove_file(&path).expect("unlink");
        }
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
        std::fs::write(&path, text).expect("a file of the build");
    }
    next
}

#[test]
fn an_upgrade_migrates_a_store_with_orders_to_the_next_build_and_a_failing_migration_leaves_it_as_it_was()
 {
    let app = medusa_app();
    let settings = Settings::local();
    let secret = values(&secret::credentials(STORE, OWNER));
    let databases = Databases::start(&settings, &secret);
    let key_file = databases.dir.path().join("termination-log");
    let bootstrap = |app: &Path| {
        run(
            bootstrap_command(app, &databases, &secret, &key_file),
            Duration::from_secs(900),
        )
    };

    // The store on the build it was made with, and a customer's order.
    let first = bootstrap(&app);
    assert!(
        first.status.success(),
        "bootstrap failed:\n{}",
        text(&first)
    );
    let key =
        parse_publishable_key(&std::fs::read_to_string(&key_file).expect("the termination log"))
            .expect("a publishable key")
            .to_owned();
    let server_pod = container_of(backend::server(STORE, &settings));
    let before = {
        let server = Backend::start(&app, &databases, &secret, &server_pod, "server-old");
        assert_eq!(
            http(
                "GET",
                &server.url("/store/greetings"),
                &[("x-publishable-api-key", &key)],
                None
            )
            .status,
            404,
            "the old build has no such route"
        );
        place_order(&server, &key, &settings, "before@example.com")
    };

    // The next build's migrations, as the upgrade's Job runs them: the bootstrap's command in the new image.
    let builds = tempfile::tempdir().expect("a directory");
    std::fs::set_permissions(
        builds.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let next = next_build(
        &app,
        builds.path(),
        "2.21.2-greeting",
        &[GREETING_MIGRATION],
    );
    let migrated = bootstrap(&next);
    let output = text(&migrated);
    assert!(
        migrated.status.success(),
        "the upgrade's migrations failed:\n{output}"
    );
    assert!(
        output.contains("Migration20261206000000"),
        "the module's migration ran:\n{output}"
    );
    assert_eq!(
        databases
            .sql(
                "medusa",
                "SELECT to_regclass('public.greeting') IS NOT NULL"
            )
            .trim(),
        "t",
        "the migration made its table"
    );
    let again = bootstrap(&next);
    assert!(
        again.status.success() && !text(&again).contains("Migrating Migration20261206000000"),
        "a second run migrates nothing:\n{}",
        text(&again)
    );

    // The store on the new build: its change is visible, the order from before is there, and a new one goes through.
    let server = Backend::start(&next, &databases, &secret, &server_pod, "server-next");
    let greetings = http(
        "GET",
        &server.url("/store/greetings"),
        &[("x-publishable-api-key", &key)],
        None,
    );
    assert_eq!(
        greetings.status,
        200,
        "{}\n{}",
        greetings.body,
        server.daemon.log()
    );
    assert_eq!(
        greetings.body,
        json!({"build": "2.21.2-greeting", "greetings": 0})
    );
    let token = admin_token_via(
        &[],
        &server.url,
        &secret[secret::ADMIN_EMAIL],
        &secret[secret::ADMIN_PASSWORD],
    );
    let orders = admin_orders_via(&[], &server.url, &token);
    assert!(
        lists_order(&orders, &before),
        "the order from before the upgrade: {orders}"
    );
    let after = place_order(&server, &key, &settings, "after@example.com");
    drop(server);

    // A build whose migration fails in PostgreSQL: the Job fails with PostgreSQL's words, and the store's data is
    // as it was (the upgrade then rolls back to the backup it took first; see tests/backups.rs).
    let broken = next_build(
        &app,
        builds.path(),
        "2.21.2-broken",
        &[GREETING_MIGRATION, BROKEN_MIGRATION],
    );
    let failed = bootstrap(&broken);
    let output = text(&failed);
    assert!(
        !failed.status.success(),
        "the broken migration succeeded:\n{output}"
    );
    let reason = last_words(&termination_message(&output));
    assert!(
        reason.contains("no_such_type"),
        "the Job's reason names PostgreSQL's error: {reason}\n{output}"
    );
    // Measured, not assumed: whether the failed migration left its first statement behind (MikroORM runs each
    // migration in a transaction).
    println!(
        "after the failed migration, upgrade_half_done exists: {}",
        databases
            .sql(
                "medusa",
                "SELECT to_regclass('public.upgrade_half_done') IS NOT NULL"
            )
            .trim()
    );
    let server = Backend::start(&next, &databases, &secret, &server_pod, "server-kept");
    let orders = admin_orders_via(&[], &server.url, &token);
    assert!(
        lists_order(&orders, &before) && lists_order(&orders, &after),
        "{orders}"
    );
    place_order(&server, &key, &settings, "still@example.com");
}
