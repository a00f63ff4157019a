//! The storefront's Ingress at `<id>.<base-domain>`: the whole host goes to WordPress.

use k8s_openapi::api::networking::v1::Ingress;

use super::meta::WORDPRESS;
use crate::{
    settings::Settings,
    shared::ingress::{self, Route},
};

pub fn ingress(id: &str, settings: &Settings) -> Ingress {
    let routes = [Route {
        prefix: "/",
        service: WORDPRESS,
        port: 80,
    }];
    ingress::ingress(id, WORDPRESS, &routes, settings)
}
