//! The resolver handle and its lookups.

use std::ffi::{c_char, c_void};

use mimi_resolver::{ClientConfig, EmbeddedError, EmbeddedResolver, Report};

use crate::batch::Batch;
use crate::callback::{MimiLookupCallback, Pending};
use crate::status::{guard, CallError, MimiStatus};
use crate::strings::{into_c_string, read_str, set_out};

/// A resolver: its configuration, its certificate and DNS caches and its
/// own two threads. Opaque; create it with `mimi_resolver_new`, free it
/// with `mimi_resolver_free`.
///
/// A handle is thread-safe: any number of threads may call the lookup
/// functions on one handle at the same time (they share its caches). Only
/// `mimi_resolver_free` needs exclusive use: no other call on the handle
/// may be running or start once it is called.
pub struct MimiResolver {
    inner: EmbeddedResolver,
}

impl MimiResolver {
    fn with_endpoints(&self) -> bool {
        self.inner.resolver().options().endpoints
    }

    /// Refuses blocking calls on the resolver's own threads: `block_on`
    /// there would panic (and, were it allowed, stall the lookups awaited).
    fn check_may_block(&self) -> Result<(), CallError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(CallError::new(
                MimiStatus::CallbackThread,
                "a blocking lookup cannot run on a resolver thread (inside a \
                 mimi_resolver_lookup_async callback); use mimi_resolver_lookup_async",
            ));
        }
        Ok(())
    }
}

/// Reads the handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle from `mimi_resolver_new`.
unsafe fn handle<'a>(ptr: *const MimiResolver) -> Result<&'a MimiResolver, CallError> {
    // SAFETY: the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| CallError::null("resolver"))
}

/// Checks that an out-parameter is not NULL.
fn required<T>(out: *mut T, name: &str) -> Result<(), CallError> {
    if out.is_null() {
        Err(CallError::null(name))
    } else {
        Ok(())
    }
}

/// Creates a resolver from `config_json`, a JSON object with the fields of
/// the resolver's client configuration: one of `trust_file` (a path) or
/// `trust_toml` (the trust store's text); optionally `zones`, `tel_roots`,
/// `region`, `home`, `servers` (`"IP[:PORT]"`, `"tls://…"`, `"https://…"`,
/// `"quic://…"`), `tls_name`, `ca_file`, `private`, `timeout_ms`,
/// `attempts`, `dnssec`, `trust_anchor_file`, `endpoints`. Unknown fields
/// are an error. Files named in it are read now, not at each lookup.
///
/// On success `*out` is the new handle (free it with
/// `mimi_resolver_free`). On failure `*out` is NULL and the status says
/// why (`MIMI_STATUS_INVALID_CONFIG` with a message starting with the
/// field's name, e.g. `servers[0]: …`).
///
/// `error` may be NULL; otherwise `*error` is set to NULL on success and to
/// a message on failure, which the caller frees with `mimi_string_free`.
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string; `out` is NULL or
/// writable; `error` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mimi_resolver_new(
    config_json: *const c_char,
    out: *mut *mut MimiResolver,
    error: *mut *mut c_char,
) -> MimiStatus {
    // SAFETY: the caller's contract.
    unsafe { set_out(out, std::ptr::null_mut()) };
    // SAFETY: the caller's contract.
    unsafe {
        guard(error, || {
            required(out, "out")?;
            let text = read_str(config_json, "config_json")?;
            let config = ClientConfig::from_json(text)
                .map_err(|e| CallError::new(MimiStatus::InvalidConfig, e.to_string()))?;
            let inner = EmbeddedResolver::from_config(&config).map_err(|e| match e {
                EmbeddedError::Runtime(_) => CallError::new(MimiStatus::Runtime, e.to_string()),
                EmbeddedError::Config(_) | EmbeddedError::Resolver(_) => {
                    CallError::new(MimiStatus::InvalidConfig, e.to_string())
                }
            })?;
            let handle = Box::into_raw(Box::new(MimiResolver { inner }));
            set_out(out, handle);
            Ok(())
        })
    }
}

