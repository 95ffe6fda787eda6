//! Response rate limiting (RRL) on UDP, as NSD and Knot have it.
//!
//! A DNS server answering UDP can be used as an amplifier: an attacker
//! sends small queries with the victim's address as the source, and the
//! server sends the (larger) answers to the victim. Response rate limiting
//! caps how many answers of one kind go to one source network per second,
//! so the server stops being useful as an amplifier while a real client,
//! which asks each question once and caches the answer, never notices.
//!
//! The design follows NSD's `rrl.c` (`rrl-ratelimit` 200, `rrl-slip` 2,
//! `rrl-ipv4-prefix-length` 24, `rrl-ipv6-prefix-length` 56) and Knot's
//! `rrl` module, built for the UDP fast path (`crate::serve::udp`):
//!
//! * **Key.** A response is charged to a bucket chosen by the source
//!   network (the source address cut to [`RrlConfig::ipv4_prefix`] or
//!   [`RrlConfig::ipv6_prefix`] bits), its `Class`, and, for answers and
//!   NODATA, the question's name (case-folded) and type. NXDOMAIN and error
//!   responses are charged per network and class only, whatever the name:
//!   a flood of random names (the usual way to get many distinct
//!   negative answers) is then held to one rate, as NSD does by charging
//!   them to the zone.
//! * **Table.** The buckets are a fixed array of [`RrlConfig::table_size`]
//!   64-bit atomics (8 MiB by default), allocated once as zeroed memory
//!   that the kernel commits as buckets are first used (in 2 MiB huge
//!   pages on Linux). Keys are hashed with a per-process random seed;
//!   keys that collide simply share a bucket. A flood of spoofed sources
//!   therefore cannot make the table grow, and cannot aim collisions at a
//!   chosen victim's bucket without knowing the seed.
//! * **Bucket.** Each bucket is a token bucket in its
//!   virtual-scheduling form (GCRA): one `u64`, the time in nanoseconds at
//!   which the bucket will be full again ("theoretical arrival time"). An
//!   answer is allowed when that time, advanced by one interval
//!   (1 s / rate), is at most one second (the burst of `rate` answers)
//!   ahead of now. Integer arithmetic, one compare-and-swap, no lock.
//! * **Clock.** `CLOCK_MONOTONIC_COARSE` on Linux (read from the vDSO, no
//!   system call, a few milliseconds of resolution), elsewhere
//!   [`std::time::Instant`].
//! * **Slip.** Every [`RrlConfig::slip`]th limited answer is not dropped
//!   but replaced by a truncated one (TC set, only the question and OPT):
//!   too small to amplify anything, and a real client behind a limited
//!   network retries over TCP, which is never limited. Slip 0 drops every
//!   limited answer, slip 1 truncates every one.
//! * **Counting.** Limited, slipped and dropped answers are counted
//!   ([`RrlStats`]) and logged at most once per [`LOG_INTERVAL`], never per
//!   packet.
//!
//! The limiter judges the encoded response (the header's RCODE and answer
//! count, the question), so it needs nothing from the encoder but its
//! output; dropped answers have cost their encoding, about a microsecond.
//! On the answers it lets through it costs about 150 ns each
//! (`publisher/examples/rrl_cost.rs`), most of it the one random memory
//! access to the bucket; the server spends about 8 µs per UDP query.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::info;

/// How often, at most, the limiter logs what it limited.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

const NANOS_PER_SEC: u64 = 1_000_000_000;
const HEADER_LEN: usize = 12;
const TC: u8 = 0x02;
const RCODE_NOERROR: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;
/// An OPT record without options, as the encoder writes it: root owner,
/// type 41, class, TTL, RDLENGTH 0.
const OPT_LEN: usize = 11;

/// The rate limiter's settings, valid by construction (see
/// [`RrlConfig::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlConfig {
    rate: Option<NonZeroU32>,
    slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    table_size: usize,
}

