//! The pool's waiting room: jobs wait in one lane per owner (a user) and are handed to workers
//! round-robin between owners, so one user's flood of requests cannot starve another user's
//! session. Interactive jobs are refused at once when the room is full (the client retries);
//! batch jobs (an upload's files, a processing job's photos) wait for room instead of failing.
//! Either kind of room holds at most half its jobs for one owner, so another user always finds
//! some.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// Who a job is for, and whether its caller wants an answer now or can wait for room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    /// Jobs of one owner wait in one lane; lanes take turns. The server uses the user's id.
    pub owner: i64,
    /// Batch work waits for room in the queue; interactive work is refused when it is full.
    pub batch: bool,
}

impl Lane {
    /// A request a person is waiting for: `Overloaded` at once when the queue is full.
    pub fn interactive(owner: i64) -> Self {
        Self {
            owner,
            batch: false,
        }
    }

    /// Part of a larger piece of work: waits for room rather than failing.
    pub fn batch(owner: i64) -> Self {
        Self { owner, batch: true }
    }
}

/// Why a job could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// The interactive room is full (or this owner's share of it).
    Full(T),
    /// The queue is closed: the pool is shutting down.
    Closed(T),
}

struct Waiting<T> {
    item: T,
    lane: Lane,
}

struct State<T> {
    /// Jobs whose worker crashed, to be tried again before anything else.
    retries: VecDeque<T>,
    lanes: HashMap<i64, VecDeque<Waiting<T>>>,
    /// Owners with waiting jobs, in the order in which they get their next turn.
    turns: VecDeque<i64>,
    interactive: Room,
    batch: Room,
    closed: bool,
}

pub(crate) struct FairQueue<T> {
    state: Mutex<State<T>>,
    /// A job was queued (wakes a worker).
    ready: Notify,
    /// A batch job left the room, or the queue closed (wakes batch producers).
    room: Notify,
    /// Jobs of each kind that may wait, in all and per owner.
    capacity: usize,
    per_owner: usize,
}

