//! Failed-login throttling: after a few failures, a username and a client address each must wait
//! before their next try, twice as long after every further failure. Refused tries cost no
//! password check, so a flood of guesses costs the server almost nothing; a success clears the
//! username's record, so its owner gets in as soon as the wait has passed. Tries still being
//! checked count as failures-to-be, so a burst of concurrent guesses cannot slip past the limit
//! before the first of them has failed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures are free, and how the wait grows after them.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    /// Failed logins for one username before it must wait.
    pub failures_per_user: u32,
    /// Failed logins from one client address before it must wait.
    pub failures_per_address: u32,
    /// The first wait; each further failure doubles it, up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// A record with no failure for this long is forgotten.
    pub forget_after: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            failures_per_user: 5,
            failures_per_address: 20,
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
        }
    }
}

/// Whose failures are counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    /// Tries begun and not yet ended.
    checking: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// Records kept at most; past this, the ones whose last failure is oldest are dropped.
const MAX_RECORDS: usize = 100_000;

/// The failed-login records of the server (in memory: a restart forgets them).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    limits: LoginLimits,
    records: Mutex<HashMap<Key, Record>>,
}

impl LoginThrottle {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            records: Mutex::default(),
        }
    }

    fn keys(username: &str, address: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::User(username.to_owned())];
        keys.extend(address.map(Key::Address));
        keys
    }

    fn free_failures(&self, key: &Key) -> u32 {
        match key {
            Key::User(_) => self.limits.failures_per_user,
            Key::Address(_) => self.limits.failures_per_address,
        }
    }

    /// Begins a login try, or says how long this username or address must wait first. A try
    /// is refused while a wait runs, and while the tries already being checked would use up the
    /// free failures left.
    pub fn begin(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<LoginTry<'_>, Duration> {
        let mut records = self.lock();
        let keys = Self::keys(username, address);
        let mut wait = None::<Duration>;
        for key in &keys {
            let Some(record) = records.get_mut(key) else {
                continue;
            };
            if now.duration_since(record.last_failure) > self.limits.forget_after {
                record.failures = 0;
            }
            // Within the free failures, tries being checked use them up; past them (a wait
            // has run out), one try at a time.
            let free = self.free_failures(key);
            let room = match record.failures < free {
                true => record.failures + record.checking < free,
                false => record.checking == 0,
            };
            let until = match record.blocked_until.filter(|until| *until > now) {
                Some(until) => Some(until - now),
                None if !room => Some(self.limits.first_wait),
                None => None,
            };
            wait = wait.max(until);
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for key in &keys {
            records
                .entry(key.clone())
                .or_insert(Record {
                    failures: 0,
                    checking: 0,
                    last_failure: now,
                    blocked_until: None,
                })
                .checking += 1;
        }
        if records.len() > MAX_RECORDS {
            self.forget_old(&mut records, now);
        }
        Ok(LoginTry {
            throttle: self,
            keys,
            ended: false,
        })
    }

    /// Ends a try: a failure counts against its username and address (and may start a wait);
    /// a success clears the username's record (not the address's: one good account must not buy
    /// an address more guesses at others).
    fn end(&self, keys: &[Key], failed: bool, now: Instant) {
        let mut records = self.lock();
        for key in keys {
            let free = self.free_failures(key);
            let Some(record) = records.get_mut(key) else {
                continue;
            };
            record.checking = record.checking.saturating_sub(1);
            if !failed {
                continue;
            }
            record.failures += 1;
            record.last_failure = now;
            if record.failures >= free {
                let doublings = (record.failures - free).min(30);
                let wait = self
                    .limits
                    .first_wait
                    .saturating_mul(1 << doublings)
                    .min(self.limits.max_wait);
                record.blocked_until = Some(now + wait);
            }
        }
        if !failed && let Some(Key::User(user)) = keys.first() {
            records.remove(&Key::User(user.clone()));
        }
    }

    fn forget_old(&self, records: &mut HashMap<Key, Record>, now: Instant) {
        records.retain(|_, r| {
            now.duration_since(r.last_failure) <= self.limits.forget_after
                || r.checking > 0
                || r.blocked_until.is_some_and(|until| until > now)
        });
        if records.len() > MAX_RECORDS {
            let mut by_age: Vec<(Key, Instant)> = records
                .iter()
                .map(|(k, r)| (k.clone(), r.last_failure))
                .collect();
            by_age.sort_by_key(|(_, last)| *last);
            for (key, _) in by_age.into_iter().take(records.len() - MAX_RECORDS / 2) {
                records.remove(&key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        // The records are advisory: after a panic elsewhere, keep using them.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A login try being checked; [`LoginTry::failed`] or [`LoginTry::succeeded`] ends it, and
/// dropping it unended (the request was cancelled) ends it without counting anything.
pub struct LoginTry<'a> {
    throttle: &'a LoginThrottle,
    keys: Vec<Key>,
    ended: bool,
}

impl LoginTry<'_> {
    pub fn failed(mut self) {
        self.ended = true;
        self.throttle.end(&self.keys, true, Instant::now());
    }

    pub fn succeeded(mut self) {
        self.ended = true;
        self.throttle.end(&self.keys, false, Instant::now());
    }
}

impl Drop for LoginTry<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let mut records = self.throttle.lock();
            for key in &self.keys {
                if let Some(record) = records.get_mut(key) {
                    record.checking = record.checking.saturating_sub(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            failures_per_user: 3,
            failures_per_address: 5,
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            forget_after: Duration::from_secs(3600),
        }
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3)));

    fn fail(throttle: &LoginThrottle, user: &str, address: Option<IpAddr>, now: Instant) {
        throttle
            .begin(user, address, now)
            .unwrap()
            .end_at(true, now);
    }

    impl LoginTry<'_> {
        fn end_at(mut self, failed: bool, now: Instant) {
            self.ended = true;
            self.throttle.end(&self.keys, failed, now);
        }
    }

    #[test]
    fn a_username_waits_after_its_free_failures_and_the_wait_doubles() {
        let throttle = LoginThrottle::new(limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(throttle.begin("alice", B, t0).is_ok());
            fail(&throttle, "alice", A, t0);
        }
        assert_eq!(
            throttle.begin("alice", B, t0).err(),
            Some(Duration::from_secs(1))
        );
        // Once the wait is over, one more failure doubles it.
        let t1 = t0 + Duration::from_secs(1);
        fail(&throttle, "alice", A, t1);
        assert_eq!(
            throttle.begin("alice", B, t1).err(),
            Some(Duration::from_secs(2))
        );
        // Another user from another address is not affected.
        assert!(throttle.begin("bob", B, t1).is_ok());
        // The wait ends, and a success clears the username.
        let t2 = t1 + Duration::from_secs(2);
        throttle.begin("alice", B, t2).unwrap().end_at(false, t2);
        assert!(throttle.begin("alice", B, t2).is_ok());
    }

    #[test]
    fn concurrent_tries_cannot_slip_past_the_free_failures() {
        let throttle = LoginThrottle::new(limits());
        let t0 = Instant::now();
        let tries: Vec<LoginTry<'_>> = (0..3)
            .map(|_| throttle.begin("alice", A, t0).unwrap())
            .collect();
        assert!(
            throttle.begin("alice", A, t0).is_err(),
            "three tries being checked use up the three free failures"
        );
        drop(tries); // cancelled: nothing counted
        assert!(throttle.begin("alice", A, t0).is_ok());
    }

    #[test]
    fn an_address_waits_after_its_free_failures_whatever_the_usernames() {
        let throttle = LoginThrottle::new(limits());
        let t0 = Instant::now();
        for user in ["u1", "u2", "u3", "u4", "u5"] {
            fail(&throttle, user, A, t0);
        }
        assert!(throttle.begin("someone-else", A, t0).is_err());
        assert!(throttle.begin("someone-else", B, t0).is_ok());
    }

    #[test]
    fn the_wait_is_capped() {
        let throttle = LoginThrottle::new(limits());
        let mut now = Instant::now();
        for _ in 0..40 {
            fail(&throttle, "alice", None, now);
            now += Duration::from_secs(3600);
        }
        // After each failure's wait ran out, the next failure doubled it, up to the cap.
        fail(&throttle, "alice", None, now);
        assert_eq!(
            throttle.begin("alice", None, now).err(),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn old_failures_are_forgotten() {
        let throttle = LoginThrottle::new(limits());
        let t0 = Instant::now();
        fail(&throttle, "alice", None, t0);
        fail(&throttle, "alice", None, t0);
        let later = t0 + Duration::from_secs(7200);
        fail(&throttle, "alice", None, later);
        assert!(
            throttle.begin("alice", None, later).is_ok(),
            "counting restarted"
        );
    }
}
