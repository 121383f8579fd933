//! Failed-login throttling: after a few failures, a username from one client address, and a
//! client address whatever the usernames, must wait before their next try, twice as long after
//! every further failure. Refused tries cost no password check, so a flood of guesses costs the
//! server almost nothing. An attacker's failures never lock the account's owner out from
//! another address: only a far larger number of failures for the username from everywhere (a
//! distributed attack) makes every address wait. A success clears the username's records. Tries
//! still being checked count as failures-to-be, so a burst of concurrent guesses cannot slip past
//! the limit before the first of them has failed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures are free, and how the wait grows after them.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    /// Failed logins for one username from one address before that pair must wait; from all
    /// addresses together, [`GLOBAL_USER_FACTOR`] times as many make every address wait.
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

/// How many times `failures_per_user` failures for one username, from all addresses together,
/// make every address wait for it.
pub const GLOBAL_USER_FACTOR: u32 = 20;

/// Whose failures are counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A username, from everywhere.
    User(String),
    /// A username from one address.
    UserAt(String, Option<IpAddr>),
    /// An address, whatever the usernames.
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
        let mut keys = vec![
            Key::UserAt(username.to_owned(), address),
            Key::User(username.to_owned()),
        ];
        keys.extend(address.map(Key::Address));
        keys
    }

    fn free_failures(&self, key: &Key) -> u32 {
        match key {
            Key::UserAt(..) => self.limits.failures_per_user,
            Key::User(_) => self
                .limits
                .failures_per_user
                .saturating_mul(GLOBAL_USER_FACTOR),
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

    /// Ends a try: a failure counts against its username, its username from this address, and
    /// its address (and may start a wait); a success clears the username's records for this
    /// address (not the address's own: one good account must not buy an address more guesses at
    /// others; nor the username's from other addresses, where an attacker may be waiting).
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
        if !failed {
            for key in keys {
                if matches!(key, Key::User(_) | Key::UserAt(..)) {
                    records.remove(key);
                }
            }
        }
    }

    fn forget_old(&self, records: &mut HashMap<Key, Record>, now: Instant) {
        let live = |r: &Record| r.checking > 0 || r.blocked_until.is_some_and(|until| until > now);
        records.retain(|_, r| {
            now.duration_since(r.last_failure) <= self.limits.forget_after || live(r)
        });
        if records.len() > MAX_RECORDS {
            // Waits that run and tries being checked are never forgotten: filling the table with
            // new names must not wipe a victim's record.
            let mut by_age: Vec<(Key, Instant)> = records
                .iter()
                .filter(|(_, r)| !live(r))
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
            fail(&throttle, "alice", A, t0);
        }
        assert_eq!(
            throttle.begin("alice", A, t0).err(),
            Some(Duration::from_secs(1))
        );
        // Once the wait is over, one more failure doubles it.
        let t1 = t0 + Duration::from_secs(1);
        fail(&throttle, "alice", A, t1);
        assert_eq!(
            throttle.begin("alice", A, t1).err(),
            Some(Duration::from_secs(2))
        );
        // The owner, from another address, is not locked out by the attacker's failures.
        throttle.begin("alice", B, t1).unwrap().end_at(false, t1);
        // Another user from the attacker's address is not affected (below the address's limit).
        assert!(throttle.begin("bob", A, t1).is_ok());
        // The owner's success clears alice's records from the owner's address, not the
        // attacker's: the attacker still waits.
        assert!(throttle.begin("alice", A, t1).is_err());
    }

    #[test]
    fn a_username_guessed_from_many_addresses_waits_everywhere() {
        let throttle = LoginThrottle::new(limits());
        let t0 = Instant::now();
        for i in 0..(3 * GLOBAL_USER_FACTOR) {
            let address = Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            fail(&throttle, "alice", address, t0);
        }
        assert!(throttle.begin("alice", B, t0).is_err());
        assert!(throttle.begin("bob", B, t0).is_ok());
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
