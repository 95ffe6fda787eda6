//! Automatic signing-key rollover from a ceremony bundle: which key signs
//! now, which certificates the zone publishes, which old signatures may
//! stay, and when the next step is due.
//!
//! The decision is a pure function of the bundle, the zone's previous
//! [`Ledger`] and the time, so that `serve`, `build` and `push` follow the
//! same schedule and a restarted server continues a rollover where it was.
//! The safe order, step by step (DNSSEC's pre-publication rollover, RFC
//! 6781 §4.1.1.1, with the certificate set in the role of the DNSKEY set):
//!
//! 1. **Publish ahead.** While a key signs, the certificate of the next
//!    key of the bundle is published too. A key may sign only once its
//!    certificate has been in the zone for `lead` = certificate TTL +
//!    propagation delay (secondaries have the zone, resolvers have dropped
//!    any cached certificate set without it) and its window has begun.
//!    The publisher refuses to sign with a key whose certificate is not yet
//!    published long enough.
//! 2. **Switch.** The newest key that may sign signs every new assertion
//!    and every window that rolls over; that is the switch.
//! 3. **Re-sign progressively.** An assertion of an older key stays as it
//!    is, until its own window rolls over (SPEC §9), as long as that key's
//!    certificate has at least the re-sign margin left. When the old
//!    certificate would end sooner than its assertions, every remaining
//!    assertion of it is signed again at once, a margin before the end.
//! 4. **Retire.** The old certificate stays published until every
//!    assertion that key signed has expired (`signed_until` in the
//!    ledger), then is removed.
//!
//! The first zone built from a bundle (nothing of the authority was
//! published before) may sign at once: no resolver can hold a certificate
//! set of it, and no assertion is published that could go unverifiable.
//! A zone that does not itself publish the certificates (they are at
//! `_mimi-ma.<authority>` outside it) cannot see their publication: the
//! schedule then assumes each certificate was published by its window's
//! start.
//!
//! When the newest usable key's certificate has less than the margin left
//! and no next key may sign yet, the old key keeps signing (with a
//! warning) until its certificate ends; after that the build fails, so the
//! previous zone stays and nothing unverifiable is published.

use mimi_proto::{KeyId, UnixTime};

use crate::input::bundle::{Bundle, BundleKey};
use crate::input::problem::Problem;
use crate::zone::ledger::{KeyHistory, Ledger};

/// Timing of a rollover, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Certificate TTL plus propagation delay.
    pub lead: u64,
    /// Re-sign margin of assertions.
    pub margin: u64,
    /// Validity of assertions.
    pub validity: u64,
    /// Warn when the bundle runs out within this.
    pub warn_before: u64,
}

/// One step a build took, for logs, counters and status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// A certificate entered the zone.
    Published {
        /// Its key.
        key: KeyId,
    },
    /// Signing switched to another key.
    Switched {
        /// The key that signed before (none at the first build).
        from: Option<KeyId>,
        /// The key that signs now.
        to: KeyId,
    },
    /// A certificate left the zone.
    Retired {
        /// Its key.
        key: KeyId,
    },
}

impl Step {
    /// A short name: the `step` label of the counters.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Published { .. } => "published",
            Step::Switched { .. } => "switched",
            Step::Retired { .. } => "retired",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Published { key } => write!(f, "published the certificate of key {key}"),
            Step::Switched { from: None, to } => write!(f, "signing with key {to}"),
            Step::Switched { from: Some(a), to } => {
                write!(f, "switched signing from key {a} to key {to}")
            }
            Step::Retired { key } => write!(
                f,
                "removed the certificate of key {key} (every assertion it signed has expired)"
            ),
        }
    }
}

/// The next step a rollover will take by itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NextStep {
    /// When.
    pub at: UnixTime,
    /// What, in words.
    pub what: String,
}

/// What the rollover decided for one build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolloverReport {
    /// The bundle directory.
    pub bundle: std::path::PathBuf,
    /// The key that signs now.
    pub active: KeyId,
    /// The active key's certificate window.
    pub active_window: (UnixTime, UnixTime),
    /// The keys whose certificates the zone publishes.
    pub published: Vec<KeyId>,
    /// The steps this build took (compared with the previous zone).
    pub steps: Vec<Step>,
    /// The next step, if one is scheduled.
    pub next: Option<NextStep>,
    /// When the bundle runs out: the end of its last certificate less the
    /// re-sign margin, after which no key can sign with room to spare.
    pub runs_out: UnixTime,
}

