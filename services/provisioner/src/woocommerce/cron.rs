//! WP-Cron, the Kubernetes way: WordPress never runs cron from visitors' requests (`DISABLE_WP_CRON`); a CronJob
//! calls `wp-cron.php` through the store's Service with the store's Host header, which runs WordPress's due events
//! and WooCommerce's scheduled actions (order analytics, deferred mail, cleanups).

use k8s_openapi::{
    api::{
        batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec},
        core::v1::{Container, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use store_platform_runtime::record::MANAGED_BY_LABEL;

use super::{
    meta::{CRON, WORDPRESS, WWW_DATA, container_security, labels, object_meta, pod_security},
    policy::CRON_SIZE,
};
use crate::settings::Settings;

/// How long one run may take; Action Scheduler stops its own batch after 30 s, WordPress events rarely take long.
const RUN_DEADLINE_SECONDS: i64 = 300;

/// The curl command one run executes: fails (and the Job with it) when WordPress does not answer 2xx.
pub fn command(id: &str, settings: &Settings) -> Vec<String> {
    let mut command: Vec<String> = [
        "curl",
        "--fail",
        "--silent",
        "--show-error",
        "--max-time",
        &RUN_DEADLINE_SECONDS.to_string(),
        "--retry",
        "2",
        "--retry-connrefused",
        "--output",
        "/dev/null",
        "--header",
        &format!("Host: {}", settings.host(id)),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if settings.scheme == "https" {
        // As the ingress controller would say: WordPress then builds https links in what cron sends.
        command.extend(["--header".to_owned(), "X-Forwarded-Proto: https".to_owned()]);
    }
    command.push(format!("http://{WORDPRESS}/wp-cron.php"));
    command
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
                    active_deadline_seconds: Some(RUN_DEADLINE_SECONDS + 60),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(id, CRON)),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("Never".to_owned()),
                            containers: vec![Container {
                                name: "wp-cron".to_owned(),
                                // The WordPress image is on the node already and has curl.
                                image: Some(settings.wordpress_image.clone()),
                                image_pull_policy: Some(settings.image_pull_policy.clone()),
                                command: Some(command(id, settings)),
                                resources: Some(CRON_SIZE.requirements()),
                                security_context: Some(container_security()),
                                termination_message_policy: Some(
                                    "FallbackToLogsOnError".to_owned(),
                                ),
                                ..Container::default()
                            }],
                            security_context: Some(pod_security(WWW_DATA)),
                            automount_service_account_token: Some(false),
                            enable_service_links: Some(false),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}