/// A rate-limiter setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RrlConfigError {
    /// The rate is above [`RrlConfig::MAX_RATE`].
    #[error("rate limit {0} answers/s is above the maximum {max}", max = RrlConfig::MAX_RATE)]
    Rate(u32),
    /// The slip is above [`RrlConfig::MAX_SLIP`].
    #[error("slip {0} is above the maximum {max}", max = RrlConfig::MAX_SLIP)]
    Slip(u32),
    /// An IPv4 prefix longer than 32 bits.
    #[error("IPv4 prefix length {0} is above 32")]
    Ipv4Prefix(u8),
    /// An IPv6 prefix longer than 128 bits.
    #[error("IPv6 prefix length {0} is above 128")]
    Ipv6Prefix(u8),
    /// A table size of 0 or above [`RrlConfig::MAX_TABLE_SIZE`].
    #[error("rate-limit table size {0} is not between 1 and {max}", max = RrlConfig::MAX_TABLE_SIZE)]
    TableSize(usize),
}

impl RrlConfig {
    /// NSD's default: 200 answers per second per network and kind, enough
    /// for any resolver asking each question once per TTL.
    pub const DEFAULT_RATE: u32 = 200;
    /// NSD's and Knot's default: every second limited answer is truncated.
    pub const DEFAULT_SLIP: u32 = 2;
    /// IPv4 sources are grouped in /24 networks (NSD's default).
    pub const DEFAULT_IPV4_PREFIX: u8 = 24;
    /// IPv6 sources are grouped in /56 networks (NSD's default: a typical
    /// end-user allocation).
    pub const DEFAULT_IPV6_PREFIX: u8 = 56;
    /// 2^20 buckets (8 MiB), about NSD's 1,000,000.
    pub const DEFAULT_TABLE_SIZE: usize = 1 << 20;
    /// The largest table: 2^24 buckets (128 MiB).
    pub const MAX_TABLE_SIZE: usize = 1 << 24;
    /// The highest rate: one answer per nanosecond per bucket, which in
    /// effect only measures the limiter's own cost.
    pub const MAX_RATE: u32 = 1_000_000_000;
    /// The largest slip (NSD accepts any; beyond this it is dropping).
    pub const MAX_SLIP: u32 = 1_000;

    /// No rate limiting.
    pub const OFF: RrlConfig = RrlConfig {
        rate: None,
        slip: Self::DEFAULT_SLIP,
        ipv4_prefix: Self::DEFAULT_IPV4_PREFIX,
        ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
        table_size: Self::DEFAULT_TABLE_SIZE,
    };

    /// Settings from their raw values: `rate` answers per second per bucket
    /// (0 turns the limiter off), every `slip`th limited answer truncated
    /// rather than dropped (0: none), sources grouped by `ipv4_prefix` and
    /// `ipv6_prefix` bits, `table_size` buckets (rounded up to a power of
    /// two so that a bucket is picked with a mask).
    pub fn new(
        rate: u32,
        slip: u32,
        ipv4_prefix: u8,
        ipv6_prefix: u8,
        table_size: usize,
    ) -> Result<Self, RrlConfigError> {
        if rate > Self::MAX_RATE {
            return Err(RrlConfigError::Rate(rate));
        }
        if slip > Self::MAX_SLIP {
            return Err(RrlConfigError::Slip(slip));
        }
        if ipv4_prefix > 32 {
            return Err(RrlConfigError::Ipv4Prefix(ipv4_prefix));
        }
        if ipv6_prefix > 128 {
            return Err(RrlConfigError::Ipv6Prefix(ipv6_prefix));
        }
        if table_size == 0 || table_size > Self::MAX_TABLE_SIZE {
            return Err(RrlConfigError::TableSize(table_size));
        }
        Ok(RrlConfig {
            rate: NonZeroU32::new(rate),
            slip,
            ipv4_prefix,
            ipv6_prefix,
            table_size: table_size.next_power_of_two(),
        })
    }

    /// Answers per second per bucket, or `None` when limiting is off.
    pub fn rate(&self) -> Option<NonZeroU32> {
        self.rate
    }

    /// Every how many limited answers one is truncated instead of dropped
    /// (0: every limited answer is dropped).
    pub fn slip(&self) -> u32 {
        self.slip
    }

    /// The prefix length IPv4 sources are grouped by.
    pub fn ipv4_prefix(&self) -> u8 {
        self.ipv4_prefix
    }

