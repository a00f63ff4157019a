//! Why a store's pods or Jobs are unhappy, in words a failure reason can carry.

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::api::ListParams;

use super::meta::APP_LABEL;
use crate::kube_ops::Kube;

/// The first reason a pod of `app` gives for not being ready, e.g. "mariadb-0: ImagePullBackOff (Back-off …)".
pub async fn pod_trouble(kube: &Kube, app: &str) -> String {
    let pods = match kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={app}")))
        .await
    {
        Ok(pods) => pods.items,
        Err(error) => return format!("could not list its pods: {error}"),
    };
    if pods.is_empty() {
        return format!("no {app} pod exists (check the namespace's ResourceQuota and events)");
    }
    pods.iter().find_map(pod_reason).unwrap_or_else(|| {
        let pod = &pods[0];
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        format!(
            "{} is {}",
            pod.metadata.name.clone().unwrap_or_default(),
            phase.unwrap_or_else(|| "Pending".into())
        )
    })
}

/// What a pod's containers or conditions say is wrong, if anything.
fn pod_reason(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    // An init container that has not finished well is the cause; the main containers then only say
    // "PodInitializing".
    let unfinished_init = status
        .init_container_statuses
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .map(|c| (format!("{name} (init container {})", c.name), c));
    let main = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .map(|c| (name.clone(), c));
    // A container that is running again after it stopped, and is not ready: between two back-offs, the reason it
    // last stopped ("OOMKilled") is the one worth telling, but only if nothing says more.
    let mut restarted = None;
    for (name, container) in unfinished_init.chain(main) {
        let state = container.state.unwrap_or_default();
        // A container in back-off or restarted says why it stopped last time only there: "OOMKilled", "Error" and
        // its code.
        let last = container
            .last_state
            .and_then(|s| s.terminated)
            .map(|t| {
                format!(
                    "; it last stopped: {} (exit code {})",
                    t.reason.unwrap_or_else(|| "exited".to_owned()),
                    t.exit_code
                )
            })
            .unwrap_or_default();
        if state.running.is_some() {
            if !container.ready && !last.is_empty() && restarted.is_none() {
                restarted = Some(format!(
                    "{name}: container {} is not ready, restarted {} times{last}",
                    container.name, container.restart_count
                ));
            }
            continue;
        }
        if let Some(waiting) = state.waiting
            && let Some(reason) = waiting.reason
        {
            let message = waiting
                .message
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            return Some(format!("{name}: {reason}{message}{last}"));
        }
        if let Some(terminated) = state.terminated {
            let reason = terminated
                .reason
                .unwrap_or_else(|| format!("exit code {}", terminated.exit_code));
            return Some(format!("{name}: {reason}"));
        }
    }
    restarted.or_else(|| {
        status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.status != "True" && c.message.is_some())
            .map(|condition| format!("{name}: {}", condition.message.unwrap_or_default()))
    })
}

/// Why the bootstrap Job failed (its pods carry label `app`): its condition, and the failed container's last words (`FallbackToLogsOnError`).
pub async fn job_failure(kube: &Kube, job: &Job, app: &str) -> String {
    let condition = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
        .cloned()
        .unwrap_or_default();
    let mut reason = format!(
        "bootstrap Job failed: {}",
        condition
            .message
            .or(condition.reason)
            .unwrap_or_else(|| "no reason given".to_owned())
    );
    let pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={app}")))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let message = pods
        .iter()
        .filter_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .terminated
                .clone()
        })
        .filter(|t| t.exit_code != 0)
        .filter_map(|t| t.message)
        .next_back();
    if let Some(words) = message {
        reason.push_str(&format!("; last output: {}", self::last_words(&words)));
    }
    reason
}

/// What a failure reason keeps of a container's termination message: its last 300 characters.
pub fn last_words(message: &str) -> String {
    let words = message.trim();
    let start = words.char_indices().rev().nth(299).map_or(0, |(at, _)| at);
    words[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "mariadb-0"},
            "status": {
                "phase": "Running",
                "conditions": [{
                    "type": "Ready",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "message": "containers with unready status: [mariadb]"
                }],
                "containerStatuses": containers,
            }
        }))
        .expect("a Pod")
    }

    fn oom_killed() -> serde_json::Value {
        serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    }

    #[test]
    fn a_container_in_back_off_says_how_it_last_stopped() {
        let reason = pod_reason(&pod(serde_json::json!([{
            "name": "mariadb", "image": "m", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
            "lastState": oom_killed(),
        }])));
        assert_eq!(
            reason.as_deref(),
            Some(
                "mariadb-0: CrashLoopBackOff (back-off 20s); it last stopped: OOMKilled (exit code 137)"
            )
        );
    }

    /// Between two back-offs the container runs again; how it last stopped still says more than "unready".
    #[test]
    fn a_restarted_container_that_is_not_ready_says_how_it_last_stopped() {
        let reason = pod_reason(&pod(serde_json::json!([{
            "name": "mariadb", "image": "m", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"running": {"startedAt": "2026-12-06T10:00:00Z"}},
            "lastState": oom_killed(),
        }])));
        assert_eq!(
            reason.as_deref(),
            Some(
                "mariadb-0: container mariadb is not ready, restarted 3 times; it last stopped: OOMKilled (exit code 137)"
            )
        );
    }

    #[test]
    fn a_running_container_that_never_stopped_leaves_the_reason_to_the_conditions() {
        let reason = pod_reason(&pod(serde_json::json!([{
            "name": "mariadb", "image": "m", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-12-06T10:00:00Z"}},
        }])));
        assert_eq!(
            reason.as_deref(),
            Some("mariadb-0: containers with unready status: [mariadb]")
        );
    }
}
