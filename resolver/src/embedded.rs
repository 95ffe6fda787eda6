//! A resolver with its own runtime, for callers that are not Rust async
//! code: the C ABI, the Python, Kotlin and Swift bindings, plain threads.
//!
//! [`Resolver`] needs a Tokio runtime; a C program or a Python interpreter
//! has none. An [`EmbeddedResolver`] owns a small multi-threaded runtime
//! (two worker threads: lookups are I/O-bound and Ed25519 verification is
//! cheap) and one [`Resolver`], so every call shares one certificate cache
//! and one DNS cache. It offers three ways in:
//!
//! * blocking calls ([`EmbeddedResolver::lookup`], [`EmbeddedResolver::lookup_batch`])
//!   for threads that may wait;
//! * [`EmbeddedResolver::spawn_lookup`], which calls back on a runtime
//!   thread, for event loops with their own wake-up mechanism (C);
//! * [`EmbeddedResolver::lookup_async`], a future that any executor can
//!   poll (asyncio through uniffi, Kotlin coroutines, Swift tasks), because
//!   it only awaits a completion signal from this runtime.
//!
//! It is `Send + Sync`: any number of threads may use one handle at once.
//! A panic inside a lookup is already caught by [`Resolver::lookup_at`]
//! and reported as [`Report::Internal`].

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use mimi_proto::{Region, UnixTime};

use crate::config::{ClientConfig, ClientConfigError};
use crate::lookup::{Resolver, ResolverOptions};
use crate::report::Report;

/// Lookups of one batch in flight at once.
pub const BATCH_CONCURRENCY: usize = 64;

/// The most inputs one [`EmbeddedResolver::lookup_batch`] accepts: a bound
/// on the memory a single call can make the library hold.
pub const MAX_BATCH: usize = 100_000;

/// Why an [`EmbeddedResolver`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ClientConfigError),
    /// The resolver refused the options.
    #[error(transparent)]
    Resolver(#[from] crate::lookup::ConfigError),
    /// The runtime's threads could not be started.
    #[error("cannot start the resolver's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A batch larger than [`MAX_BATCH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} inputs in one batch; at most {MAX_BATCH} are accepted")]
pub struct BatchTooLarge(pub usize);

/// A [`Resolver`] on its own runtime. See the module documentation.
pub struct EmbeddedResolver {
    /// `Some` until dropped: dropping takes it out to shut it down in the
    /// background, which (unlike a plain drop) is allowed on any thread,
    /// including one of the runtime's own (a callback's).
    runtime: Option<tokio::runtime::Runtime>,
    resolver: Arc<Resolver>,
    region: Option<Region>,
}

impl std::fmt::Debug for EmbeddedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedResolver")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl EmbeddedResolver {
    /// Builds one from a [`ClientConfig`] (reading its files).
    pub fn from_config(config: &ClientConfig) -> Result<Self, EmbeddedError> {
        let parsed = config.parse()?;
        Self::new(parsed.options, parsed.region)
    }

    /// Builds one from options; `region` is the default region of national
    /// telephone numbers.
    pub fn new(options: ResolverOptions, region: Option<Region>) -> Result<Self, EmbeddedError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mimi-resolver")
            .enable_all()
            .build()
            .map_err(EmbeddedError::Runtime)?;
        let resolver = {
            let _guard = runtime.enter();
            Resolver::new(options)?
        };
        Ok(EmbeddedResolver {
            runtime: Some(runtime),
            resolver: Arc::new(resolver),
            region,
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until drop")
    }

    /// The resolver itself (for its options).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Looks `input` up now, blocking the calling thread.
    ///
    /// # Panics
    /// When called from inside an async runtime's worker thread (blocking
    /// there would stall it); use [`EmbeddedResolver::lookup_async`].
    pub fn lookup(&self, input: &str) -> Report {
        self.lookup_at(input, UnixTime::now())
    }

    /// [`EmbeddedResolver::lookup`] judging validity at `now`.
    pub fn lookup_at(&self, input: &str, now: UnixTime) -> Report {
        let resolver = Arc::clone(&self.resolver);
        let region = self.region;
        let input = input.to_owned();
        self.runtime()
            .block_on(async move { resolver.lookup_input(&input, region, now).await })
    }

    /// Looks up every input concurrently ([`BATCH_CONCURRENCY`] at once),
    /// blocking; one report per input, in input order.
    pub fn lookup_batch(&self, inputs: &[String]) -> Result<Vec<Report>, BatchTooLarge> {
        self.lookup_batch_at(inputs, UnixTime::now())
    }

    /// [`EmbeddedResolver::lookup_batch`] judging validity at `now`.
    pub fn lookup_batch_at(
        &self,
        inputs: &[String],
        now: UnixTime,
    ) -> Result<Vec<Report>, BatchTooLarge> {
        if inputs.len() > MAX_BATCH {
            return Err(BatchTooLarge(inputs.len()));
        }
        let resolver = Arc::clone(&self.resolver);
        let region = self.region;
        Ok(self
            .runtime()
            .block_on(batch(resolver, inputs.to_vec(), region, now)))
    }

    /// Starts a lookup and returns at once; `done` is called with the
    /// report on one of the runtime's threads. `done` must not block for
    /// long (it holds up other lookups); it may call this resolver again.
    pub fn spawn_lookup<F>(&self, input: &str, done: F)
    where
        F: FnOnce(Report) + Send + 'static,
    {
        let resolver = Arc::clone(&self.resolver);
        let region = self.region;
        let input = input.to_owned();
        self.runtime().spawn(async move {
            let report = resolver.lookup_input(&input, region, UnixTime::now()).await;
            done(report);
        });
    }

    /// A lookup as a future that any executor may poll: the lookup runs on
    /// this resolver's runtime, and the future only waits for its result.
    pub fn lookup_async(&self, input: &str) -> impl Future<Output = Report> + Send + 'static {
        let resolver = Arc::clone(&self.resolver);
        let region = self.region;
        let input_owned = input.to_owned();
        let task = self.runtime().spawn(async move {
            resolver
                .lookup_input(&input_owned, region, UnixTime::now())
                .await
        });
        let input = input.to_owned();
        async move {
            task.await.unwrap_or_else(|e| Report::BadInput {
                input,
                canonical: None,
                error: format!("the lookup was cancelled: {e}"),
            })
        }
    }

    /// A batch as a future that any executor may poll.
    pub fn lookup_batch_async(
        &self,
        inputs: Vec<String>,
    ) -> Result<impl Future<Output = Vec<Report>> + Send + 'static, BatchTooLarge> {
        if inputs.len() > MAX_BATCH {
            return Err(BatchTooLarge(inputs.len()));
        }
        let n = inputs.len();
        let task = self.runtime().spawn(batch(
            Arc::clone(&self.resolver),
            inputs,
            self.region,
            UnixTime::now(),
        ));
        Ok(async move {
            task.await.unwrap_or_else(|e| {
                (0..n)
                    .map(|_| Report::BadInput {
                        input: String::new(),
                        canonical: None,
                        error: format!("the lookup was cancelled: {e}"),
                    })
                    .collect()
            })
        })
    }
}

