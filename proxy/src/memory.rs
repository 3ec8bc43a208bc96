//! Giving freed memory back to the OS after a config change. A large
//! config's old version, the snapshot it came in and the compile's scratch
//! are tens of MB freed at once; an allocator with thread-local heaps
//! (mimalloc) returns them in its own time: when the thread that allocated
//! them next allocates, or exits. The binary, which picks the allocator,
//! says how to release; the node says when.
//!
//! Every config a node serves is compiled or patched on one long-lived
//! thread, its [`ConfigThread`]: mimalloc gives back only the calling
//! thread's heap, and a thread of tokio's blocking pool cannot be asked
//! for again, so on the pool what an old version freed stayed resident
//! until its builder idled out (10 s), and two changes a moment apart
//! stood on each other. Each served version carries a [`ReleaseOnDrop`]:
//! when its last holder lets go (a request or the health checks may hold
//! it after the swap), the config thread gives back its heap's freed
//! memory.

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::mpsc;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets how to give the calling thread's freed memory back to the OS (once;
/// later calls are ignored). Without it, [`release`] does nothing.
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Gives the calling thread's freed memory back to the OS, if the binary
/// said how.
pub fn release() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Why a job on the config thread gave no result.
#[derive(Debug, thiserror::Error)]
pub enum JobFailed {
    #[error("the job panicked: {0}")]
    Panicked(String),
    #[error("the config thread is gone")]
    Gone,
}

/// The thread a node's configs are built on, one job at a time. Cloning
/// shares the thread, which ends once every clone is dropped.
#[derive(Debug, Clone)]
pub struct ConfigThread {
    /// `None` when the thread could not be started (the OS is out of
    /// threads): jobs then run on tokio's blocking pool.
    jobs: Option<mpsc::Sender<Job>>,
}

impl ConfigThread {
    /// Starts the thread.
    pub fn start() -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("gatehouse-config".to_owned())
            .spawn(move || {
                for job in queue {
                    job();
                }
            });
        match started {
            Ok(_) => Self { jobs: Some(jobs) },
            Err(err) => {
                tracing::warn!(error = %err, "no config thread; configs are built on the blocking pool");
                Self { jobs: None }
            }
        }
    }

    /// Runs `job` on the thread and returns what it returned (on tokio's
    /// blocking pool when there is no thread).
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, JobFailed> {
        let Some(jobs) = &self.jobs else {
            return tokio::task::spawn_blocking(move || caught(job))
                .await
                .map_err(|_| JobFailed::Gone)?;
        };
        let (done, result) = tokio::sync::oneshot::channel();
        submit(jobs, job, move |outcome| {
            let _ = done.send(outcome);
        })?;
        result.await.map_err(|_| JobFailed::Gone)?
    }

    /// A guard that gives back the thread's freed memory when dropped.
    pub fn release_on_drop(&self) -> ReleaseOnDrop {
        ReleaseOnDrop(self.clone())
    }

    /// [`ConfigThread::run`], waiting for the result on this thread (a
    /// node starting, before it serves).
    pub fn run_blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, JobFailed> {
        let Some(jobs) = &self.jobs else {
            return caught(job);
        };
        let (done, result) = mpsc::sync_channel(1);
        submit(jobs, job, move |outcome| {
            let _ = done.send(outcome);
        })?;
        result.recv().map_err(|_| JobFailed::Gone)?
    }

    /// Gives what the thread's heap holds freed back to the OS (the
    /// caller's, when there is no thread).
    pub fn release_heap(&self) {
        match &self.jobs {
            Some(jobs) => {
                let _ = jobs.send(Box::new(release));
            }
            None => release(),
        }
    }
}

/// Queues `job` on the thread, its outcome handed to `reply` there.
fn submit<R: Send + 'static>(
    jobs: &mpsc::Sender<Job>,
    job: impl FnOnce() -> R + Send + 'static,
    reply: impl FnOnce(Result<R, JobFailed>) + Send + 'static,
) -> Result<(), JobFailed> {
    jobs.send(Box::new(move || reply(caught(job))))
        .map_err(|_| JobFailed::Gone)
}

/// Held by a served config as its last field: once the config's parts
/// are dropped, the config thread gives back what they freed.
#[derive(Debug)]
pub struct ReleaseOnDrop(ConfigThread);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_heap();
    }
}

/// What `job` returned, or its panic as an error.
fn caught<R>(job: impl FnOnce() -> R) -> Result<R, JobFailed> {
    std::panic::catch_unwind(AssertUnwindSafe(job)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        JobFailed::Panicked(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_one_thread_and_a_panic_is_an_error() {
        let thread = ConfigThread::start();
        let name = thread
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("ran");
        assert_eq!(name.as_deref(), Some("gatehouse-config"));
        let first = thread
            .run(|| std::thread::current().id())
            .await
            .expect("ran");
        let second = thread
            .clone()
            .run(|| std::thread::current().id())
            .await
            .expect("ran");
        assert_eq!(first, second);
        assert_ne!(first, std::thread::current().id());
        let failed = thread.run(|| -> u8 { panic!("a broken config") }).await;
        assert!(
            matches!(&failed, Err(JobFailed::Panicked(m)) if m == "a broken config"),
            "{failed:?}"
        );
        // The thread carries on after a panicking job.
        assert_eq!(thread.run(|| 7).await.expect("ran"), 7);
        let blocking = thread.clone();
        let third = tokio::task::spawn_blocking(move || {
            blocking.run_blocking(|| std::thread::current().id())
        })
        .await
        .expect("joined")
        .expect("ran");
        assert_eq!(first, third);
        drop(thread.release_on_drop());
    }
}
