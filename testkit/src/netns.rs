//! Work inside a network namespace a test made: [`InNetns`] is a thread
//! that entered the namespace and runs a runtime of its own there, so every
//! socket its tasks open (clients, HTTP probes) belongs to that namespace.
//! Processes go there with `ip netns exec NAME PROGRAM`, which execs the
//! program: its pid is the child's.

use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An executor whose tasks run in one network namespace.
pub struct InNetns {
    name: String,
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl InNetns {
    /// Enters namespace `name` (made with `ip netns add`) on a new thread.
    pub fn enter(name: &str) -> std::io::Result<Self> {
        let file = std::fs::File::open(format!("/run/netns/{name}"))?;
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let entered = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
                    .and_then(|()| tokio::runtime::Builder::new_current_thread().enable_all().build());
                let rt = match entered {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(()));
                        rt
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        ready
            .recv()
            .map_err(|_| std::io::Error::other("the namespace thread died"))??;
        Ok(Self {
            name: name.to_owned(),
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` in the namespace; a panic there is raised here.
    pub fn spawn<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(tokio::spawn(f).await);
        });
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        let name = self.name.clone();
        async move {
            assert!(sent, "the thread of namespace {name} is gone");
            match rx.await {
                Ok(Ok(out)) => out,
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                _ => panic!("a task in namespace {name} was cancelled"),
            }
        }
    }

    /// [`InNetns::spawn`], awaited.
    pub async fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(f).await
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        // The thread's loop ends, and its runtime drops whatever still runs.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
