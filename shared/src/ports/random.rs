//! Time and randomness: the clock and the random source the domain takes as ports, their
//! system implementations, and the ids made from randomness.

use crate::model::UnixTime;

/// Wall-clock time in Unix seconds. Tests use a fixed, settable clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
    /// Now in milliseconds: what orders events of one second (the outbox's ids).
    fn now_millis(&self) -> i64 {
        self.now() * 1000
    }
}

/// A cryptographically secure source of random bytes. Tests may use a deterministic one.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters of `[A-Za-z0-9]`, uniformly distributed (rejection sampling).
pub fn random_alnum(rng: &(impl Random + ?Sized), len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf);
        for &b in buf.iter() {
            // 248 = 4 * 62: bytes at or above it would bias the distribution.
            if b < 248 && out.len() < len {
                out.push(ALNUM[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// An identifier with at least `bytes * 8` random bits, in `[A-Za-z0-9]` only: URL-safe, and
/// never starting with `-` (an id is often a command-line argument).
pub fn random_id(rng: &(impl Random + ?Sized), bytes: usize) -> String {
    // log2(62) = 5.954 bits per character.
    let chars = (bytes * 8 * 1000).div_ceil(5954);
    random_alnum(rng, chars)
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The operating system's CSPRNG (through ring: `getrandom`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRandom;

impl Random for SystemRandom {
    fn fill(&self, buf: &mut [u8]) {
        // ring's RNG only fails if the OS has no entropy source at all; there is no safe way
        // to go on without randomness, so abort rather than hand out predictable nonces.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf).is_err() {
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that yields only the byte it was given.
    struct Constant(u8);
    impl Random for Constant {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(self.0);
        }
    }

    /// Bytes 248..=255 alternate with one usable byte: only the usable ones become characters.
    struct Biased(std::sync::atomic::AtomicUsize);
    impl Random for Biased {
        fn fill(&self, buf: &mut [u8]) {
            for b in buf.iter_mut() {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *b = if n.is_multiple_of(2) {
                    248 + (n % 8) as u8
                } else {
                    61
                };
            }
        }
    }

    #[test]
    fn random_alnum_has_the_right_alphabet_and_length() {
        let rng = crate::ports::SystemRandom;
        let a = random_alnum(&rng, 40);
        let b = random_alnum(&rng, 40);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn random_alnum_rejects_biased_bytes() {
        // Every byte at or above 248 is dropped (they would bias the alphabet): from a source
        // that alternates 248..=255 with 61, only 61 ('9') ever comes out.
        let s = random_alnum(&Biased(Default::default()), 500);
        assert_eq!(s, "9".repeat(500));
        // Without rejection sampling 248 % 62 = 0 would have produced 'A'.
        assert_eq!(random_alnum(&Constant(61), 3), "999");
    }

    #[test]
    fn random_id_is_url_safe_and_long_enough() {
        let id = random_id(&crate::ports::SystemRandom, 16);
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
}
