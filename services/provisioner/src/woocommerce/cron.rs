//! WP-Cron, the Kubernetes way: WordPress never runs cron from visitors' requests (`DISABLE_WP_CRON`); a CronJob
//! runs the platform's cron script (`scripts/woocommerce-cron.sh`, in the ConfigMap `wp-cron`) with WP-CLI in the
//! store's WordPress image: every due WooCommerce action (order analytics, deferred mail, cleanups), then every due
//! WordPress event, all of them even when an event's handler ends the process, and a run fails when any of that
//! fails.

use k8s_openapi::{
    api::{
        batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec},
        core::v1::ConfigMap,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use store_platform_runtime::record::MANAGED_BY_LABEL;

use super::{
    meta::{CRON, labels, object_meta},
    policy::CRON_SIZE,
    wordpress::script_pod,
};
use crate::settings::Settings;

pub const SCRIPT: &str = include_str!("../../scripts/woocommerce-cron.sh");
pub const SCRIPT_KEY: &str = "cron.sh";

/// How long one run may take: a WooCommerce store's due work, loaded by WP-CLI a few times, takes seconds; a
/// backlog of actions is worked through until this, and the next run goes on with it.
const RUN_DEADLINE_SECONDS: i64 = 300;

pub fn script_config_map(id: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, CRON, CRON),
        data: Some([(SCRIPT_KEY.to_owned(), SCRIPT.to_owned())].into()),
        ..ConfigMap::default()
    }
}

pub fn cron_job(id: &str, settings: &Settings) -> CronJob {
    // The Jobs it starts carry the store's labels but not "managed-by": the platform's controller watches the Jobs
    // it manages, and a store's cron runs are the CronJob controller's, not steps of the store.
    let mut job_labels = labels(id, CRON);
    job_labels.remove(MANAGED_BY_LABEL);
    CronJob {
        metadata: object_meta(id, CRON, CRON),
        spec: Some(CronJobSpec {
            schedule: settings.cron_schedule.clone(),
            concurrency_policy: Some("Forbid".to_owned()),
            // A run missed by more than this (the controller was down) is skipped, not made up for.
            starting_deadline_seconds: Some(RUN_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(1),
            failed_jobs_history_limit: Some(2),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    // The next scheduled run is the retry.
                    backoff_limit: Some(0),
                    active_deadline_seconds: Some(RUN_DEADLINE_SECONDS),
                    template: script_pod(
                        id,
                        settings,
                        (CRON, "wp-cron"),
                        (CRON, SCRIPT_KEY),
                        Vec::new(),
                        CRON_SIZE.requirements(),
                    ),
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}
