//! A file that configures a running service and may change under it (the caller policy, the gateway's API tokens,
//! its projected ServiceAccount token): read once at start, where a file that cannot be used is an error; then
//! re-read every interval, each change put in use when it can be, and otherwise logged while the last good version
//! stays in use.

use std::{
    fmt::Display,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::Shutdown;

/// A file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

async fn read(path: &Path) -> Result<String, ReadError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| ReadError {
            path: path.to_owned(),
            source,
        })
}

/// Reads `path` and hands what `parse` makes of it to `apply` before returning (a file that cannot be read or parsed
/// is the error); then, until `shutdown`, re-reads it every `interval` and hands each change that `parse` accepts to
/// `apply`. A change `parse` refuses, and a file that cannot be read, are logged (naming `what`), and the version in
/// use is kept.
pub async fn watch<T, E>(
    path: PathBuf,
    what: &'static str,
    interval: Duration,
    shutdown: Shutdown,
    parse: impl Fn(&Path, &str) -> Result<T, E> + Send + 'static,
    apply: impl Fn(T) + Send + 'static,
) -> Result<(), E>
where
    E: From<ReadError> + Display,
{
    let text = read(&path).await?;
    apply(parse(&path, &text)?);
    tokio::spawn(async move {
        let mut last = text;
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let text = match read(&path).await {
                Ok(text) if text != last => text,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot re-read the {what}; keeping the one in use");
                    continue;
                }
            };
            match parse(&path, &text) {
                Ok(value) => {
                    apply(value);
                    tracing::info!(path = %path.display(), "{what} reloaded");
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "the changed {what} cannot be used; keeping the one in use");
                }
            }
            last = text;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Error {
        #[error(transparent)]
        Read(#[from] ReadError),
        #[error("not a number: {0}")]
        Number(String),
    }

    fn number(_: &Path, text: &str) -> Result<u32, Error> {
        text.trim()
            .parse()
            .map_err(|_| Error::Number(text.to_owned()))
    }

    #[tokio::test]
    async fn each_good_change_is_applied_and_a_bad_one_keeps_the_last_good() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("n");
        std::fs::write(&path, "1").expect("write");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let shutdown = Shutdown::new();
        watch(
            path.clone(),
            "number",
            Duration::from_millis(10),
            shutdown.clone(),
            number,
            move |n| kept.lock().expect("seen").push(n),
        )
        .await
        .expect("the first read");
        assert_eq!(
            *seen.lock().expect("seen"),
            [1],
            "the first version, before it returned"
        );
        let wait_for = |n: usize| {
            let seen = seen.clone();
            async move {
                for _ in 0..200 {
                    if seen.lock().expect("seen").len() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        std::fs::write(&path, "2").expect("write");
        wait_for(2).await;
        std::fs::write(&path, "not a number").expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::remove_file(&path).expect("remove");
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&path, "3").expect("write");
        wait_for(3).await;
        assert_eq!(*seen.lock().expect("seen"), [1, 2, 3]);
        shutdown.trigger();
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_used_at_start_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = watch(
            dir.path().join("missing"),
            "number",
            Duration::from_secs(1),
            Shutdown::new(),
            number,
            |_| {},
        )
        .await;
        assert!(matches!(missing, Err(Error::Read(_))), "{missing:?}");
        let path = dir.path().join("bad");
        std::fs::write(&path, "x").expect("write");
        let bad = watch(
            path,
            "number",
            Duration::from_secs(1),
            Shutdown::new(),
            number,
            |_| {},
        )
        .await;
        assert!(matches!(bad, Err(Error::Number(_))), "{bad:?}");
    }
}
