//! The store's host: the backend's APIs and admin under their own prefixes, everything else to the storefront.

use k8s_openapi::api::networking::v1::Ingress;

use super::meta::{SERVER, STOREFRONT, UPLOADS_PATH};
use crate::{
    settings::Settings,
    shared::ingress::{self, Route},
};

/// Path prefixes the backend answers: the store and admin APIs, sign-in, the admin dashboard, the uploaded files,
/// its health and our readiness route.
pub const BACKEND_PREFIXES: &[&str] = &[
    "/store",
    "/admin",
    "/auth",
    "/app",
    UPLOADS_PATH,
    "/health",
    "/store-platform",
];

pub fn ingress(id: &str, settings: &Settings) -> Ingress {
    let mut routes: Vec<Route<'_>> = BACKEND_PREFIXES
        .iter()
        .map(|prefix| Route {
            prefix,
            service: SERVER,
            port: 80,
        })
        .collect();
    routes.push(Route {
        prefix: "/",
        service: STOREFRONT,
        port: 80,
    });
    ingress::ingress(id, STOREFRONT, &routes, settings)
}
