//! Password hashing and checking (argon2id: ~19 MiB and tens of milliseconds each) on a few
//! dedicated threads, one per core. A flood of logins then waits for these threads instead of
//! spreading over the async runtime's blocking pool, where every thread would leave its own
//! ~19 MiB behind in the allocator: memory stays at a few checks' worth whatever the flood.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

use crate::{Result, StoreError};

type Work = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub(crate) struct PasswordWork {
    work: Mutex<mpsc::Sender<Work>>,
    /// One permit per thread: work waits here (a bounded time), never in a growing queue.
    turns: Arc<Semaphore>,
    wait: Duration,
}

impl PasswordWork {
    /// Starts `threads` threads; work waits at most `wait` for one of them.
    pub fn start(threads: usize, wait: Duration) -> Result<Self> {
        let (sender, receiver) = mpsc::channel::<Work>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next piece of work.
                        let next = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(work) => work(),
                            Err(_) => return, // the store is gone
                        }
                    }
                })
                .map_err(StoreError::io("cannot start a password thread"))?;
        }
        Ok(Self {
            work: Mutex::new(sender),
            turns: Arc::new(Semaphore::new(threads.max(1))),
            wait,
        })
    }

    /// Runs `work` on a password thread; `PasswordChecksBusy` if none is free in time.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::PasswordChecksBusy)?
            .map_err(|_| StoreError::PasswordChecksBusy)?;
        let (reply, answer) = oneshot::channel();
        // The turn is given back by the thread when the work is done, not by the caller: a
        // caller that stops waiting must not let more work in than there are threads.
        let job: Work = Box::new(move || {
            let _ = reply.send(work());
            drop(turn);
        });
        self.work
            .lock()
            .map_err(|_| StoreError::PasswordHash("password threads are gone".into()))?
            .send(job)
            .map_err(|_| StoreError::PasswordHash("password threads are gone".into()))?;
        answer
            .await
            .map_err(|_| StoreError::PasswordHash("a password thread stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn no_more_than_one_piece_of_work_per_thread_runs_at_once() {
        let work = Arc::new(PasswordWork::start(2, Duration::from_secs(10)).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (work, running, most) = (work.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    work.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        (i, std::thread::current().name().map(str::to_owned))
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for task in tasks {
            let (_, thread) = task.await.unwrap();
            assert!(thread.unwrap().starts_with("password-"));
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} ran at once");
    }

    #[tokio::test]
    async fn work_that_cannot_get_a_turn_in_time_is_refused() {
        let work = Arc::new(PasswordWork::start(1, Duration::from_millis(50)).unwrap());
        let slow = tokio::spawn({
            let work = work.clone();
            async move {
                work.run(|| std::thread::sleep(Duration::from_millis(300)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(
            work.run(|| ()).await,
            Err(StoreError::PasswordChecksBusy)
        ));
        slow.await.unwrap().unwrap();
    }
}