/// The decision for one build.
pub(crate) struct Decision<'b> {
    /// The key that signs.
    pub(crate) active: &'b BundleKey,
    /// The certificates to publish, in bundle order.
    pub(crate) publish: Vec<&'b BundleKey>,
    /// Other keys whose existing assertions may stay.
    pub(crate) reusable: Vec<KeyId>,
    /// When the decision may change (a rebuild is due).
    pub(crate) next_event: Option<UnixTime>,
    /// The ledger of the zone built.
    pub(crate) ledger: Ledger,
    /// For logs, status and metrics.
    pub(crate) report: RolloverReport,
}

/// Decides the rollover at `now`. `previous` is the previous zone's ledger
/// and `previously_published` whether the previous zone published any
/// certificate of the authority; `publishes_here` whether this zone
/// publishes the certificates at all. Problems go to `errors` (no key can
/// sign: the build fails) and `warnings`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide<'b>(
    bundle: &'b Bundle,
    previous: &Ledger,
    previously_published: bool,
    publishes_here: bool,
    now: UnixTime,
    timing: Timing,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<Decision<'b>> {
    let at = |k: &BundleKey| Problem::at(bundle.certificates_path(), k.line, String::new());
    let bootstrap = publishes_here
        && !previously_published
        && previous.keys.values().all(|h| h.published.is_none());
    // When each key may sign (None: not published yet). The key that
    // already signs the previous zone may go on: the publication lead
    // guards a key's *first* assertions, and its assertions are already
    // out (a bootstrapped key would otherwise be refused by every rebuild
    // within the lead of the first build, and the zone stall).
    let usable_from = |k: &BundleKey| -> Option<UnixTime> {
        // A key that signs already, or that signed assertions of this
        // zone before (the bootstrap key above all: its certificate is as
        // old as the zone), is in use; waiting for its certificate gains
        // nothing.
        let signed = previous.get(k.kid()).signed_until.is_some()
            || previous.active.as_ref() == Some(k.kid());
        if !publishes_here || bootstrap || signed {
            return Some(k.not_before());
        }
        let p = previous.get(k.kid()).published?;
        Some(
            k.not_before()
                .max(UnixTime(p.0.saturating_add(timing.lead))),
        )
    };
    let may_sign = |k: &BundleKey, room: u64| {
        k.key.is_ok()
            && usable_from(k).is_some_and(|u| u <= now)
            && now.0.saturating_add(room) < k.expires().0
    };
    let runs_out = UnixTime(
        bundle
            .ends()
            .map_or(0, |e| e.0.saturating_sub(timing.margin)),
    );
    // The newest key that may sign with the margin left; else, degraded,
    // the newest that may sign at all.
    let preferred = bundle
        .keys
        .iter()
        .rev()
        .find(|k| may_sign(k, timing.margin));
    let active = match preferred {
        Some(k) => k,
        None => match bundle.keys.iter().rev().find(|k| may_sign(k, 0)) {
            Some(k) => {
                let mut p = at(k);
                p.message = format!(
                    "key {} signs although its certificate ends at {} (within the re-sign margin): no later key of the bundle may sign yet{}",
                    k.kid(),
                    k.expires(),
                    waiting(bundle, previous, publishes_here, bootstrap, now, timing)
                );
                warnings.push(p);
                k
            }
            None => {
                errors.push(Problem::in_file(
                    bundle.certificates_path(),
                    format!(
                        "no key of the bundle can sign at {now}: {}; the zone is left as it was",
                        why_none(bundle, previous, publishes_here, bootstrap, now, timing)
                    ),
                ));
                return None;
            }
        },
    };
    if now.0.saturating_add(timing.warn_before) >= runs_out.0 {
        warnings.push(Problem::in_file(
            bundle.certificates_path(),
            format!(
                "the key bundle runs out at {} (in {}): hold a key ceremony (mimi-publisher ceremony --out {} …) and copy the new keys in",
                rfc3339(runs_out),
                human(runs_out.0.saturating_sub(now.0)),
                bundle.dir.display()
            ),
        ));
    }
    // The next key: the first after the active one that could ever sign.
    let next = bundle
        .keys
        .iter()
        .skip_while(|k| !std::ptr::eq(*k, active))
        .skip(1)
        .find(|k| k.key.is_ok() && k.expires() > now);
    // Old keys whose assertions may stay: they signed before (the ledger
    // says so) and their certificates have the margin left. Assertions of
    // any other key are signed again.
    let reusable: Vec<&BundleKey> = bundle
        .keys
        .iter()
        .filter(|k| !std::ptr::eq(*k, active) && k.not_before() <= now)
        .filter(|k| now.0.saturating_add(timing.margin) < k.expires().0)
        .filter(|k| previous.get(k.kid()).signed_until.is_some_and(|s| s > now))
        .collect();
    let publish: Vec<&BundleKey> = bundle
        .keys
        .iter()
        .filter(|k| k.expires() > now)
        .filter(|k| {
            std::ptr::eq(*k, active)
                || next.is_some_and(|n| std::ptr::eq(*k, n))
                || reusable.iter().any(|r| std::ptr::eq(*k, *r))
                || previous.get(k.kid()).signed_until.is_some_and(|s| s > now)
        })
        .collect();

    // The ledger of the zone built.
    let mut ledger = Ledger {
        active: Some(active.kid().clone()),
        keys: Default::default(),
    };
    for k in &publish {
        let old = previous.get(k.kid());
        ledger.keys.insert(
            k.kid().clone(),
            KeyHistory {
                published: Some(old.published.unwrap_or(now)),
                signed_until: old.signed_until,
            },
        );
    }
    let signs_until = UnixTime(now.0.saturating_add(timing.validity));
    // Every assertion the active key signs by now expires by now + V.
    let entry = ledger.keys.entry(active.kid().clone()).or_default();
    entry.signed_until = entry.signed_until.max(Some(signs_until));

    // Steps, compared with the previous ledger.
    let mut steps = Vec::new();
    if previous.active.as_ref() != Some(active.kid()) {
        steps.push(Step::Switched {
            from: previous.active.clone(),
            to: active.kid().clone(),
        });
    }
    for k in &publish {
        if previous.get(k.kid()).published.is_none() {
            steps.push(Step::Published {
                key: k.kid().clone(),
            });
        }
    }
    for (kid, h) in &previous.keys {
        if h.published.is_some() && !ledger.keys.contains_key(kid) {
            steps.push(Step::Retired { key: kid.clone() });
        }
    }

    // The next event: the earliest time at which this decision changes.
    let mut events: Vec<(UnixTime, String)> = Vec::new();
    if let Some(n) = next {
        let published = ledger.get(n.kid()).published.unwrap_or(now);
        let from = if !publishes_here || bootstrap {
            n.not_before()
        } else {
            n.not_before()
                .max(UnixTime(published.0.saturating_add(timing.lead)))
        };
        events.push((from, format!("switch signing to key {}", n.kid())));
    }
    events.push((
        UnixTime(active.expires().0.saturating_sub(timing.margin)),
        format!(
            "the certificate of key {} comes within the re-sign margin of its end",
            active.kid()
        ),
    ));
    for k in &reusable {
        events.push((
            UnixTime(k.expires().0.saturating_sub(timing.margin)),
            format!(
                "sign the remaining assertions of key {} again (its certificate ends at {})",
                k.kid(),
                k.expires()
            ),
        ));
    }
    for k in &publish {
        if std::ptr::eq(*k, active) || next.is_some_and(|n| std::ptr::eq(*k, n)) {
            continue;
        }
        let until = ledger.get(k.kid()).signed_until.unwrap_or(k.expires());
        events.push((
            until.min(k.expires()),
            format!("remove the certificate of key {}", k.kid()),
        ));
    }
    let next_step = events
        .into_iter()
        .filter(|(t, _)| *t > now)
        .min_by_key(|(t, _)| *t);
    let report = RolloverReport {
        bundle: bundle.dir.clone(),
        active: active.kid().clone(),
        active_window: (active.not_before(), active.expires()),
        published: publish.iter().map(|k| k.kid().clone()).collect(),
        steps,
        next: next_step.as_ref().map(|(at, what)| NextStep {
            at: *at,
            what: what.clone(),
        }),
        runs_out,
    };
    Some(Decision {
        active,
        publish,
        reusable: reusable.iter().map(|k| k.kid().clone()).collect(),
        next_event: next_step.map(|(t, _)| t),
        ledger,
        report,
    })
}