/// Frees a resolver. `resolver` may be NULL (nothing happens). No other
/// call on the handle may be running or follow.
///
/// It does not wait: lookups still running for `mimi_resolver_lookup_async`
/// are cancelled, and their callbacks are still called, exactly once, on
/// the resolver's threads as they stop, with a `bad_input` report whose
/// error says the lookup was cancelled. It may be called from inside such
/// a callback.
///
/// # Safety
/// `resolver` is NULL or a handle from `mimi_resolver_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mimi_resolver_free(resolver: *mut MimiResolver) {
    if resolver.is_null() {
        return;
    }
    // Dropping shuts the runtime down in the background; a panic there
    // would be a bug in Tokio, caught rather than unwinding into C.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller's contract: the box came from
        // `mimi_resolver_new` and is used by nobody else.
        drop(unsafe { Box::from_raw(resolver) });
    }));
}

/// Looks `sii` up, blocking the calling thread until the lookup ends (at
/// most about the configured timeout times attempts per DNS source).
///
/// On success `*json_out` is the result as a JSON object, the one
/// `mimi-resolve lookup --json` prints: `outcome` is `verified`,
/// `not_found`, `rejected`, `dns_error`, `no_buckets`, `bad_input` (the
/// input is not an SII) or `internal_error`; `verified` lists only SSIs
/// verified against the trust store. A bad input or a DNS failure is
/// `MIMI_STATUS_OK` with that outcome. The caller frees `*json_out` with
/// `mimi_string_free`. On failure `*json_out` is NULL.
///
/// Must not be called from inside a `mimi_resolver_lookup_async` callback
/// (`MIMI_STATUS_CALLBACK_THREAD`).
///
/// # Safety
/// `resolver` is NULL or a live handle; `sii` is NULL or a NUL-terminated
/// string; `json_out` and `error` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mimi_resolver_lookup(
    resolver: *const MimiResolver,
    sii: *const c_char,
    json_out: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MimiStatus {
    // SAFETY: the caller's contract.
    unsafe { set_out(json_out, std::ptr::null_mut()) };
    // SAFETY: the caller's contract.
    unsafe {
        guard(error, || {
            let r = handle(resolver)?;
            let input = read_str(sii, "sii")?;
            required(json_out, "json_out")?;
            r.check_may_block()?;
            let report = r.inner.lookup(input);
            set_out(
                json_out,
                into_c_string(&report.to_json(r.with_endpoints()).to_string()),
            );
            Ok(())
        })
    }
}