    /// The prefix length IPv6 sources are grouped by.
    pub fn ipv6_prefix(&self) -> u8 {
        self.ipv6_prefix
    }

    /// The number of buckets (a power of two).
    pub fn table_size(&self) -> usize {
        self.table_size
    }
}

impl Default for RrlConfig {
    /// NSD's defaults: 200 answers/s, slip 2, /24 and /56, ~1M buckets.
    fn default() -> Self {
        RrlConfig {
            rate: NonZeroU32::new(Self::DEFAULT_RATE),
            ..Self::OFF
        }
    }
}

/// What the limiter has done since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RrlStats {
    /// Answers over the rate: `slipped + dropped`.
    pub limited: u64,
    /// Limited answers sent truncated (TC) instead.
    pub slipped: u64,
    /// Limited answers not sent at all.
    pub dropped: u64,
}

/// The kind of a response, as NSD classifies them (referral, wildcard,
/// ANY and DNSKEY are not told apart: a discovery zone has no delegations
/// or wildcards, and the question type is part of the key anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// NOERROR with answers.
    Answer = 1,
    /// NOERROR without answers.
    NoData = 2,
    /// NXDOMAIN.
    NxDomain = 3,
    /// Any other RCODE (REFUSED, FORMERR, NOTIMP, SERVFAIL, ...).
    Error = 4,
}

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: send it.
    Send,
    /// Over the rate, slipped: send it truncated.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// The rate limiter shared by the UDP threads. Public so that its cost per
/// answer can be measured on its own (`publisher/examples/rrl_cost.rs`).
pub struct Limiter {
    /// One token bucket per slot: the time (ns) it is full again.
    buckets: Table,
    mask: u64,
    seed: u64,
    /// Nanoseconds between two answers of one bucket (1 s / rate).
    interval: u64,
    /// How far ahead of now a bucket's time may run: the burst.
    burst: u64,
    slip: u64,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    /// Limited answers, for choosing which slip.
    limited: AtomicU64,
    slipped: AtomicU64,
    dropped: AtomicU64,
    /// When (ns) the next log line may be written, and what the last one
    /// reported.
    next_log: AtomicU64,
    logged_dropped: AtomicU64,
    logged_slipped: AtomicU64,
    clock: Clock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("buckets", &self.buckets.len())
            .field("interval_ns", &self.interval)
            .field("slip", &self.slip)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter for `config`, or `None` when limiting is off.
    pub fn new(config: &RrlConfig) -> Option<Self> {
        let rate = u64::from(config.rate?.get());
        let interval = (NANOS_PER_SEC / rate).max(1);
        Some(Limiter {
            buckets: Table::new(config.table_size),
            mask: config.table_size as u64 - 1,
            seed: random_seed(),
            interval,
            burst: interval * rate,
            slip: u64::from(config.slip),
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
            limited: AtomicU64::new(0),
            slipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            next_log: AtomicU64::new(0),
            logged_dropped: AtomicU64::new(0),
            logged_slipped: AtomicU64::new(0),
            clock: Clock::new(),
        })
    }

    /// Judges `response`, about to be sent to `source`, and makes it the
    /// truncated answer if it slips. Returns whether to send it.
    pub fn filter(&self, source: IpAddr, response: &mut Vec<u8>) -> bool {
        match self.verdict_at(self.clock.now(), source, response) {
            Verdict::Send => true,
            Verdict::Slip => {
                truncate(response);
                true
            }
            Verdict::Drop => false,
        }
    }

    /// The verdict on `response` to `source` at `now` (nanoseconds on the
    /// limiter's clock), counted and charged to its bucket.
    pub(crate) fn verdict_at(&self, now: u64, source: IpAddr, response: &[u8]) -> Verdict {
        let key = self.key(source, response);
        if self.admit(&self.buckets[(key & self.mask) as usize], now) {
            return Verdict::Send;
        }
        let n = self.limited.fetch_add(1, Ordering::Relaxed) + 1;
        // Slipped and dropped answers are counted apart (not derived from
        // `limited`), so that each count is exact whenever it is read.
        let verdict = if self.slip != 0 && n % self.slip == 0 {
            self.slipped.fetch_add(1, Ordering::Relaxed);
            Verdict::Slip
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        };
        self.maybe_log(now, source);
        verdict
    }

