//! Finds the control-plane binaries: `$KUBEBUILDER_ASSETS` (the envtest convention), or whatever
//! `scripts/kube-assets.sh` provides (building them once per machine and caching them).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const BINARIES: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
];

#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("KUBEBUILDER_ASSETS={dir} lacks {missing}")]
    Incomplete { dir: PathBuf, missing: &'static str },
    #[error("failed to run {script}")]
    RunScript {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{script} failed ({status}); run it by hand to see why")]
    ScriptFailed {
        script: PathBuf,
        status: std::process::ExitStatus,
    },
}

/// A directory holding etcd, kube-apiserver and kube-controller-manager.
#[derive(Debug, Clone)]
pub struct Assets {
    dir: PathBuf,
}

impl Assets {
    /// `$KUBEBUILDER_ASSETS` if set, else the output of the project's `scripts/kube-assets.sh`.
    pub fn locate() -> Result<Self, AssetsError> {
        if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|dir| !dir.is_empty()) {
            return Self::in_dir(PathBuf::from(dir));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-assets.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|source| AssetsError::RunScript {
                script: script.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(AssetsError::ScriptFailed {
                script,
                status: output.status,
            });
        }
        Self::in_dir(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ))
    }

    pub fn in_dir(dir: PathBuf) -> Result<Self, AssetsError> {
        for binary in BINARIES {
            if !dir.join(binary).is_file() {
                return Err(AssetsError::Incomplete {
                    dir,
                    missing: binary,
                });
            }
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn etcd(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    pub fn kube_apiserver(&self) -> PathBuf {
        self.dir.join("kube-apiserver")
    }

    pub fn kube_controller_manager(&self) -> PathBuf {
        self.dir.join("kube-controller-manager")
    }

    pub fn kube_scheduler(&self) -> PathBuf {
        self.dir.join("kube-scheduler")
    }

    pub fn kubelet(&self) -> PathBuf {
        self.dir.join("kubelet")
    }

    pub fn kube_proxy(&self) -> PathBuf {
        self.dir.join("kube-proxy")
    }
}