/// Looks up every SII of `siis_json`, a JSON array of strings (at most
/// 100 000), concurrently (64 at a time), blocking until all have ended.
///
/// On success `*json_out` is a JSON array with one object per input, in
/// input order, each the object `mimi_resolver_lookup` gives for it (a bad
/// element is a `bad_input` object, not a failed call). The caller frees
/// it with `mimi_string_free`. A `siis_json` that is not an array of
/// strings, or too long, is `MIMI_STATUS_INVALID_ARGUMENT`, and `*json_out`
/// is NULL.
///
/// Must not be called from inside a `mimi_resolver_lookup_async` callback
/// (`MIMI_STATUS_CALLBACK_THREAD`).
///
/// # Safety
/// As `mimi_resolver_lookup`.
#[no_mangle]
pub unsafe extern "C" fn mimi_resolver_lookup_batch(
    resolver: *const MimiResolver,
    siis_json: *const c_char,
    json_out: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MimiStatus {
    // SAFETY: the caller's contract.
    unsafe { set_out(json_out, std::ptr::null_mut()) };
    // SAFETY: the caller's contract.
    unsafe {
        guard(error, || {
            let r = handle(resolver)?;
            let text = read_str(siis_json, "siis_json")?;
            required(json_out, "json_out")?;
            let batch = Batch::from_json(text).map_err(|e| {
                CallError::new(MimiStatus::InvalidArgument, format!("siis_json: {e}"))
            })?;
            r.check_may_block()?;
            let reports = r
                .inner
                .lookup_batch(batch.inputs())
                .map_err(|e| CallError::new(MimiStatus::InvalidArgument, e.to_string()))?;
            let with_endpoints = r.with_endpoints();
            let array: Vec<_> = reports
                .iter()
                .map(|rep| rep.to_json(with_endpoints))
                .collect();
            set_out(
                json_out,
                into_c_string(&serde_json::Value::Array(array).to_string()),
            );
            Ok(())
        })
    }
}

/// Starts a lookup of `sii` and returns at once, for event loops that must
/// not block.
///
/// On `MIMI_STATUS_OK`, `callback(user_data, json)` is called exactly once
/// later, on one of the resolver's own threads (never on the calling
/// thread during this call), with the object `mimi_resolver_lookup` would
/// give; the callback owns `json` and frees it with `mimi_string_free`. If
/// the resolver is freed first, the callback still comes, with a
/// `bad_input` report saying the lookup was cancelled. On any other status
/// the callback is never called.
///
/// The callback should return quickly (it holds up other lookups); it may
/// start more asynchronous lookups or free the resolver, but a blocking
/// lookup inside it fails with `MIMI_STATUS_CALLBACK_THREAD`. It must not
/// unwind (C++ exceptions, `longjmp`) out of itself. `user_data` is passed
/// through untouched and must be usable from another thread.
///
/// # Safety
/// `resolver` is NULL or a live handle; `sii` is NULL or a NUL-terminated
/// string; `callback` is a valid function (a NULL function pointer is
/// detected); `error` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mimi_resolver_lookup_async(
    resolver: *const MimiResolver,
    sii: *const c_char,
    callback: MimiLookupCallback,
    user_data: *mut c_void,
    error: *mut *mut c_char,
) -> MimiStatus {
    // SAFETY: the caller's contract.
    unsafe {
        guard(error, || {
            let r = handle(resolver)?;
            let input = read_str(sii, "sii")?;
            let callback = callback.ok_or_else(|| CallError::null("callback"))?;
            let pending = Pending::new(callback, user_data, input, r.with_endpoints());
            r.inner
                .spawn_lookup(input, move |report: Report| pending.finish(&report));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strings::take_string;
    use std::ffi::CString;
    use std::sync::mpsc;

    /// A configuration whose one server is a port nothing listens on.
    const CONFIG: &str = r#"{"trust_toml": "[policy]\nmin_authorities = 1\n[[authority]]\nname = \"example.com\"\nroot_keys = [\"IOnU6osCMikqU1s_Wr_guY9IVD2ijsLfaNTewQiYWMA\"]\n",
        "servers": ["127.0.0.1:9"], "timeout_ms": 200, "attempts": 0}"#;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn new(config: &str) -> Result<*mut MimiResolver, (MimiStatus, String)> {
        let (mut out, mut error) = (std::ptr::dangling_mut(), std::ptr::null_mut());
        // SAFETY: valid pointers.
        let st = unsafe { mimi_resolver_new(c(config).as_ptr(), &mut out, &mut error) };
        if st == MimiStatus::Ok {
            assert!(error.is_null() && !out.is_null());
            Ok(out)
        } else {
            assert!(out.is_null(), "out must be NULL on failure");
            // SAFETY: set by the call.
            Err((st, unsafe { take_string(error) }))
        }
    }

    fn lookup(
        r: *const MimiResolver,
        sii: &str,
    ) -> Result<serde_json::Value, (MimiStatus, String)> {
        let (mut json, mut error) = (std::ptr::dangling_mut(), std::ptr::null_mut());
        // SAFETY: valid pointers.
        let st = unsafe { mimi_resolver_lookup(r, c(sii).as_ptr(), &mut json, &mut error) };
        if st == MimiStatus::Ok {
            // SAFETY: set by the call.
            Ok(serde_json::from_str(&unsafe { take_string(json) }).unwrap())
        } else {
            assert!(json.is_null(), "json_out must be NULL on failure");
            // SAFETY: set by the call.
            Err((st, unsafe { take_string(error) }))
        }
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_field() {
        let e = new(r#"{"servers": ["nonsense"]}"#).unwrap_err();
        assert_eq!(e.0, MimiStatus::InvalidConfig);
        assert!(e.1.starts_with("trust_file:"), "{e:?}");
        let e = new(&CONFIG.replace("200", "0")).unwrap_err();
        assert!(e.1.starts_with("timeout_ms:"), "{e:?}");
        let e = new(r#"{"zone": []}"#).unwrap_err();
        assert!(e.1.starts_with("config:") && e.1.contains("zone"), "{e:?}");
        let mut error = std::ptr::null_mut();
        // SAFETY: NULL arguments are detected.
        let st = unsafe { mimi_resolver_new(std::ptr::null(), std::ptr::null_mut(), &mut error) };
        assert_eq!(st, MimiStatus::NullArgument);
        // SAFETY: set by the call.
        assert_eq!(unsafe { take_string(error) }, "out is NULL");
    }

    #[test]
    fn lookups_answer_json_and_wrong_calls_name_the_argument() {
        let r = new(CONFIG).unwrap();
        assert_eq!(
            lookup(r, "alice@example.com").unwrap()["outcome"],
            "dns_error"
        );
        let bad = lookup(r, "not an sii").unwrap();
        assert_eq!(
            (bad["outcome"].as_str(), bad["input"].as_str()),
            (Some("bad_input"), Some("not an sii"))
        );
        let e = lookup(std::ptr::null(), "alice@example.com").unwrap_err();
        assert_eq!(e, (MimiStatus::NullArgument, "resolver is NULL".into()));

        let (mut json, mut error) = (std::ptr::null_mut(), std::ptr::null_mut());
        let batch = c(r#"["alice@example.com", "???"]"#);
        // SAFETY: valid pointers.
        let st = unsafe { mimi_resolver_lookup_batch(r, batch.as_ptr(), &mut json, &mut error) };
        assert_eq!(st, MimiStatus::Ok);
        // SAFETY: set by the call.
        let v: serde_json::Value = serde_json::from_str(&unsafe { take_string(json) }).unwrap();
        assert_eq!(v[0]["outcome"], "dns_error");
        assert_eq!(v[1]["outcome"], "bad_input");
        let batch = c(r#"{"siis": []}"#);
        // SAFETY: valid pointers.
        let st = unsafe { mimi_resolver_lookup_batch(r, batch.as_ptr(), &mut json, &mut error) };
        assert_eq!(st, MimiStatus::InvalidArgument);
        assert!(json.is_null());
        // SAFETY: set by the call.
        assert!(unsafe { take_string(error) }.starts_with("siis_json: expected a JSON array"));
        // SAFETY: a live handle.
        unsafe { mimi_resolver_free(r) };
    }

    struct Ctx {
        resolver: *const MimiResolver,
        tx: mpsc::Sender<(String, MimiStatus)>,
    }

    extern "C" fn on_result(user_data: *mut c_void, json: *mut c_char) {
        // SAFETY: a `Box<Ctx>` leaked for this one call.
        let ctx = unsafe { Box::from_raw(user_data.cast::<Ctx>()) };
        let (mut out, mut error) = (std::ptr::null_mut(), std::ptr::null_mut());
        let sii = c("alice@example.com");
        // SAFETY: the handle lives until the test frees it after this.
        let st = unsafe { mimi_resolver_lookup(ctx.resolver, sii.as_ptr(), &mut out, &mut error) };
        // SAFETY: set by the call.
        drop(unsafe { take_string(error) });
        assert!(out.is_null());
        // SAFETY: the callback owns `json`.
        ctx.tx.send((unsafe { take_string(json) }, st)).unwrap();
    }

    #[test]
    fn async_lookups_call_back_once_and_refuse_blocking_inside() {
        let r = new(CONFIG).unwrap();
        let (tx, rx) = mpsc::channel();
        let ctx = Box::into_raw(Box::new(Ctx { resolver: r, tx }));
        let sii = c("bob@example.com");
        // SAFETY: valid pointers; `ctx` is given to the callback.
        let st = unsafe {
            mimi_resolver_lookup_async(
                r,
                sii.as_ptr(),
                Some(on_result),
                ctx.cast(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, MimiStatus::Ok);
        let (json, inner) = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        assert!(json.contains(r#""outcome":"dns_error""#), "{json}");
        assert_eq!(inner, MimiStatus::CallbackThread);
        let mut error = std::ptr::null_mut();
        // SAFETY: a NULL callback is detected.
        let st = unsafe {
            mimi_resolver_lookup_async(r, sii.as_ptr(), None, std::ptr::null_mut(), &mut error)
        };
        assert_eq!(st, MimiStatus::NullArgument);
        // SAFETY: set by the call.
        assert_eq!(unsafe { take_string(error) }, "callback is NULL");
        // SAFETY: a live handle.
        unsafe { mimi_resolver_free(r) };
    }
}