    /// Charges one answer to `bucket` at `now` if the bucket allows it.
    fn admit(&self, bucket: &AtomicU64, now: u64) -> bool {
        let mut full_at = bucket.load(Ordering::Relaxed);
        loop {
            let next = full_at.max(now) + self.interval;
            if next - now > self.burst {
                return false;
            }
            match bucket.compare_exchange_weak(full_at, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(current) => full_at = current,
            }
        }
    }

    /// The bucket key of `response` to `source`.
    fn key(&self, source: IpAddr, response: &[u8]) -> u64 {
        let network = match canonical(source) {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let masked = match self.ipv4_prefix {
                    0 => 0,
                    p => bits & (u32::MAX << (32 - u32::from(p))),
                };
                u64::from(masked) | 1 << 32
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let masked = match self.ipv6_prefix {
                    0 => 0,
                    p => bits & (u128::MAX << (128 - u32::from(p))),
                };
                mix((masked >> 64) as u64 ^ 2 << 62) ^ masked as u64
            }
        };
        let (class, question) = classify(response);
        let mut h = mix(network ^ self.seed) ^ class as u64;
        if let (Class::Answer | Class::NoData, Some((name, qtype))) = (class, question) {
            h = mix(h ^ u64::from(qtype) << 8) ^ name_hash(name);
        }
        mix(h)
    }

    /// Logs what was limited since the last log line, at most once per
    /// [`LOG_INTERVAL`]; the first limited answer is logged at once.
    fn maybe_log(&self, now: u64, source: IpAddr) {
        let due = self.next_log.load(Ordering::Relaxed);
        if now < due
            || self
                .next_log
                .compare_exchange(
                    due,
                    now + LOG_INTERVAL.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let stats = self.stats();
        let slipped = stats
            .slipped
            .saturating_sub(self.logged_slipped.swap(stats.slipped, Ordering::Relaxed));
        let dropped = stats
            .dropped
            .saturating_sub(self.logged_dropped.swap(stats.dropped, Ordering::Relaxed));
        info!(
            limited = slipped + dropped,
            slipped,
            dropped,
            network = %self.network_of(source),
            "UDP answers over the rate limit (counts since the last report; network: the latest limited)"
        );
    }

    /// `source` cut to its network, for the log.
    fn network_of(&self, source: IpAddr) -> String {
        match canonical(source) {
            IpAddr::V4(a) => ipnet::Ipv4Net::new(a, self.ipv4_prefix)
                .map(|n| n.trunc().to_string())
                .unwrap_or_else(|_| a.to_string()),
            IpAddr::V6(a) => ipnet::Ipv6Net::new(a, self.ipv6_prefix)
                .map(|n| n.trunc().to_string())
                .unwrap_or_else(|_| a.to_string()),
        }
    }

    /// The counts so far. Each of `slipped` and `dropped` is exact when
    /// read (a dropped answer is counted before it is not sent).
    pub fn stats(&self) -> RrlStats {
        let slipped = self.slipped.load(Ordering::Relaxed);
        let dropped = self.dropped.load(Ordering::Relaxed);
        RrlStats {
            limited: slipped + dropped,
            slipped,
            dropped,
        }
    }

    /// Logs the totals, if anything was limited (at shutdown).
    pub(crate) fn log_totals(&self) {
        let s = self.stats();
        if s.limited > 0 {
            info!(
                limited = s.limited,
                slipped = s.slipped,
                dropped = s.dropped,
                "UDP answers over the rate limit, in total"
            );
        }
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's IPv4 peers) as IPv4.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// The class of an encoded response and, if it has a readable first
/// question, that question's wire-format name and type.
pub(crate) fn classify(response: &[u8]) -> (Class, Option<(&[u8], u16)>) {
    if response.len() < HEADER_LEN {
        return (Class::Error, None);
    }
    let class = match response[3] & 0x0f {
        RCODE_NOERROR if response[6] != 0 || response[7] != 0 => Class::Answer,
        RCODE_NOERROR => Class::NoData,
        RCODE_NXDOMAIN => Class::NxDomain,
        _ => Class::Error,
    };
    let question = if response[4..6] == [0, 0] {
        None
    } else {
        question_name_end(response).and_then(|end| {
            let qtype = response.get(end..end + 2)?;
            Some((
                &response[HEADER_LEN..end],
                u16::from_be_bytes([qtype[0], qtype[1]]),
            ))
        })
    };
    (class, question)
}

/// Where the first question's name ends (after its root label), if it is
/// an uncompressed name inside the message.
fn question_name_end(message: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
}

/// Rewrites `response` as the slipped answer: the header with TC set, the
/// first question, and the OPT record if the response ends with one;
/// nothing else.
pub(crate) fn truncate(response: &mut Vec<u8>) {
    if response.len() < HEADER_LEN {
        return;
    }
    let arcount = u16::from_be_bytes([response[10], response[11]]);
    let opt = (arcount > 0 && response.len() >= HEADER_LEN + OPT_LEN)
        .then(|| {
            let tail: [u8; OPT_LEN] = response[response.len() - OPT_LEN..].try_into().ok()?;
            (tail[0] == 0 && tail[1..3] == [0, 41] && tail[9..11] == [0, 0]).then_some(tail)
        })
        .flatten();
    let question_end = (response[4..6] != [0, 0])
        .then(|| question_name_end(response))
        .flatten()
        .map(|end| end + 4)
        .filter(|&end| end <= response.len() - opt.map_or(0, |_| OPT_LEN));
    match question_end {
        Some(end) => {
            response.truncate(end);
            response[4..6].copy_from_slice(&1u16.to_be_bytes());
        }
        None => {
            response.truncate(HEADER_LEN);
            response[4..6].copy_from_slice(&[0, 0]);
        }
    }
    response[2] |= TC;
    response[6..10].fill(0);
    match opt {
        Some(opt) => {
            response.extend_from_slice(&opt);
            response[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
        None => response[10..12].fill(0),
    }
}

/// A hash of a wire-format name, eight octets at a time, case folded by
/// setting bit 0x20 of every octet: 0x20 case randomization then cannot
/// spread one name over many buckets. The fold also merges a few non-letter
/// octets (`@` with a backquote, say); names that differ only there share a
/// bucket, as colliding keys do anyway.
fn name_hash(name: &[u8]) -> u64 {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = name.len() as u64;
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes(c.try_into().expect("8 octets"));
        h = (h.rotate_left(5) ^ (word | FOLD)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ (u64::from_le_bytes(last) | FOLD)).wrapping_mul(K);
    }
    h
}

/// The splitmix64 finalizer: every input bit affects every output bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A seed nobody outside the process can know.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6d69_6d69);
    h.finish()
}

/// The bucket array: `len` zeroed atomics ("full since the epoch"), whose
/// memory the kernel provides only when first written. On Linux it is its
/// own mapping, with transparent huge pages asked for: the buckets are hit
/// at random, and with 4 KiB pages nearly every answer would also miss the
/// TLB (measured: a third of the limiter's cost).
struct Table {
    ptr: std::ptr::NonNull<AtomicU64>,
    len: usize,
    mapped: bool,
}

// SAFETY: the table owns its memory and only hands out shared references
// to atomics, which are Sync.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    fn new(len: usize) -> Table {
        let len = len.max(1);
        #[cfg(target_os = "linux")]
        if let Some(t) = Self::mapped(len) {
            return t;
        }
        let layout = std::alloc::Layout::array::<AtomicU64>(len).expect("table size is bounded");
        // SAFETY: the layout has a non-zero size; all-zero bytes are a
        // valid AtomicU64 (it has the representation of u64).
        let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<AtomicU64>();
        let Some(ptr) = std::ptr::NonNull::new(p) else {
            std::alloc::handle_alloc_error(layout)
        };
        Table {
            ptr,
            len,
            mapped: false,
        }
    }

    /// An anonymous private mapping (zero-filled on first touch), or `None`
    /// if the kernel refuses one.
    #[cfg(target_os = "linux")]
    fn mapped(len: usize) -> Option<Table> {
        let bytes = len * std::mem::size_of::<AtomicU64>();
        // SAFETY: a fresh anonymous mapping touches no existing memory; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: advice on the mapping just made; failure (no THP) only
        // means small pages.
        unsafe { libc::madvise(p, bytes, libc::MADV_HUGEPAGE) };
        Some(Table {
            ptr: std::ptr::NonNull::new(p.cast())?,
            len,
            mapped: true,
        })
    }
}