/// Why the later keys cannot sign yet (for the degraded warning).
fn waiting(
    bundle: &Bundle,
    previous: &Ledger,
    publishes_here: bool,
    bootstrap: bool,
    now: UnixTime,
    timing: Timing,
) -> String {
    let reasons = why_none(bundle, previous, publishes_here, bootstrap, now, timing);
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({reasons})")
    }
}

/// Why no key may sign, key by key.
fn why_none(
    bundle: &Bundle,
    previous: &Ledger,
    publishes_here: bool,
    bootstrap: bool,
    now: UnixTime,
    timing: Timing,
) -> String {
    let mut out = Vec::new();
    for k in bundle.keys.iter().filter(|k| k.expires() > now) {
        let why = if let Err(e) = &k.key {
            format!("cannot sign, its key file is unusable ({e})")
        } else if k.not_before() > now {
            format!("certified only from {}", rfc3339(k.not_before()))
        } else if publishes_here && !bootstrap {
            match previous.get(k.kid()).published {
                None => format!(
                    "its certificate was never published; refusing to sign with it before it has been published for {} (certificate TTL + propagation delay)",
                    human(timing.lead)
                ),
                Some(p) if p.0.saturating_add(timing.lead) > now.0 => format!(
                    "its certificate has been published only since {}; refusing to sign with it before {}",
                    rfc3339(p),
                    rfc3339(UnixTime(p.0 + timing.lead))
                ),
                Some(_) => continue,
            }
        } else {
            continue;
        };
        out.push(format!("key {}: {why}", k.kid()));
    }
    if bundle.keys.iter().all(|k| k.expires() <= now) {
        out.push(format!(
            "every certificate of the bundle has expired (the last at {})",
            bundle.ends().map_or_else(String::new, rfc3339)
        ));
    }
    out.join("; ")
}