impl<T> FairQueue<T> {
    /// A queue where `capacity` interactive jobs may wait (half of them at most for one owner,
    /// so another user always finds room) and as many batch jobs again.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                retries: VecDeque::new(),
                lanes: HashMap::new(),
                turns: VecDeque::new(),
                interactive: Room::default(),
                batch: Room::default(),
                closed: false,
            }),
            ready: Notify::new(),
            room: Notify::new(),
            capacity,
            per_owner: (capacity / 2).max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the state half-changed in a way that
        // matters more than losing the pool; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an interactive job, or refuses it at once when the room (or the owner's share) is full.
    pub fn try_push(&self, item: T, lane: Lane) -> Result<(), Refused<T>> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed(item));
        }
        if !state
            .interactive
            .has_space(lane.owner, self.capacity, self.per_owner)
        {
            return Err(Refused::Full(item));
        }
        state.interactive.enter(lane.owner);
        enqueue(
            &mut state,
            Waiting {
                item,
                lane: Lane::interactive(lane.owner),
            },
        );
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Whether an interactive job of this owner would find room now (a hint: the room may be
    /// taken by the time the job is pushed, which then refuses it).
    pub fn has_room(&self, owner: i64) -> bool {
        let state = self.lock();
        !state.closed
            && state
                .interactive
                .has_space(owner, self.capacity, self.per_owner)
    }

    /// Queues a batch job, waiting for room first (in all, and within the owner's share).
    pub async fn push_waiting(&self, item: T, lane: Lane) -> Result<(), Refused<T>> {
        loop {
            // Registered before looking, so room made between the look and the wait is seen.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(Refused::Closed(item));
                }
                if state
                    .batch
                    .has_space(lane.owner, self.capacity, self.per_owner)
                {
                    state.batch.enter(lane.owner);
                    enqueue(
                        &mut state,
                        Waiting {
                            item,
                            lane: Lane::batch(lane.owner),
                        },
                    );
                    drop(state);
                    self.ready.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Queues a job to be tried again, ahead of everything else (never refused).
    pub fn push_retry(&self, item: T) {
        self.lock().retries.push_back(item);
        self.ready.notify_one();
    }

    /// The next job: a retry, else the first job of the owner whose turn it is.
    pub fn try_pop(&self) -> Option<T> {
        let mut state = self.lock();
        if let Some(item) = state.retries.pop_front() {
            return Some(item);
        }
        let owner = state.turns.pop_front()?;
        let lane = state.lanes.get_mut(&owner)?;
        let waiting = lane.pop_front()?;
        if lane.is_empty() {
            state.lanes.remove(&owner);
        } else {
            state.turns.push_back(owner);
        }
        if waiting.lane.batch {
            state.batch.leave(owner);
            drop(state);
            self.room.notify_waiters();
        } else {
            state.interactive.leave(owner);
        }
        Some(waiting.item)
    }

    /// Waits for the next job (see [`FairQueue::try_pop`]).
    pub async fn pop(&self) -> T {
        loop {
            // Registered before looking, so a push between the look and the wait is not missed;
            // a notified waiter dropped unpolled (a `select!` that took another branch) passes
            // its notification on.
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(item) = self.try_pop() {
                return item;
            }
            notified.await;
        }
    }

    /// Jobs waiting (retries included).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.retries.len() + state.lanes.values().map(VecDeque::len).sum::<usize>()
    }

    /// Takes every waiting job out (to answer them), leaving the queue open.
    pub fn drain(&self) -> Vec<T> {
        let mut state = self.lock();
        let mut items: Vec<T> = state.retries.drain(..).collect();
        let turns: Vec<i64> = state.turns.drain(..).collect();
        for owner in turns {
            if let Some(lane) = state.lanes.remove(&owner) {
                items.extend(lane.into_iter().map(|w| w.item));
            }
        }
        state.interactive = Room::default();
        state.batch = Room::default();
        drop(state);
        self.room.notify_waiters();
        items
    }

    /// Refuses every later push and wakes batch producers waiting for room (they get `Closed`).
    pub fn close(&self) {
        self.lock().closed = true;
        self.room.notify_waiters();
    }
}

fn enqueue<T>(state: &mut State<T>, waiting: Waiting<T>) {
    let owner = waiting.lane.owner;
    let lane = state.lanes.entry(owner).or_default();
    if lane.is_empty() {
        state.turns.push_back(owner);
    }
    lane.push_back(waiting);
}

/// The jobs of one kind waiting in the queue, in all and per owner.
#[derive(Debug, Default)]
struct Room {
    total: usize,
    by_owner: HashMap<i64, usize>,
}

impl Room {
    /// Whether one more job of `owner` fits: `capacity` in all, `per_owner` for one owner.
    fn has_space(&self, owner: i64, capacity: usize, per_owner: usize) -> bool {
        let mine = self.by_owner.get(&owner).copied().unwrap_or(0);
        self.total < capacity && mine < per_owner
    }

    fn enter(&mut self, owner: i64) {
        self.total += 1;
        *self.by_owner.entry(owner).or_default() += 1;
    }

    fn leave(&mut self, owner: i64) {
        self.total -= 1;
        if let Some(count) = self.by_owner.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.by_owner.remove(&owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn popped(queue: &FairQueue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| queue.try_pop()).collect()
    }

    #[test]
    fn owners_take_turns_so_a_flood_does_not_starve_another_user() {
        let queue = FairQueue::new(16);
        for job in ["a1", "a2", "a3", "a4"] {
            queue.try_push(job, Lane::interactive(1)).unwrap();
        }
        queue.try_push("b1", Lane::interactive(2)).unwrap();
        queue.try_push("b2", Lane::interactive(2)).unwrap();
        assert_eq!(popped(&queue), ["a1", "b1", "a2", "b2", "a3", "a4"]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn retries_go_first() {
        let queue = FairQueue::new(4);
        queue.try_push("a1", Lane::interactive(1)).unwrap();
        queue.push_retry("r1");
        assert_eq!(popped(&queue), ["r1", "a1"]);
    }

    #[test]
    fn interactive_jobs_are_refused_when_full_and_one_owner_gets_half_the_room() {
        let queue = FairQueue::new(4);
        queue.try_push("a1", Lane::interactive(1)).unwrap();
        queue.try_push("a2", Lane::interactive(1)).unwrap();
        assert_eq!(
            queue.try_push("a3", Lane::interactive(1)),
            Err(Refused::Full("a3"))
        );
        queue.try_push("b1", Lane::interactive(2)).unwrap();
        queue.try_push("c1", Lane::interactive(3)).unwrap();
        assert_eq!(
            queue.try_push("d1", Lane::interactive(4)),
            Err(Refused::Full("d1"))
        );
        assert!(!queue.has_room(1) && !queue.has_room(5));
        // Taking a job out makes room again.
        assert_eq!(queue.try_pop(), Some("a1"));
        assert!(queue.has_room(1));
        queue.try_push("a3", Lane::interactive(1)).unwrap();
    }

    #[tokio::test]
    async fn batch_jobs_wait_for_room_instead_of_failing() {
        let queue = Arc::new(FairQueue::new(4));
        queue.push_waiting("b1", Lane::batch(1)).await.unwrap();
        queue.push_waiting("b2", Lane::batch(1)).await.unwrap();
        // A full interactive room does not stop batch work, and the reverse.
        queue.try_push("i1", Lane::interactive(2)).unwrap();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.push_waiting("b3", Lane::batch(1)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the third batch job waits for room");
        assert_eq!(queue.try_pop(), Some("b1"));
        waiting.await.unwrap().unwrap();
        assert_eq!(popped(&queue), ["i1", "b2", "b3"]);
    }

    #[tokio::test]
    async fn one_owners_batch_work_leaves_room_for_another_owners() {
        let queue = Arc::new(FairQueue::new(4));
        queue.push_waiting("a1", Lane::batch(1)).await.unwrap();
        queue.push_waiting("a2", Lane::batch(1)).await.unwrap();
        let a3 = tokio::spawn({
            let queue = queue.clone();
            async move { queue.push_waiting("a3", Lane::batch(1)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !a3.is_finished(),
            "owner 1 has used its half of the batch room"
        );
        // Owner 2 gets in at once, ahead of owner 1's waiting job.
        tokio::time::timeout(
            std::time::Duration::from_millis(100),
            queue.push_waiting("b1", Lane::batch(2)),
        )
        .await
        .expect("another owner finds room")
        .unwrap();
        assert_eq!(queue.try_pop(), Some("a1"));
        a3.await.unwrap().unwrap();
        assert_eq!(popped(&queue), ["b1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn closing_refuses_pushes_and_releases_waiting_producers() {
        let queue = Arc::new(FairQueue::new(2));
        queue.push_waiting("b1", Lane::batch(1)).await.unwrap();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.push_waiting("b2", Lane::batch(1)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        queue.close();
        assert_eq!(waiting.await.unwrap(), Err(Refused::Closed("b2")));
        assert_eq!(
            queue.try_push("i1", Lane::interactive(1)),
            Err(Refused::Closed("i1"))
        );
        assert_eq!(queue.drain(), ["b1"]);
    }

    #[tokio::test]
    async fn a_waiting_worker_is_woken_by_a_push() {
        let queue = Arc::new(FairQueue::new(4));
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        queue.try_push("a1", Lane::interactive(1)).unwrap();
        assert_eq!(worker.await.unwrap(), "a1");
    }
}
