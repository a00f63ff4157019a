//! The provisioner's errors, and their one mapping to gRPC status codes.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },

    #[error("store {id:?} not found")]
    NotFound { id: String },

    #[error("store {id:?} already exists {reason}")]
    AlreadyExists { id: String, reason: &'static str },

    #[error("tenant {tenant:?} already has {max} stores, the most allowed; delete one first")]
    TenantStoreLimit { tenant: String, max: usize },

    #[error("store {id:?} is {phase}; only a failed store can be retried")]
    NotRetryable { id: String, phase: &'static str },

    #[error("store {id:?} has no credentials yet: they are generated in its \"secrets\" step")]
    CredentialsNotReady { id: String },

    #[error("store {id:?} is being deleted")]
    Deleting { id: String },

    #[error("tenant {tenant:?} has other store creations in progress; try again in a moment")]
    Busy { tenant: String },

    #[error(
        "backups are off: the platform has no object store (set --backup-s3-endpoint, BACKUP_S3_ENDPOINT, or the \
         chart's backup.s3.endpoint)"
    )]
    BackupsOff,

    #[error("store {id:?} is {phase}; only a ready or suspended store can be backed up")]
    NotReadyForBackup { id: String, phase: &'static str },

    #[error("store {id:?} is {phase}; only a ready or suspended store can be restored")]
    NotReadyForRestore { id: String, phase: &'static str },

    #[error("store {id:?} is {phase}; only a ready store can be upgraded")]
    NotReadyForUpgrade { id: String, phase: &'static str },

    #[error("store {id:?} is {phase}; only a ready store can be paused")]
    NotReadyForSuspend { id: String, phase: &'static str },

    #[error("store {id:?} is {phase}; only a suspended store can be resumed")]
    NotSuspended { id: String, phase: &'static str },

    #[error("store {id:?} already runs version {version}")]
    AlreadyOnVersion { id: String, version: String },

    #[error("store {id:?} is busy with {what}; wait until it ends")]
    OperationRunning { id: String, what: String },

    #[error(
        "{call} is for administrators (the all-tenants scope): it acts on every tenant's stores"
    )]
    AdministratorsOnly { call: &'static str },

    #[error("fleet upgrade {id:?} not found")]
    FleetUpgradeNotFound { id: String },

    #[error("fleet upgrade {id} of {engine} stores is running; wait until it ends")]
    FleetUpgradeRunning { id: String, engine: &'static str },

    #[error("{field}: store {id:?} has no backup {backup:?}")]
    BackupNotFound {
        field: &'static str,
        id: String,
        backup: String,
    },

    #[error(
        "source.store_id: this tenant has no store {id:?} with backups (a living one, or a deleted one within its \
         backups' retention window)"
    )]
    CloneSourceNotFound { id: String },

    #[error("the backup repository of store {id:?}: {reason}")]
    Repository { id: String, reason: String },

    #[error("failed to read the object store's {what} from {}", path.display())]
    ReadBackupCredentials {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to {action}")]
    Kubernetes {
        /// What was being done, e.g. "apply Job woocommerce-bootstrap".
        action: std::borrow::Cow<'static, str>,
        #[source]
        source: kube::Error,
    },

    #[error("failed to encode the store record")]
    Record(#[from] store_platform_runtime::record::RecordError),

    #[error("the reconcile pass {why}; abandoned, it is retried like a failed one")]
    PassAbandoned { why: &'static str },

    #[error("failed to read the SMTP relay's password from {}", path.display())]
    ReadMailPassword {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn kubernetes(
        action: impl Into<std::borrow::Cow<'static, str>>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kubernetes { action, source }
    }

    /// The error with every cause, for logs: "failed to apply Job x: the server rejected …: field is immutable".
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }

    /// Whether the API server refused a write for good (invalid, forbidden, over quota), or the platform's own
    /// configuration is missing (the object store's key files): retrying gives the same answer until someone changes
    /// something, so the step says why and fails at its deadline. Conflicts, throttling and server errors pass.
    /// The API server refused a write guarded by a resource version that someone else's write changed.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::Kubernetes {
                source: kube::Error::Api(status),
                ..
            } if status.code == 409
        )
    }

    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::Kubernetes {
                source: kube::Error::Api(status),
                ..
            } if matches!(status.code, 400 | 403 | 404 | 422)
        ) || matches!(self, Error::ReadBackupCredentials { .. })
    }
}