/// A time as RFC 3339 UTC.
pub(crate) fn rfc3339(t: UnixTime) -> String {
    humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.0))
        .to_string()
}

/// A duration in words (`12d 3h`).
pub(crate) fn human(secs: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The timing of `config`'s rollover.
pub(crate) fn timing_of(
    config: &crate::input::config::ZoneConfig,
    auth: &crate::input::config::AuthorityConfig,
    bundle: &crate::input::config::BundleConfig,
) -> Timing {
    Timing {
        lead: u64::from(config.ttl) + bundle.propagation_delay,
        margin: auth.window.margin(),
        validity: auth.window.validity(),
        warn_before: bundle.warn_before,
    }
}

/// Whether `zone` publishes any certificate of `auth`.
pub(crate) fn publishes_certificates(
    zone: &crate::zone::Zone,
    auth: &crate::input::config::AuthorityConfig,
) -> bool {
    let owner = auth.name.certificate_name();
    zone.records
        .iter()
        .any(|r| r.owner == owner && r.text.contains(";pk="))
}

/// Where the rollover of `config` stands at `now`, given the zone
/// published last (`served`, with its ledger): what `mimi-publisher
/// status` reports. `Ok(None)` without a key bundle; the warnings (bundle
/// running out, degraded signing) come with the report; `Err` holds the
/// problems when no key can sign or the bundle does not read.
pub fn status(
    config: &crate::input::config::ZoneConfig,
    served: Option<&crate::zone::Zone>,
    now: UnixTime,
) -> Result<Option<(RolloverReport, Vec<Problem>)>, Vec<Problem>> {
    let Some(auth) = config.authority.as_ref() else {
        return Ok(None);
    };
    let Some(b) = auth.bundle.as_ref() else {
        return Ok(None);
    };
    let bundle = crate::input::bundle::read(&b.dir, &auth.name, &auth.root_keys)?;
    let empty = Ledger::default();
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    // The zone as served is the one whose ledger holds; deciding again at
    // `now` from it gives what the server's next build will do.
    let decision = decide(
        &bundle,
        served.map_or(&empty, |z| &z.ledger),
        served.is_some_and(|z| publishes_certificates(z, auth)),
        auth.name.certificate_name().is_within(&config.origin),
        now,
        timing_of(config, auth, b),
        &mut errors,
        &mut warnings,
    );
    match decision {
        Some(d) if errors.is_empty() => Ok(Some((d.report, warnings))),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    //! The schedule of the module doc, decision by decision, on a bundle of
    //! three keys certified for `[T, T+100)`, `[T+60, T+160)`,
    //! `[T+120, T+220)` with T = 1 000 000; lead 5 s, margin 5 s,
    //! validity 20 s, warning 30 s ahead.
    use super::*;
    use crate::input::bundle::{self, CeremonyPlan};
    use ed25519_dalek::SigningKey;
    use mimi_proto::AuthorityName;

    const T: u64 = 1_000_000;
    const TIMING: Timing = Timing {
        lead: 5,
        margin: 5,
        validity: 20,
        warn_before: 30,
    };

    struct Fixture {
        _dir: tempfile::TempDir,
        bundle: Bundle,
    }

    fn fixture(missing: Option<usize>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bundle");
        let authority = AuthorityName::parse("ma.example.net").unwrap();
        let plan = CeremonyPlan {
            authority: authority.clone(),
            keys: 3,
            start: UnixTime(T),
            key_validity: 100,
            overlap: 40,
        };
        let done = bundle::ceremony(&out, &SigningKey::from_bytes(&[7u8; 32]), &plan).unwrap();
        if let Some(i) = missing {
            let kid = done.added[i].kid().to_string();
            std::fs::remove_file(out.join(bundle::KEYS).join(format!("{kid}.pem"))).unwrap();
        }
        let bundle = bundle::read(&out, &authority, &[]).unwrap();
        assert_eq!(
            bundle
                .keys
                .iter()
                .map(|k| (k.not_before().0 - T, k.expires().0 - T))
                .collect::<Vec<_>>(),
            [(0, 100), (60, 160), (120, 220)]
        );
        Fixture { _dir: dir, bundle }
    }

    impl Fixture {
        fn kid(&self, i: usize) -> KeyId {
            self.bundle.keys[i].kid().clone()
        }

        /// A ledger: `(key, published, signed_until)` offsets from T.
        fn ledger(&self, active: usize, keys: &[(usize, u64, Option<u64>)]) -> Ledger {
            let mut l = Ledger {
                active: Some(self.kid(active)),
                keys: Default::default(),
            };
            for (i, p, s) in keys {
                l.keys.insert(
                    self.kid(*i),
                    KeyHistory {
                        published: Some(UnixTime(T + p)),
                        signed_until: s.map(|s| UnixTime(T + s)),
                    },
                );
            }
            l
        }
    }

    struct Out {
        active: Option<KeyId>,
        publish: Vec<KeyId>,
        reusable: Vec<KeyId>,
        next_event: Option<UnixTime>,
        ledger: Option<Ledger>,
        steps: Vec<Step>,
        errors: Vec<String>,
        warnings: Vec<String>,
    }

    fn run(f: &Fixture, previous: &Ledger, publishes_here: bool, at: u64) -> Out {
        let previously_published = previous.keys.values().any(|h| h.published.is_some());
        run_with(f, previous, previously_published, publishes_here, at)
    }

    fn run_with(
        f: &Fixture,
        previous: &Ledger,
        previously_published: bool,
        publishes_here: bool,
        at: u64,
    ) -> Out {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let d = decide(
            &f.bundle,
            previous,
            previously_published,
            publishes_here,
            UnixTime(T + at),
            TIMING,
            &mut errors,
            &mut warnings,
        );
        let text = |v: Vec<Problem>| v.iter().map(ToString::to_string).collect();
        Out {
            active: d.as_ref().map(|d| d.active.kid().clone()),
            publish: d
                .as_ref()
                .map(|d| d.publish.iter().map(|k| k.kid().clone()).collect())
                .unwrap_or_default(),
            reusable: d.as_ref().map(|d| d.reusable.clone()).unwrap_or_default(),
            next_event: d.as_ref().and_then(|d| d.next_event),
            ledger: d.as_ref().map(|d| d.ledger.clone()),
            steps: d.map(|d| d.report.steps).unwrap_or_default(),
            errors: text(errors),
            warnings: text(warnings),
        }
    }

    #[test]
    fn bootstrap_signs_at_once_and_publishes_the_next_certificate() {
        let f = fixture(None);
        let o = run(&f, &Ledger::default(), true, 0);
        assert_eq!(o.active, Some(f.kid(0)));
        assert_eq!(o.publish, [f.kid(0), f.kid(1)]);
        assert!(
            o.errors.is_empty() && o.warnings.is_empty(),
            "{:?}",
            o.warnings
        );
        let l = o.ledger.unwrap();
        assert_eq!(l.active, Some(f.kid(0)));
        assert_eq!(l.get(&f.kid(0)).published, Some(UnixTime(T)));
        assert_eq!(l.get(&f.kid(0)).signed_until, Some(UnixTime(T + 20)));
        assert_eq!(l.get(&f.kid(1)).published, Some(UnixTime(T)));
        assert_eq!(l.get(&f.kid(1)).signed_until, None);
        assert_eq!(
            o.steps,
            [
                Step::Switched {
                    from: None,
                    to: f.kid(0)
                },
                Step::Published { key: f.kid(0) },
                Step::Published { key: f.kid(1) },
            ]
        );
        // The next key may sign from its window's start (published since T).
        assert_eq!(o.next_event, Some(UnixTime(T + 60)));
    }

    #[test]
    fn the_bootstrap_key_keeps_signing_after_the_first_build() {
        // Regression: the second build (T+1) took the bootstrap key's
        // certificate, published at T, as too new to sign with and failed
        // until T+lead.
        let f = fixture(None);
        let first = run(&f, &Ledger::default(), true, 0).ledger.unwrap();
        for at in 1..=TIMING.lead {
            let o = run(&f, &first, true, at);
            assert_eq!(o.active, Some(f.kid(0)), "T+{at}: {:?}", o.errors);
            assert!(o.steps.is_empty(), "{:?}", o.steps);
            assert!(o.errors.is_empty() && o.warnings.is_empty());
        }
    }

    #[test]
    fn no_bootstrap_when_the_previous_zone_published_certificates() {
        // Certificates in the previous zone but no ledger (e.g. a zone
        // written by hand): nothing is known to be published long enough.
        let f = fixture(None);
        let o = run_with(&f, &Ledger::default(), true, true, 10);
        assert_eq!(o.active, None);
        assert_eq!(o.errors.len(), 1);
        assert!(
            o.errors[0].contains(&format!(
                "key {}: its certificate was never published",
                f.kid(0)
            )),
            "{}",
            o.errors[0]
        );
    }

    #[test]
    fn a_key_published_less_than_lead_ago_is_refused_until_published_plus_lead() {
        let f = fixture(None);
        // k1 published late, at T+70: its window began at T+60, it may sign
        // from T+75 = max(T+60, T+70+5).
        let prev = f.ledger(0, &[(0, 0, Some(90)), (1, 70, None)]);
        let o = run(&f, &prev, true, 74);
        assert_eq!(o.active, Some(f.kid(0)));
        assert_eq!(o.next_event, Some(UnixTime(T + 75)));
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        let o = run(&f, &prev, true, 75);
        assert_eq!(o.active, Some(f.kid(1)));
        assert!(o.steps.contains(&Step::Switched {
            from: Some(f.kid(0)),
            to: f.kid(1)
        }));
        // Published early (at T): the switch is at the window start.
        let prev = f.ledger(0, &[(0, 0, Some(79)), (1, 0, None)]);
        assert_eq!(run(&f, &prev, true, 59).active, Some(f.kid(0)));
        let o = run(&f, &prev, true, 60);
        assert_eq!(o.active, Some(f.kid(1)));
        // The switch publishes the key after next.
        assert_eq!(o.publish, [f.kid(0), f.kid(1), f.kid(2)]);
        assert!(o.steps.contains(&Step::Published { key: f.kid(2) }));

        // Within k0's margin (ends T+100) and k1 published at T+93: k0
        // keeps signing, with a warning that names k1 and when it may sign.
        let prev = f.ledger(0, &[(0, 0, Some(99)), (1, 93, None)]);
        let o = run(&f, &prev, true, 96);
        assert_eq!(o.active, Some(f.kid(0)));
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        let w = &o.warnings[0];
        assert!(
            w.contains(&format!("key {} signs although", f.kid(0))),
            "{w}"
        );
        assert!(w.contains(&f.kid(1).to_string()), "{w}");
        assert!(w.contains(&rfc3339(UnixTime(T + 98))), "{w}");
        assert!(w.contains("certificates:"), "names the file and line: {w}");
        // After k0's end, nothing may sign: an error naming k1 and T+98.
        let o = run(&f, &prev, true, 97);
        assert_eq!(o.active, Some(f.kid(0)));
        let o = run(
            &f,
            &f.ledger(0, &[(0, 0, Some(99)), (1, 96, None)]),
            true,
            100,
        );
        assert_eq!(o.active, None);
        assert_eq!(o.errors.len(), 1);
        let e = &o.errors[0];
        assert!(e.contains("no key of the bundle can sign"), "{e}");
        assert!(e.contains(&format!("key {}", f.kid(1))), "{e}");
        assert!(e.contains(&rfc3339(UnixTime(T + 101))), "{e}");
        assert!(e.contains("refusing to sign"), "{e}");
    }

    #[test]
    fn old_keys_records_stay_while_unexpired_with_the_margin_left_then_retire() {
        let f = fixture(None);
        // Switched at T+60; k0 signed assertions until T+79.
        let prev = f.ledger(1, &[(0, 0, Some(79)), (1, 0, Some(80)), (2, 60, None)]);
        let o = run(&f, &prev, true, 65);
        assert_eq!(o.active, Some(f.kid(1)));
        assert_eq!(o.reusable, [f.kid(0)]);
        assert_eq!(o.publish, [f.kid(0), f.kid(1), f.kid(2)]);
        // The next event is the removal of k0's certificate at T+79.
        assert_eq!(o.next_event, Some(UnixTime(T + 79)));
        assert_eq!(
            o.ledger.as_ref().unwrap().get(&f.kid(0)).signed_until,
            Some(UnixTime(T + 79))
        );
        // At signed_until: no longer reusable, certificate retired.
        let o = run(&f, &prev, true, 79);
        assert!(o.reusable.is_empty());
        assert_eq!(o.publish, [f.kid(1), f.kid(2)]);
        assert!(o.steps.contains(&Step::Retired { key: f.kid(0) }));
        assert!(!o.ledger.unwrap().keys.contains_key(&f.kid(0)));

        // Signed until past its certificate's margin: reusable only until
        // T+95 (end T+100 less the margin), published until it ends.
        let prev = f.ledger(1, &[(0, 0, Some(100)), (1, 0, Some(90)), (2, 60, None)]);
        let o = run(&f, &prev, true, 94);
        assert_eq!(o.reusable, [f.kid(0)]);
        let o = run(&f, &prev, true, 95);
        assert!(o.reusable.is_empty(), "re-signed a margin before the end");
        assert!(o.publish.contains(&f.kid(0)), "still published");
        let o = run(&f, &prev, true, 100);
        assert!(!o.publish.contains(&f.kid(0)), "expired");
    }

    #[test]
    fn the_bundle_warning_comes_warn_before_ahead_of_the_end() {
        let f = fixture(None);
        // The bundle runs out at T+215 (end T+220 less the margin).
        let prev = f.ledger(2, &[(1, 0, Some(130)), (2, 60, Some(180))]);
        let o = run(&f, &prev, true, 184);
        assert_eq!(o.active, Some(f.kid(2)));
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        let o = run(&f, &prev, true, 185);
        assert_eq!(o.warnings.len(), 1);
        let w = &o.warnings[0];
        assert!(w.contains("runs out at"), "{w}");
        assert!(w.contains(&rfc3339(UnixTime(T + 215))), "{w}");
        assert!(w.contains("ceremony"), "{w}");
        // Degraded after T+215, then an error after the end.
        let o = run(&f, &prev, true, 216);
        assert_eq!(o.active, Some(f.kid(2)));
        assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
        let o = run(&f, &prev, true, 220);
        assert_eq!(o.active, None);
        assert!(
            o.errors[0].contains("every certificate of the bundle has expired"),
            "{:?}",
            o.errors
        );
    }

    #[test]
    fn a_key_without_its_file_is_skipped_and_named() {
        let f = fixture(Some(1));
        // k1 cannot sign: the next key is k2, so only k0 and k2 are
        // published after bootstrap.
        let o = run(&f, &Ledger::default(), true, 0);
        assert_eq!(o.active, Some(f.kid(0)));
        assert_eq!(o.publish, [f.kid(0), f.kid(2)]);
        let prev = o.ledger.unwrap();
        // k0 in its margin, k2 not yet valid: degraded, naming k1's file.
        let o = run(&f, &prev, true, 96);
        assert_eq!(o.active, Some(f.kid(0)));
        assert!(
            o.warnings[0].contains(&format!(
                "key {}: cannot sign, its key file is unusable",
                f.kid(1)
            )),
            "{:?}",
            o.warnings
        );
        let o = run(&f, &prev, true, 100);
        assert_eq!(o.active, None);
        assert!(
            o.errors[0].contains(&format!(
                "key {}: cannot sign, its key file is unusable",
                f.kid(1)
            )),
            "{:?}",
            o.errors
        );
        assert!(
            o.errors[0].contains(&format!(
                "key {}: certified only from {}",
                f.kid(2),
                rfc3339(UnixTime(T + 120))
            )),
            "{:?}",
            o.errors
        );
    }

    #[test]
    fn certificates_published_outside_the_zone_are_assumed_published_at_their_start() {
        let f = fixture(None);
        // No ledger, not a bootstrap: each key signs from its window start.
        let o = run_with(&f, &Ledger::default(), true, false, 59);
        assert_eq!(o.active, Some(f.kid(0)));
        assert!(o.errors.is_empty() && o.warnings.is_empty());
        let o = run_with(&f, &Ledger::default(), true, false, 60);
        assert_eq!(o.active, Some(f.kid(1)));
        // A just-published key (by the ledger) does not wait here either.
        let prev = f.ledger(0, &[(0, 0, Some(80)), (1, 119, None)]);
        assert_eq!(run(&f, &prev, false, 120).active, Some(f.kid(2)));
    }
}

#[cfg(test)]
mod bootstrap_tests {
    use super::*;
    use crate::input::bundle::{ceremony, read, CeremonyPlan};
    use mimi_proto::AuthorityName;

    /// A rebuild soon after the first build (within the certificate TTL +
    /// propagation delay) keeps the bootstrapped key signing: it used to
    /// find no key that could sign, fail, and leave the zone to the
    /// failure retry (a minute) instead of the schedule.
    #[test]
    fn the_bootstrapped_key_keeps_signing_within_the_lead() {
        let dir = tempfile::tempdir().unwrap();
        let authority = AuthorityName::parse("example.com").unwrap();
        let root = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let start = UnixTime(1_000_000);
        let plan = CeremonyPlan {
            authority: authority.clone(),
            keys: 2,
            start,
            key_validity: 100,
            overlap: 50,
        };
        ceremony(&dir.path().join("b"), &root, &plan).unwrap();
        let bundle = read(&dir.path().join("b"), &authority, &[]).unwrap();
        let timing = Timing {
            lead: 10,
            margin: 5,
            validity: 20,
            warn_before: 0,
        };
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let first = decide(
            &bundle,
            &Ledger::default(),
            false,
            true,
            start,
            timing,
            &mut errors,
            &mut warnings,
        )
        .expect("the first build signs at once");
        let k0 = bundle.keys[0].kid().clone();
        assert_eq!(first.active.kid(), &k0);
        let again = decide(
            &bundle,
            &first.ledger,
            true,
            true,
            start.plus(1),
            timing,
            &mut errors,
            &mut warnings,
        )
        .unwrap_or_else(|| panic!("the rebuild one second later failed: {errors:?}"));
        assert_eq!(again.active.kid(), &k0);
        assert!(again.report.steps.is_empty(), "{:?}", again.report.steps);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