async fn batch(
    resolver: Arc<Resolver>,
    inputs: Vec<String>,
    region: Option<Region>,
    now: UnixTime,
) -> Vec<Report> {
    futures::stream::iter(inputs)
        .map(move |input| {
            let resolver = Arc::clone(&resolver);
            async move { resolver.lookup_input(&input, region, now).await }
        })
        .buffered(BATCH_CONCURRENCY)
        .collect()
        .await
}

impl Drop for EmbeddedResolver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> EmbeddedResolver {
        // A server on a port nothing listens on: lookups end as DNS errors.
        let config = ClientConfig {
            trust_toml: Some("[policy]\nmin_authorities = 1\n[[authority]]\nname = \"example.com\"\nroot_keys = [\"IOnU6osCMikqU1s_Wr_guY9IVD2ijsLfaNTewQiYWMA\"]\n".into()),
            servers: vec!["127.0.0.1:9".into()],
            timeout_ms: Some(200),
            attempts: Some(0),
            ..Default::default()
        };
        EmbeddedResolver::from_config(&config).unwrap()
    }

    #[test]
    fn blocking_batch_and_callback_give_reports_in_order() {
        let r = resolver();
        assert_eq!(r.lookup("not an sii").outcome(), "bad_input");
        assert_eq!(r.lookup("alice@example.com").outcome(), "dns_error");
        let inputs: Vec<String> = ["bob@example.com", "???", "carol@example.com"]
            .map(String::from)
            .into();
        let reports = r.lookup_batch(&inputs).unwrap();
        let outcomes: Vec<_> = reports.iter().map(|r| r.outcome()).collect();
        assert_eq!(outcomes, ["dns_error", "bad_input", "dns_error"]);
        assert_eq!(
            reports[2].canonical().map(|s| s.as_str()),
            Some("mailto:carol@example.com")
        );
        let (tx, rx) = std::sync::mpsc::channel();
        r.spawn_lookup("dave@example.com", move |rep| tx.send(rep).unwrap());
        let rep = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(rep.outcome(), "dns_error");
        let rep = futures::executor::block_on(r.lookup_async("erin@example.com"));
        assert_eq!(rep.outcome(), "dns_error");
    }

    #[test]
    fn dropping_inside_a_callback_does_not_panic() {
        let r = Arc::new(std::sync::Mutex::new(Some(resolver())));
        let (tx, rx) = std::sync::mpsc::channel();
        let r2 = Arc::clone(&r);
        r.lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .spawn_lookup("x@example.com", move |_| {
                // The last handle dropped on a runtime thread.
                drop(r2.lock().unwrap().take());
                tx.send(()).unwrap();
            });
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(r.lock().unwrap().is_none());
    }

    #[test]
    fn oversized_batches_are_refused() {
        let r = resolver();
        let inputs = vec![String::new(); MAX_BATCH + 1];
        assert_eq!(
            r.lookup_batch(&inputs).unwrap_err(),
            BatchTooLarge(MAX_BATCH + 1)
        );
    }

    #[test]
    fn handles_are_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EmbeddedResolver>();
    }
}
