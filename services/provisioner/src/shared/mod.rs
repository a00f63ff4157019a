//! What every store needs whatever its engine: names, labels and pod security; volume claims; sizes, quota and
//! limits; the baseline NetworkPolicies; the host's Ingress; generated passwords; and reading from Kubernetes
//! whether a step is done, or why a pod or a Job is unhappy. Engines build on this and on nothing of each other.

pub mod diagnose;
pub mod ingress;
pub mod meta;
pub mod network;
pub mod observe;
pub mod secret;
pub mod size;
pub mod workload;