impl Error {
    /// A short, bounded label for the reconcile-errors metric.
    pub fn metric_reason(&self) -> String {
        match self {
            Error::Kubernetes {
                source: kube::Error::Api(status),
                ..
            } => match status.code {
                409 => "conflict".to_owned(),
                403 => "forbidden".to_owned(),
                404 => "not_found".to_owned(),
                422 => "invalid".to_owned(),
                code if code >= 500 => "api_server_error".to_owned(),
                _ => "api_error".to_owned(),
            },
            Error::Kubernetes { .. } => "unreachable".to_owned(),
            Error::Record(_) => "record".to_owned(),
            Error::ReadMailPassword { .. } => "mail_password".to_owned(),
            Error::ReadBackupCredentials { .. } => "backup_credentials".to_owned(),
            Error::Repository { .. } => "backup_repository".to_owned(),
            Error::PassAbandoned { .. } => "abandoned".to_owned(),
            _ => "other".to_owned(),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        use tonic::Code;
        let code = match &error {
            Error::InvalidField { .. } => Code::InvalidArgument,
            Error::NotFound { .. } | Error::FleetUpgradeNotFound { .. } => Code::NotFound,
            Error::AdministratorsOnly { .. } => Code::PermissionDenied,
            Error::AlreadyExists { .. } => Code::AlreadyExists,
            Error::TenantStoreLimit { .. } => Code::ResourceExhausted,
            Error::Busy { .. } => Code::Unavailable,
            Error::NotRetryable { .. }
            | Error::CredentialsNotReady { .. }
            | Error::Deleting { .. }
            | Error::BackupsOff
            | Error::NotReadyForBackup { .. }
            | Error::NotReadyForRestore { .. }
            | Error::NotReadyForUpgrade { .. }
            | Error::AlreadyOnVersion { .. }
            | Error::NotReadyForSuspend { .. }
            | Error::NotSuspended { .. }
            | Error::OperationRunning { .. }
            | Error::FleetUpgradeRunning { .. } => Code::FailedPrecondition,
            Error::BackupNotFound { .. } | Error::CloneSourceNotFound { .. } => Code::NotFound,
            Error::Repository { .. } => Code::Unavailable,
            Error::Kubernetes { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => Code::Aborted,
                kube::Error::Api(status) if status.code == 403 => Code::Internal,
                kube::Error::Api(status) if status.code == 429 => Code::Unavailable,
                kube::Error::Api(status) if status.code >= 500 => Code::Unavailable,
                kube::Error::Api(_) => Code::Internal,
                _ => Code::Unavailable,
            },
            Error::Record(_)
            | Error::PassAbandoned { .. }
            | Error::ReadMailPassword { .. }
            | Error::ReadBackupCredentials { .. } => Code::Internal,
        };
        if matches!(code, Code::Internal | Code::Unavailable) {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
        }
        let message = match &error {
            Error::Kubernetes { source, .. } => format!("{error}: {source}"),
            _ => error.to_string(),
        };
        tonic::Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_invalid_argument_naming_the_field() {
        let status = tonic::Status::from(Error::InvalidField {
            field: "store_id",
            reason: "must be 3 to 40 characters long (got 2)".into(),
        });
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with("store_id: "));
    }

    #[test]
    fn missing_backup_credentials_fail_the_step_at_its_deadline_rather_than_retry_forever() {
        let missing = Error::ReadBackupCredentials {
            what: "access key id",
            path: "/etc/store-platform/backup/access-key".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(missing.is_refusal());
        assert_eq!(tonic::Status::from(missing).code(), tonic::Code::Internal);
        assert_eq!(
            tonic::Status::from(Error::BackupsOff).code(),
            tonic::Code::FailedPrecondition
        );
    }

    #[test]
    fn each_error_has_its_code() {
        let cases = [
            (Error::NotFound { id: "x".into() }, tonic::Code::NotFound),
            (
                Error::AlreadyExists {
                    id: "x".into(),
                    reason: "with a different spec",
                },
                tonic::Code::AlreadyExists,
            ),
            (
                Error::TenantStoreLimit {
                    tenant: "t".into(),
                    max: 3,
                },
                tonic::Code::ResourceExhausted,
            ),
            (
                Error::Kubernetes {
                    action: "list stores".into(),
                    source: kube::Error::LinesCodecMaxLineLengthExceeded,
                },
                tonic::Code::Unavailable,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(tonic::Status::from(error).code(), code);
        }
    }
}