impl std::ops::Deref for Table {
    type Target = [AtomicU64];

    fn deref(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` points to `len` initialized (zero or since written)
        // atomics that live as long as the table.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let bytes = self.len * std::mem::size_of::<AtomicU64>();
        if self.mapped {
            #[cfg(target_os = "linux")]
            // SAFETY: the mapping made in `mapped`, unmapped once.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), bytes);
            }
        } else {
            let layout = std::alloc::Layout::array::<AtomicU64>(self.len).expect("allocated so");
            // SAFETY: allocated in `new` with this layout, freed once.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

/// The limiter's clock: monotonic nanoseconds, read cheaply.
struct Clock {
    #[cfg(not(target_os = "linux"))]
    epoch: std::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Clock {
            #[cfg(not(target_os = "linux"))]
            epoch: std::time::Instant::now(),
        }
    }

    /// Now, in nanoseconds since some fixed point (never 0 in practice:
    /// the buckets start at 0, "full").
    #[cfg(target_os = "linux")]
    fn now(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec. CLOCK_MONOTONIC_COARSE
        // exists since Linux 2.6.32 and is served from the vDSO (no system
        // call); its resolution is one scheduler tick.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc != 0 {
            return 0;
        }
        (ts.tv_sec as u64)
            .wrapping_mul(NANOS_PER_SEC)
            .wrapping_add(ts.tv_nsec as u64)
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + NANOS_PER_SEC
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: u64 = NANOS_PER_SEC;
    /// A clock reading well after the epoch, as real ones are.
    const T0: u64 = 1_000 * SEC;

    /// A limiter with a fixed seed, so that which keys share a bucket in
    /// its small table is the same on every run.
    fn seeded(config: RrlConfig) -> Limiter {
        let mut l = Limiter::new(&config).unwrap();
        l.seed = 0x5eed;
        l
    }

    fn limiter(rate: u32, slip: u32) -> Limiter {
        seeded(RrlConfig::new(rate, slip, 24, 56, 1 << 10).unwrap())
    }

    /// A response header with `rcode` and `ancount`, question
    /// `<label>.example.` TXT, and an OPT record if `opt`.
    fn response(label: &str, rcode: u8, ancount: u16, opt: bool) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x84, rcode, 0, 1];
        m.extend_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, u8::from(opt)]);
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
        m.extend_from_slice(b"\x07example\x00\x00\x10\x00\x01");
        for _ in 0..ancount {
            m.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 44, 0, 2, 1, b'x']);
        }
        if opt {
            m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0]);
        }
        m
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn sends(l: &Limiter, now: u64, src: IpAddr, r: &[u8], n: usize) -> usize {
        (0..n)
            .filter(|_| l.verdict_at(now, src, r) == Verdict::Send)
            .count()
    }

    #[test]
    fn a_full_bucket_allows_exactly_the_burst_then_the_rate() {
        let l = limiter(100, 0);
        let r = response("alice", 0, 1, false);
        let src = v4(192, 0, 2, 1);
        // The burst: one second's worth at once, not one more.
        assert_eq!(sends(&l, T0, src, &r, 1000), 100);
        // 10 ms later: one more interval's worth (1 answer per 10 ms).
        assert_eq!(sends(&l, T0 + 10_000_000, src, &r, 10), 1);
        assert_eq!(sends(&l, T0 + 15_000_000, src, &r, 10), 0);
        // Half a second: 50 more.
        assert_eq!(sends(&l, T0 + 510_000_000, src, &r, 1000), 50);
        // A long quiet time refills to the burst, never beyond it.
        assert_eq!(sends(&l, T0 + 3600 * SEC, src, &r, 1000), 100);
        let s = l.stats();
        assert_eq!(
            s.limited,
            (1000 - 100) + 9 + 10 + (1000 - 50) + (1000 - 100)
        );
        assert_eq!(s.slipped, 0);
        assert_eq!(s.dropped, s.limited);
    }

    #[test]
    fn a_steady_stream_at_the_rate_is_never_limited() {
        let l = limiter(200, 2);
        let r = response("alice", 0, 1, false);
        for i in 0..10_000u64 {
            assert_eq!(
                l.verdict_at(T0 + i * 5_000_000, v4(10, 0, 0, 1), &r),
                Verdict::Send
            );
        }
        assert_eq!(l.stats(), RrlStats::default());
    }

    #[test]
    fn slip_truncates_every_nth_limited_answer() {
        let l = limiter(1, 3);
        let r = response("alice", 0, 1, false);
        let src = v4(10, 0, 0, 1);
        assert_eq!(l.verdict_at(T0, src, &r), Verdict::Send);
        let verdicts: Vec<_> = (0..6).map(|_| l.verdict_at(T0, src, &r)).collect();
        use Verdict::{Drop, Slip};
        assert_eq!(verdicts, [Drop, Drop, Slip, Drop, Drop, Slip]);
        assert_eq!(
            l.stats(),
            RrlStats {
                limited: 6,
                slipped: 2,
                dropped: 4
            }
        );
        let l = limiter(1, 1);
        l.verdict_at(T0, src, &r);
        assert!((0..5).all(|_| l.verdict_at(T0, src, &r) == Slip));
    }

    #[test]
    fn sources_in_one_network_share_a_bucket_other_networks_do_not() {
        let l = limiter(10, 0);
        let r = response("alice", 0, 1, false);
        assert_eq!(sends(&l, T0, v4(192, 0, 2, 1), &r, 10), 10);
        assert_eq!(sends(&l, T0, v4(192, 0, 2, 200), &r, 10), 0, "same /24");
        assert_eq!(sends(&l, T0, v4(192, 0, 3, 1), &r, 10), 10, "next /24");
        let a: IpAddr = "2001:db8:0:100::1".parse().unwrap();
        let same: IpAddr = "2001:db8:0:1ff:ffff::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:200::1".parse().unwrap();
        assert_eq!(sends(&l, T0, a, &r, 10), 10);
        assert_eq!(sends(&l, T0, same, &r, 10), 0, "same /56");
        assert_eq!(sends(&l, T0, other, &r, 10), 10, "next /56");
        // A dual-stack socket's IPv4-mapped peer is its IPv4 network.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 3, 9).to_ipv6_mapped());
        assert_eq!(sends(&l, T0, mapped, &r, 10), 0);
    }

    #[test]
    fn answers_are_charged_per_name_and_negative_answers_per_network() {
        let l = limiter(5, 0);
        let src = v4(10, 1, 1, 1);
        for name in ["alice", "bob", "carol"] {
            assert_eq!(sends(&l, T0, src, &response(name, 0, 1, false), 10), 5);
        }
        // Case does not make a new bucket.
        assert_eq!(sends(&l, T0, src, &response("ALICE", 0, 1, false), 10), 0);
        // NODATA is its own kind.
        assert_eq!(sends(&l, T0, src, &response("alice", 0, 0, false), 10), 5);
        // NXDOMAIN for ever-new names: one bucket.
        let nx: usize = (0..100)
            .map(|i| sends(&l, T0, src, &response(&format!("r{i}"), 3, 0, false), 1))
            .sum();
        assert_eq!(nx, 5);
        // REFUSED likewise, separately from NXDOMAIN.
        let refused: usize = (0..100)
            .map(|i| sends(&l, T0, src, &response(&format!("r{i}"), 5, 0, false), 1))
            .sum();
        assert_eq!(refused, 5);
    }

    #[test]
    fn prefix_zero_is_one_bucket_for_everyone_and_32_one_per_address() {
        let r = response("alice", 0, 1, false);
        let l = seeded(RrlConfig::new(3, 0, 0, 0, 64).unwrap());
        assert_eq!(sends(&l, T0, v4(1, 2, 3, 4), &r, 5), 3);
        assert_eq!(sends(&l, T0, v4(200, 2, 3, 4), &r, 5), 0);
        let l = seeded(RrlConfig::new(3, 0, 32, 128, 64).unwrap());
        assert_eq!(sends(&l, T0, v4(1, 2, 3, 4), &r, 5), 3);
        assert_eq!(sends(&l, T0, v4(1, 2, 3, 5), &r, 5), 3);
    }

    #[test]
    fn the_truncated_answer_keeps_header_question_and_opt_only() {
        let mut r = response("alice", 0, 3, true);
        truncate(&mut r);
        let mut expected = response("alice", 0, 0, true);
        expected[2] |= TC;
        assert_eq!(r, expected);
        let mut r = response("bob", 3, 0, false);
        r.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 1, 0, 0]);
        r[9] = 1;
        truncate(&mut r);
        let mut expected = response("bob", 3, 0, false);
        expected[2] |= TC;
        assert_eq!(r, expected);
        // A question that cannot be read: the header alone.
        let mut r = vec![0, 1, 0x84, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12];
        truncate(&mut r);
        assert_eq!(r, [0, 1, 0x86, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Too short to be a response: untouched.
        let mut r = vec![1, 2, 3];
        truncate(&mut r);
        assert_eq!(r, [1, 2, 3]);
    }

    #[test]
    fn classify_reads_rcode_answers_and_question() {
        let r = response("alice", 0, 1, true);
        let (class, q) = classify(&r);
        assert_eq!(class, Class::Answer);
        assert_eq!(q, Some((&b"\x05alice\x07example\x00"[..], 16)));
        assert_eq!(classify(&response("a", 0, 0, false)).0, Class::NoData);
        assert_eq!(classify(&response("a", 3, 0, false)).0, Class::NxDomain);
        assert_eq!(classify(&response("a", 5, 0, false)).0, Class::Error);
        assert_eq!(classify(&[0; 5]), (Class::Error, None));
        // A name running past the end has no question.
        let mut r = response("alice", 0, 0, false);
        r.truncate(16);
        assert_eq!(classify(&r).1, None);
    }

    #[test]
    fn config_rejects_out_of_range_values_and_rounds_the_table() {
        assert_eq!(
            RrlConfig::new(0, 2, 24, 56, 100).unwrap().rate(),
            None,
            "0 is off"
        );
        assert!(Limiter::new(&RrlConfig::OFF).is_none());
        assert_eq!(RrlConfig::new(1, 2, 24, 56, 100).unwrap().table_size(), 128);
        assert_eq!(
            RrlConfig::new(RrlConfig::MAX_RATE + 1, 2, 24, 56, 1),
            Err(RrlConfigError::Rate(RrlConfig::MAX_RATE + 1))
        );
        assert_eq!(
            RrlConfig::new(1, 2, 33, 56, 1),
            Err(RrlConfigError::Ipv4Prefix(33))
        );
        assert_eq!(
            RrlConfig::new(1, 2, 24, 129, 1),
            Err(RrlConfigError::Ipv6Prefix(129))
        );
        assert_eq!(
            RrlConfig::new(1, 2, 24, 56, 0),
            Err(RrlConfigError::TableSize(0))
        );
        assert_eq!(
            RrlConfig::new(1, 2, 24, 56, RrlConfig::MAX_TABLE_SIZE + 1),
            Err(RrlConfigError::TableSize(RrlConfig::MAX_TABLE_SIZE + 1))
        );
        assert_eq!(
            RrlConfig::new(1, RrlConfig::MAX_SLIP + 1, 24, 56, 1),
            Err(RrlConfigError::Slip(RrlConfig::MAX_SLIP + 1))
        );
        let d = RrlConfig::default();
        assert_eq!(
            (
                d.rate().map(|r| r.get()),
                d.slip(),
                d.ipv4_prefix(),
                d.ipv6_prefix()
            ),
            (Some(200), 2, 24, 56)
        );
    }

    #[test]
    fn the_highest_rate_still_counts_and_never_overflows() {
        let l = limiter(RrlConfig::MAX_RATE, 2);
        let r = response("alice", 0, 1, false);
        assert_eq!(sends(&l, T0, v4(1, 1, 1, 1), &r, 10_000), 10_000);
        assert_eq!(sends(&l, u64::MAX / 2, v4(1, 1, 1, 1), &r, 10), 10);
    }

    #[test]
    fn the_clock_moves_forward() {
        let c = Clock::new();
        let a = c.now();
        assert!(a > 0);
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.now() > a);
    }
}
